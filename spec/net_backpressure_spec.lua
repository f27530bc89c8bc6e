-- Backpressure: a client that never reads must not grow the server's
-- memory past max_buffered.  buffer_policy = "error" makes send return
-- nil, "send buffer full"; "close" closes the slow client with 1013.
-- on_drain fires when the queue empties; the client side has the same
-- limit.
-- Lua 5.1 compatible.

local ws = require "ws"
local net = require "spec.helpers.net_util"

local MiB = 1024 * 1024

-- A server with the given options whose first connection is returned once
-- a raw client that reads nothing (not even the 101 answer, until
-- raw:start_reading()) has sent its handshake.
local function slow_client_server(opts)
  local srv, events = net.echo_server(opts)
  local raw = assert(net.raw_connect(srv.port, { no_read = true }))
  raw:send(net.upgrade_request(srv.port, "/slow"))
  assert(net.wait_until(function() return #net.select(events, "open") == 1 end), "server saw no open")
  return srv, events, raw, net.select(events, "open")[1][2]
end

-- Start reading and skip the 101 answer.
local function read_from_now_on(raw)
  raw:start_reading()
  local resp = assert(raw:read_head(10))
  assert.are.equal(101, resp.status)
end

describe("backpressure", function()
  after_each(function()
    net.cleanup()
    collectgarbage()
    collectgarbage()
  end)

  it("buffer_policy 'error': send returns nil, 'send buffer full'; the buffer and RSS stay bounded", function()
    local max = 4 * MiB
    local drains = 0
    local srv, _, raw, sc = slow_client_server { max_buffered = max, on_drain = function() drains = drains + 1 end }
    local msg = net.payload(MiB, "binary")
    collectgarbage()
    collectgarbage()
    local rss0 = net.rss_kb()
    local sent, err, peak = 0, nil, 0
    for _ = 1, 300 do
      local ok, e = sc:send(msg, "binary")
      local amount = sc:buffered_amount()
      if amount > peak then peak = amount end
      assert.is_true(amount <= max + #msg + 16, "buffered_amount " .. amount .. " over the limit")
      if not ok then err = e break end
      sent = sent + 1
      ws.step(0)
    end
    assert.are.equal("send buffer full", err)
    assert.is_true(sent >= 4, "only " .. sent .. " messages accepted")
    assert.are.equal("OPEN", sc.ready_state)
    -- the kernel took some, the connection holds the rest: far less than 300 MiB
    local grown = (net.rss_kb() - rss0) / 1024
    assert.is_true(grown < 48, "RSS grew by " .. grown .. " MiB")
    assert.is_true(peak > 0)

    -- now read everything: every accepted message arrives intact, then on_drain fires
    local drains_before = drains
    read_from_now_on(raw)
    local frame_size = #msg + 10 -- 64-bit length header, unmasked
    assert.is_true(raw:wait_bytes(sent * frame_size, 20),
      "received " .. raw:available() .. " of " .. sent * frame_size .. " bytes")
    assert.is_true(net.wait_until(function() return drains > drains_before and sc:buffered_amount() == 0 end, 5),
      "no on_drain after the queue emptied")
    local frames = raw:frames()
    assert.are.equal(sent, #frames)
    for i = 1, sent do
      assert.are.equal(2, frames[i].opcode)
      assert.is_true(frames[i].payload == msg, "message " .. i .. " differs")
    end
    -- and the connection works again
    assert.is_true(sc:send("after the storm"))
    local f = raw:next_frame(3)
    assert.are.equal("after the storm", f and f.payload)
    assert.are.equal(1, #srv:clients())
  end)

  it("buffer_policy 'close': the slow client is closed with 1013 and memory stays bounded", function()
    local max = 2 * MiB
    local _, events, raw, sc = slow_client_server { max_buffered = max, buffer_policy = "close", close_timeout = 0.3 }
    local msg = net.payload(MiB, "binary")
    collectgarbage()
    collectgarbage()
    local rss0 = net.rss_kb()
    local send_err
    for _ = 1, 300 do
      local ok, e = sc:send(msg, "binary")
      assert.is_true(sc:buffered_amount() <= max + #msg + 16, "buffered_amount over the limit")
      if not ok then send_err = e break end
      if sc.ready_state ~= "OPEN" then break end
      ws.step(0)
    end
    assert.are_not.equal("OPEN", sc.ready_state)
    if send_err then
      assert.is_true(send_err == "send buffer full" or send_err == "connection is not open", send_err)
    end
    assert.is_true(net.wait_until(function() return #net.select(events, "close") == 1 end, 5), "no on_close")
    local cl = net.select(events, "close")[1]
    assert.is_true(cl[3] == 1013 or cl[3] == 1006, "close code " .. tostring(cl[3]))
    assert.is_false(cl[5])
    local ok, err = sc:send("too late")
    assert.is_nil(ok)
    assert.are.equal("connection is not open", err)
    local grown = (net.rss_kb() - rss0) / 1024
    assert.is_true(grown < 48, "RSS grew by " .. grown .. " MiB")
    -- the TCP connection is gone: a reader now reaches EOF; a close frame, if
    -- one made it out, says 1013
    raw:start_reading()
    assert.is_true(raw:wait_eof(10), "the server did not end the TCP connection")
    local e = raw:data():find("\r\n\r\n", 1, true)
    if e then
      raw:consume(e + 3)
      local last
      for _, f in ipairs(raw:frames()) do last = f end
      if last and last.opcode == 8 then assert.are.equal(1013, last.code) end
    end
  end)

  it("on_drain fires after a large send has been written out", function()
    local drained = {}
    local srv, events = net.echo_server { on_drain = function(c) drained[#drained + 1] = c:buffered_amount() end }
    local c = assert(net.connect(net.url(srv)))
    assert.is_true(net.wait_until(function() return #net.select(events, "open") == 1 end))
    local sc = net.select(events, "open")[1][2]
    local big = net.payload(8 * MiB, "binary")
    assert.is_true(sc:send(big, "binary"))
    local pending_bytes = sc:buffered_amount()
    local data = c:receive(20)
    assert.is_true(data == big, "8 MiB message differs")
    if pending_bytes > 0 then
      assert.is_true(net.wait_until(function() return #drained >= 1 end, 5), "no on_drain")
      assert.are.equal(0, drained[1])
    end
    assert.are.equal(0, sc:buffered_amount())
  end)

  it("client side: send returns nil, 'send buffer full' past max_buffered and accepted messages arrive", function()
    local got = {}
    local srv = net.listen {
      max_message = 32 * MiB,
      on_message = function(_, data) got[#got + 1] = data end,
    }
    local c = assert(net.connect(net.url(srv), { max_buffered = MiB }))
    local chunk = net.payload(256 * 1024, "binary")
    local accepted, err = 0, nil
    for _ = 1, 64 do -- 16 MiB offered without running the loop
      local ok, e = c:send(chunk, "binary")
      assert.is_true(c:buffered_amount() <= MiB + #chunk + 16, "buffered_amount " .. c:buffered_amount())
      if not ok then err = e break end
      accepted = accepted + 1
    end
    assert.are.equal("send buffer full", err)
    assert.is_true(accepted >= 1)
    assert.are.equal("OPEN", c.ready_state)
    assert.is_true(net.wait_until(function() return #got == accepted end, 10))
    net.run_for(0.05)
    assert.are.equal(accepted, #got)
    for i = 1, accepted do assert.is_true(got[i] == chunk, "message " .. i .. " differs") end
    assert.is_true(net.wait_until(function() return c:buffered_amount() == 0 end))
    assert.is_true(c:send("and more"))
  end)
end)
