-- An echo client in straight-line style: connect, send each message, print
-- what comes back, close.
--   lua5.4 examples/echo_client.lua [URL] [--cafile PEM] [MESSAGE...]
--   echo hello | lua5.4 examples/echo_client.lua ws://127.0.0.1:8080/
--   lua5.4 examples/echo_client.lua wss://localhost:8443/ --cafile CERT hi
--     (CERT: the path examples/wss_server.lua prints)
-- URL defaults to $WS_URL, else ws://127.0.0.1:$WS_PORT/ (port 8080).  The
-- messages are the arguments after the URL, or the lines of stdin when there
-- are none.  Prints "echo: <text>" per answer; exits 1 on an error.
local ws = require "ws"

io.stdout:setvbuf("line")

local url = os.getenv("WS_URL") or ("ws://127.0.0.1:%s/"):format(os.getenv("WS_PORT") or "8080")
local cafile = os.getenv("WS_CAFILE")
local messages = {}
local i = 1
while i <= #arg do
  if arg[i] == "--cafile" then
    cafile = arg[i + 1]; i = i + 1
  elseif i == 1 and arg[i]:match("^wss?://") then
    url = arg[i]
  else
    messages[#messages + 1] = arg[i]
  end
  i = i + 1
end
local from_stdin = #messages == 0

local c, err = ws.connect(url, { timeout = 10, tls = cafile and { cafile = cafile } or nil })
if not c then
  io.stderr:write("connect ", url, ": ", tostring(err), "\n")
  os.exit(1)
end
print("connected to " .. url)

local function exchange(text)
  local ok, serr = c:send(text)
  if not ok then
    io.stderr:write("send: ", tostring(serr), "\n")
    os.exit(1)
  end
  local echo, kind, code = c:receive(10)
  if not echo then
    io.stderr:write("receive: ", tostring(kind), " ", tostring(code or ""), "\n")
    os.exit(1)
  end
  print("echo: " .. echo)
end

if from_stdin then
  for line in io.lines() do exchange(line) end
else
  for _, text in ipairs(messages) do exchange(text) end
end

c:close(1000, "bye")
-- Anything still queued is skipped until the close arrives.
local m, _, code, reason
repeat m, _, code, reason = c:receive(5) until m == nil
print(("closed %s %s"):format(tostring(code or c.close_code), tostring(reason or c.close_reason or "")))
