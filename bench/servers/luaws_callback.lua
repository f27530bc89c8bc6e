-- lua-ws echo server, callback style: the echo handler is written in Lua.
--   lua5.4 bench/servers/luaws_callback.lua [--deflate | --deflate-small] [PORT]
-- --deflate accepts permessage-deflate offers (`compress = true`, zlib's
-- defaults); --deflate-small with a 4 KiB window and memLevel 5, the
-- settings Python websockets uses by default.
-- Prints "listening on ws://127.0.0.1:PORT/" and serves until killed.
local ws = require "ws"

local deflate = arg[1] == "--deflate" or nil
if arg[1] == "--deflate-small" then deflate = { window_bits = 12, mem_level = 5 } end
local srv = ws.listen {
  host = "127.0.0.1",
  port = tonumber(arg[#arg]) or 0,
  compress = deflate,
  on_message = function(c, d, b) c:send(d, b and "binary" or "text") end,
}
io.stdout:write(("listening on ws://127.0.0.1:%d/\n"):format(srv.port))
io.stdout:flush()
ws.run()
