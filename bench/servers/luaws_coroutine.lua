-- lua-ws echo server, straight-line style: one task per connection that
-- receives and sends in a loop.
--   lua5.4 bench/servers/luaws_coroutine.lua [PORT]
-- Prints "listening on ws://127.0.0.1:PORT/" and serves until killed.
local ws = require "ws"

local srv = ws.listen {
  host = "127.0.0.1",
  port = tonumber(arg[1]) or 0,
  on_open = function(c)
    ws.spawn(function()
      while true do
        local data, kind = c:receive()
        if not data then break end
        c:send(data, kind)
      end
    end)
  end,
}
io.stdout:write(("listening on ws://127.0.0.1:%d/\n"):format(srv.port))
io.stdout:flush()
ws.run()
