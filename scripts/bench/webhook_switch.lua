-- wrk script: every POST /webhook/dialog is a channel switch (the channel alternates on
-- each visit to a conversation) carrying userId and sessionId, so with Cognigy configured
-- every request restores context inline. Used by scripts/bench_restore.sh.
local ids = tonumber(os.getenv("WEBHOOK_IDS") or "1000")
local result_name = os.getenv("RESULT_NAME") or "webhook_switch"
local threads = {}
function setup(thread) table.insert(threads, thread) end
local cursor, counter = 0, 0
local headers = { ["Content-Type"] = "application/json" }
non2xx = 0
function request()
   cursor = cursor + 1
   if cursor > ids then cursor = 1 end
   counter = counter + 1
   local channel = (math.floor((counter - 1) / ids) % 2 == 0) and "web-chat" or "whatsapp"
   local body = string.format(
      '{"conversationId":"conv-%d","channel":"%s","intent":"book_flight","slots":{"origin":"JFK"},' ..
      '"userId":"u-%d","sessionId":"%s-%d","eventId":"e-%d"}', cursor, channel, cursor, channel, cursor, counter)
   return wrk.format("POST", nil, headers, body)
end
function response(status, headers, body)
   if status < 200 or status > 299 then non2xx = non2xx + 1 end
end
function done(summary, latency, requests)
   local bad = 0
   for _, t in ipairs(threads) do bad = bad + (tonumber(t:get("non2xx")) or 0) end
   io.write(string.format("RESULT name=%s rps=%.2f p50_ms=%.3f p99_ms=%.3f non2xx=%d\n", result_name,
      summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000, bad))
end
