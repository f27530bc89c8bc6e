-- A chat server: GET / serves the page next to this script (index.html),
-- which talks to ws://HOST:PORT/chat with the browser's WebSocket API; every
-- message from any client goes to every client (the sender too).
--   lua5.4 examples/chat/server.lua [PORT] [--host H] [--seconds N]
--                                   [--redis [HOST:]PORT] [--password P]
-- PORT (or $WS_PORT) defaults to 8080; 0 picks a free port.  It prints
-- "listening on ws://HOST:PORT/chat" and "open http://HOST:PORT/ in a
-- browser"; --seconds N stops it by itself.
--
-- Multi-node: start several servers with --redis pointing at one Redis
-- (password from --password or $REDIS_PASSWORD); a message sent to any of
-- them reaches the clients of all of them:
--   redis-server --port 6379 --save "" --appendonly no &
--   lua5.4 examples/chat/server.lua 8080 --redis 6379 &
--   lua5.4 examples/chat/server.lua 8081 --redis 6379 &
-- then open http://127.0.0.1:8080/ and http://127.0.0.1:8081/.
local ws = require "ws"

io.stdout:setvbuf("line")

local port, host, seconds = tonumber(os.getenv("WS_PORT") or "8080"), "127.0.0.1", nil
local redis, password = nil, os.getenv("REDIS_PASSWORD")
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "--seconds" then
    seconds = tonumber(arg[i + 1]); i = i + 1
  elseif a == "--port" then
    port = tonumber(arg[i + 1]); i = i + 1
  elseif a == "--host" then
    host = arg[i + 1]; i = i + 1
  elseif a == "--redis" then
    redis = arg[i + 1]; i = i + 1
  elseif a == "--password" then
    password = arg[i + 1]; i = i + 1
  elseif tonumber(a) then
    port = tonumber(a)
  else
    io.stderr:write("usage: chat/server.lua [PORT] [--host H] [--seconds N] [--redis [HOST:]PORT]"
      .. " [--password P]\n")
    os.exit(2)
  end
  i = i + 1
end

-- The page lives next to this file, wherever it is run from.
local here = debug.getinfo(1, "S").source:match("^@(.*)[/\\][^/\\]*$") or "."
local function read_page()
  local f, err = io.open(here .. "/index.html", "rb")
  if not f then return nil, err end
  local s = f:read("*a")
  f:close()
  return s
end
assert(read_page())

local MAX_MESSAGE = 64 * 1024

-- Every client is subscribed to one topic; with a Redis backplane the
-- topic spans every server attached to that Redis.
local ROOM = "chat"
local backplane
if redis then
  local rhost, rport = redis:match("^(.*):(%d+)$")
  backplane = ws.redis { host = rhost or "127.0.0.1", port = tonumber(rport or redis),
    password = password, prefix = "chat:",
    on_error = function(_, err) print("redis: " .. err) end }
end

local server
server = ws.listen {
  host = host,
  port = port,
  max_message = MAX_MESSAGE,
  backplane = backplane,
  on_request = function(req, res)
    if req.path == "/" or req.path == "/index.html" then
      -- Read on every request: edit the page and reload.
      local page, err = read_page()
      if page then
        res.headers = { ["Content-Type"] = "text/html; charset=utf-8", ["Cache-Control"] = "no-store" }
        res.body = page
      else
        res.status, res.body = 500, tostring(err) .. "\n"
      end
    else
      res.status, res.body = 404, "not found\n"
    end
  end,
  on_upgrade = function(req)
    if req.path ~= "/chat" then return false, 404, "no such endpoint" end
    -- A browser sends its page's origin: accept only pages of this server
    -- (and clients that are not browsers, which send none).
    local h = req.headers and req.headers.host -- header names are lower case
    if req.origin and h and req.origin ~= "http://" .. h then
      return false, 403, "origin not allowed"
    end
  end,
  on_open = function(c)
    c:subscribe(ROOM)
    print(("join %s:%d (%d online)"):format(c.remote_address, c.remote_port, #server:clients()))
  end,
  on_message = function(_, data, is_binary)
    if is_binary then return end
    local _, ok, err = server:publish(ROOM, data)
    if ok == false then print("not sent to the other servers: " .. err) end
  end,
  on_close = function(c, code)
    print(("leave %s:%d (%d)"):format(c.remote_address, c.remote_port, code))
  end,
}
print(("listening on ws://%s:%d/chat"):format(host, server.port))
print(("open http://%s:%d/ in a browser"):format(host, server.port))
if backplane then
  -- Say so once the backplane is up (the browser spec waits for it).
  local poll
  poll = ws.every(0.05, function()
    if backplane.connected then
      print("redis connected, node " .. backplane.node)
      poll:cancel()
    end
  end)
end

if seconds then
  ws.timer(seconds, function()
    server:close()
    if backplane then backplane:close() end
  end)
end
ws.run()
