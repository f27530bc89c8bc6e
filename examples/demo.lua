-- The demo: an echo server on 127.0.0.1 that also serves a page using the
-- browser's WebSocket API, and a Lua client that talks to it.
--   lua examples/demo.lua [--seconds N]    (default: serve until Ctrl-C)
local ws = require "ws"

local seconds
for i = 1, #arg do
  if arg[i] == "--seconds" then seconds = tonumber(arg[i + 1]) end
end
local port = tonumber(os.getenv("WS_DEMO_PORT") or "8080")

local PAGE = [[<!doctype html>
<meta charset="utf-8"><title>lua-ws echo</title>
<h1>lua-ws echo</h1>
<form id="f"><input id="m" value="hello from the browser" size="40"> <button>send</button></form>
<pre id="log"></pre>
<script>
const log = (s) => document.getElementById("log").textContent += s + "\n";
const sock = new WebSocket("ws://" + location.host + "/echo", ["echo.v1"]);
sock.onopen = () => log("open, protocol " + sock.protocol);
sock.onmessage = (e) => log("< " + e.data);
sock.onclose = (e) => log("closed " + e.code + " " + e.reason);
document.getElementById("f").onsubmit = (e) => {
  e.preventDefault();
  const text = document.getElementById("m").value;
  sock.send(text); log("> " + text);
};
</script>
]]

local server = ws.listen {
  host = "127.0.0.1",
  port = port,
  protocols = { "echo.v1" },
  on_request = function(req, res)
    if req.path == "/" then
      res.headers = { ["Content-Type"] = "text/html; charset=utf-8" }
      res.body = PAGE
    else
      res.status, res.body = 404, "not found\n"
    end
  end,
  on_upgrade = function(req)
    if req.path ~= "/echo" then return false, 404, "no such endpoint" end
  end,
  on_open = function(c) print(("server: %s:%d connected"):format(c.remote_address, c.remote_port)) end,
  on_message = function(c, data, is_binary) c:send(data, is_binary and "binary" or "text") end,
  on_close = function(_, code, reason) print(("server: client left (%d %s)"):format(code, reason)) end,
}
print(("lua-ws demo: open http://127.0.0.1:%d/ in a browser"):format(server.port))

-- A client in a task, while the server keeps serving.
ws.spawn(function()
  local c = assert(ws.connect(("ws://127.0.0.1:%d/echo"):format(server.port), { protocols = { "echo.v1" } }))
  print("client: connected, protocol " .. c.protocol)
  for _, text in ipairs({ "hello", "héllo wörld", ("x"):rep(70000) }) do
    c:send(text)
    local echo = c:receive(5)
    print(("client: echoed %d bytes%s"):format(#echo, #echo < 40 and ": " .. echo or ""))
  end
  c:close(1000, "bye")
  print("client: " .. select(2, c:receive(5)) .. " " .. tostring(c.close_code))
end)

if seconds then
  ws.timer(seconds, function() server:close() end)
end
ws.run()
