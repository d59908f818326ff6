-- wrk script: every POST /webhook/dialog is a channel switch (the channel alternates on
-- each visit to a conversation) carrying userId and sessionId, so with Cognigy configured
-- every request restores context inline. Used by scripts/bench_restore.sh.
local ids = tonumber(os.getenv("WEBHOOK_IDS") or "1000")
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local threads = dofile(here .. "report.lua")(os.getenv("RESULT_NAME") or "webhook_switch")
function setup(thread) table.insert(threads, thread) end
local cursor, counter = 0, 0
local headers = { ["Content-Type"] = "application/json" }
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
