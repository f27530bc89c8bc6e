-- A large message a server sends is written from its own string: what the
-- socket does not take at once stays queued by reference (no copy), the
-- string is kept alive while it is, and it is let go once written, or once
-- the connection or its loop ends.  Each case runs in a child process that
-- reports its Lua heap (collectgarbage("count") after full collections):
-- about one message more while the unsent part is queued, back to where it
-- was afterwards.  Lua 5.1 compatible.

local net = require "spec.helpers.net_util"

local MiB = 1024 * 1024

-- The server's child.  arg[1] names the case; arg[2..4]: certificate, key
-- and CA for wss.  It prints BASE (heap before), HELD (heap with the
-- message queued, the callback that sent it long returned) and AFTER.
local SERVER = [==[
local ws = require "ws"
local how, cert, key, ca = arg[1], arg[2], arg[3], arg[4]
local SIZE = 12 * 1024 * 1024
local function kib() -- (LuaJIT's buffer for building strings shrinks by half a collection)
  for _ = 1, 16 do collectgarbage() end
  return math.floor(collectgarbage("count"))
end
local function big() -- a new string each time, its content known
  local head = "big:" .. how .. ":"
  return head .. string.rep("b", SIZE - #head)
end
local srv_conn, srv_closed
-- (closing waits for the queued message: long enough for a slow build, but
-- short when the loop closes with the paused reader on it)
local close_timeout = how == "loop_close" and 0.5 or 30
local srv = ws.listen { host = "127.0.0.1", port = 0, max_message = 16 * 1024 * 1024, close_timeout = close_timeout,
  tls = cert and { cert = cert, key = key } or nil,
  on_message = function(c)
    srv_conn = c
    if how == "outside" then return end
    assert(c:send(big(), "binary"))
    if how == "close" then c:close(4001, "after the big one") end
  end,
  on_close = function(_, code) srv_closed = code end }
print("PORT " .. srv.port)
local base = kib()
local cli, opened, got, cli_closed
if how ~= "peer_gone" then
  local scheme = cert and "wss" or "ws"
  cli = ws.connect(scheme .. "://127.0.0.1:" .. srv.port .. "/", {
    max_message = 16 * 1024 * 1024, close_timeout = 0.5, tls = cert and { cafile = ca } or nil,
    on_open = function(c) c:pause(); opened = true end, -- reads nothing until resumed
    on_message = function(_, data) got = data == big() end,
    on_close = function(_, code) cli_closed = code end })
  while not opened do ws.step(0.05) end
  cli:send("go")
end
while not srv_conn do ws.step(0.05) end
if how == "outside" then -- sent outside any callback, from a coroutine that then ends
  coroutine.wrap(function() assert(srv_conn:send(big(), "binary")) end)()
end
print("BASE " .. base)
print("QUEUED " .. srv_conn:buffered_amount())
print("HELD " .. kib())
if how == "run" then -- the rest inside one ws.run(): the string goes while it runs
  local lp = ws.loop()
  cli:resume()
  local check
  check = lp:every(0.05, function()
    if got == nil or srv_conn:buffered_amount() > 0 then return end
    check:cancel()
    lp:timer(0.1, function() -- a later turn
      print("GOT " .. tostring(got))
      print("SERVER_STATE " .. srv_conn.ready_state .. " " .. tostring(srv_closed))
      print("AFTER " .. kib())
      cli:close()
      srv:close()
    end)
  end)
  ws.run()
  return
elseif how == "peer_gone" then
  while srv_conn.ready_state ~= "CLOSED" do ws.step(0.05) end
elseif how == "loop_close" then
  ws.loop():close()
else
  cli:resume()
  while (got == nil and not cli_closed) or srv_conn:buffered_amount() > 0 do ws.step(0.05) end
  print("GOT " .. tostring(got))
  if how == "close" then
    while not cli_closed do ws.step(0.05) end
    print("CLIENT_CLOSE " .. cli_closed)
  end
  ws.step(0)
end
print("SERVER_STATE " .. srv_conn.ready_state .. " " .. tostring(srv_closed))
print("AFTER " .. kib())
]==]

-- One string sent to several readers that take nothing: held once, not
-- copied per connection.  Prints the growth of the process's resident
-- memory while the messages are queued, then whether all arrived intact.
local SAME_STRING = [==[
local ws = require "ws"
local N, SIZE = 10, 8 * 1024 * 1024
local function rss_kib() return tonumber(io.open("/proc/self/status"):read("*a"):match("VmRSS:%s*(%d+)")) end
local msg = string.rep("S", SIZE - 4) .. "tail"
local conns, clients, got = {}, {}, 0
local srv = ws.listen { host = "127.0.0.1", port = 0, max_message = 16 * 1024 * 1024,
  on_message = function(c) conns[#conns + 1] = c end }
for _ = 1, N do
  clients[#clients + 1] = ws.connect("ws://127.0.0.1:" .. srv.port .. "/", { max_message = 16 * 1024 * 1024,
    on_open = function(c) c:pause(); c:send("go") end,
    on_message = function(_, data) if data == msg then got = got + 1 end end })
end
while #conns < N do ws.step(0.05) end
collectgarbage(); collectgarbage()
local before = rss_kib()
local queued = 0
for _, c in ipairs(conns) do assert(c:send(msg, "binary")); queued = queued + c:buffered_amount() end
print("QUEUED " .. queued)
print("GROWTH " .. (rss_kib() - before))
for _, c in ipairs(clients) do c:resume() end
while got < N do ws.step(0.05) end
print("GOT " .. got)
]==]


local function run(how, ...)
  local child = net.spawn_lua(SERVER, how, ...)
  local port = child:wait_output("PORT (%d+)", 10)
  assert.is_truthy(port, child:errors())
  local peer
  if how == "peer_gone" then peer = net.spawn_lua(net.STALLED_CLIENT, port) end
  local held = tonumber(child:wait_output("HELD (%d+)", 30))
  assert.is_truthy(held, child:output() .. child:errors())
  if peer then
    assert.is_truthy(peer:wait_output("SENT", 10))
    peer:kill() -- the reader goes away without reading
  end
  assert.is_true(child:wait_exit(60), "child still running: " .. child:output() .. child:errors())
  local out, err = child:output(), child:errors()
  local r = {
    out = out .. err,
    base = tonumber(out:match("BASE (%d+)")),
    queued = tonumber(out:match("QUEUED (%d+)")),
    held = held,
    after = tonumber(out:match("AFTER (%d+)")),
  }
  assert.are.equal("", err)
  assert.is_truthy(r.after, r.out)
  -- The socket took part of it at once; the rest is queued, and the string
  -- it is written from is alive (about 12 MiB more heap than before).
  assert.is_true(r.queued > MiB, "queued " .. tostring(r.queued) .. "\n" .. r.out)
  assert.is_true(r.held - r.base > 11 * 1024,
    "heap with the message queued: " .. (r.held - r.base) .. " KiB more\n" .. r.out)
  -- and it is let go afterwards
  assert.is_true(r.after - r.base < 2 * 1024, "heap afterwards: " .. (r.after - r.base) .. " KiB more\n" .. r.out)
  return r
end

describe("a large message written from its string", function()
  after_each(function() net.cleanup() end)

  it("is kept while a paused reader takes nothing, arrives intact, and is let go once written", function()
    local r = run("plain")
    assert.is_truthy(r.out:find("GOT true", 1, true), r.out)
    assert.is_truthy(r.out:find("SERVER_STATE OPEN nil", 1, true), r.out)
  end)

  it("inside one ws.run() that goes on: let go once written, while it runs", function()
    local r = run("run")
    assert.is_truthy(r.out:find("GOT true", 1, true), r.out)
  end)

  it("sent from outside any callback: the same", function()
    local r = run("outside")
    assert.is_truthy(r.out:find("GOT true", 1, true), r.out)
  end)

  it("the server closes right after sending: the message, then the close; the string is let go", function()
    local r = run("close")
    assert.is_truthy(r.out:find("GOT true", 1, true), r.out)
    assert.is_truthy(r.out:find("CLIENT_CLOSE 4001", 1, true), r.out)
  end)

  it("the reader goes away without reading: the connection ends (1006) and the string is let go", function()
    local r = run("peer_gone")
    assert.is_truthy(r.out:find("SERVER_STATE CLOSED 1006", 1, true), r.out)
  end)

  it("the loop is closed with the message queued: the string is let go", function()
    local r = run("loop_close")
    assert.is_truthy(r.out:find("SERVER_STATE CLOSED", 1, true), r.out)
  end)

  it("over TLS: kept while queued, intact, let go", function()
    local certs = require("spec.helpers.certs").get()
    local r = run("tls", certs.server_cert, certs.server_key, certs.ca)
    assert.is_truthy(r.out:find("GOT true", 1, true), r.out)
  end)

  it("one string sent to several readers that take nothing is held once, not copied for each", function()
    local child = net.spawn_lua(SAME_STRING)
    assert.is_true(child:wait_exit(60), "child still running: " .. child:output() .. child:errors())
    local out = child:output() .. child:errors()
    local queued, growth = tonumber(out:match("QUEUED (%d+)")), tonumber(out:match("GROWTH (%d+)"))
    assert.is_truthy(growth, out)
    assert.is_true(queued > 10 * 1024 * 1024, out) -- over 1 MiB left for each of the 10
    -- a copy of what is left for each would be over 10 MiB
    assert.is_true(growth < 6 * 1024, "resident memory grew by " .. growth .. " KiB\n" .. out)
    assert.is_truthy(out:find("GOT 10", 1, true), out)
  end)
end)
