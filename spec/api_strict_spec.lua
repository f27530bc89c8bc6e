-- A strict, predictable API: every options table rejects unknown keys with
-- the closest valid one, argument errors point at the caller's line,
-- ws.connect's blocking and callback forms are explicit, and c:receive()
-- composes with callbacks.
-- Lua 5.1 compatible.

local ws = require "ws"
local core = require "ws.core"
local net = require "spec.helpers.net_util"

-- The error fn() raises, with the line it was called from.
local function raised(fn)
  local line = debug.getinfo(2, "l").currentline
  local ok, err = pcall(fn)
  assert.is_false(ok, "no error raised")
  return tostring(err), line
end

local THIS = debug.getinfo(1, "S").short_src

describe("strict options", function()
  after_each(function() net.cleanup() end)

  local cases = {
    { "connect", function() ws.connect("ws://127.0.0.1:1/", { on_mesage = print }) end,
      "unknown option 'on_mesage' (did you mean 'on_message'?)" },
    { "connect", function() ws.connect("ws://127.0.0.1:1/", { ping_intervall = 5 }) end,
      "unknown option 'ping_intervall' (did you mean 'ping_interval'?)" },
    { "connect", function() ws.connect("wss://127.0.0.1:1/", { tls = { verfy = false } }) end,
      "unknown option 'tls.verfy' (did you mean 'tls.verify'?)" },
    { "connect", function() ws.connect("ws://127.0.0.1:1/", { compress = { treshold = 1 } }) end,
      "unknown option 'compress.treshold' (did you mean 'compress.threshold'?)" },
    { "open", function() ws.open("ws://127.0.0.1:1/", { on_mesage = print }) end,
      "unknown option 'on_mesage' (did you mean 'on_message'?)" },
    { "listen", function() ws.listen { hots = "127.0.0.1" } end,
      "unknown option 'hots' (did you mean 'host'?)" },
    { "listen", function() ws.listen { port = 0, tls = { cetr = "x", key = "y" } } end,
      "unknown option 'tls.cetr' (did you mean 'tls.cert'?)" },
    { "listen", function() ws.listen { port = 0, compress = { window_bit = 10 } } end,
      "unknown option 'compress.window_bit' (did you mean 'compress.window_bits'?)" },
    { "session", function() ws.session { role = "client", handshake = false, strem = true } end,
      "unknown option 'strem' (did you mean 'stream'?)" },
    { "reconnecting", function() ws.reconnecting("ws://127.0.0.1:1/", { on_give_upp = print }) end,
      "unknown option 'on_give_upp' (did you mean 'on_give_up'?)" },
    { "reconnecting", function()
        ws.reconnecting("ws://127.0.0.1:1/", { backoff = { intial = 1 } })
      end, "unknown option 'backoff.intial' (did you mean 'backoff.initial'?)" },
    { "reconnecting", function()
        ws.reconnecting("ws://127.0.0.1:1/", { queue = { max_message = 1 } })
      end, "unknown option 'queue.max_message' (did you mean 'queue.max_messages'?)" },
  }
  for _, case in ipairs(cases) do
    it(case[1] .. ": " .. case[3], function()
      local err = raised(case[2])
      assert.truthy(err:find(case[3], 1, true), err)
    end)
  end

  it("a name far from every option lists the valid ones", function()
    local err = raised(function() ws.session { role = "server", zzzzzzzz = 1 } end)
    assert.truthy(err:find("unknown option 'zzzzzzzz' (valid: role, ", 1, true), err)
  end)

  it("ws.core functions check their tables too", function()
    local err = raised(function() core.client_handshake("ws://h/", { orign = "x" }) end)
    assert.truthy(err:find("did you mean 'origin'", 1, true), err)
    err = raised(function() core.accept("GET / HTTP/1.1\r\n\r\n", { protocol = { "a" } }) end)
    assert.truthy(err:find("did you mean 'protocols'", 1, true), err)
    local s = ws.session { role = "server" }
    s:feed("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      .. "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert.are.equal("request", (s:next_event()))
    err = raised(function() s:accept { protocl = "x" } end)
    assert.truthy(err:find("did you mean 'protocol'", 1, true), err)
  end)

  it("send's per-message options too", function()
    local s = ws.session { role = "server", handshake = false }
    local err = raised(function() s:send("x", "text", { compres = false }) end)
    assert.truthy(err:find("unknown option 'compres' (did you mean 'compress'?)", 1, true), err)
    assert.is_true(s:send("x", "text", { compress = false }))
  end)

  it("the valid keys are listed in one place that ws.core exposes", function()
    local keys = {}
    for _, k in ipairs(core.option_keys("connect")) do keys[k] = true end
    assert.is_true(keys.on_message and keys.ping_interval and keys.tls and keys.wait)
    assert.is_nil(core.check_options("tls", { verify = false, cafile = "x" }))
    assert.are.equal("unknown option 'tls.kye' (did you mean 'tls.key'?)",
      core.check_options("tls", { kye = 1 }, "tls."))
  end)

  it("every documented option still passes", function()
    local srv = net.listen { host = "127.0.0.1", port = 0, reuseport = false, backlog = 16,
      keep_request = false, protocols = { "p" }, compress = { threshold = 10, level = 1,
      mem_level = 8, window_bits = 15, no_context_takeover = false,
      server_no_context_takeover = false, client_no_context_takeover = false,
      server_max_window_bits = 15, client_max_window_bits = 15 },
      handshake_timeout = 5, close_timeout = 1, ping_interval = 10, ping_timeout = 10,
      idle_timeout = 100, max_message = 1000, max_frame = 1000, max_head = 4096,
      max_headers = 20, max_buffered = 100000, buffer_policy = "error",
      on_upgrade = function() end, on_request = function() end, on_open = function() end,
      on_close = function() end, on_error = function() end, on_drain = function() end,
      on_ping = function() end, on_pong = function() end }
    local c = net.track_conn(assert(ws.connect(net.url(srv), { protocols = "p",
      headers = { ["X-A"] = "1" }, origin = "http://x", timeout = 5, close_timeout = 1,
      ping_interval = 10, ping_timeout = 10, idle_timeout = 100, max_message = 1000,
      max_frame = 1000, max_buffered = 100000, compress = true, tls = { verify = true },
      on_close = function() end, on_error = function() end, wait = true })))
    assert.are.equal("OPEN", c.ready_state)
  end)
end)

describe("argument errors name the caller's line", function()
  -- (not tail calls: a tail call leaves no caller line to report)
  local cases = {
    { "connect", function() local _ = ws.connect("ws://127.0.0.1:1/", { max_message = "big" }) end },
    { "connect", function() local _ = ws.connect("not a url") end },
    { "open", function() local _ = ws.open("ws://127.0.0.1:1/", { timeout = -1 }) end },
    { "listen", function() local _ = ws.listen { port = 70000 } end },
    { "session", function() local _ = ws.session { role = "neither" } end },
    { "reconnecting", function() local _ = ws.reconnecting("ws://127.0.0.1:1/", { timeout = "x" }) end },
  }
  for _, case in ipairs(cases) do
    it(case[1], function()
      local info = debug.getinfo(case[2], "S")
      local ok, err = pcall(case[2])
      assert.is_false(ok)
      err = tostring(err)
      assert.are.equal(THIS .. ":" .. info.linedefined .. ":", err:sub(1, #THIS + 2 + #tostring(info.linedefined)),
        err)
      assert.is_nil(err:find("init.lua", 1, true), err)
      if case[1] ~= "reconnecting" then
        assert.truthy(err:find("bad argument #%d to '" .. case[1] .. "'"), err)
      end
    end)
  end
end)

describe("ws.connect: blocking and callback forms", function()
  after_each(function() net.cleanup() end)

  it("waits with only on_error / on_close given (they do not switch the form)", function()
    local srv = net.echo_server()
    local errors = {}
    local c = net.track_conn(ws.connect(net.url(srv), { on_error = function(_, e) errors[#errors + 1] = e end }))
    assert.are.equal("OPEN", c.ready_state)
    c:send("hi")
    assert.are.same({ "hi", "text" }, { c:receive(5) })
  end)

  it("wait = false returns at once; ws.open always does", function()
    local srv = net.echo_server()
    local c = net.track_conn(ws.connect(net.url(srv), { wait = false }))
    assert.are.equal("CONNECTING", c.ready_state)
    local o = net.track_conn(ws.open(net.url(srv)))
    assert.are.equal("CONNECTING", o.ready_state)
    net.wait_until(function() return c.ready_state == "OPEN" and o.ready_state == "OPEN" end, 5)
    assert.are.equal("OPEN", o.ready_state)
  end)

  it("wait = true waits even with on_open and on_message; on_open fires before it returns", function()
    local srv = net.echo_server()
    local opened = false
    local c = net.track_conn(ws.connect(net.url(srv), { wait = true,
      on_open = function() opened = true end, on_message = function() end }))
    assert.is_true(opened)
    assert.are.equal("OPEN", c.ready_state)
  end)

  it("without wait, on_open or on_message keep the callback form (as before)", function()
    local srv = net.echo_server()
    local c = net.track_conn(ws.connect(net.url(srv), { on_message = function() end }))
    assert.are.equal("CONNECTING", c.ready_state)
  end)

  it("a wrong wait raises", function()
    local err = raised(function() ws.connect("ws://127.0.0.1:1/", { wait = "yes" }) end)
    assert.truthy(err:find("'wait' must be a boolean", 1, true), err)
  end)
end)

describe("c:receive() with callbacks", function()
  after_each(function() net.cleanup() end)

  it("keeps the user's on_close / on_error / on_open and still learns of the close", function()
    local srv = net.echo_server()
    local seen = {}
    local c = net.track_conn(assert(ws.connect(net.url(srv), {
      on_close = function(_, code) seen[#seen + 1] = "close " .. code end,
      on_error = function(_, e) seen[#seen + 1] = "error " .. e end,
    })))
    c:send("one")
    assert.are.equal("one", (c:receive(5)))
    assert.is_function(c.on_close)
    c:close(1000, "bye")
    local data, what, code = c:receive(5)
    assert.is_nil(data)
    assert.are.equal("closed", what)
    assert.are.equal(1000, code)
    assert.are.same({ "close 1000" }, seen)
  end)

  it("raises a clear error when an on_message callback takes the messages", function()
    local srv = net.echo_server()
    local c = net.track_conn(assert(ws.connect(net.url(srv), { wait = true, on_message = function() end })))
    local err = raised(function() c:receive(0.1) end)
    assert.truthy(err:find("on_message callback", 1, true), err)
    c.on_message = nil
    c:send("back")
    assert.are.equal("back", (c:receive(5)))
  end)

  it("inside a server: receive in a task on a server connection without on_message", function()
    local got
    local srv = net.listen { on_open = function(sc)
      ws.spawn(function()
        got = sc:receive(5)
        sc:send("got " .. tostring(got))
      end)
    end }
    local c = net.track_conn(assert(ws.connect(net.url(srv))))
    c:send("x")
    assert.are.equal("got x", (c:receive(5)))
  end)
end)
