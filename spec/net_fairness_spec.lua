-- One peer must not stall the others: a connection flooding the server
-- with compressed messages that inflate big, or with a deep backlog of tiny
-- frames, gets a bounded share of each loop turn, so an echo on another
-- connection keeps answering quickly.  The server and the flooding peer
-- run in child processes; this process measures the echo's round trips.
-- Lua 5.1 compatible.

local ws = require "ws"
local net = require "spec.helpers.net_util"

-- Without a per-turn budget one read's worth of flood costs the server
-- seconds of CPU in a single loop turn.  Bounds while the flood lasts: the
-- CPU the server spends between two ticks of a 5 ms timer (preemption on a
-- busy machine does not count there), and the echo's round trip (wall
-- clock, so it is looser).
local TICK_CPU_BOUND = 0.25
local RTT_BOUND = 1.0

local SERVER = [==[
local ws = require "ws"
local flood, last, worst = 0, os.clock(), 0
local srv = ws.listen { port = 0, compress = true,
  on_message = function(c, data)
    if data:sub(1, 5) == "echo:" then c:send(data) else flood = flood + 1 end
  end,
}
ws.every(0.005, function()
  local now = os.clock()
  if now - last > worst then worst = now - last end
  last = now
end)
-- the flood count so far and the worst tick of the last 100 ms
ws.every(0.1, function()
  print(string.format("FLOOD %d TICK %.4f", flood, worst))
  worst = 0
end)
print("PORT " .. srv.port)
ws.run()
]==]

-- arg: port, "deflate" | "plain", seconds
local FLOODER = [==[
local ws = require "ws"
local t = require "ws.testing"
local port, mode, seconds = tonumber(arg[1]), arg[2], tonumber(arg[3])
local fd = assert(t.tcp_connect("127.0.0.1", port))
local function send_all(s)
  local i = 1
  while i <= #s do
    local n = assert(t.tcp_send(fd, i == 1 and s or s:sub(i)))
    i = i + n
    if n == 0 then ws.sleep(0.001) end
  end
end
local ext = mode == "deflate"
  and "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n" or ""
send_all("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
  .. "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" .. ext .. "\r\n")
local head = ""
while not head:find("\r\n\r\n", 1, true) do
  local d = t.tcp_recv(fd, 4096)
  if d == "" then error("server closed") end
  head = head .. (d or "")
  if not d then ws.sleep(0.005) end
end
assert(head:find(" 101 ", 1, true), head)
if mode == "deflate" then assert(head:lower():find("permessage%-deflate"), head) end
local s = ws.session { role = "client", handshake = false,
  compress = mode == "deflate" and { no_context_takeover = true, threshold = 0 } or nil }
if mode == "deflate" then
  -- one message of 8 MiB of zeros is about 8 KiB on the wire
  assert(s:send(string.rep("\0", 8 * 1024 * 1024), "binary"))
else
  for _ = 1, 20000 do assert(s:send("", "binary")) end -- 6 bytes each
end
local unit = s:output()
local buf = mode == "deflate" and unit:rep(16) or unit
print("FLOODING " .. #buf)
local deadline = ws.loop():now() + seconds
local i, sent = 1, 0
while ws.loop():now() < deadline do
  local n = t.tcp_send(fd, i == 1 and buf or buf:sub(i))
  if not n then break end
  i, sent = i + n, sent + n
  if i > #buf then i = 1 end
  if n == 0 then ws.sleep(0.001) end
end
print("SENT " .. sent)
t.tcp_close(fd)
]==]

local function flood_while_echoing(mode)
  local server = net.spawn_lua(SERVER)
  local port = tonumber(server:wait_output("PORT (%d+)"))
  local c = assert(net.connect("ws://127.0.0.1:" .. port .. "/"))
  assert.is_true(c:send("echo:warm-up"))
  assert.are.equal("echo:warm-up", (c:receive(5)))
  local flooder = net.spawn_lua(FLOODER, port, mode, 6)
  flooder:wait_output("FLOODING", 10)
  -- flood count so far, number of reports, worst tick after report `from`
  local function flooded(from)
    local last, count, tick = 0, 0, 0
    for n, t in server:output():gmatch("FLOOD (%d+) TICK ([%d.]+)") do
      last, count = tonumber(n), count + 1
      if from and count > from and tonumber(t) > tick then tick = tonumber(t) end
    end
    return last, count, tick
  end
  assert.is_true(net.wait_until(function() return flooded() > 0 end, 10), "the flood did not start")
  local before, reports = flooded()
  local worst = 0
  for i = 1, 20 do
    local t0 = net.now()
    assert.is_true(c:send("echo:" .. i))
    local data = c:receive(10)
    local rtt = net.now() - t0
    assert.are.equal("echo:" .. i, data)
    if rtt > worst then worst = rtt end
    net.run_for(0.05)
  end
  local after, _, tick = flooded(reports)
  local during = after - before
  assert.is_true(during > 0, "the server handled no flood message while we measured")
  assert.is_true(tick < TICK_CPU_BOUND, string.format("the server spent %.3f s of CPU between two timer ticks", tick))
  assert.is_true(worst < RTT_BOUND, string.format("an echo took %.3f s during the %s flood", worst, mode))
  flooder:wait_output("SENT (%d+)", 15)
  -- the flooder hung up: the server is still serving us
  assert.is_true(c:send("echo:after"))
  assert.are.equal("echo:after", (c:receive(5)))
  c:close()
  assert.is_true(net.wait_until(function() return c.ready_state == "CLOSED" end))
  return during
end

describe("fairness", function()
  after_each(function()
    net.cleanup()
  end)

  it("compressed messages that inflate to 8 MiB each on one connection do not stall an echo on another", function()
    flood_while_echoing("deflate")
  end)

  it("a deep backlog of tiny frames on one connection does not stall an echo on another", function()
    flood_while_echoing("plain")
  end)
end)

-- ws is required for its side effects on package.loaded only in children;
-- keep the reference so luacheck sees it used.
assert(ws.loop)
