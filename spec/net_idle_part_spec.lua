-- A server connection's session holds its in-flight part (input partly
-- parsed, output queued) only while bytes are in flight, taking it from
-- and giving it back to the loop's pool.  The edges, over real sockets: a
-- connection idle mid-message while others pass parts around, idle with
-- output queued to a peer that stopped reading, close from either side
-- while the part is held, many connections active at once (more than the
-- pool keeps), and script exit with parts held and pooled.
-- Lua 5.1 compatible.

local ws = require "ws"
local net = require "spec.helpers.net_util"

-- An open raw client of srv (the 101 read).
local function raw_client(srv, opts)
  local raw = assert(net.raw_connect(srv.port, opts))
  local resp = assert(raw:handshake(srv.port, "/"))
  assert.are.equal(101, resp.status)
  return raw
end

-- n echoes over a ws.connect client.
local function echoes(srv, n)
  local got = {}
  local c = net.connect(net.url(srv), { on_message = function(_, d) got[#got + 1] = d end })
  assert.is_truthy(net.wait_until(function() return c.ready_state == "OPEN" end))
  for i = 1, n do
    c:send("m" .. i)
    assert.is_truthy(net.wait_until(function() return #got == i end), "echo " .. i)
    assert.are.equal("m" .. i, got[i])
  end
  return c
end

describe("session part over the network", function()
  after_each(function()
    net.cleanup()
    collectgarbage()
    collectgarbage()
  end)

  it("a connection idle mid-message gets its message once the rest arrives, others echo meanwhile", function()
    local srv = net.echo_server()
    local raw = raw_client(srv)
    local payload = string.rep("half", 100)
    local wire = net.client_frame(2, payload)
    raw:send(wire:sub(1, 3)) -- inside the header
    net.run_for(0.1)
    raw:send(wire:sub(4, 200)) -- part of the payload
    local c = echoes(srv, 20) -- parts taken and given back around the held one
    net.run_for(0.2)
    assert.are.equal(0, raw:available())
    raw:send(wire:sub(201))
    local f = raw:next_frame(5)
    assert.is_truthy(f, "no echo")
    assert.is_true(f.payload == payload)
    c:close()
  end)

  it("idle with output queued to a peer that stopped reading: all of it arrives once it reads", function()
    local sc
    local srv = net.echo_server { on_open = function(c) sc = c end }
    local raw = assert(net.raw_connect(srv.port, { no_read = true }))
    raw:send(net.upgrade_request(srv.port, "/"))
    assert.is_truthy(net.wait_until(function() return sc ~= nil end))
    local big = net.payload(1024 * 1024, "binary")
    local sent = 0
    repeat -- until the kernel's buffers are full and output waits in the session
      assert.is_true(sc:send(big, "binary"))
      sent = sent + 1
      net.run_for(0.05)
    until sc:buffered_amount() > 0 or sent == 64
    assert.is_true(sc:buffered_amount() > 0, "nothing left queued")
    local c = echoes(srv, 10) -- the server goes on with its other connections
    raw:start_reading()
    assert.are.equal(101, assert(raw:read_head(5)).status)
    for i = 1, sent do
      local f = raw:next_frame(20)
      assert.is_truthy(f, "no frame " .. i)
      assert.is_true(f.payload == big, "frame " .. i .. " differs")
    end
    assert.is_truthy(net.wait_until(function() return sc:buffered_amount() == 0 end))
    c:close()
  end)

  it("closed by the server while the part is held: the peer gets the close, the server goes on", function()
    local closes = {}
    local srv = net.echo_server { on_close = function(_, code) closes[#closes + 1] = code end }
    local raw = raw_client(srv)
    raw:send(net.client_frame(1, "never finished", false)) -- a message under way
    net.run_for(0.1)
    local sc = srv:clients()[1]
    ws.spawn(function() sc:close(4000, "bye") end) -- (in a task: the raw client answers below)
    local f = raw:next_frame(5)
    assert.are.equal(8, f and f.opcode)
    assert.are.equal(4000, f.code)
    raw:send_close(4000)
    assert.is_truthy(net.wait_until(function() return #closes == 1 end))
    assert.are.equal(4000, closes[1])
    echoes(srv, 5):close()
  end)

  it("closed by the peer while output is queued to it and input is half read", function()
    local closes = {}
    local sc
    local srv = net.echo_server {
      on_open = function(c) sc = c end,
      on_close = function(_, code) closes[#closes + 1] = code end,
    }
    local raw = assert(net.raw_connect(srv.port, { no_read = true }))
    raw:send(net.upgrade_request(srv.port, "/"))
    assert.is_truthy(net.wait_until(function() return sc ~= nil end))
    sc:send(net.payload(2 * 1024 * 1024, "binary"), "binary")
    raw:send(net.client_frame(2, "abc"):sub(1, 5))
    net.run_for(0.1)
    raw:reset()
    assert.is_truthy(net.wait_until(function() return #closes == 1 end))
    assert.are.equal(1006, closes[1])
    echoes(srv, 5):close()
  end)

  it("many connections active at once (more than the pool keeps), then idle, then active again", function()
    local srv = net.echo_server()
    local raws = {}
    local N = 150
    for i = 1, N do raws[i] = raw_client(srv) end
    local wires = {}
    for i = 1, N do
      wires[i] = net.client_frame(2, "burst " .. i)
      raws[i]:send(wires[i]:sub(1, 6)) -- every connection holds a part
    end
    net.run_for(0.2)
    for i = 1, N do raws[i]:send(wires[i]:sub(7)) end
    for i = 1, N do
      local f = raws[i]:next_frame(5)
      assert.are.equal("burst " .. i, f and f.payload)
    end
    -- idle now, parts back in the pool (at most its bound kept); again
    net.run_for(0.1)
    for i = 1, N do raws[i]:send_frame(1, "again " .. i) end
    for i = 1, N do
      local f = raws[i]:next_frame(5)
      assert.are.equal("again " .. i, f and f.payload)
    end
    for i = 1, N do raws[i]:close() end
  end)

  it("script exit with parts held (half a frame, output queued) and pooled ends cleanly", function()
    local child = net.spawn_lua([[
local ws = require "ws"
local srv = ws.listen { host = "127.0.0.1", port = 0,
  on_message = function(c, d, bin) c:send(d, bin and "binary" or "text") end,
  on_open = function(c) if c.path == "/big" then c:send(string.rep("b", 4 * 1024 * 1024), "binary") end end }
print("PORT " .. srv.port)
local deadline = ws.loop():now() + 10
while not io.open(arg[1]) and ws.loop():now() < deadline do ws.step(0.02) end
print("END")
]], net.tmpdir() .. "/part-exit")
    local port = tonumber(child:wait_output("PORT (%d+)"))
    local srv = { port = port }
    local half = raw_client(srv)
    half:send(net.client_frame(2, "x"):sub(1, 4))
    local slow = assert(net.raw_connect(port, { no_read = true }))
    slow:send(net.upgrade_request(port, "/big"))
    local got = {}
    local c = net.connect("ws://127.0.0.1:" .. port .. "/", { on_message = function(_, d) got[#got + 1] = d end })
    assert.is_truthy(net.wait_until(function() return c.ready_state == "OPEN" end))
    for i = 1, 5 do c:send("e" .. i) end
    assert.is_truthy(net.wait_until(function() return #got == 5 end))
    net.write_file(net.tmpdir() .. "/part-exit", "")
    assert.is_truthy(child:wait_exit(10), "the child did not exit")
    os.remove(net.tmpdir() .. "/part-exit")
    assert.matches("END", child:output())
    assert.are.equal("", child:errors():gsub("failalloc[^\n]*\n", ""))
  end)
end)
