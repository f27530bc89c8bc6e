-- ws.connect <-> ws.listen over real TCP on 127.0.0.1: messages of every
-- size class, fragmentation, pings, UTF-8, bursts, subprotocols, headers,
-- broadcast; in one process and across two processes.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"

local function check_same(expected, got, what)
  local ok, why = net.same(expected, got)
  assert(ok, (what or "payload") .. " differs: " .. tostring(why))
end

describe("ws client <-> server in one process", function()
  local srv, events

  before_each(function()
    srv, events = net.echo_server()
  end)

  after_each(function()
    net.cleanup()
  end)

  local function client(path, opts)
    local c, err = net.connect(net.url(srv, path or "/echo"), opts)
    assert(c, err)
    return c
  end

  -- Send and receive the echo.
  local function roundtrip(c, data, kind, timeout)
    assert.is_true(c:send(data, kind))
    return c:receive(timeout or 10)
  end

  it("connects in straight-line style and exposes the connection's state", function()
    local url = net.url(srv, "/echo")
    local c = assert(net.connect(url))
    assert.are.equal("OPEN", c.ready_state)
    assert.are.equal(url, c.url)
    assert.are.equal("127.0.0.1", c.remote_address)
    assert.are.equal(srv.port, c.remote_port)
    assert.are.equal(0, c:buffered_amount())
    assert.are.equal("websocket", c.headers["upgrade"]:lower())
    assert.is_string(c.headers["sec-websocket-accept"])
    assert.is_true(c.protocol == nil or c.protocol == "", "protocol " .. tostring(c.protocol))
    assert.is_true(net.wait_until(function() return #net.select(events, "open") == 1 end))
    local sc = net.select(events, "open")[1][2]
    assert.are.equal("OPEN", sc.ready_state)
    assert.are.equal("/echo", sc.path)
    assert.are.equal("127.0.0.1", sc.remote_address)
    assert.are.equal(1, #srv:clients())
    assert.are.equal(sc, srv:clients()[1])
  end)

  it("echoes a text message", function()
    local c = client()
    local data, kind = roundtrip(c, "hello", "text")
    assert.are.equal("hello", data)
    assert.are.equal("text", kind)
    local m = net.select(events, "message")
    assert.are.equal(1, #m)
    assert.are.equal("hello", m[1][3])
    assert.is_false(m[1][4])
  end)

  it("sends text by default", function()
    local c = client()
    assert.is_true(c:send("default kind"))
    local data, kind = c:receive(5)
    assert.are.equal("default kind", data)
    assert.are.equal("text", kind)
  end)

  it("echoes a binary message with every byte value", function()
    local c = client()
    local t = {}
    for i = 0, 255 do t[#t + 1] = string.char(i) end
    local bytes = table.concat(t)
    local data, kind = roundtrip(c, bytes, "binary")
    assert.are.equal(bytes, data)
    assert.are.equal("binary", kind)
    assert.is_true(net.select(events, "message")[1][4])
  end)

  it("echoes empty text and empty binary messages", function()
    local c = client()
    local d1, k1 = roundtrip(c, "", "text")
    local d2, k2 = roundtrip(c, "", "binary")
    assert.are.equal("", d1)
    assert.are.equal("text", k1)
    assert.are.equal("", d2)
    assert.are.equal("binary", k2)
  end)

  it("echoes 125, 126, 65535 and 65536-byte messages exactly (7/16/64-bit lengths)", function()
    local c = client()
    for _, n in ipairs({ 125, 126, 127, 65535, 65536 }) do
      for _, kind in ipairs({ "binary", "text" }) do
        local p = net.payload(n, kind)
        local data, k = roundtrip(c, p, kind)
        check_same(p, data, n .. "-byte " .. kind .. " message")
        assert.are.equal(kind, k)
      end
    end
    assert.are.equal(10, #net.select(events, "message"))
  end)

  it("echoes a 16 MiB message (the default max_message)", function()
    local c = client()
    local p = net.payload(16 * 1024 * 1024, "binary")
    local data, kind = roundtrip(c, p, "binary", 60)
    assert.are.equal("binary", kind)
    check_same(p, data, "16 MiB message")
    local m = net.select(events, "message")
    assert.are.equal(1, #m)
    assert.are.equal(#p, #m[1][3])
  end)

  it("keeps large frames, fragments and the small frames right behind them apart and in order", function()
    -- Large frame payloads are read straight into the session's buffer; a
    -- read may run past the frame's end into the next frames.
    local c = client()
    local big = net.payload(3 * 1024 * 1024 + 17, "binary")
    local text = net.payload(70000, "text")
    assert.is_true(c:send(big, "binary"))
    for i = 1, 5 do assert.is_true(c:send("small " .. i)) end
    assert.is_true(c:send_fragment(text:sub(1, 40000), false, "text"))
    assert.is_true(c:send_fragment(text:sub(40001), true))
    assert.is_true(c:send(big:sub(1, 20000), "binary"))
    local got = {}
    for _ = 1, 8 do
      local data, kind = c:receive(20)
      assert.is_string(data)
      got[#got + 1] = { data, kind }
    end
    check_same(big, got[1][1], "3 MiB message")
    assert.are.equal("binary", got[1][2])
    for i = 1, 5 do assert.are.same({ "small " .. i, "text" }, got[i + 1]) end
    check_same(text, got[7][1], "fragmented text")
    assert.are.equal("text", got[7][2])
    check_same(big:sub(1, 20000), got[8][1], "20000-byte message")
  end)

  it("delivers a message sent with send_fragment as one message", function()
    local c = client()
    assert.is_true(c:send_fragment("Hel", false, "text"))
    assert.is_true(c:send_fragment("lo, ", false))
    assert.is_true(c:send_fragment("w\195", false)) -- "ö" split across frames
    assert.is_true(c:send_fragment("\182rld", true))
    local data, kind = c:receive(5)
    assert.are.equal("Hello, w\195\182rld", data)
    assert.are.equal("text", kind)
    local m = net.select(events, "message")
    assert.are.equal(1, #m)
    assert.are.equal("Hello, w\195\182rld", m[1][3])
  end)

  it("delivers a fragmented binary message with a ping between the parts", function()
    local c = client()
    local pongs = {}
    c.on_pong = function(_, payload) pongs[#pongs + 1] = payload end
    assert.is_true(c:send_fragment("\0\1", false, "binary"))
    assert.is_true(c:ping("mid"))
    assert.is_true(c:send_fragment("\2\3", true, "binary"))
    local data, kind = c:receive(5)
    assert.are.equal("\0\1\2\3", data)
    assert.are.equal("binary", kind)
    assert.is_true(net.wait_until(function() return #pongs == 1 end))
    assert.are.same({ "mid" }, pongs)
    assert.are.equal(1, #net.select(events, "message"))
  end)

  it("answers a client ping with a pong carrying the same payload", function()
    local c = client()
    local pongs = {}
    c.on_pong = function(conn, payload) pongs[#pongs + 1] = { conn, payload } end
    assert.is_true(c:ping("are you there?"))
    assert.is_true(net.wait_until(function() return #pongs == 1 end))
    assert.are.equal(c, pongs[1][1])
    assert.are.equal("are you there?", pongs[1][2])
    assert.is_true(c:ping())
    assert.is_true(net.wait_until(function() return #pongs == 2 end))
    assert.are.equal("", pongs[2][2])
  end)

  it("answers a server ping; the client sees on_ping with the payload", function()
    local pings = {}
    local c = client(nil, nil)
    c.on_ping = function(_, payload) pings[#pings + 1] = payload end
    assert.is_true(net.wait_until(function() return #net.select(events, "open") == 1 end))
    local sc = net.select(events, "open")[1][2]
    local pongs = {}
    sc.on_pong = function(_, payload) pongs[#pongs + 1] = payload end
    assert.is_true(sc:ping("from server"))
    assert.is_true(net.wait_until(function() return #pings == 1 and #pongs == 1 end))
    assert.are.same({ "from server" }, pings)
    assert.are.same({ "from server" }, pongs)
  end)

  it("keeps multi-byte UTF-8 text intact", function()
    local c = client()
    local s = "h\195\169llo w\195\182rld \226\156\147 \240\159\152\128 \230\151\165\230\156\172\232\170\158"
    local data, kind = roundtrip(c, s, "text")
    assert.are.equal(s, data)
    assert.are.equal("text", kind)
  end)

  it("delivers 1000 messages sent in a burst, in order", function()
    local c = client()
    for i = 1, 1000 do assert.is_true(c:send("message " .. i)) end
    for i = 1, 1000 do
      local data, kind = c:receive(10)
      assert.are.equal("message " .. i, data)
      assert.are.equal("text", kind)
    end
    local m = net.select(events, "message")
    assert.are.equal(1000, #m)
    for i = 1, 1000 do assert.are.equal("message " .. i, m[i][3]) end
  end)

  it("raises on text that is not UTF-8 and sends nothing", function()
    local c = client()
    assert.has_error(function() c:send("\255\254", "text") end)
    assert.has_error(function() c:send_fragment("\237\160\128", true, "text") end) -- a surrogate
    assert.is_true(c:send("\255\254", "binary"))
    local data, kind = c:receive(5)
    assert.are.equal("\255\254", data)
    assert.are.equal("binary", kind)
    assert.are.equal(1, #net.select(events, "message"))
  end)

  it("enforces the server's max_message: a message one byte over it closes with 1009", function()
    srv:close()
    srv, events = net.echo_server { max_message = 1024 }
    local c = client()
    local at_limit = net.payload(1024, "binary")
    assert.is_true(c:send(at_limit, "binary"))
    assert.are.equal(at_limit, (c:receive(5)))
    assert.is_true(c:send(net.payload(1025, "binary"), "binary"))
    local data, why, code = c:receive(5)
    assert.is_nil(data)
    assert.are.equal("closed", why)
    assert.are.equal(1009, code)
    assert.is_true(net.wait_until(function() return #net.select(events, "close") == 1 end))
    local cl = net.select(events, "close")[1]
    assert.are.equal(1009, cl[3])
    assert.is_false(cl[5])
    assert.are.equal(1, #net.select(events, "message"))
  end)

  it("enforces the client's max_message the same way", function()
    local c = client("/", { max_message = 100 })
    assert.is_true(c:send(net.payload(101, "text"), "text"))
    local data, why, code = c:receive(5)
    assert.is_nil(data)
    assert.are.equal("closed", why)
    assert.are.equal(1009, code)
    assert.is_true(net.wait_until(function() return #net.select(events, "close") == 1 end))
    assert.are.equal(1009, net.select(events, "close")[1][3])
  end)

  it("returns nil, 'connection is not open' when sending on a closed connection", function()
    local c = client()
    c:close()
    local ok, err = c:send("late")
    assert.is_nil(ok)
    assert.matches("not open", err)
    assert.is_true(net.wait_until(function() return c.ready_state == "CLOSED" end))
    ok, err = c:send("later")
    assert.is_nil(ok)
    assert.are.equal("connection is not open", err)
  end)

  it("negotiates the subprotocol: the first of the client's offers the server supports", function()
    srv:close()
    srv, events = net.echo_server { protocols = { "chat.v2", "chat.v1" } }
    local c = client("/", { protocols = { "chat.v1", "chat.v2" } })
    assert.are.equal("chat.v1", c.protocol)
    assert.is_true(net.wait_until(function() return #net.select(events, "open") == 1 end))
    assert.are.equal("chat.v1", net.select(events, "open")[1][2].protocol)
    local c2 = client("/", { protocols = { "other" } })
    assert.is_true(c2.protocol == nil or c2.protocol == "", "protocol " .. tostring(c2.protocol))
  end)

  it("sends custom headers, Origin, path, query and Basic auth from user info", function()
    local seen
    srv:close()
    srv, events = net.echo_server { keep_request = true, on_upgrade = function(req) seen = req end }
    local url = "ws://user:pass@127.0.0.1:" .. srv.port .. "/chat/room?x=1&y=two"
    local c = assert(net.connect(url, { headers = { ["X-Token"] = "abc 123" }, origin = "http://example.test" }))
    assert.are.equal("OPEN", c.ready_state)
    assert.is_table(seen)
    assert.are.equal("GET", seen.method)
    assert.are.equal("/chat/room", seen.path)
    assert.are.equal("x=1&y=two", seen.query)
    assert.are.equal("abc 123", seen.headers["x-token"])
    assert.are.equal("http://example.test", seen.origin)
    assert.are.equal("Basic dXNlcjpwYXNz", seen.headers["authorization"])
    assert.are.equal("127.0.0.1:" .. srv.port, seen.headers["host"])
    assert.are.equal("127.0.0.1", seen.peer_address)
    assert.is_number(seen.peer_port)
    assert.is_true(net.wait_until(function() return #net.select(events, "open") == 1 end))
    local sc = net.select(events, "open")[1][2]
    assert.are.equal("/chat/room", sc.path)
    assert.are.equal(seen, sc.request)
  end)

  it("runs callback-style connections: CONNECTING, on_open, on_message, on_close in order", function()
    local log = {}
    local c = net.connect(net.url(srv, "/cb"), {
      on_open = function(conn)
        log[#log + 1] = "open " .. conn.ready_state
        conn:send("ping-1")
      end,
      on_message = function(conn, data, is_binary)
        log[#log + 1] = "message " .. data .. " " .. tostring(is_binary)
        conn:close(1000, "done")
      end,
      on_close = function(conn, code, reason, was_clean)
        log[#log + 1] = "close " .. code .. " " .. reason .. " " .. tostring(was_clean) .. " " .. conn.ready_state
      end,
      on_error = function(_, err) log[#log + 1] = "error " .. tostring(err) end,
    })
    assert.are.equal("CONNECTING", c.ready_state)
    assert.are.same({}, log)
    assert.is_true(net.wait_until(function() return #log >= 3 end))
    net.run_for(0.05)
    assert.are.same({ "open OPEN", "message ping-1 false", "close 1000 done true CLOSED" }, log)
    assert.is_true(net.wait_until(function() return #net.select(events, "close") == 1 end))
    local cl = net.select(events, "close")[1]
    assert.are.same({ 1000, "done", true }, { cl[3], cl[4], cl[5] })
  end)

  it("goes CONNECTING -> OPEN -> CLOSING -> CLOSED", function()
    local states = {}
    local c = net.connect(net.url(srv), {
      on_open = function(conn) states[#states + 1] = conn.ready_state end,
      on_close = function(conn) states[#states + 1] = conn.ready_state end,
    })
    states[#states + 1] = c.ready_state
    assert.is_true(net.wait_until(function() return c.ready_state == "OPEN" end))
    -- In a task close() yields until the handshake is done (outside one
    -- it would wait right here).
    net.ws.spawn(function() c:close(1000) end)
    states[#states + 1] = c.ready_state
    assert.is_true(net.wait_until(function() return c.ready_state == "CLOSED" end))
    assert.are.same({ "CONNECTING", "OPEN", "CLOSING", "CLOSED" }, states)
  end)

  it("broadcasts to every open client and returns the count", function()
    local a, b, c = client("/a"), client("/b"), client("/c")
    assert.is_true(net.wait_until(function() return #srv:clients() == 3 end))
    assert.are.equal(3, srv:broadcast("to all"))
    assert.are.equal(3, srv:broadcast("\1\2\3", "binary"))
    for _, conn in ipairs({ a, b, c }) do
      local d1, k1 = conn:receive(5)
      local d2, k2 = conn:receive(5)
      assert.are.same({ "to all", "text", "\1\2\3", "binary" }, { d1, k1, d2, k2 })
    end
    b:close()
    assert.is_true(net.wait_until(function() return #srv:clients() == 2 end))
    assert.are.equal(2, srv:broadcast("two left"))
    assert.are.equal("two left", (a:receive(5)))
    assert.are.equal("two left", (c:receive(5)))
  end)
end)

describe("ws client <-> server across processes", function()
  after_each(function()
    net.cleanup()
  end)

  it("talks to an echo server in a child process and closes cleanly", function()
    local child, port = net.spawn_echo_server()
    local c = assert(net.connect("ws://127.0.0.1:" .. port .. "/remote"))
    assert.are.equal("OPEN", c.ready_state)
    assert.is_true(c:send("hello child"))
    local t, tk = c:receive(5)
    assert.are.equal("hello child", t)
    assert.are.equal("text", tk)
    assert.is_true(c:send("\0\255\0", "binary"))
    local d, k = c:receive(5)
    assert.are.equal("\0\255\0", d)
    assert.are.equal("binary", k)
    local big = net.payload(65536, "binary")
    assert.is_true(c:send(big, "binary"))
    check_same(big, (c:receive(10)), "64 KiB message")
    local huge = net.payload(4 * 1024 * 1024 + 3, "binary")
    assert.is_true(c:send(huge, "binary"))
    check_same(huge, (c:receive(20)), "4 MiB message")
    for i = 1, 200 do assert.is_true(c:send("n" .. i)) end
    for i = 1, 200 do assert.are.equal("n" .. i, (c:receive(5))) end
    c:close(4321, "parent done")
    local data, why, code = c:receive(5)
    assert.is_nil(data)
    assert.are.equal("closed", why)
    assert.are.equal(4321, code)
    assert.are.equal("CLOSED", c.ready_state)
    child:wait_output("CLOSE %d+ %a+ [^\n]*\n", 5)
    assert.matches("OPEN /remote\n", child:output())
    assert.matches("CLOSE 4321 true parent done\n", child:output())
  end)

  it("receives a close started by the server in the child process", function()
    local child, port = net.spawn_echo_server()
    local c = assert(net.connect("ws://127.0.0.1:" .. port .. "/"))
    assert.is_true(c:send("close:4444:child says bye"))
    local data, why, code, reason = c:receive(5)
    assert.is_nil(data)
    assert.are.equal("closed", why)
    assert.are.equal(4444, code)
    assert.are.equal("child says bye", reason)
    child:wait_output("CLOSE 4444", 5)
    assert.matches("CLOSE 4444 true", child:output())
  end)
end)
