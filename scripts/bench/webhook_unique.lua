-- wrk script: POST /webhook/dialog like ../shared/bench/webhook.lua (1000 rotating
-- conversation ids, same body shape), but every request carries a unique eventId.
-- Why: the shared script re-sends byte-identical bodies per conversation, which SPEC's
-- de-duplication answers "duplicate" without a write. With unique ids every request is a
-- new version, the write path the peer's numbers measure.
-- Prints: RESULT name=<RESULT_NAME|webhook_unique> rps= p50_ms= p99_ms= non2xx=

local ids = tonumber(os.getenv("WEBHOOK_IDS") or "1000")
local result_name = os.getenv("RESULT_NAME") or "webhook_unique"
local threads = {}
local thread_count = 0
function setup(thread)
   thread_count = thread_count + 1
   thread:set("thread_index", thread_count - 1)
   table.insert(threads, thread)
end

local cursor = 0
local counter = 0
local headers = { ["Content-Type"] = "application/json" }
non2xx = 0

function init(args)
   cursor = ((thread_index or 0) * 97) % ids
end

function request()
   cursor = cursor + 1
   if cursor > ids then cursor = 1 end
   counter = counter + 1
   local body = string.format(
      '{"conversationId":"conv-%d","channel":"web-chat","intent":"book_flight",' ..
      '"slots":{"origin":"JFK","destination":"LHR"},"timestamp":%d,"eventId":"t%d-%d"}',
      cursor - 1, 1718409600 + cursor - 1, thread_index or 0, counter)
   return wrk.format("POST", nil, headers, body)
end

function response(status, headers, body)
   if status < 200 or status > 299 then non2xx = non2xx + 1 end
end

function done(summary, latency, requests)
   local bad = 0
   for _, t in ipairs(threads) do bad = bad + (tonumber(t:get("non2xx")) or 0) end
   io.write(string.format("RESULT name=%s rps=%.2f p50_ms=%.3f p99_ms=%.3f non2xx=%d\n",
      result_name, summary.requests / (summary.duration / 1e6),
      latency:percentile(50) / 1000, latency:percentile(99) / 1000, bad))
end
