-- Hostile and broken peers over real sockets (issue 6), beyond what
-- net_reject (garbage, oversized heads, stalled handshakes), net_close
-- (clean closes, resets after a whole frame, keepalive) and
-- net_backpressure (slow readers of our messages) cover:
--   * slowloris: many connections dribbling the handshake are cut by
--     handshake_timeout while a normal client keeps being served quickly;
--   * a 64-bit length of 2^63 (1002), a frame claiming 1 GiB (1009 at once),
--     too many headers (431), a ping flood from a peer that never reads
--     (the server's output stays bounded: pongs are coalesced);
--   * a reset mid-frame, a half-close after half a frame, a peer that
--     leaves inside a fragmented message: on_close once, 1006, not clean,
--     and no fd leak;
--   * nothing lost: every message sent before a clean close arrives before
--     the close event, both ways; srv:close() flushes queued output to every
--     client before closing it with 1001.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"
local core = require "ws.core"

-- The raw client must live in this process to open many of them cheaply.
local in_process_raw = net.raw_backend == "core" or net.raw_backend == "luasocket"

local function server_conn(events, i)
  assert(net.wait_until(function() return #net.select(events, "open") >= (i or 1) end), "server saw no open")
  return net.select(events, "open")[i or 1][2]
end

-- A raw client that has finished the handshake with srv.
local function raw_open(srv, events, opts)
  local opened = #net.select(events, "open")
  local raw = assert(net.raw_connect(srv.port, opts))
  if opts and opts.no_read then
    raw:send(net.upgrade_request(srv.port, "/"))
  else
    assert.are.equal(101, assert(raw:handshake(srv.port, "/")).status)
  end
  local c = server_conn(events, opened + 1)
  return raw, c
end

-- A masked client frame header claiming `len` payload bytes (no payload).
local function header_claiming(opcode, len)
  local b = { string.char(0x80 + opcode, 0x80 + 127) }
  local v = len
  local bytes = {}
  for i = 8, 1, -1 do
    bytes[i] = v % 256
    v = math.floor(v / 256)
  end
  b[2] = string.char((table.unpack or unpack)(bytes)) -- luacheck: ignore 113
  b[3] = "\1\2\3\4"
  return table.concat(b)
end

describe("hostile peers", function()
  after_each(function()
    net.cleanup()
    net.settled_fd_count(2) -- let closing sockets finish before the next spec file counts fds
  end)

  it("slowloris: 50 connections dribbling the handshake are cut while a normal client is served", function()
    if not in_process_raw then
      pending("needs an in-process raw TCP client (ws.testing or LuaSocket)")
      return
    end
    local srv, events = net.echo_server { handshake_timeout = 1 }
    local good = assert(net.connect(net.url(srv, "/good")))
    local req = net.upgrade_request(srv.port, "/slow")
    local slow = {}
    for i = 1, 50 do slow[i] = assert(net.raw_connect(srv.port)) end
    local t0 = net.now()
    local sent, worst, rounds = 1, 0, 0
    local next_byte = t0
    while net.now() - t0 < 3.5 do
      if net.now() >= next_byte then
        for _, raw in ipairs(slow) do
          raw:poll()
          if not raw.eof then
            pcall(raw.send, raw, req:sub(sent, sent)) -- may fail once the server has cut it
          end
        end
        sent = sent % #req + 1
        next_byte = next_byte + 0.2
      end
      -- The normal client keeps echoing.
      local t = net.now()
      assert.is_true(good:send("ping " .. rounds))
      local msg = good:receive(5)
      assert.are.equal("ping " .. rounds, msg)
      rounds = rounds + 1
      worst = math.max(worst, net.now() - t)
      net.ws.step(0.02)
    end
    local cut = 0
    for _, raw in ipairs(slow) do
      if raw:wait_eof(2) then cut = cut + 1 end
    end
    assert.are.equal(50, cut, "slowloris connections still open")
    -- Sent one byte per 0.2 s for 3.5 s: far from a whole head (> 100 bytes).
    assert.are.equal(1, #net.select(events, "open"))
    assert.are.equal("OPEN", good.ready_state)
    assert.is_true(rounds >= 20, "only " .. rounds .. " echo round trips")
    assert.is_true(worst < 1, "an echo round trip took " .. worst .. " s")
  end)

  it("a 64-bit length of 2^63 gets close 1002 and the connection ends", function()
    local srv, events = net.echo_server()
    local raw = raw_open(srv, events)
    -- 127 then 0x80 00 .. 00: the most significant bit is set.
    raw:send(string.char(0x82, 0x80 + 127, 0x80, 0, 0, 0, 0, 0, 0, 0) .. "\1\2\3\4")
    local f = raw:next_frame(3)
    assert.is_table(f, "no close frame")
    assert.are.same({ 8, 1002 }, { f.opcode, f.code })
    assert.is_true(raw:wait_eof(3))
    assert.is_true(net.wait_until(function() return #net.select(events, "close") == 1 end, 3))
    local cl = net.select(events, "close")[1]
    assert.are.same({ 1002, false }, { cl[3], cl[5] })
  end)

  it("a frame that claims 1 GiB and sends slowly gets 1009 at once", function()
    local srv, events = net.echo_server()
    local raw = raw_open(srv, events)
    local t0 = net.now()
    raw:send(header_claiming(2, 1024 * 1024 * 1024))
    raw:send("a few bytes")
    local f = raw:next_frame(3)
    assert.is_table(f, "no close frame")
    assert.are.same({ 8, 1009 }, { f.opcode, f.code })
    assert.is_true(net.now() - t0 < 2, "close after " .. (net.now() - t0) .. " s")
    -- The slow sender keeps dribbling: the server has closed anyway.
    pcall(raw.send, raw, "more")
    assert.is_true(raw:wait_eof(3))
    assert.is_true(net.wait_until(function() return #net.select(events, "close") == 1 end, 3))
    assert.are.equal(1009, net.select(events, "close")[1][3])
  end)

  it("too many headers get 431 and the server keeps serving", function()
    local srv = net.echo_server()
    local extra = {}
    for i = 1, 100 do extra[i] = "X-H" .. i .. ": v\r\n" end
    local r, text = net.http_exchange(srv.port, net.upgrade_request(srv.port, "/", table.concat(extra)))
    assert.is_table(r, "no HTTP response: " .. tostring(text):sub(1, 200))
    assert.are.equal(431, r.status)
    local c = assert(net.connect(net.url(srv)))
    assert.is_true(c:send("still here"))
    assert.are.equal("still here", (c:receive(5)))
  end)

  it("a ping flood from a peer that never reads keeps the server's output bounded", function()
    local srv, events = net.echo_server()
    local raw, sc = raw_open(srv, events, { no_read = true })
    local rss0 = net.rss_kb()
    local ping = net.client_frame(9, string.rep("p", 125))
    local batch = string.rep(ping, 100)
    local most = 0
    for _ = 1, 400 do -- 40 000 pings, 5.2 MB: more than the socket buffers absorb
      raw:send(batch)
      net.ws.step(0)
      most = math.max(most, sc:buffered_amount())
    end
    raw:send(net.client_frame(9, "last"))
    net.run_for(0.3)
    most = math.max(most, sc:buffered_amount())
    -- At most the coalescing threshold (64 KiB) plus one pong.
    assert.is_true(most <= 64 * 1024 + 200, "server output reached " .. most .. " bytes")
    local grew = (net.rss_kb() or 0) - (rss0 or 0)
    -- ASan's quarantine and shadow memory inflate RSS: a looser bound there.
    local asan = (os.getenv("LD_PRELOAD") or ""):find("asan") ~= nil
    assert.is_true(grew < (asan and 96 or 16) * 1024, "RSS grew by " .. grew .. " KiB")
    assert.are.equal("OPEN", sc.ready_state)
    -- Reading now: pongs arrive, far fewer than pings, and the last one
    -- answers the most recent ping.
    raw:start_reading()
    local head = assert(raw:read_head(5))
    assert.are.equal(101, head.status)
    local pongs, last = 0, nil
    net.wait_until(function()
      -- Parse in place (raw:frames() copies the buffer once per frame).
      local d, pos = raw:data(), 1
      while true do
        local h = core.parse_frame_header(d:sub(pos, pos + 13))
        if not h or #d - pos + 1 < h.header_len + h.length then break end
        assert.are.equal(10, h.opcode)
        pongs, last = pongs + 1, d:sub(pos + h.header_len, pos + h.header_len + h.length - 1)
        pos = pos + h.header_len + h.length
      end
      raw:consume(pos - 1)
      return last == "last"
    end, 10)
    assert.are.equal("last", last)
    assert.is_true(pongs < 40001, pongs .. " pongs")
    raw:send_close(1000)
    assert.is_true(net.wait_until(function() return #net.select(events, "close") == 1 end, 3))
    assert.are.same({ 1000, true }, { net.select(events, "close")[1][3], net.select(events, "close")[1][5] })
  end)

  describe("a peer that breaks off", function()
    local cases = {
      { "resets the connection mid-frame", function(raw)
        raw:send(net.client_frame(2, string.rep("x", 100)):sub(1, 60))
        net.run_for(0.05)
        raw:reset()
      end },
      { "half-closes after half a frame", function(raw)
        raw:send(net.client_frame(1, string.rep("y", 1000)):sub(1, 500))
        net.run_for(0.05)
        assert(raw.fd or raw.sock, "no socket")
        if raw.fd then net.testing.tcp_shutdown(raw.fd) else raw.sock:shutdown("send") end
        assert.is_true(raw:wait_eof(3), "the server did not close its side")
      end },
      { "vanishes inside a fragmented message", function(raw)
        raw:send(net.client_frame(1, "part one, ", false))
        raw:send(net.client_frame(0, "part two, ", false))
        net.run_for(0.05)
        raw:close()
      end },
    }
    for _, case in ipairs(cases) do
      it(case[1] .. ": on_close once, 1006, not clean, no fd leak", function()
        if not in_process_raw then
          pending("needs an in-process raw TCP client")
          return
        end
        local srv, events = net.echo_server()
        local before = net.settled_fd_count()
        local raw = raw_open(srv, events)
        case[2](raw)
        assert.is_true(net.wait_until(function() return #net.select(events, "close") >= 1 end, 3))
        net.run_for(0.2)
        local closes = net.select(events, "close")
        assert.are.equal(1, #closes)
        assert.are.same({ 1006, false }, { closes[1][3], closes[1][5] })
        assert.are.equal(0, #net.select(events, "message"))
        assert.are.equal(0, #srv:clients())
        raw:close()
        -- Back to the fds open before the connection (an fd of an earlier
        -- test may still be closing: wait for the count to settle).
        local ok = net.wait_until(function() return net.fd_count() <= before end, 3)
        assert.is_true(ok, "fds: " .. before .. " before, " .. net.fd_count() .. " after")
      end)
    end
  end)

  describe("nothing lost", function()
    local N = 1000

    it("frames that arrive together: each message, the ping and the half frame behind them", function()
      local srv, events = net.echo_server()
      local raw = raw_open(srv, events)
      local third = net.payload(3000, "binary")
      local tail = net.client_frame(2, third)
      -- One send: a text message, a ping, a binary message and the first
      -- part of a third message (read together, delivered from one buffer).
      raw:send(net.client_frame(1, "one") .. net.client_frame(9, "p") .. net.client_frame(2, "two")
        .. tail:sub(1, 1000))
      local got = {}
      for _ = 1, 3 do got[#got + 1] = raw:next_frame(3) end
      assert.are.same({ 1, "one" }, { got[1].opcode, got[1].payload })
      assert.are.same({ 10, "p" }, { got[2].opcode, got[2].payload })
      assert.are.same({ 2, "two" }, { got[3].opcode, got[3].payload })
      local msgs = net.select(events, "message")
      assert.are.equal(2, #msgs)
      assert.are.same({ "one", false, "two", true }, { msgs[1][3], msgs[1][4], msgs[2][3], msgs[2][4] })
      -- The rest of the third message: it was kept, whole, behind the others.
      raw:send(tail:sub(1001))
      local f = raw:next_frame(3)
      assert.is_table(f, "the third message was not echoed")
      assert.are.equal(2, f.opcode)
      assert.is_true(f.payload == third, "the third message came back changed")
      assert.are.equal(3, #net.select(events, "message"))
      assert.are.equal("OPEN", msgs[1][2].ready_state)
    end)

    it("a close from on_message with more frames in the same read: the close goes out after the replies", function()
      local got = {}
      local srv = net.listen {
        on_open = function(c) got[#got + 1] = { "open", c } end,
        on_message = function(c, data)
          got[#got + 1] = { "message", c, data }
          c:send("reply " .. data)
          if data == "bye" then c:close(1000, "asked") end
        end,
        on_close = function(c, code) got[#got + 1] = { "close", c, code } end,
      }
      local raw = raw_open(srv, got)
      raw:send(net.client_frame(1, "hi") .. net.client_frame(1, "bye") .. net.client_frame(1, "late"))
      local frames = {}
      for _ = 1, 3 do frames[#frames + 1] = raw:next_frame(3) end
      assert.are.same({ 1, "reply hi" }, { frames[1].opcode, frames[1].payload })
      assert.are.same({ 1, "reply bye" }, { frames[2].opcode, frames[2].payload })
      assert.are.same({ 8, 1000, "asked" }, { frames[3].opcode, frames[3].code, frames[3].reason })
      raw:send_close(1000)
      assert.is_true(raw:wait_eof(3))
      assert.are.same({}, raw:frames()) -- nothing after the close frame
      assert.is_true(net.wait_until(function() return #net.select(got, "close") == 1 end, 3))
      -- What the peer sent before its own close is still delivered (the
      -- reply to it is refused: the connection is closing).
      local texts = {}
      for _, m in ipairs(net.select(got, "message")) do texts[#texts + 1] = m[3] end
      assert.are.same({ "hi", "bye", "late" }, texts)
      assert.are.equal(1000, net.select(got, "close")[1][3])
    end)

    it("client to server: " .. N .. " messages then a clean close all arrive before on_close", function()
      local order = {}
      local srv = net.listen {
        on_message = function(_, data) order[#order + 1] = data end,
        on_close = function(_, code, _, clean) order[#order + 1] = { code, clean } end,
      }
      local c = assert(net.connect(net.url(srv)))
      for i = 1, N do assert.is_true(c:send("m" .. i)) end
      c:close(1000, "done")
      assert.is_true(net.wait_until(function() return type(order[#order]) == "table" end, 10))
      assert.are.equal(N + 1, #order)
      for i = 1, N do assert.are.equal("m" .. i, order[i]) end
      assert.are.same({ 1000, true }, order[N + 1])
    end)

    it("server to client: " .. N .. " messages then a clean close all arrive before on_close", function()
      local srv = net.listen {
        on_open = function(sc)
          for i = 1, N do assert(sc:send("s" .. i)) end
          sc:close(1000, "done")
        end,
      }
      local order = {}
      local c = net.connect(net.url(srv), {
        on_message = function(_, data) order[#order + 1] = data end,
        on_close = function(_, code, _, clean) order[#order + 1] = { code, clean } end,
      })
      assert(c)
      assert.is_true(net.wait_until(function() return type(order[#order]) == "table" end, 10))
      assert.are.equal(N + 1, #order)
      for i = 1, N do assert.are.equal("s" .. i, order[i]) end
      assert.are.same({ 1000, true }, order[N + 1])
    end)

    it("srv:close() flushes every client's queued output, then closes it with 1001", function()
      local srv = net.listen {}
      local logs = {}
      for i = 1, 3 do
        local log = { n = 0, bytes = 0 }
        logs[i] = log
        assert(net.connect(net.url(srv), {
          on_message = function(_, data)
            log.n = log.n + 1
            log.bytes = log.bytes + #data
            if log.close then log.after_close = true end
          end,
          on_close = function(_, code, _, clean) log.close = { code, clean } end,
        }))
      end
      assert.is_true(net.wait_until(function() return #srv:clients() == 3 end, 5))
      -- 4 MB per client in messages small enough to be queued (larger ones
      -- are written at once), so most of it is still queued when
      -- srv:close() is called.
      local chunk = net.payload(8 * 1024)
      for _, sc in ipairs(srv:clients()) do
        for _ = 1, 512 do assert(sc:send(chunk, "binary")) end
      end
      local queued = 0
      for _, sc in ipairs(srv:clients()) do queued = queued + sc:buffered_amount() end
      assert.is_true(queued > 3 * 1024 * 1024, "only " .. queued .. " bytes queued")
      srv:close()
      assert.is_true(net.wait_until(function()
        return logs[1].close ~= nil and logs[2].close ~= nil and logs[3].close ~= nil
      end, 20))
      for i = 1, 3 do
        assert.are.equal(512, logs[i].n, "client " .. i .. " messages")
        assert.are.equal(512 * 8 * 1024, logs[i].bytes)
        assert.are.same({ 1001, true }, logs[i].close)
        assert.is_nil(logs[i].after_close)
      end
    end)
  end)
end)
