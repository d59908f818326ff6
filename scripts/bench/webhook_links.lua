-- wrk script: what identity resolution costs. Like webhook_unique.lua (unique eventId,
-- rotating over WEBHOOK_IDS people), with LINK_MODE:
--   id        {"conversationId"}                       no link at all
--   id_user   {"conversationId","userId"}              the channel user's link (known after the first event)
--   identity  {"identities":{"phone"},"userId"}        no conversationId: looked up by phone every event
-- Prints: RESULT name=<RESULT_NAME|links_MODE> rps= p50_ms= p99_ms= non2xx=
local ids = tonumber(os.getenv("WEBHOOK_IDS") or "1000")
local mode = os.getenv("LINK_MODE") or "id"
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local threads = dofile(here .. "report.lua")(os.getenv("RESULT_NAME") or ("links_" .. mode))
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
   local who
   if mode == "id" then
      who = string.format('"conversationId":"links-%d"', cursor)
   elseif mode == "id_user" then
      who = string.format('"conversationId":"links-%d","userId":"user-%d"', cursor, cursor)
   else
      who = string.format('"identities":{"phone":"+49 151 %07d"},"userId":"user-%d"', cursor, cursor)
   end
   local body = string.format(
      '{%s,"channel":"web-chat","intent":"book_flight","slots":{"origin":"JFK","destination":"LHR"},"eventId":"%s-%d-%d"}',
      who, run_id, thread_index or 0, counter)
   return wrk.format("POST", nil, headers, body)
end
