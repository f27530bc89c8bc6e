-- ws.reconnecting: the reconnecting client (lua/ws/reconnect.lua) against
-- real servers on 127.0.0.1: in-process servers that the test closes and
-- restarts on the same port, that reject the first attempts (503) or for
-- good (403), that drop connections mid-stream (close 1001, 1011, ...), and
-- a child process that is killed (1006) or stopped (keepalive timeout).
-- Backoff delays are checked exactly with an injected random function.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"
local ws = net.ws

local rcs = {}

-- ws.reconnecting with tracking (closed in after_each).
local function reconnecting(url, opts)
  local rc = ws.reconnecting(url, opts)
  rcs[#rcs + 1] = rc
  return rc
end

-- A port on 127.0.0.1 that nothing listens on (refused) until a test
-- listens there again.
local function free_port()
  local port = net.free_port()
  net.run_for(0.02)
  return port
end

local function url_of(port, path) return "ws://127.0.0.1:" .. port .. (path or "/") end

-- A server on `port` (0: any) recording upgrades, opens and messages.
-- opts are merged into the ws.listen options; `log` gets
-- log.upgrades, log.opens, log.messages (strings, in order).
local function new_log() return { upgrades = 0, opens = 0, messages = {}, closes = {} } end
local function server(port, extra, log)
  log = log or new_log()
  local opts = {
    host = "127.0.0.1", port = port or 0,
    on_open = function() log.opens = log.opens + 1 end,
    on_message = function(c, data)
      log.messages[#log.messages + 1] = data
      c:send("echo:" .. data)
    end,
    on_close = function(_, code, _, was_clean) log.closes[#log.closes + 1] = { code, was_clean } end,
  }
  for k, v in pairs(extra or {}) do opts[k] = v end
  local up = opts.on_upgrade
  opts.on_upgrade = function(req)
    log.upgrades = log.upgrades + 1
    if up then return up(req, log.upgrades) end
  end
  return net.listen(opts), log
end

local function fixed(r) return function() return r end end

local function counter()
  local t = { n = 0 }
  t.fn = function() t.n = t.n + 1 end
  return t
end

describe("ws.reconnecting", function()
  after_each(function()
    for _, rc in ipairs(rcs) do pcall(rc.close, rc) end
    rcs = {}
    net.cleanup()
  end)

  describe("options", function()
    local function err_of(url, opts)
      local ok, err = pcall(ws.reconnecting, url, opts)
      assert.is_false(ok)
      return err
    end
    it("raise errors that name the option", function()
      local u = "ws://127.0.0.1:1/"
      assert.matches("bad argument #1", err_of(42))
      assert.matches("unsupported scheme", err_of("http://x/"))
      assert.matches("bad argument #2", err_of(u, "x"))
      assert.matches("'backoff' must be a table", err_of(u, { backoff = 1 }))
      assert.matches("'backoff.initial'", err_of(u, { backoff = { initial = 0 } }))
      assert.matches("'backoff.initial'", err_of(u, { backoff = { initial = "1" } }))
      assert.matches("'backoff.max'", err_of(u, { backoff = { max = -1 } }))
      assert.matches("'backoff.max' must be a number > 0", err_of(u, { backoff = { max = 0 } }))
      assert.matches("'backoff.factor'", err_of(u, { backoff = { factor = 0.5 } }))
      assert.matches("'backoff.max_retries'", err_of(u, { backoff = { max_retries = 1.5 } }))
      assert.matches("'backoff.reset_after'", err_of(u, { backoff = { reset_after = -1 } }))
      assert.matches("'backoff.random'", err_of(u, { backoff = { random = 0.5 } }))
      assert.matches("unknown option 'backoff.maximum'", err_of(u, { backoff = { maximum = 1 } }))
      assert.matches("'queue'", err_of(u, { queue = 5 }))
      assert.matches("'queue.max_messages'", err_of(u, { queue = { max_messages = 0 } }))
      assert.matches("'queue.max_bytes'", err_of(u, { queue = { max_bytes = "big" } }))
      assert.matches("'queue.flush'", err_of(u, { queue = { flush = "later" } }))
      assert.matches("'on_reconnect' must be a function", err_of(u, { on_reconnect = true }))
      assert.matches("'should_reconnect' must be a function", err_of(u, { should_reconnect = 1 }))
      assert.matches("^ws.reconnecting:", err_of(u, { backoff = { factor = 0 } }))
    end)

    it("a bad argument error points at the caller", function()
      local ok, err = pcall(function() ws.reconnecting("ws://127.0.0.1:1/", { backoff = { max = "x" } }) end)
      assert.is_false(ok)
      assert.matches("reconnect_spec.lua:%d+:", err)
    end)

    it("passes the connection options through (protocols, headers) and has the fields", function()
      local seen
      local srv = server(0, {
        protocols = { "chat.v2" },
        on_upgrade = function(req) seen = req end,
      })
      local opened = counter()
      local rc = reconnecting(url_of(srv.port, "/room"), {
        protocols = { "chat.v2" }, headers = { ["X-Token"] = "t1" }, on_open = opened.fn,
      })
      assert.are.equal(url_of(srv.port, "/room"), rc.url)
      assert.are.equal("CONNECTING", rc.ready_state)
      assert.are.equal(0, rc.attempt)
      assert.is_true(net.wait_until(function() return opened.n == 1 end))
      assert.are.equal("OPEN", rc.ready_state)
      assert.are.equal("chat.v2", rc.protocol)
      assert.are.equal("t1", seen.headers["x-token"])
      assert.are.equal("/room", seen.path)
      assert.is_not_nil(rc.connection)
      assert.are.equal("OPEN", rc.connection.ready_state)
      assert.has_error(function() rc.ready_state = "OPEN" end)
      rc.user = "bob"
      assert.are.equal("bob", rc.user)
      assert.matches("^ws.reconnecting", tostring(rc))
    end)
  end)

  describe("backoff", function()
    it("retries 503 rejections with exact delays (random = 1) until the server accepts", function()
      local srv, log = server(0, {
        on_upgrade = function(_, n) if n <= 3 then return false, 503, "busy" end end,
      })
      local ev = {}
      local rc = reconnecting(url_of(srv.port), {
        backoff = { initial = 0.05, factor = 2, max = 10, random = fixed(1) },
        on_open = function(rc) ev[#ev + 1] = "open " .. rc.attempt end,
        on_error = function(_, err) ev[#ev + 1] = "error " .. err end,
        on_close = function(rc, code) ev[#ev + 1] = "close " .. code .. " " .. rc.ready_state end,
        on_reconnect = function(_, attempt, delay) ev[#ev + 1] = string.format("retry %d %.3f", attempt, delay) end,
      })
      local t0 = net.now()
      assert.is_true(net.wait_until(function() return #ev == 10 end, 5))
      local elapsed = net.now() - t0
      local err = "error handshake failed: expected status 101, got 503"
      assert.are.same({
        err, "close 1006 CONNECTING", "retry 1 0.050",
        err, "close 1006 CONNECTING", "retry 2 0.100",
        err, "close 1006 CONNECTING", "retry 3 0.200",
        "open 3",
      }, ev)
      assert.is_true(elapsed >= 0.35 - 0.01, "came back too early: " .. elapsed)
      assert.are.equal(4, log.upgrades)
      assert.are.equal("OPEN", rc.ready_state)
    end)

    it("caps the delay at max, scales it by random, and gives up after max_retries with the last error", function()
      local port = free_port()
      local delays, attempts, gave_up = {}, {}, {}
      local rc = reconnecting(url_of(port), {
        backoff = { initial = 0.02, factor = 3, max = 0.1, max_retries = 5, random = fixed(0.5) },
        on_reconnect = function(_, attempt, delay)
          attempts[#attempts + 1] = attempt
          delays[#delays + 1] = string.format("%.3f", delay)
        end,
        on_give_up = function(rc, err) gave_up[#gave_up + 1] = { err, rc.ready_state } end,
      })
      assert.is_true(net.wait_until(function() return #gave_up == 1 end, 5))
      assert.are.same({ 1, 2, 3, 4, 5 }, attempts)
      -- 0.5 * min(0.1, 0.02 * 3^(n-1))
      assert.are.same({ "0.010", "0.030", "0.050", "0.050", "0.050" }, delays)
      assert.matches("refused", gave_up[1][1])
      assert.matches("5 retries", gave_up[1][1])
      assert.are.equal("CLOSED", gave_up[1][2])
      assert.are.equal("CLOSED", rc.ready_state)
      local data, why = rc:receive(1)
      assert.is_nil(data)
      assert.are.equal("closed", why)
      assert.are.same({ nil, "closed" }, { rc:send("late") })
      net.run_for(0.2)
      assert.are.equal(1, #gave_up)
      assert.are.equal(5, #attempts)
    end)

    it("max_retries = 0 gives up at the first failure", function()
      local port = free_port()
      local gave_up, retried = {}, counter()
      reconnecting(url_of(port), {
        backoff = { max_retries = 0 }, on_reconnect = retried.fn,
        on_give_up = function(_, err) gave_up[#gave_up + 1] = err end,
      })
      assert.is_true(net.wait_until(function() return #gave_up == 1 end, 5))
      assert.are.equal(0, retried.n)
    end)

    it("uses full jitter: delays lie in [0, cap] with the default random", function()
      local port = free_port()
      local delays = {}
      local rc = reconnecting(url_of(port), {
        backoff = { initial = 0.01, factor = 2, max = 0.04, max_retries = 8 },
        on_reconnect = function(_, attempt, delay) delays[attempt] = delay end,
        on_give_up = function() end,
      })
      assert.is_true(net.wait_until(function() return rc.ready_state == "CLOSED" end, 5))
      assert.are.equal(8, #delays)
      for n, d in ipairs(delays) do
        assert.is_true(d >= 0 and d <= math.min(0.04, 0.01 * 2 ^ (n - 1)) + 1e-9, "delay " .. n .. ": " .. d)
      end
    end)

    it("resets the attempt counter once a connection stayed open reset_after seconds", function()
      local srv, log
      local hold = {} -- connection number -> seconds to keep it open
      hold[4] = 0.7
      srv, log = server(0, {
        on_open = function(c)
          log.opens = log.opens + 1
          local n = log.opens
          if hold[n] then
            ws.timer(hold[n], function() if c.ready_state == "OPEN" then c:close(1011, "later") end end)
          else
            c:close(1011, "not now")
          end
        end,
      })
      local attempts, delays = {}, {}
      local rc = reconnecting(url_of(srv.port), {
        backoff = { initial = 0.04, factor = 2, max = 1, reset_after = 0.4, random = fixed(1) },
        on_reconnect = function(_, attempt, delay)
          attempts[#attempts + 1] = attempt
          delays[#delays + 1] = string.format("%.2f", delay)
        end,
      })
      assert.is_true(net.wait_until(function() return #attempts >= 5 end, 6))
      rc:close()
      -- connections 1-3 drop at once (1, 2, 3); 4 stays open 0.7 s >= 0.4:
      -- back to attempt 1; 5 drops at once: 2.
      assert.are.same({ 1, 2, 3, 1, 2 }, { attempts[1], attempts[2], attempts[3], attempts[4], attempts[5] })
      assert.are.same({ "0.04", "0.08", "0.16", "0.04", "0.08" },
        { delays[1], delays[2], delays[3], delays[4], delays[5] })
    end)
  end)

  describe("when to reconnect", function()
    it("a 403 rejection is not retried: on_give_up, a single attempt", function()
      local srv, log = server(0, { on_upgrade = function() return false, 403, "no" end })
      local gave_up, retried = {}, counter()
      local rc = reconnecting(url_of(srv.port), {
        backoff = { initial = 0.02 }, on_reconnect = retried.fn,
        on_give_up = function(_, err) gave_up[#gave_up + 1] = err end,
      })
      assert.is_true(net.wait_until(function() return #gave_up == 1 end))
      net.run_for(0.3)
      assert.are.equal(1, log.upgrades)
      assert.are.equal(0, retried.n)
      assert.matches("403", gave_up[1])
      assert.are.equal("CLOSED", rc.ready_state)
    end)

    it("retries 4xx with retry_on_4xx = true (and 429 always)", function()
      local srv, log = server(0, {
        on_upgrade = function(_, n)
          if n == 1 then return false, 429, "slow down" end
          return false, 401, "who"
        end,
      })
      local gave_up = {}
      reconnecting(url_of(srv.port), {
        backoff = { initial = 0.02, max_retries = 1 },
        on_give_up = function(_, err) gave_up[#gave_up + 1] = err end,
      })
      assert.is_true(net.wait_until(function() return #gave_up == 1 end))
      assert.are.equal(2, log.upgrades) -- 429 retried, 401 not
      assert.matches("401", gave_up[1])
      local srv2, log2 = server(0, { on_upgrade = function() return false, 401, "who" end })
      reconnecting(url_of(srv2.port), {
        retry_on_4xx = true, backoff = { initial = 0.02, max_retries = 2 },
        on_give_up = function(_, err) gave_up[#gave_up + 1] = err end,
      })
      assert.is_true(net.wait_until(function() return #gave_up == 2 end))
      assert.are.equal(3, log2.upgrades)
      assert.matches("2 retries", gave_up[2])
    end)

    -- The server closes every connection right after open with `code`.
    local function opens_after_server_close(code, extra)
      local log = new_log()
      local srv = server(0, {
        on_open = function(c)
          log.opens = log.opens + 1
          if log.opens <= 2 then c:close(code, "server says") end
        end,
      }, log)
      local closes, gave_up = {}, {}
      local opts = {
        backoff = { initial = 0.02, random = fixed(1) },
        on_close = function(_, c, reason, clean) closes[#closes + 1] = { c, reason, clean } end,
        on_give_up = function(_, err) gave_up[#gave_up + 1] = err end,
      }
      for k, v in pairs(extra or {}) do opts[k] = v end
      reconnecting(url_of(srv.port), opts)
      net.wait_until(function() return log.opens >= 3 or #gave_up > 0 end, 3)
      net.run_for(0.2)
      return log.opens, closes, gave_up
    end

    for _, code in ipairs({ 1001, 1011, 1012, 1013, 4000 }) do
      it("reconnects after the server closes with " .. code, function()
        local opens, closes = opens_after_server_close(code)
        assert.are.equal(3, opens)
        assert.are.same({ code, "server says", true }, closes[1])
      end)
    end

    for _, code in ipairs({ 1002, 1003, 1008, 1009, 1010 }) do
      it("gives up after the server closes with " .. code, function()
        local opens, closes, gave_up = opens_after_server_close(code)
        assert.are.equal(1, opens)
        assert.are.equal(1, #closes)
        assert.are.equal(1, #gave_up)
        assert.matches(tostring(code), gave_up[1])
      end)
    end

    it("a normal close (1000) from the server ends it, unless reconnect_on_normal_close", function()
      local opens, _, gave_up = opens_after_server_close(1000)
      assert.are.equal(1, opens)
      assert.are.equal(1, #gave_up)
      opens = opens_after_server_close(1000, { reconnect_on_normal_close = true })
      assert.are.equal(3, opens)
    end)

    it("should_reconnect overrides the rules", function()
      local infos = {}
      local opens, _, gave_up = opens_after_server_close(1008, {
        should_reconnect = function(_, info)
          infos[#infos + 1] = info
          return info.code == 1008
        end,
      })
      assert.are.equal(3, opens)
      assert.are.equal(0, #gave_up)
      assert.are.equal(1008, infos[1].code)
      assert.is_true(infos[1].opened)
      opens, _, gave_up = opens_after_server_close(1001, { should_reconnect = function() return false end })
      assert.are.equal(1, opens)
      assert.are.equal(1, #gave_up)
    end)

    it("comes back after the server process is killed and restarted on the same port", function()
      local script = [[
local ws = require "ws"
local srv = ws.listen { host = "127.0.0.1", port = tonumber(arg[1]),
  on_open = function(c) c:send("hello from " .. arg[2]) end,
  on_message = function(c, data) print("GOT " .. data) end }
print("PORT " .. srv.port)
ws.run()
]]
      local child = net.spawn_lua(script, 0, "first")
      local port = tonumber(child:wait_output("PORT (%d+)", 15))
      local got, closes, opens = {}, {}, counter()
      local rc = reconnecting(url_of(port), {
        backoff = { initial = 0.05, max = 0.2 },
        on_open = function(rc) opens.fn(); rc:send("subscribe") end,
        on_message = function(_, data) got[#got + 1] = data end,
        on_close = function(_, code) closes[#closes + 1] = code end,
      })
      assert.is_true(net.wait_until(function() return #got == 1 end, 5))
      child:kill()
      assert.is_true(net.wait_until(function() return #closes >= 1 end, 5))
      assert.are.equal(1006, closes[1])
      net.run_for(0.3) -- a few refused attempts
      assert.are.equal("CONNECTING", rc.ready_state)
      local child2 = net.spawn_lua(script, port, "second")
      child2:wait_output("PORT", 15)
      assert.is_true(net.wait_until(function() return #got == 2 end, 5))
      assert.are.same({ "hello from first", "hello from second" }, got)
      assert.are.equal(2, opens.n)
      child2:wait_output("GOT subscribe", 5) -- on_open resubscribed on the new connection
    end)

    it("reconnects after a keepalive timeout (the server process is stopped)", function()
      local child, port = net.spawn_echo_server()
      local errors, opens = {}, counter()
      local rc = reconnecting(url_of(port), {
        ping_interval = 0.1, ping_timeout = 0.2, timeout = 5,
        backoff = { initial = 0.05, random = fixed(1) },
        on_open = opens.fn,
        on_error = function(_, err) errors[#errors + 1] = err end,
      })
      assert.is_true(net.wait_until(function() return opens.n == 1 end, 5))
      child:stop()
      assert.is_true(net.wait_until(function() return #errors >= 1 end, 5))
      assert.matches("keepalive", errors[1])
      child:cont()
      assert.is_true(net.wait_until(function() return opens.n == 2 end, 5))
      assert.are.equal("OPEN", rc.ready_state)
      rc:close()
    end)
  end)

  describe("close()", function()
    it("stops all retries while waiting to retry", function()
      local srv, log = server(0, { on_upgrade = function() return false, 503 end })
      local rc = reconnecting(url_of(srv.port), { backoff = { initial = 0.03, max = 0.05 } })
      assert.is_true(net.wait_until(function() return log.upgrades >= 3 end, 5))
      rc:close()
      assert.is_true(net.wait_until(function() return rc.ready_state == "CLOSED" end))
      local n = log.upgrades
      net.run_for(0.5)
      assert.are.equal(n, log.upgrades)
      assert.are.same({ nil, "closed", 1000, "" }, { rc:receive(0) })
    end)

    it("closes the open connection cleanly and never reconnects", function()
      local srv, log = server(0)
      local closes, retried = {}, counter()
      local rc = reconnecting(url_of(srv.port), {
        backoff = { initial = 0.02 }, on_reconnect = retried.fn,
        on_close = function(rc, code, reason, clean) closes[#closes + 1] = { code, reason, clean, rc.ready_state } end,
      })
      assert.is_true(rc:wait_open(5))
      rc:close(1000, "done")
      assert.is_true(net.wait_until(function() return #closes == 1 end))
      assert.are.same({ 1000, "done", true, "CLOSED" }, closes[1])
      net.run_for(0.4)
      assert.are.equal(1, log.upgrades)
      assert.are.same({ { 1000, true } }, log.closes)
      assert.are.equal(0, retried.n)
      assert.are.same({ nil, "closed", 1000, "done" }, { rc:receive(0) })
      assert.is_true(rc:close()) -- again: nothing
    end)

    it("while a connect is in progress fails it and stops", function()
      local child, port = net.spawn_echo_server()
      child:stop() -- the TCP connect succeeds, the handshake hangs
      local closes, retried = {}, counter()
      local rc = reconnecting(url_of(port), {
        backoff = { initial = 0.02 }, on_reconnect = retried.fn,
        on_close = function(_, code) closes[#closes + 1] = code end,
      })
      net.run_for(0.1)
      assert.are.equal("CONNECTING", rc.ready_state)
      rc:close()
      assert.is_true(net.wait_until(function() return #closes == 1 end))
      assert.are.equal(1006, closes[1])
      net.run_for(0.2)
      assert.are.equal(0, retried.n)
      assert.are.equal("CLOSED", rc.ready_state)
      child:cont()
    end)
  end)

  describe("the outbound queue", function()
    it("delivers what was sent while the server was down in order, exactly once", function()
      local port = free_port()
      local opens = counter()
      local rc = reconnecting(url_of(port), {
        queue = { max_messages = 100 }, backoff = { initial = 0.05, max = 0.1 }, on_open = opens.fn,
      })
      for i = 1, 20 do assert.is_true(rc:send("m" .. i)) end
      assert.are.same({ 20, 51 }, { rc:queued() })
      net.run_for(0.3)
      local srv, log = server(port)
      assert.are.equal(port, srv.port)
      assert.is_true(net.wait_until(function() return #log.messages >= 20 end, 5))
      assert.is_true(rc:send("after"))
      assert.is_true(net.wait_until(function() return #log.messages >= 21 end, 5))
      net.run_for(0.2)
      local want = {}
      for i = 1, 20 do want[i] = "m" .. i end
      want[21] = "after"
      assert.are.same(want, log.messages)
      assert.are.equal(1, opens.n)
      assert.are.same({ 0, 0 }, { rc:queued() })
    end)

    it("keeps queueing across a restart of the server on the same port", function()
      local srv, log = server(0)
      local port = srv.port
      local rc = reconnecting(url_of(port), { queue = {}, backoff = { initial = 0.05, max = 0.1 } })
      assert.is_true(rc:wait_open(5))
      assert.is_true(rc:send("a"))
      assert.is_true(net.wait_until(function() return #log.messages == 1 end))
      srv:close()
      assert.is_true(net.wait_until(function() return rc.ready_state == "CONNECTING" end))
      for i = 1, 5 do assert.is_true(rc:send("b" .. i)) end
      net.run_for(0.2)
      local _, log2 = server(port)
      assert.is_true(net.wait_until(function() return #log2.messages >= 5 end, 5))
      net.run_for(0.2)
      assert.are.same({ "a" }, log.messages)
      assert.are.same({ "b1", "b2", "b3", "b4", "b5" }, log2.messages)
    end)

    it("sends the queue before on_open by default, after it with flush = \"after_open\"", function()
      for _, mode in ipairs({ "before_open", "after_open" }) do
        local port = free_port()
        local rc = reconnecting(url_of(port), {
          queue = { flush = mode }, backoff = { initial = 0.03, max = 0.05 },
          on_open = function(rc) assert(rc:send("hello")) end,
        })
        assert.is_true(rc:send("q1"))
        assert.is_true(rc:send("q2"))
        net.run_for(0.1)
        local _, log = server(port)
        assert.is_true(net.wait_until(function() return #log.messages >= 3 end, 5))
        if mode == "before_open" then
          assert.are.same({ "q1", "q2", "hello" }, log.messages)
        else
          assert.are.same({ "hello", "q1", "q2" }, log.messages)
        end
        rc:close()
        net.cleanup()
      end
    end)

    it("overflow returns an error and keeps what was queued", function()
      local port = free_port()
      local rc = reconnecting(url_of(port), { queue = { max_messages = 3, max_bytes = 10 } })
      assert.is_true(rc:send("a"))
      assert.is_true(rc:send("b"))
      assert.is_true(rc:send("c"))
      assert.are.same({ nil, "reconnect queue full" }, { rc:send("d") })
      local rc2 = reconnecting(url_of(port), { queue = { max_bytes = 10 } })
      assert.is_true(rc2:send("12345678"))
      assert.are.same({ nil, "reconnect queue full" }, { rc2:send("123") })
      assert.is_true(rc2:send("12"))
      assert.are.same({ 2, 10 }, { rc2:queued() })
      rc:close()
      local left = rc:unsent()
      assert.are.same({ { "a", "text" }, { "b", "text" }, { "c", "text" } }, left)
      assert.are.same({ 0, 0 }, { rc:queued() })
    end)

    it("without a queue, send while disconnected returns nil, \"not connected\"", function()
      local port = free_port()
      local rc = reconnecting(url_of(port), { backoff = { initial = 0.05 } })
      assert.are.same({ nil, "not connected" }, { rc:send("x") })
      assert.are.same({ nil, "not connected" }, { rc:ping("p") })
      assert.has_error(function() rc:send({}) end)
      assert.has_error(function() rc:send("x", "utf16") end)
      assert.has_error(function() rc:send("\255", "text") end)
    end)

    it("queues binary messages as binary", function()
      local port = free_port()
      local rc = reconnecting(url_of(port), { queue = {}, backoff = { initial = 0.03, max = 0.05 } })
      assert.is_true(rc:send("\0\1\255", "binary"))
      local kinds = {}
      server(port, { on_message = function(_, data, is_binary) kinds[#kinds + 1] = { data, is_binary } end })
      assert.is_true(net.wait_until(function() return #kinds == 1 end, 5))
      assert.are.same({ "\0\1\255", true }, kinds[1])
      rc:close()
    end)
  end)

  describe("receive()", function()
    it("returns messages across reconnects in order inside ws.spawn", function()
      local log = new_log()
      local srv = server(0, {
        on_open = function(c)
          log.opens = log.opens + 1
          if log.opens == 1 then
            c:send("one")
            c:send("two")
            c:close(1012, "restart")
          else
            c:send("three")
          end
        end,
      }, log)
      local rc = reconnecting(url_of(srv.port), { backoff = { initial = 0.03 } })
      local got, done = {}, false
      ws.spawn(function()
        for _ = 1, 3 do
          local data, kind = rc:receive(5)
          got[#got + 1] = tostring(data) .. "/" .. tostring(kind)
        end
        rc:close()
        got[#got + 1] = table.concat({ tostring(select(2, rc:receive(5))) }, ",")
        done = true
      end)
      assert.is_true(net.wait_until(function() return done end, 8))
      assert.are.same({ "one/text", "two/text", "three/text", "closed" }, got)
      assert.are.equal(2, log.opens)
    end)

    it("works straight-line: waits for the message, times out, ends with closed", function()
      local srv = server(0, {
        on_open = function(c) c:send("hi") end,
      })
      local rc = reconnecting(url_of(srv.port))
      assert.are.same({ "hi", "text" }, { rc:receive(5) })
      assert.are.same({ nil, "timeout" }, { rc:receive(0.05) })
      assert.is_true(rc:send("ping?"))
      assert.are.same({ "echo:ping?", "text" }, { rc:receive(5) })
      rc:close(1000, "bye")
      assert.are.same({ nil, "closed", 1000, "bye" }, { rc:receive(5) })
    end)

    it("returns closed after a give-up", function()
      local srv = server(0, { on_open = function(c) c:close(1008, "policy") end })
      local rc = reconnecting(url_of(srv.port), { on_give_up = function() end })
      assert.are.same({ nil, "closed", 1008, "policy" }, { rc:receive(5) })
    end)
  end)
end)
