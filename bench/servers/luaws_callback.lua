-- lua-ws echo server, callback style: the echo handler is written in Lua.
--   lua5.4 bench/servers/luaws_callback.lua [PORT]
-- Prints "listening on ws://127.0.0.1:PORT/" and serves until killed.
local ws = require "ws"

local srv = ws.listen {
  host = "127.0.0.1",
  port = tonumber(arg[1]) or 0,
  on_message = function(c, d, b) c:send(d, b and "binary" or "text") end,
}
io.stdout:write(("listening on ws://127.0.0.1:%d/\n"):format(srv.port))
io.stdout:flush()
ws.run()
