-- An echo server: every message comes back to its sender, text as text and
-- binary as binary.
--   lua5.4 examples/echo_server.lua [PORT] [--host H] [--seconds N]
-- PORT (or $WS_PORT) defaults to 8080; 0 picks a free port.  It prints
-- "listening on ws://HOST:PORT/" once it listens, and stops by itself after
-- --seconds N (else it serves until Ctrl-C).
local ws = require "ws"

io.stdout:setvbuf("line")

local port, host, seconds = tonumber(os.getenv("WS_PORT") or "8080"), "127.0.0.1", nil
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "--seconds" then
    seconds = tonumber(arg[i + 1]); i = i + 1
  elseif a == "--port" then
    port = tonumber(arg[i + 1]); i = i + 1
  elseif a == "--host" then
    host = arg[i + 1]; i = i + 1
  elseif tonumber(a) then
    port = tonumber(a)
  else
    io.stderr:write("usage: echo_server.lua [PORT] [--host H] [--seconds N]\n")
    os.exit(2)
  end
  i = i + 1
end

local server = ws.listen {
  host = host,
  port = port,
  on_open = function(c)
    print(("open %s:%d %s"):format(c.remote_address, c.remote_port, c.path))
  end,
  on_message = function(c, data, is_binary)
    c:send(data, is_binary and "binary" or "text")
  end,
  on_close = function(c, code, reason)
    print(("closed %s:%d %d %s"):format(c.remote_address, c.remote_port, code, reason))
  end,
  on_error = function(c, err)
    print(("error %s:%d %s"):format(c.remote_address, c.remote_port, err))
  end,
}
print(("listening on ws://%s:%d/"):format(host, server.port))

if seconds then
  ws.timer(seconds, function() server:close() end)
end
ws.run()
