-- A random prefix for event ids, one per run and thread: event ids stay unique across runs
-- against one service (a warm-up, then the measurement), which would otherwise answer
-- "duplicate". Shared by webhook_unique.lua and webhook_links.lua.
local f = io.open("/dev/urandom", "rb")
local bytes = f:read(6)
f:close()
local id = ""
for i = 1, #bytes do id = id .. string.format("%02x", bytes:byte(i)) end
return id
