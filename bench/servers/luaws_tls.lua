-- lua-ws wss:// echo server, callback style (as luaws_callback.lua, over TLS).
--   lua5.4 bench/servers/luaws_tls.lua CERT KEY [PORT]
-- Prints "listening on wss://127.0.0.1:PORT/" and serves until killed.
local ws = require "ws"

local srv = ws.listen {
  host = "127.0.0.1",
  port = tonumber(arg[3]) or 0,
  tls = { cert = assert(arg[1], "CERT"), key = assert(arg[2], "KEY") },
  on_message = function(c, d, b) c:send(d, b and "binary" or "text") end,
}
io.stdout:write(("listening on wss://127.0.0.1:%d/\n"):format(srv.port))
io.stdout:flush()
ws.run()
