-- wrk script: the webhook_unique.lua load, paced: each connection waits PACE_MS after an
-- answer before its next request (wrk's delay()), so 32 connections at PACE_MS=5.6 offer
-- about 5,700 requests/s whatever the service does. Closed-loop with think time, the closest
-- wrk comes to a constant rate: at low utilisation the answer time is small next to the
-- pause, so the offered rate hardly depends on it.
local pace = tonumber(os.getenv("PACE_MS") or "5")
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "webhook_unique.lua")
function delay()
   return pace
end
