-- Memory of a server whose readers do not read: N clients (in a second
-- process) each send "go" and pause; the server answers each with one
-- message of SIZE MiB (the same string for all with "same"), then prints
-- its VmRSS and VmHWM after a full collection.
--   lua5.4 bench/slow_readers.lua server N PORT SIZE [same] &
--   lua5.4 bench/slow_readers.lua clients N PORT
local ws = require "ws"

local role, N, port = arg[1], tonumber(arg[2]), tonumber(arg[3])
local MAX = 64 * 1024 * 1024

if role == "clients" then
  for _ = 1, N do
    ws.connect("ws://127.0.0.1:" .. port .. "/", { max_message = MAX,
      on_open = function(c) c:send("go"); c:pause() end })
  end
  ws.run()
  return
end

local size = tonumber(arg[4]) * 1024 * 1024
local same = arg[5] == "same" and string.rep("S", size) or nil
local sent = 0
ws.listen { host = "127.0.0.1", port = port, max_message = MAX,
  on_message = function(c)
    local m = same or (("%08d"):format(sent) .. string.rep("s", size - 8))
    assert(c:send(m, "binary"))
    sent = sent + 1
  end }
io.stdout:write("listening\n")
io.stdout:flush()
while sent < N do ws.step(0.05) end
for _ = 1, 20 do ws.step(0.01) end
for _ = 1, 16 do collectgarbage() end
local st = io.open("/proc/self/status"):read("*a")
print(("N=%d size=%s MiB%s: RSS %d MiB, peak %d MiB, Lua heap %d MiB"):format(N, arg[4], same and " (one string)" or "",
  math.floor(tonumber(st:match("VmRSS:%s*(%d+)")) / 1024), math.floor(tonumber(st:match("VmHWM:%s*(%d+)")) / 1024),
  math.floor(collectgarbage("count") / 1024)))
