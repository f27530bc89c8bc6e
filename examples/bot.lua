-- A bot on a reconnecting connection (ws.reconnecting): on every open it
-- subscribes to a room, it answers commands, and it pings the server to keep
-- the connection alive.  When the server goes away it reconnects with
-- exponential backoff and subscribes again.
--   lua5.4 examples/bot.lua [URL] [--room R] [--ping S] [--seconds N]
-- URL defaults to $WS_URL, else ws://127.0.0.1:$WS_PORT/ (port 8080);
-- try it against the chat example: lua5.4 examples/bot.lua ws://127.0.0.1:8080/chat
-- Commands: "!ping" -> "pong", "!time" -> the UTC time, "!echo x" -> "x",
-- "!help" -> the list.  --ping S pings every S seconds (default 20);
-- --seconds N closes the bot after N seconds.
local ws = require "ws"

io.stdout:setvbuf("line")

local url = os.getenv("WS_URL") or ("ws://127.0.0.1:%s/"):format(os.getenv("WS_PORT") or "8080")
local room, ping, seconds, initial = "lobby", 20, nil, 0.5
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "--room" then
    room = arg[i + 1]; i = i + 1
  elseif a == "--ping" then
    ping = tonumber(arg[i + 1]); i = i + 1
  elseif a == "--seconds" then
    seconds = tonumber(arg[i + 1]); i = i + 1
  elseif a == "--retry" then -- first backoff delay in seconds
    initial = tonumber(arg[i + 1]); i = i + 1
  elseif a:match("^wss?://") then
    url = a
  else
    io.stderr:write("usage: bot.lua [URL] [--room R] [--ping S] [--retry S] [--seconds N]\n")
    os.exit(2)
  end
  i = i + 1
end

if not ws.reconnecting then
  io.stderr:write("bot.lua needs ws.reconnecting (lua/ws/reconnect.lua), which this lua-ws does not have\n")
  os.exit(1)
end

-- Plain strings: no JSON library needed for a message this simple.
local SUBSCRIBE = ('{"op":"subscribe","room":"%s"}'):format(room:gsub('[%c"\\]', ""))

local function answer(text)
  if text == "!ping" then
    return "pong"
  elseif text == "!time" then
    return os.date("!%Y-%m-%dT%H:%M:%SZ")
  elseif text:sub(1, 6) == "!echo " then
    return text:sub(7)
  elseif text == "!help" then
    return "commands: !ping !time !echo <text>"
  end
end

local opens = 0
local bot = ws.reconnecting(url, {
  ping_interval = ping,
  backoff = { initial = initial, max = 10, factor = 2 }, -- retry forever
  on_open = function(c)
    opens = opens + 1
    print(("open #%d %s"):format(opens, url))
    c:send(SUBSCRIBE)
    print("subscribed to " .. room)
  end,
  on_message = function(c, data, is_binary)
    if is_binary then return end
    local reply = answer(data)
    if reply then
      c:send(reply)
      print(("command %s -> %s"):format(data, reply))
    end
  end,
  on_close = function(_, code, reason)
    print(("closed %s %s"):format(tostring(code), tostring(reason or "")))
  end,
  on_error = function(_, err) print("error " .. tostring(err)) end,
  on_reconnect = function(_, attempt, delay)
    print(("reconnecting: attempt %d in %.2f s"):format(attempt, delay))
  end,
  on_give_up = function(_, err) print("giving up: " .. tostring(err)) end,
})
print("bot connecting to " .. url)

if seconds then
  ws.timer(seconds, function() bot:close(1000, "bye") end)
end
ws.run()
