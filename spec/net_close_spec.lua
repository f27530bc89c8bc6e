-- Every way a networked connection ends: client- and server-initiated close
-- handshakes (exact code and reason on the other side), the server closing
-- TCP first, the close timeout, a peer that vanishes, keepalive timeouts,
-- srv:close(), and on_close firing exactly once.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"

local function ws_sleep(s) net.ws.sleep(s) end

-- A callback-style client that records everything in order.
local function recording_client(url, opts)
  local log = { opened = false, closes = {}, errors = {}, messages = {}, order = {} }
  local o = {
    on_open = function() log.opened = true; log.order[#log.order + 1] = "open" end,
    on_message = function(_, data) log.messages[#log.messages + 1] = data; log.order[#log.order + 1] = "message" end,
    on_close = function(c, code, reason, was_clean)
      log.closes[#log.closes + 1] = { code = code, reason = reason, was_clean = was_clean, at = net.now(),
        state = c.ready_state }
      log.order[#log.order + 1] = "close"
    end,
    on_error = function(_, err) log.errors[#log.errors + 1] = err; log.order[#log.order + 1] = "error" end,
  }
  for k, v in pairs(opts or {}) do o[k] = v end
  local c = net.connect(url, o)
  assert(c, "ws.connect returned nil")
  return c, log
end

local function server_conn(events, i)
  assert(net.wait_until(function() return #net.select(events, "open") >= (i or 1) end), "server saw no open")
  return net.select(events, "open")[i or 1][2]
end

local function server_closes(events)
  return net.select(events, "close")
end

describe("closing networked connections", function()
  after_each(function()
    net.cleanup()
  end)

  describe("clean close", function()
    it("client-initiated: the server sees the exact code and reason, both sides clean, once", function()
      local srv, events = net.echo_server()
      local c, log = recording_client(net.url(srv))
      assert.is_true(net.wait_until(function() return log.opened end))
      c:close(4001, "client bye")
      assert.is_true(net.wait_until(function() return #log.closes == 1 and #server_closes(events) == 1 end))
      net.run_for(0.1)
      local sc = server_closes(events)
      assert.are.equal(1, #sc)
      assert.are.same({ 4001, "client bye", true }, { sc[1][3], sc[1][4], sc[1][5] })
      assert.are.equal(1, #log.closes)
      assert.are.equal(4001, log.closes[1].code)
      assert.is_true(log.closes[1].was_clean)
      assert.are.equal("CLOSED", log.closes[1].state)
      assert.are.equal("CLOSED", c.ready_state)
      assert.are.equal("CLOSED", sc[1][2].ready_state)
      assert.are.same({}, log.errors)
    end)

    it("server-initiated: the client sees the exact code and reason, both sides clean, once", function()
      local srv, events = net.echo_server()
      local c, log = recording_client(net.url(srv))
      local sc = server_conn(events)
      assert.is_true(net.wait_until(function() return log.opened end))
      net.ws.spawn(function() sc:close(4002, "server bye") end) -- a task does not block the test
      assert.are.equal("CLOSING", sc.ready_state)
      assert.is_true(net.wait_until(function() return #log.closes == 1 and #server_closes(events) == 1 end))
      net.run_for(0.1)
      assert.are.equal(1, #log.closes)
      local lc = log.closes[1]
      assert.are.same({ 4002, "server bye", true }, { lc.code, lc.reason, lc.was_clean })
      local cl = server_closes(events)
      assert.are.equal(1, #cl)
      assert.are.equal(4002, cl[1][3])
      assert.is_true(cl[1][5])
      assert.are.equal("CLOSED", c.ready_state)
    end)

    it("close() without arguments sends 1000 with an empty reason", function()
      local srv, events = net.echo_server()
      local c = assert(net.connect(net.url(srv)))
      c:close()
      assert.is_true(net.wait_until(function() return #server_closes(events) == 1 end))
      local cl = server_closes(events)[1]
      assert.are.same({ 1000, "", true }, { cl[3], cl[4], cl[5] })
    end)

    it("straight-line receive reports the server's close code and reason, after queued messages", function()
      local srv = net.listen {
        on_open = function(sc)
          sc:send("first")
          sc:send("second", "binary")
          sc:close(4003, "that is all")
        end,
      }
      local c = assert(net.connect(net.url(srv)))
      local d1, k1 = c:receive(5)
      local d2, k2 = c:receive(5)
      assert.are.same({ "first", "text", "second", "binary" }, { d1, k1, d2, k2 })
      local data, why, code, reason = c:receive(5)
      assert.is_nil(data)
      assert.are.same({ "closed", 4003, "that is all" }, { why, code, reason })
      assert.are.equal("CLOSED", c.ready_state)
      -- and again: a closed connection keeps saying so
      data, why, code, reason = c:receive(1)
      assert.is_nil(data)
      assert.are.same({ "closed", 4003, "that is all" }, { why, code, reason })
    end)

    it("fires on_close exactly once when close() is called repeatedly", function()
      local srv = net.echo_server()
      local c, log = recording_client(net.url(srv))
      assert.is_true(net.wait_until(function() return log.opened end))
      c:close(1000, "one")
      pcall(c.close, c, 1000, "two")
      assert.is_true(net.wait_until(function() return #log.closes >= 1 end))
      pcall(c.close, c)
      net.run_for(0.2)
      assert.are.equal(1, #log.closes)
      assert.are.equal(1000, log.closes[1].code)
    end)

    it("close() while CONNECTING ends the connection: no on_open, one on_close", function()
      local srv = net.echo_server()
      local c, log = recording_client(net.url(srv))
      assert.are.equal("CONNECTING", c.ready_state)
      c:close()
      assert.is_true(net.wait_until(function() return #log.closes >= 1 end))
      net.run_for(0.2)
      assert.is_false(log.opened)
      assert.are.equal(1, #log.closes)
      assert.are.equal("CLOSED", c.ready_state)
    end)
  end)

  describe("the server closes TCP first", function()
    it("after a close the client started (raw client sees the close echo, then EOF)", function()
      local srv, events = net.echo_server()
      local raw = assert(net.raw_connect(srv.port))
      local resp = assert(raw:handshake(srv.port, "/"))
      assert.are.equal(101, resp.status)
      assert.are.equal(net.ACCEPT, resp.headers["sec-websocket-accept"])
      server_conn(events)
      raw:send_close(1000, "bye")
      local f = raw:next_frame(3)
      assert.is_table(f)
      assert.are.equal(8, f.opcode)
      assert.is_false(f.masked)
      assert.are.equal(1000, f.code)
      -- the server, not us, ends the TCP connection
      assert.is_true(raw:wait_eof(3))
      assert.are.equal("", raw:data())
      assert.is_true(net.wait_until(function() return #server_closes(events) == 1 end))
      local cl = server_closes(events)[1]
      assert.are.same({ 1000, "bye", true }, { cl[3], cl[4], cl[5] })
    end)

    it("after a close the server started (raw client answers, then sees EOF)", function()
      local srv, events = net.echo_server()
      local raw = assert(net.raw_connect(srv.port))
      assert.are.equal(101, assert(raw:handshake(srv.port, "/")).status)
      local sc = server_conn(events)
      net.ws.spawn(function() sc:close(4000, "srv") end) -- the raw client answers below
      local f = raw:next_frame(3)
      assert.is_table(f)
      assert.are.same({ 8, 4000, "srv", true }, { f.opcode, f.code, f.reason, f.fin })
      assert.is_false(raw.eof) -- the server waits for our answer
      raw:send_close(4000, "srv")
      assert.is_true(raw:wait_eof(3))
      assert.is_true(net.wait_until(function() return #server_closes(events) == 1 end))
      local cl = server_closes(events)[1]
      assert.are.same({ 4000, "srv", true }, { cl[3], cl[4], cl[5] })
    end)
  end)

  describe("close timeout", function()
    it("server: the peer never answers the close -> 1006, not clean, after close_timeout", function()
      local srv, events = net.echo_server { close_timeout = 0.3 }
      local raw = assert(net.raw_connect(srv.port))
      assert.are.equal(101, assert(raw:handshake(srv.port, "/")).status)
      local sc = server_conn(events)
      local t0 = net.now()
      sc:close(1000, "bye")
      local f = raw:next_frame(2)
      assert.are.equal(8, f and f.opcode)
      assert.is_true(net.wait_until(function() return #server_closes(events) == 1 end, 5))
      local elapsed = net.now() - t0
      assert.is_true(elapsed >= 0.25, "closed after only " .. elapsed .. " s")
      assert.is_true(elapsed < 3, "closed after " .. elapsed .. " s")
      local cl = server_closes(events)[1]
      assert.are.equal(1006, cl[3])
      assert.is_false(cl[5])
      assert.is_true(raw:wait_eof(2))
      net.run_for(0.1)
      assert.are.equal(1, #server_closes(events))
    end)

    it("client: the server process is stopped -> 1006, not clean, after close_timeout", function()
      local child, port = net.spawn_echo_server()
      local c, log = recording_client("ws://127.0.0.1:" .. port .. "/", { close_timeout = 0.3 })
      assert.is_true(net.wait_until(function() return log.opened end, 5))
      child:stop()
      local t0 = net.now()
      c:close(1000, "bye") -- waits for the answer, close_timeout at most
      assert.are.equal("CLOSED", c.ready_state)
      assert.is_true(net.wait_until(function() return #log.closes == 1 end, 5))
      local elapsed = log.closes[1].at - t0
      child:kill()
      assert.is_true(elapsed >= 0.25, "closed after only " .. elapsed .. " s")
      assert.is_true(elapsed < 3, "closed after " .. elapsed .. " s")
      assert.are.equal(1006, log.closes[1].code)
      assert.is_false(log.closes[1].was_clean)
      assert.are.equal("CLOSED", c.ready_state)
    end)
  end)

  describe("a peer that vanishes", function()
    it("server: the client's socket closes without a close frame -> 1006, not clean", function()
      local srv, events = net.echo_server()
      local raw = assert(net.raw_connect(srv.port))
      assert.are.equal(101, assert(raw:handshake(srv.port, "/")).status)
      server_conn(events)
      raw:send_frame(1, "last words")
      assert.are.equal("last words", (raw:next_frame(3) or {}).payload)
      raw:close()
      assert.is_true(net.wait_until(function() return #server_closes(events) == 1 end, 3))
      local cl = server_closes(events)[1]
      assert.are.equal(1006, cl[3])
      assert.is_false(cl[5])
      net.run_for(0.1)
      assert.are.equal(1, #server_closes(events))
      assert.are.equal(0, #srv:clients())
    end)

    it("server: the client resets the connection -> 1006, not clean", function()
      local srv, events = net.echo_server()
      local raw = assert(net.raw_connect(srv.port))
      assert.are.equal(101, assert(raw:handshake(srv.port, "/")).status)
      server_conn(events)
      raw:reset()
      assert.is_true(net.wait_until(function() return #server_closes(events) == 1 end, 3))
      local cl = server_closes(events)[1]
      assert.are.same({ 1006, false }, { cl[3], cl[5] })
    end)

    it("client: the server process is killed -> 1006, not clean", function()
      local child, port = net.spawn_echo_server()
      local c, log = recording_client("ws://127.0.0.1:" .. port .. "/")
      assert.is_true(net.wait_until(function() return log.opened end, 5))
      child:kill()
      assert.is_true(net.wait_until(function() return #log.closes == 1 end, 3))
      net.run_for(0.1)
      assert.are.equal(1, #log.closes)
      assert.are.equal(1006, log.closes[1].code)
      assert.is_false(log.closes[1].was_clean)
      assert.are.equal("CLOSED", c.ready_state)
      local ok, err = c:send("anyone?")
      assert.is_nil(ok)
      assert.are.equal("connection is not open", err)
    end)

    it("client, straight-line: receive returns nil, 'closed', 1006", function()
      local child, port = net.spawn_echo_server()
      local c = assert(net.connect("ws://127.0.0.1:" .. port .. "/"))
      child:kill()
      local data, why, code = c:receive(3)
      assert.is_nil(data)
      assert.are.equal("closed", why)
      assert.are.equal(1006, code)
    end)
  end)

  describe("keepalive", function()
    it("server: a client that stops answering pings gets on_error 'keepalive' then on_close 1006", function()
      local srv, events = net.echo_server { ping_interval = 0.2, ping_timeout = 0.2 }
      local raw = assert(net.raw_connect(srv.port))
      assert.are.equal(101, assert(raw:handshake(srv.port, "/")).status)
      server_conn(events)
      local t0 = net.now()
      assert.is_true(net.wait_until(function() return #server_closes(events) == 1 end, 4))
      local elapsed = net.now() - t0
      assert.is_true(elapsed >= 0.3, "closed after only " .. elapsed .. " s")
      local kinds = {}
      for _, e in ipairs(events) do
        if e[1] ~= "open" then kinds[#kinds + 1] = e[1] end
      end
      assert.are.same({ "error", "close" }, kinds)
      assert.matches("keepalive", net.select(events, "error")[1][3])
      local cl = server_closes(events)[1]
      assert.are.same({ 1006, false }, { cl[3], cl[5] })
      -- the raw client was pinged
      local pings = 0
      for _, f in ipairs(raw:frames()) do
        if f.opcode == 9 then pings = pings + 1 end
      end
      assert.is_true(pings >= 1, "no ping reached the client")
    end)

    it("server: a client that answers the pings stays open", function()
      local srv, events = net.echo_server { ping_interval = 0.1, ping_timeout = 0.2 }
      local raw = assert(net.raw_connect(srv.port))
      assert.are.equal(101, assert(raw:handshake(srv.port, "/")).status)
      server_conn(events)
      local pings, deadline = 0, net.now() + 0.8
      while net.now() < deadline do
        local f = raw:next_frame(0.05)
        if f and f.opcode == 9 then
          pings = pings + 1
          raw:send_frame(10, f.payload)
        end
      end
      assert.is_true(pings >= 3, "only " .. pings .. " pings")
      assert.are.same({}, server_closes(events))
      assert.are.same({}, net.select(events, "error"))
      assert.are.equal(1, #srv:clients())
    end)

    it("client: a stopped server process gets on_error 'keepalive' then on_close 1006", function()
      local child, port = net.spawn_echo_server()
      local c, log = recording_client("ws://127.0.0.1:" .. port .. "/", { ping_interval = 0.2, ping_timeout = 0.2 })
      assert.is_true(net.wait_until(function() return log.opened end, 5))
      child:stop()
      local t0 = net.now()
      assert.is_true(net.wait_until(function() return #log.closes == 1 end, 4))
      local elapsed = net.now() - t0
      child:kill()
      assert.is_true(elapsed >= 0.2, "closed after only " .. elapsed .. " s")
      assert.are.same({ "open", "error", "close" }, log.order)
      assert.matches("keepalive", log.errors[1])
      assert.are.equal(1006, log.closes[1].code)
      assert.is_false(log.closes[1].was_clean)
      assert.are.equal("CLOSED", c.ready_state)
    end)

    it("client: a live server keeps the connection open", function()
      local srv = net.echo_server()
      local c, log = recording_client(net.url(srv), { ping_interval = 0.1, ping_timeout = 0.2 })
      assert.is_true(net.wait_until(function() return log.opened end))
      net.run_for(0.7)
      assert.are.equal("OPEN", c.ready_state)
      assert.are.same({ "open" }, log.order)
    end)
  end)

  describe("idle timeout", function()
    it("closes a connection without traffic after idle_timeout; traffic keeps it open", function()
      local srv, events = net.echo_server { idle_timeout = 0.4 }
      local busy = assert(net.connect(net.url(srv, "/busy")))
      local idle = assert(net.connect(net.url(srv, "/idle")))
      local t0 = net.now()
      for _ = 1, 6 do -- traffic every 0.1 s for 0.6 s
        ws_sleep(0.1)
        assert.is_true(busy:send("tick"))
        assert.are.equal("tick", (busy:receive(2)))
      end
      assert.is_true(net.wait_until(function() return idle.ready_state == "CLOSED" end, 3))
      local elapsed = net.now() - t0
      assert.is_true(elapsed >= 0.35, "closed after only " .. elapsed .. " s")
      assert.are.equal("OPEN", busy.ready_state)
      local closes = server_closes(events)
      assert.are.equal(1, #closes)
      assert.are.equal("/idle", closes[1][2].path)
    end)
  end)

  describe("srv:close()", function()
    it("closes every client with 1001 and stops listening", function()
      local srv, events = net.echo_server()
      local port = srv.port
      local a = assert(net.connect(net.url(srv)))
      local b = assert(net.connect(net.url(srv)))
      assert.is_true(net.wait_until(function() return #srv:clients() == 2 end))
      srv:close()
      for _, c in ipairs({ a, b }) do
        local data, why, code = c:receive(3)
        assert.is_nil(data)
        assert.are.equal("closed", why)
        assert.are.equal(1001, code)
      end
      assert.is_true(net.wait_until(function() return #server_closes(events) == 2 end))
      for _, e in ipairs(server_closes(events)) do
        assert.are.same({ 1001, true }, { e[3], e[5] })
      end
      local c, err = net.connect("ws://127.0.0.1:" .. port .. "/", { timeout = 2 })
      assert.is_nil(c)
      assert.matches("refused", err)
    end)
  end)
end)
