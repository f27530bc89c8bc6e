-- bench/c100k: the lua-ws server, WORKERS processes sharing PORT
-- (ws.workers, reuseport).  Every connection subscribes to the topic
-- "all"; GET /pub?t0=<ns>&r=<round> on CTL_PORT + worker_id publishes
-- "t0=<ns>;r=<round>;" padded to 64 bytes (binary) to it once (the frame
-- is built once and shared by every receiver) and answers with the number
-- of receivers; GET /gc runs a full garbage collection.
--   lua5.4 bench/c100k_server.lua PORT CTL_PORT WORKERS [broadcast]
local ws = require "ws"

local port, ctl, n = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3])
local use_broadcast = arg[4] == "broadcast"
io.stdout:setvbuf("line")

local ok, err = ws.workers(n, function(id)
  local srv = ws.listen {
    host = "127.0.0.1", port = port, reuseport = true, backlog = 65535,
    on_open = (not use_broadcast) and function(c) c:subscribe("all") end or nil,
  }
  ws.listen {
    host = "127.0.0.1", port = ctl + id,
    on_request = function(req, res)
      local t0, r = req.path:match("^/pub%?t0=(%d+)&r=(%d+)")
      if not t0 then t0, r = (req.query or ""):match("t0=(%d+)&r=(%d+)") end
      local sent = 0
      if t0 then
        local payload = ("t0=%s;r=%s;"):format(t0, r)
        payload = payload .. string.rep(".", 64 - #payload)
        if use_broadcast then sent = srv:broadcast(payload, "binary")
        else sent = srv:publish("all", payload, "binary") end
      elseif req.path == "/gc" then
        collectgarbage("collect")
        collectgarbage("collect")
      end
      res.body = tostring(sent)
    end,
  }
  print("LISTEN " .. id .. " " .. ws.core.pid())
  ws.run()
end, { grace = 10 })
print("RESULT", ok, err)
