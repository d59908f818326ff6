-- wrk script: POST /webhook/dialog like ../shared/bench/webhook.lua (1000 rotating
-- conversation ids, same body shape), but every request carries a unique eventId.
-- Why: the shared script re-sends byte-identical bodies per conversation, which SPEC's
-- de-duplication answers "duplicate" without a write. With unique ids every request is a
-- new version, the write path the peer's numbers measure.
-- Prints: RESULT name=<RESULT_NAME|webhook_unique> rps= p50_ms= p99_ms= non2xx=

local ids = tonumber(os.getenv("WEBHOOK_IDS") or "1000")
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local threads = dofile(here .. "report.lua")(os.getenv("RESULT_NAME") or "webhook_unique")
local thread_count = 0
function setup(thread)
   thread_count = thread_count + 1
   thread:set("thread_index", thread_count - 1)
   table.insert(threads, thread)
end

local run_id = dofile(here .. "run_id.lua")

local cursor = 0
local counter = 0
local headers = { ["Content-Type"] = "application/json" }

function init(args)
   cursor = ((thread_index or 0) * 97) % ids
end

function request()
   cursor = cursor + 1
   if cursor > ids then cursor = 1 end
   counter = counter + 1
   local body = string.format(
      '{"conversationId":"conv-%d","channel":"web-chat","intent":"book_flight",' ..
      '"slots":{"origin":"JFK","destination":"LHR"},"timestamp":%d,"eventId":"%s-%d-%d"}',
      cursor - 1, 1718409600 + cursor - 1, run_id, thread_index or 0, counter)
   return wrk.format("POST", nil, headers, body)
end
