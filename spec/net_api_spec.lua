-- The networked Lua API around the connections: coroutines (ws.spawn,
-- receive with a timeout, ws.sleep), timers, ws.run / ws.step / ws.loop,
-- errors raised in callbacks, straight-line failures (refused, timeout),
-- URL forms and bad URLs, callbacks set as fields, argument checks, and
-- lifetime: open connections survive the garbage collector, closed ones are
-- collected, and connect/close cycles leak no fds.
-- Lua 5.1 compatible.

local ws = require "ws"
local testing = require "ws.testing"
local net = require "spec.helpers.net_util"

local function full_gc()
  collectgarbage()
  collectgarbage()
end

-- ws.run() guarded by a timer that raises when `done()` is still false
-- after `limit` seconds (a hang becomes a failure).  Cancel the returned
-- guard when the work is done, so that ws.run() can return at once.
local function guard(limit, what)
  local t = ws.timer(limit, function()
    error("guard: " .. (what or "ws.run()") .. " still running after " .. limit .. " s", 0)
  end)
  return t
end

describe("networked API", function()
  after_each(function()
    net.cleanup()
  end)

  describe("coroutines", function()
    it("ws.spawn runs the function at once until its first wait, with its arguments", function()
      local order = {}
      ws.spawn(function(a, b)
        order[#order + 1] = "start " .. a .. " " .. b
        ws.sleep(0.02)
        order[#order + 1] = "resumed"
      end, "x", 2)
      order[#order + 1] = "after spawn"
      assert.are.same({ "start x 2", "after spawn" }, order)
      assert.is_true(net.wait_until(function() return #order == 3 end, 2))
      assert.are.same({ "start x 2", "after spawn", "resumed" }, order)
    end)

    it("connect and receive yield inside a coroutine; receive times out with nil, 'timeout'", function()
      local srv = net.echo_server()
      local result = {}
      ws.spawn(function()
        local c, err = net.connect(net.url(srv))
        result.state = c and c.ready_state or err
        local t0 = net.now()
        result.timeout = { c:receive(0.2) }
        result.waited = net.now() - t0
        c:send("in a coroutine")
        result.echo = { c:receive(5) }
        c:close()
        result.closed = { c:receive(5) }
        result.done = true
      end)
      assert.is_nil(result.done) -- it is waiting for the connection
      assert.is_true(net.wait_until(function() return result.done end, 10))
      assert.are.equal("OPEN", result.state)
      assert.are.same({ nil, "timeout" }, result.timeout)
      assert.is_true(result.waited >= 0.18, "receive(0.2) returned after " .. result.waited .. " s")
      assert.is_true(result.waited < 2, "receive(0.2) returned after " .. result.waited .. " s")
      assert.are.same({ "in a coroutine", "text" }, result.echo)
      assert.are.equal(nil, result.closed[1])
      assert.are.equal("closed", result.closed[2])
      assert.are.equal(1000, result.closed[3])
    end)

    it("two coroutines sleeping interleave by deadline", function()
      local order = {}
      ws.spawn(function()
        ws.sleep(0.12)
        order[#order + 1] = "slow"
      end)
      ws.spawn(function()
        ws.sleep(0.03)
        order[#order + 1] = "fast"
        ws.sleep(0.03)
        order[#order + 1] = "fast again"
      end)
      assert.are.same({}, order)
      assert.is_true(net.wait_until(function() return #order == 3 end, 3))
      assert.are.same({ "fast", "fast again", "slow" }, order)
    end)

    it("several coroutines talk to the server concurrently", function()
      local srv = net.echo_server()
      local results, n = {}, 5
      for i = 1, n do
        ws.spawn(function()
          local c = assert(net.connect(net.url(srv, "/c" .. i)))
          local got = {}
          for j = 1, 20 do
            c:send(i .. ":" .. j)
            got[#got + 1] = c:receive(5)
          end
          c:close()
          results[i] = table.concat(got, ",")
        end)
      end
      assert.is_true(net.wait_until(function()
        for i = 1, n do if not results[i] then return false end end
        return true
      end, 10))
      for i = 1, n do
        local want = {}
        for j = 1, 20 do want[#want + 1] = i .. ":" .. j end
        assert.are.equal(table.concat(want, ","), results[i])
      end
    end)

    it("a failed connect inside a coroutine returns nil, err", function()
      local srv = net.listen {}
      local port = srv.port
      srv:close()
      local r
      ws.spawn(function() r = { ws.connect("ws://127.0.0.1:" .. port .. "/", { timeout = 3 }) } end)
      assert.is_true(net.wait_until(function() return r ~= nil end, 5))
      assert.is_nil(r[1])
      assert.matches("refused", r[2])
    end)
  end)

  describe("ws.sleep outside a coroutine", function()
    it("runs the loop for that long", function()
      -- Loop time comes from a clock that moves 10 ms at every read, so
      -- the window below holds however slow the machine is (valgrind).
      local loop = ws.loop()
      local clock = testing.fake_clock(loop, 0.01)
      local ok, err = pcall(function()
        local fired_at
        local t0 = loop:now()
        ws.timer(0.05, function() fired_at = loop:now() - t0 end)
        ws.sleep(0.15)
        local elapsed = loop:now() - t0
        assert.is_number(fired_at)
        assert.is_true(fired_at >= 0.05 - 1e-6 and fired_at < 0.15, "timer fired at " .. tostring(fired_at))
        assert.is_true(elapsed >= 0.15 - 1e-6, "slept " .. elapsed .. " s")
        assert.is_true(elapsed < 0.3, "slept " .. elapsed .. " s")
      end)
      clock:restore()
      assert(ok, err)
    end)
  end)

  describe("timers", function()
    it("ws.timer fires once, in deadline order, and ws.run returns when nothing is left", function()
      local order = {}
      local t0 = net.now()
      for _, d in ipairs({ 0.06, 0.02, 0.04 }) do
        ws.timer(d, function() order[#order + 1] = d end)
      end
      ws.run()
      local elapsed = net.now() - t0
      assert.are.same({ 0.02, 0.04, 0.06 }, order)
      assert.is_true(elapsed >= 0.055, "ran " .. elapsed .. " s")
      assert.is_true(elapsed < 1.5, "ran " .. elapsed .. " s")
    end)

    it("ws.every repeats until cancelled; a cancelled timer never fires", function()
      local ticks, never = 0, false
      local every
      every = net.track_timer(ws.every(0.02, function()
        ticks = ticks + 1
        if ticks == 3 then every:cancel() end
      end))
      local t = net.track_timer(ws.timer(0.03, function() never = true end))
      t:cancel()
      local g = guard(5, "ws.every")
      ws.timer(0.2, function() g:cancel() end)
      ws.run()
      assert.are.equal(3, ticks)
      assert.is_false(never)
    end)

    it("ws.timer and ws.every reject bad arguments", function()
      assert.has_error(function() ws.timer(0.1) end)
      assert.has_error(function() ws.timer("soon", function() end) end)
      assert.has_error(function() ws.every(-1, function() end) end)
    end)
  end)

  describe("errors raised in callbacks", function()
    it("propagate out of ws.run with a traceback, and the next ws.run works", function()
      ws.timer(0.01, function() error("boom from a timer") end)
      local ok, err = pcall(ws.run)
      assert.is_false(ok)
      assert.matches("boom from a timer", tostring(err))
      assert.matches("traceback", tostring(err))
      local fired = false
      ws.timer(0.01, function() fired = true end)
      ws.run()
      assert.is_true(fired)
    end)

    it("from on_message propagate out of ws.run; the connection keeps working", function()
      local got
      local srv = net.listen {
        on_message = function(sc, data)
          if data == "boom" then error("handler failed on " .. data) end
          sc:send(data)
        end,
      }
      local g = guard(5, "ws.run with a failing handler")
      local c = net.connect(net.url(srv), {
        on_open = function(conn) conn:send("boom") end,
        on_message = function(conn, data)
          got = data
          conn:close()
        end,
        on_close = function()
          srv:close()
          g:cancel()
        end,
      })
      local ok, err = pcall(ws.run)
      assert.is_false(ok)
      assert.matches("handler failed on boom", tostring(err))
      assert.are.equal("OPEN", c.ready_state)
      assert.is_true(c:send("again"))
      ok, err = pcall(ws.run)
      assert.is_true(ok, tostring(err))
      assert.are.equal("again", got)
      assert.are.equal("CLOSED", c.ready_state)
    end)
  end)

  describe("ws.run with connections", function()
    it("returns once the last connection and the listener are closed", function()
      local log = {}
      local srv
      srv = net.listen {
        on_message = function(sc, data) sc:send("re: " .. data) end,
        on_close = function(_, code) log[#log + 1] = "server close " .. code; srv:close() end,
      }
      local g = guard(5)
      net.connect(net.url(srv), {
        on_open = function(c) c:send("hi") end,
        on_message = function(c, data) log[#log + 1] = data; c:close(1000, "bye") end,
        on_close = function(_, code) log[#log + 1] = "client close " .. code; g:cancel() end,
      })
      ws.run()
      table.sort(log)
      assert.are.same({ "client close 1000", "re: hi", "server close 1000" }, log)
    end)
  end)

  describe("ws.loop", function()
    it("has a pollable fd that becomes readable when a timer is due, and step(0)", function()
      local loop = ws.loop()
      if loop:backend() == "poll" then
        pending("the poll backend has no pollable fd")
        return
      end
      local fd = loop:fd()
      assert.is_number(fd)
      assert.is_true(fd >= 0)
      local fired = false
      net.track_timer(ws.timer(0.05, function() fired = true end))
      local t0 = net.now()
      assert.is_true(testing.poll_fd(fd, 2), "the loop fd never became readable")
      assert.is_true(net.now() - t0 >= 0.03)
      assert.is_false(fired) -- nothing runs until the loop is stepped
      local deadline = net.now() + 1
      while not fired and net.now() < deadline do loop:step(0) end
      assert.is_true(fired)
    end)

    it("ws.step(timeout) runs due callbacks", function()
      local fired = false
      net.track_timer(ws.timer(0.01, function() fired = true end))
      local deadline = net.now() + 2
      while not fired and net.now() < deadline do ws.step(0.05) end
      assert.is_true(fired)
    end)
  end)

  describe("straight-line failures", function()
    it("connect to a closed port returns nil and a 'connection refused' error", function()
      local srv = net.listen {}
      local port = srv.port
      srv:close()
      net.run_for(0.02)
      local c, err = ws.connect("ws://127.0.0.1:" .. port .. "/", { timeout = 3 })
      assert.is_nil(c)
      assert.is_string(err)
      assert.matches("refused", err)
    end)

    it("connect to a server that never answers times out after `timeout`", function()
      local child, port = net.spawn_echo_server()
      child:stop()
      local t0 = net.now()
      local c, err = ws.connect("ws://127.0.0.1:" .. port .. "/", { timeout = 0.3 })
      local elapsed = net.now() - t0
      child:kill()
      assert.is_nil(c)
      assert.is_string(err)
      assert.is_truthy(err:lower():find("time"), "error: " .. err)
      assert.is_true(elapsed >= 0.25, "gave up after " .. elapsed .. " s")
      assert.is_true(elapsed < 3, "gave up after " .. elapsed .. " s")
    end)

    it("connect to a host name that does not resolve returns nil, err", function()
      local c, err = ws.connect("ws://no-such-host.invalid:80/", { timeout = 5 })
      assert.is_nil(c)
      assert.is_string(err)
    end)

    it("a failed callback-style connect reports on_error then on_close 1006", function()
      local srv = net.listen {}
      local port = srv.port
      srv:close()
      local log = {}
      local c = net.connect("ws://127.0.0.1:" .. port .. "/", {
        on_open = function() log[#log + 1] = "open" end,
        on_error = function(_, err) log[#log + 1] = "error " .. tostring(err) end,
        on_close = function(_, code, _, was_clean) log[#log + 1] = "close " .. code .. " " .. tostring(was_clean) end,
      })
      assert.are.equal("CONNECTING", c.ready_state)
      assert.is_true(net.wait_until(function() return #log >= 2 end, 5))
      net.run_for(0.05)
      assert.are.equal(2, #log)
      assert.matches("^error .*refused", log[1])
      assert.are.equal("close 1006 false", log[2])
      assert.are.equal("CLOSED", c.ready_state)
    end)
  end)

  describe("URLs", function()
    it("raise an argument error naming the problem", function()
      local cases = {
        ["http://127.0.0.1/"] = "unsupported scheme 'http'",
        ["ftp://127.0.0.1/"] = "unsupported scheme 'ftp'",
        ["ws://"] = "missing host",
        ["ws:///path"] = "missing host",
        ["ws://127.0.0.1:99999/"] = "invalid port '99999'",
        ["ws://127.0.0.1:0x50/"] = "invalid port '0x50'",
        ["ws://[::1/"] = "missing ']' after IPv6 address",
        ["example.com/chat"] = "missing scheme",
        [""] = "empty URL",
        ["ws://host name/"] = "URL contains a space",
        ["ws://127.0.0.1/#frag"] = "fragment not allowed",
      }
      for url, want in pairs(cases) do
        for _, opts in ipairs({ {}, { on_open = function() end } }) do
          local ok, err = pcall(ws.connect, url, opts)
          assert.is_false(ok, "no error for " .. url)
          err = tostring(err)
          assert.is_truthy(err:find(want, 1, true), "error for " .. url .. ": " .. err)
          assert.is_truthy(err:find("bad argument", 1, true), "not an argument error: " .. err)
        end
      end
      assert.has_error(function() ws.connect(42) end)
      assert.has_error(function() ws.connect() end)
      assert.has_error(function() ws.connect("ws://127.0.0.1/", "not a table") end)
    end)

    it("ws://host:port without a path requests /; paths and queries reach the server", function()
      local reqs = {}
      local srv = net.listen { on_upgrade = function(req) reqs[#reqs + 1] = req end }
      assert(net.connect("ws://127.0.0.1:" .. srv.port))
      assert(net.connect("ws://127.0.0.1:" .. srv.port .. "/a/b?x=1&y=%2F"))
      assert(net.connect("ws://127.0.0.1:" .. srv.port .. "?only=query"))
      assert.are.equal(3, #reqs)
      assert.are.equal("/", reqs[1].path)
      assert.are.equal("/a/b", reqs[2].path)
      assert.are.equal("x=1&y=%2F", reqs[2].query)
      assert.are.equal("/", reqs[3].path)
      assert.are.equal("only=query", reqs[3].query)
    end)

    it("resolves localhost", function()
      local srv = net.echo_server()
      local c, err = net.connect("ws://localhost:" .. srv.port .. "/")
      assert(c, err)
      assert.are.equal("127.0.0.1", c.remote_address)
    end)

    it("connects to an IPv6 literal", function()
      local ok, srv = pcall(net.listen, { host = "::1", on_message = function(sc, d) sc:send(d) end })
      if not ok then pending("no IPv6 loopback: " .. tostring(srv)) return end
      local c, err = net.connect("ws://[::1]:" .. srv.port .. "/v6")
      assert(c, err)
      assert.are.equal("::1", c.remote_address)
      assert.are.equal(srv.port, c.remote_port)
      assert.is_true(c:send("six"))
      assert.are.equal("six", (c:receive(5)))
    end)

    it("turns user:pass@ into Basic authorization", function()
      local auth
      local srv = net.listen { on_upgrade = function(req) auth = req.headers["authorization"] end }
      assert(net.connect("ws://Aladdin:open%20sesame@127.0.0.1:" .. srv.port .. "/"))
      assert.is_string(auth)
      -- RFC 7617's example, with the percent-encoding of the URL decoded
      assert.are.equal("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", auth)
    end)
  end)

  describe("connection objects", function()
    it("take callbacks set as fields", function()
      local srv = net.listen { on_open = function(sc) sc:send("welcome") end }
      local log = {}
      local c = net.connect(net.url(srv), { on_open = function() log[#log + 1] = "open" end })
      c.on_message = function(_, data, is_binary) log[#log + 1] = data .. " " .. tostring(is_binary) end
      c.on_close = function(_, code) log[#log + 1] = "close " .. code end
      assert.is_true(net.wait_until(function() return #log == 2 end))
      c:close(1000)
      assert.is_true(net.wait_until(function() return #log == 3 end))
      assert.are.same({ "open", "welcome false", "close 1000" }, log)
    end)

    it("server connections: on_message and friends set on the connection override the server's", function()
      local log = {}
      local srv = net.listen {
        on_open = function(sc)
          assert.is_nil(sc.on_message) -- the connection has none of its own yet
          sc.on_message = function(_, d) log[#log + 1] = "own " .. d; if d == "revert" then sc.on_message = nil end end
          assert.is_function(sc.on_message)
        end,
        on_message = function(_, d) log[#log + 1] = "server " .. d end,
      }
      local c = assert(net.connect(net.url(srv)))
      c:send("a")
      c:send("revert")
      assert.is_true(net.wait_until(function() return #log == 2 end))
      c:send("b")
      assert.is_true(net.wait_until(function() return #log == 3 end))
      srv.on_message = function(_, d) log[#log + 1] = "replaced " .. d end
      assert.is_function(srv.on_message)
      c:send("c")
      assert.is_true(net.wait_until(function() return #log == 4 end))
      assert.are.same({ "own a", "own revert", "server b", "replaced c" }, log)
      assert.has_error(function() srv.on_message = 42 end, "server field 'on_message' must be a function")
    end)

    it("server connections keep their path; the request only when read in on_open or with keep_request", function()
      local conns = {}
      local srv = net.listen {
        on_open = function(sc)
          conns[#conns + 1] = sc
          if sc.path == "/read" then assert.are.equal("GET", sc.request.method) end
        end,
      }
      assert(net.connect(net.url(srv, "/read?q=1")))
      local other = assert(net.connect(net.url(srv, "/other")))
      assert.is_true(net.wait_until(function() return #conns == 2 end))
      assert.are.equal("/read", conns[1].path)
      assert.are.equal("/other", conns[2].path)
      assert.are.equal("q=1", conns[1].request.query)
      assert.is_nil(conns[2].request) -- built for on_open, not read there: dropped

      local plain = {}
      local srv2 = net.listen { on_message = function(sc, d) plain[#plain + 1] = sc; sc:send(d) end }
      local c2 = assert(net.connect(net.url(srv2, "/x/y?z")))
      c2:send("hi")
      assert.are.equal("hi", (c2:receive(2)))
      assert.are.equal("/x/y", plain[1].path)
      assert.is_nil(plain[1].request) -- nobody could read it: not kept
      assert.is_nil(plain[1].close_code)

      local kept = {}
      local srv3 = net.listen { keep_request = true, on_message = function(sc, d) kept[#kept + 1] = sc; sc:send(d) end }
      local c3 = assert(net.connect(net.url(srv3, "/k"), { headers = { ["X-A"] = "1" } }))
      c3:send("hi")
      assert.are.equal("hi", (c3:receive(2)))
      assert.are.equal("1", kept[1].request.headers["x-a"])
      assert.has_error(function() kept[1].path = "/no" end, "connection field 'path' is read-only")
      other:close()
    end)

    it("keep no table per connection for a request on_open leaves unread", function()
      -- The Lua heap per open connection (client and server side, after a
      -- full collection) with an on_open that does not read c.request is
      -- that of a server without on_open: the request waits outside the
      -- connection's fields and goes with on_open.
      local N = 100
      local function heap_per_conn(opts)
        local clients = {}
        opts.on_message = function(sc, d) sc:send(d) end
        local srv = net.listen(opts)
        -- collect until nothing more goes: finalizers of earlier specs'
        -- objects may free more in each cycle
        local before
        repeat
          local last = collectgarbage("count")
          full_gc()
          before = collectgarbage("count")
        until before >= last

        -- each connect returns once the server's OPEN answer arrived
        for i = 1, N do clients[i] = assert(net.connect(net.url(srv, "/p"))) end
        assert.is_true(net.wait_until(function() return #srv:clients() == N end))
        clients[N]:send("x")
        assert.are.equal("x", (clients[N]:receive(2)))
        full_gc()
        local per = (collectgarbage("count") - before) * 1024 / N
        for i = 1, N do clients[i]:close() end
        -- both ends fully closed, so that nothing of this round is
        -- collected while the next one measures
        assert.is_true(net.wait_until(function()
          for i = 1, N do if clients[i].ready_state ~= "CLOSED" then return false end end
          return #srv:clients() == 0
        end))
        srv:close()
        net.run_for(0.05)
        return per
      end
      -- shared tables (registry, string table) grow in steps now and then:
      -- the least of five rounds is each case's own cost
      local seen
      local base, unread, read = math.huge, math.huge, math.huge
      for _ = 1, 5 do
        base = math.min(base, heap_per_conn {})
        unread = math.min(unread, heap_per_conn { on_open = function() end })
        read = math.min(read, heap_per_conn { on_open = function(sc) seen = sc.request.path end })
      end
      assert.are.equal("/p", seen)
      assert.is_true(unread - base < 40, ("%.0f B per connection more than %.0f"):format(unread - base, base))
      -- reading it keeps it (a fields table and the request): the measure can tell
      assert.is_true(read - base > 64, ("%.0f vs %.0f"):format(read, base))
    end)

    it("drop an unread request when the connection closes inside on_open", function()
      local got = {}
      local srv = net.listen {
        on_open = function(sc) sc:close(4000, "bye") end,
        on_close = function(sc, code) got[#got + 1] = { code = code, request = sc.request } end,
      }
      local c = assert(net.connect(net.url(srv, "/q")))
      assert.is_true(net.wait_until(function() return #got == 1 end))
      assert.are.equal(4000, got[1].code)
      assert.is_nil(got[1].request)
      c:close()
    end)

    it("refuse assignment to every name they compute, and keep any other field", function()
      local srv = net.echo_server()
      local c = assert(net.connect(net.url(srv)))
      for _, name in ipairs { "ready_state", "protocol", "extensions", "url", "server", "server_name",
                              "request", "path", "close_code", "close_reason", "was_clean",
                              "remote_address", "remote_port" } do
        local before = c[name]
        local ok, err = pcall(function() c[name] = "x" end)
        assert.is_false(ok, name)
        assert.matches("connection field '" .. name .. "' is read-only", err, 1, true)
        assert.are.equal(before, c[name])
      end
      c.note = "kept"
      assert.are.equal("kept", c.note)
      assert.are.equal("OPEN", c.ready_state)
      assert.is_number(c.remote_port)
      assert.is_nil(c.close_code)
      c:close()
    end)

    it("report close_code, close_reason, was_clean and the peer's address after the close", function()
      local seen = {}
      local srv = net.listen {
        on_close = function(sc, code, reason)
          seen.addr, seen.port, seen.code, seen.reason = sc.remote_address, sc.remote_port, code, reason
          seen.c = sc
        end,
      }
      local c = assert(net.connect(net.url(srv)))
      assert.is_nil(c.close_code)
      local port = c.remote_port
      c:close(4001, "bye")
      assert.is_true(net.wait_until(function() return seen.c ~= nil and c.ready_state == "CLOSED" end))
      assert.are.same({ "127.0.0.1", 4001, "bye" }, { seen.addr, seen.code, seen.reason })
      assert.is_number(seen.port)
      assert.are.same({ 4001, "bye", true }, { seen.c.close_code, seen.c.close_reason, seen.c.was_clean })
      assert.are.same({ 4001, "bye", true }, { c.close_code, c.close_reason, c.was_clean })
      assert.are.equal(srv.port, port)
      local c2 = assert(net.connect(net.url(srv)))
      c2:close()
      assert.is_true(net.wait_until(function() return c2.ready_state == "CLOSED" end))
      assert.are.same({ 1000, "" }, { c2.close_code, c2.close_reason })
    end)

    it("check the message kind: text by default, binary, anything else an argument error", function()
      local srv = net.echo_server()
      local c = assert(net.connect(net.url(srv)))
      assert.is_true(c:send("a"))
      assert.are.same({ "a", "text" }, { c:receive(2) })
      assert.is_true(c:send("b", "binary"))
      assert.are.same({ "b", "binary" }, { c:receive(2) })
      assert.is_true(c:send("c", "text"))
      assert.are.same({ "c", "text" }, { c:receive(2) })
      for _, bad in ipairs { "bin", "binary2", "TEXT", 42, true } do
        local ok, err = pcall(c.send, c, "x", bad)
        assert.is_false(ok, tostring(bad))
        assert.matches("bad argument #3", tostring(err))
      end
      assert.has_error(function() srv:broadcast("x", "nope") end)
      -- methods check their object
      for _, other in ipairs { 42, io.stdout, srv, {} } do
        local ok, err = pcall(c.send, other, "x")
        assert.is_false(ok)
        assert.matches("ws.core.conn expected", tostring(err))
      end
      assert.is_false(pcall(getmetatable(c).__index, io.stdout, "send"))
    end)

    it("leave the loop asleep while open connections are idle (no busy loop)", function()
      local srv = net.echo_server()
      local c = assert(net.connect(net.url(srv)))
      assert.is_true(c:send("x"))
      assert.are.equal("x", (c:receive(2)))
      local cpu0 = os.clock()
      ws.sleep(1) -- both ends idle: the client and its server-side peer
      local used = os.clock() - cpu0
      assert.is_true(used < 0.25, ("%.2f s of CPU while idle for 1 s"):format(used))
      assert.are.equal("OPEN", c.ready_state)
    end)

    it("keep receive's queue in order while it empties and fills again", function()
      local srv = net.echo_server()
      local c = assert(net.connect(net.url(srv)))
      local n, got = 0, {}
      local function send(k)
        for _ = 1, k do
          n = n + 1
          assert.is_true(c:send("m" .. n, n % 2 == 0 and "binary" or "text"))
        end
      end
      local function take(k)
        for _ = 1, k do
          local d, kind = c:receive(2)
          got[#got + 1] = tostring(d) .. ":" .. tostring(kind)
        end
      end
      send(3); take(2); send(2); take(3); take(0); send(1); take(1)
      assert.are.same({ "m1:text", "m2:binary", "m3:text", "m4:binary", "m5:text", "m6:binary" }, got)
      assert.are.same({ nil, "timeout" }, { c:receive(0.05) })
    end)

    it("queue messages that arrive while nobody receives, in order", function()
      local srv = net.listen {
        on_open = function(sc)
          sc:send("one")
          sc:send("two", "binary")
          sc:send("three")
        end,
      }
      local c = assert(net.connect(net.url(srv)))
      ws.sleep(0.2)
      local a, ka = c:receive(1)
      local b, kb = c:receive(1)
      local d, kd = c:receive(1)
      assert.are.same({ "one", "text", "two", "binary", "three", "text" }, { a, ka, b, kb, d, kd })
      local none, why = c:receive(0.05)
      assert.is_nil(none)
      assert.are.equal("timeout", why)
    end)

    it("check their arguments", function()
      local srv = net.echo_server()
      local c = assert(net.connect(net.url(srv)))
      assert.has_error(function() c:close(1005) end)
      assert.has_error(function() c:close(999) end)
      assert.has_error(function() c:close(1000, string.rep("r", 124)) end)
      assert.has_error(function() c:ping(string.rep("p", 126)) end)
      assert.has_error(function() c:send({}) end)
      assert.has_error(function() c:send("x", "utf16") end)
      assert.are.equal("OPEN", c.ready_state)
      assert.is_true(c:ping(string.rep("p", 125)))
    end)

    it("close with __close when a to-be-closed variable goes out of scope (Lua 5.4)", function()
      if _VERSION ~= "Lua 5.4" then pending("Lua 5.4 only") return end
      local srv, events = net.echo_server()
      local chunk = assert(load([[
        local ws, url = ...
        local c <close> = assert(ws.connect(url))
        return c
      ]]))
      local c = chunk(ws, net.url(srv))
      assert.are_not.equal("OPEN", c.ready_state)
      assert.is_true(net.wait_until(function() return #net.select(events, "close") == 1 end))
    end)
  end)

  describe("lifetime", function()
    it("an open connection without references is not collected: its callbacks keep firing", function()
      local sconns = {}
      local srv = net.listen { on_open = function(sc) sconns[#sconns + 1] = sc end }
      local weak = setmetatable({}, { __mode = "v" })
      local got = {}
      local function open_unreferenced()
        weak[1] = ws.connect(net.url(srv), {
          on_message = function(_, data) got[#got + 1] = data end,
          on_close = function(_, code) got[#got + 1] = "close " .. code end,
        })
      end
      open_unreferenced()
      assert.is_true(net.wait_until(function() return #sconns == 1 end))
      full_gc()
      net.run_for(0.05)
      full_gc()
      assert.is_not_nil(weak[1], "the open connection was collected")
      sconns[1]:send("after gc")
      assert.is_true(net.wait_until(function() return #got == 1 end))
      assert.are.same({ "after gc" }, got)
      sconns[1]:close(4000, "done")
      assert.is_true(net.wait_until(function() return #got == 2 end))
      assert.are.same({ "after gc", "close 4000" }, got)
    end)

    it("a closed connection without references is collected", function()
      local srv = net.echo_server()
      local weak = setmetatable({}, { __mode = "v" })
      local closed = 0
      local function open_and_close()
        local c = ws.connect(net.url(srv), {
          on_open = function(conn) conn:close() end,
          on_close = function() closed = closed + 1 end,
        })
        weak[1] = c
        local c2 = assert(ws.connect(net.url(srv)))
        weak[2] = c2
        c2:close()
        c2:receive(5)
      end
      open_and_close()
      assert.is_true(net.wait_until(function() return closed == 1 end))
      net.run_for(0.05)
      full_gc()
      net.run_for(0.02)
      full_gc()
      assert.is_nil(weak[1], "the closed callback-style connection was not collected")
      assert.is_nil(weak[2], "the closed straight-line connection was not collected")
    end)

    it("200 connect/close cycles leak no fds", function()
      local srv = net.echo_server()
      local url = net.url(srv)
      local function cycle()
        local c = assert(ws.connect(url))
        c:send("x")
        assert(c:receive(5) == "x")
        c:close()
        local data, why = c:receive(5)
        assert(data == nil and why == "closed", "not closed: " .. tostring(why))
      end
      cycle()
      assert.is_true(net.wait_until(function() return #srv:clients() == 0 end))
      full_gc()
      local before = net.settled_fd_count()
      for _ = 1, 200 do cycle() end
      full_gc()
      local after
      net.wait_until(function()
        after = net.fd_count()
        return after <= before and #srv:clients() == 0
      end, 3)
      assert.are.equal(before, after)
    end)

    it("failed connects leak no fds", function()
      local srv = net.listen {}
      local port = srv.port
      srv:close()
      net.run_for(0.02)
      full_gc()
      local before = net.settled_fd_count()
      for _ = 1, 50 do
        local c = ws.connect("ws://127.0.0.1:" .. port .. "/", { timeout = 2 })
        assert(c == nil)
      end
      local rejecting = net.listen { on_upgrade = function() return false, 403 end }
      local before2 = net.settled_fd_count()
      for _ = 1, 50 do assert(ws.connect(net.url(rejecting)) == nil) end
      full_gc()
      local after, after2
      net.wait_until(function()
        after2 = net.fd_count()
        return after2 <= before2
      end, 3)
      rejecting:close()
      net.wait_until(function()
        after = net.fd_count()
        return after <= before
      end, 3)
      assert.are.equal(before2, after2)
      assert.are.equal(before, after)
    end)
  end)
end)
