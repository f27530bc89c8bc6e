-- Paced reads: while the payload of a large frame arrives over plain TCP,
-- the server's socket signals readable only once a good part of the rest
-- is there (SO_RCVLOWAT), so it wakes a few times per message instead of
-- once per few dozen KiB.  What these specs hold it to: the bytes wait in
-- the kernel (seen in /proc/net/tcp), the message is whole and intact, the
-- next small frame is read at once, a peer that ends or resets mid-payload
-- is seen at once, a keepalive awaiting its answer reads every byte, and
-- what is not paced (compressed messages, TLS to an https:// proxy) does
-- not stall.
-- Linux only (the kernel's queue is read from /proc/net/tcp).
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"
local proc = require "spec.helpers.proc"

local KiB, MiB = 1024, 1024 * 1024
local HEAD = 14 -- a masked client frame header with a 64-bit length

-- Bytes the kernel holds unread for the established socket whose local
-- port is `port` (the server's side), or nil when there is none.
local function server_rx_queue(port)
  local f = io.open("/proc/net/tcp")
  if not f then return nil end
  for line in f:lines() do
    local lport, state, rxq = line:match("^%s*%d+: %x+:(%x+) %x+:%x+ (%x+) %x+:(%x+)")
    if lport and tonumber(lport, 16) == port and state == "01" then
      f:close()
      return tonumber(rxq, 16)
    end
  end
  f:close()
  return nil
end

local linux = io.open("/proc/net/tcp") ~= nil
local it_linux = linux and it or pending

-- A raw client upgraded on srv; returns it.
local function upgraded(srv)
  local raw = assert(net.raw_connect(srv.port))
  assert(raw:send(net.upgrade_request(srv.port, "/")))
  assert.is_true(raw:wait(function(d) return d:find("\r\n\r\n", 1, true) ~= nil end, 5), "no 101")
  assert.truthy(raw:data():find("^HTTP/1.1 101"))
  raw:consume(raw:available())
  return raw
end

-- A server that collects what it receives, and a raw client upgraded on
-- it: srv, raw, and ev = {got = messages, closed = close code, err = error,
-- conn = the server's connection}.  extra: more listen options.
local function paced_pair(extra)
  local ev = { got = {} }
  local opts = { max_message = 8 * MiB,
    on_open = function(c) ev.conn = c end,
    on_message = function(_, data) ev.got[#ev.got + 1] = data end,
    on_close = function(_, code, _, clean) ev.closed, ev.clean = code, clean end,
    on_error = function(_, e) ev.err = e end }
  for k, v in pairs(extra or {}) do opts[k] = v end
  local srv = net.listen(opts)
  return srv, upgraded(srv), ev
end

-- Send the first `upto` bytes of frame in two steps (the server's first
-- read of it, then more that a paced socket holds), letting the loop run
-- after each; returns upto.
local function start_frame(raw, frame, upto)
  assert(raw:send(frame:sub(1, HEAD + 16 * KiB))) -- the server reads it and paces the rest
  net.run_for(0.3)
  assert(raw:send(frame:sub(HEAD + 16 * KiB + 1, upto)))
  net.run_for(0.3)
  return upto
end

-- n bytes deflate cannot shrink: a 64 KiB random block repeated (farther
-- apart than deflate's 32 KiB window).
local function incompressible(n)
  local t = {}
  for i = 1, 64 * KiB do t[i] = string.char(math.random(0, 255)) end
  local block = table.concat(t)
  return (block:rep(math.ceil(n / #block))):sub(1, n)
end

describe("paced reads of large frames", function()
  after_each(function()
    proc.stop_all()
    net.cleanup()
    collectgarbage()
    collectgarbage()
  end)

  it_linux("leaves a large frame's bytes in the kernel until a good part of the rest is there", function()
    local srv, raw, ev = paced_pair()
    local got = ev.got
    local payload = net.payload(2 * MiB, "binary")
    local frame = net.client_frame(2, payload)
    local at = start_frame(raw, frame, HEAD + 316 * KiB)
    local held = server_rx_queue(srv.port)
    assert.is_true(held ~= nil and held >= 200 * KiB,
      "the server read what came (" .. tostring(held) .. " bytes left in the kernel)")
    assert.are.equal(0, #got)
    assert(raw:send(frame:sub(at + 1)))
    assert.is_true(net.wait_until(function() return #got == 1 end, 5), "the message never came")
    assert.is_true(got[1] == payload, "the message was changed")
    -- Paced no more: a small frame right after is read at once.
    assert(raw:send_frame(1, "after"))
    assert.is_true(net.wait_until(function() return #got == 2 end, 2), "the small frame after it waited")
    assert.are.equal("after", got[2])
    assert.are.equal(0, server_rx_queue(srv.port))
  end)

  it_linux("delivers large frames that arrive in many small pieces, one after the other", function()
    local _, raw, ev = paced_pair()
    local got = ev.got
    local sizes = { 3 * MiB + 1, 300 * KiB, 1 * MiB - 3, 5 * MiB }
    local sent = {}
    for i, n in ipairs(sizes) do
      sent[i] = net.payload(n, i % 2 == 0 and "text" or "binary")
      local frame = net.client_frame(i % 2 == 0 and 1 or 2, sent[i])
      local step = 37 * KiB + i -- pieces that never line up with the pacing
      for p = 1, #frame, step do
        assert(raw:send(frame:sub(p, p + step - 1)))
        if p % (8 * step) == 1 then net.run_for(0.002) end
      end
    end
    assert.is_true(net.wait_until(function() return #got == #sizes end, 10),
      "only " .. #got .. " of " .. #sizes .. " messages came")
    for i = 1, #sizes do assert.is_true(got[i] == sent[i], "message " .. i .. " was changed") end
  end)

  for _, how in ipairs { "closes", "resets" } do
    it_linux("sees a peer that " .. how .. " its connection in the middle of a paced payload at once", function()
      local _, raw, ev = paced_pair()
      start_frame(raw, net.client_frame(2, net.payload(4 * MiB, "binary")), HEAD + 400 * KiB)
      local t0 = net.now()
      if how == "closes" then raw:close() else raw:reset() end
      assert.is_true(net.wait_until(function() return ev.closed ~= nil end, 3), "the end was not seen")
      assert.is_true(net.now() - t0 < 1.5, "the end was seen late")
      assert.are.equal(1006, ev.closed)
      assert.are.equal(0, #ev.got)
    end)
  end

  it_linux("finishes a close it starts in the middle of a paced payload", function()
    local srv, raw, ev = paced_pair()
    local frame = net.client_frame(2, net.payload(2 * MiB, "binary"))
    local at = start_frame(raw, frame, HEAD + 400 * KiB)
    -- In a coroutine: close returns at once there (outside one it waits for
    -- the answer, which this process gives below).
    net.ws.spawn(function() ev.conn:close(1000, "enough") end)
    net.run_for(0.2)
    assert.is_nil(ev.closed)
    -- The peer finishes its frame, then answers the close.
    assert(raw:send(frame:sub(at + 1)))
    assert(raw:send_close(1000))
    assert.is_true(net.wait_until(function() return ev.closed ~= nil end, 3), "the close never completed")
    assert.are.equal(1000, ev.closed)
    assert.is_true(ev.clean)
    local f = net.parse_frame(raw:data())
    assert.are.equal(8, f and f.opcode)
    assert.are.equal(1000, f.code)
    assert.are.equal(0, #srv:clients())
  end)

  for _, where in ipairs { "outside", "inside" } do
    it_linux("resumes a connection paused " .. where .. " a callback in the middle of a paced payload", function()
      local _, raw, ev = paced_pair()
      local frame = net.client_frame(2, net.payload(2 * MiB, "binary"))
      local at = start_frame(raw, frame, HEAD + 400 * KiB)
      if where == "outside" then
        ev.conn:pause()
      else
        local paused = false
        net.track_timer(net.ws.timer(0, function() ev.conn:pause(); paused = true end))
        assert.is_true(net.wait_until(function() return paused end, 2))
      end
      assert(raw:send(frame:sub(at + 1)))
      net.run_for(0.3)
      assert.are.equal(0, #ev.got) -- paused: not delivered
      ev.conn:resume()
      assert.is_true(net.wait_until(function() return #ev.got == 1 end, 5), "the message never came")
      assert.are.equal(#frame - HEAD, #ev.got[1])
    end)
  end

  it_linux("reads every byte while a keepalive ping awaits its answer (any byte counts as one)", function()
    local _, raw, ev = paced_pair { ping_interval = 0.2, ping_timeout = 0.3 }
    local got = ev.got
    -- 1.5 MiB at 96 KiB per 100 ms: waiting for 1 MiB at a time would leave
    -- the server without a byte for a second, past the ping's timeout.
    local payload = net.payload(3 * MiB / 2, "binary")
    local frame = net.client_frame(2, payload)
    local step = 96 * KiB
    for p = 1, #frame, step do
      assert(raw:send(frame:sub(p, p + step - 1)))
      net.run_for(0.1)
      assert.is_nil(ev.err)
    end
    assert.is_true(net.wait_until(function() return #got == 1 end, 3), "the message never came: " .. tostring(ev.err))
    assert.is_true(got[1] == payload, "the message was changed")
  end)

  it("leaves compressed messages unpaced: large ones arrive whole both ways", function()
    math.randomseed(19)
    local got = {}
    local srv = net.listen { max_message = 8 * MiB, compress = true,
      on_message = function(c, data, binary) c:send(data, binary and "binary" or "text") end }
    local c = assert(net.connect(net.url(srv), { compress = true, max_message = 8 * MiB,
      on_message = function(_, data) got[#got + 1] = data end }))
    assert.is_true(net.wait_until(function() return c.ready_state == "OPEN" end, 5), "no open")
    assert.truthy(c.extensions and c.extensions:find("permessage%-deflate"))
    local sent = { incompressible(300 * KiB), incompressible(2 * MiB + 3) }
    for i = 1, #sent do
      assert(c:send(sent[i], "binary"))
      assert.is_true(net.wait_until(function() return #got == i end, 5), "echo " .. i .. " never came")
      assert.is_true(got[i] == sent[i], "echo " .. i .. " was changed")
    end
  end)

  it_linux("leaves ws:// through an https:// proxy unpaced: a TLS record cut by a pause does not stall it", function()
    local certs = require("spec.helpers.certs").get()
    -- The proxy is also the origin; 8 warm-up messages of 4 MiB let the
    -- client's receive buffer grow, so the kernel no longer wakes a reader
    -- waiting for more than will come.
    local p = proc.start("split TLS origin", { "python3", "spec/helpers/split_tls_origin.py",
      certs.self_cert, certs.self_key, 8, 1.0 })
    local port = p:wait_for("listening (%d+)")
    local got, err = {}, nil
    assert(net.connect("ws://127.0.0.1:9/", { proxy = "https://127.0.0.1:" .. port,
      proxy_tls = { cafile = certs.self_cert }, max_message = 8 * MiB, timeout = 5,
      on_message = function(_, data) got[#got + 1] = data end,
      on_error = function(_, e) err = e end }))
    assert.is_true(net.wait_until(function() return #got == 9 or err ~= nil end, 10),
      "only " .. #got .. " of 9 messages came: " .. tostring(err))
    assert.is_nil(err)
    local want = {}
    for i = 0, 600 * KiB - 1 do want[#want + 1] = string.char((i * 7 + 3) % 256) end
    assert.is_true(got[9] == table.concat(want), "the last message was changed")
  end)
end)
