-- The opening handshake driven through the session (RFC 6455 4): the
-- client request, the server's request event, accept and reject, error
-- answers the server gives by itself, the client's checks of the
-- response, bytes following the head, and heads split at every byte.
local core = require "ws.core"
local util = require "spec.helpers.session_util"

local OP = util.OP

-- RFC 6455 1.3 example key and its accept value.
local KEY = "dGhlIHNhbXBsZSBub25jZQ=="
local ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

local function client(opts)
  local t = {
    role = "client", url = "ws://example.com/chat?x=1", origin = "http://example.com",
    protocols = { "chat", "superchat" }, headers = { ["X-Custom"] = "yes" }, key = KEY,
    mask_key = util.KEY,
  }
  for k, v in pairs(opts or {}) do t[k] = v end
  return util.set_role(core.session(t), "client")
end

local function server(opts)
  local t = { role = "server", protocols = { "chat", "superchat" } }
  for k, v in pairs(opts or {}) do t[k] = v end
  if t.protocols == false then t.protocols = nil end
  return util.set_role(core.session(t), "server")
end

local function request(lines)
  return table.concat(lines, "\r\n") .. "\r\n\r\n"
end

local GOOD_REQUEST = request {
  "GET /chat?x=1 HTTP/1.1",
  "Host: server.example.com",
  "Upgrade: websocket",
  "Connection: Upgrade",
  "Sec-WebSocket-Key: " .. KEY,
  "Origin: http://example.com",
  "Sec-WebSocket-Protocol: chat, superchat",
  "Sec-WebSocket-Version: 13",
  "X-Custom: yes",
}

local function response(lines)
  return table.concat(lines, "\r\n") .. "\r\n\r\n"
end

local GOOD_RESPONSE = response {
  "HTTP/1.1 101 Switching Protocols",
  "Upgrade: websocket",
  "Connection: Upgrade",
  "Sec-WebSocket-Accept: " .. ACCEPT,
  "Sec-WebSocket-Protocol: chat",
}

local function split_list(v)
  local t = {}
  for item in (v or ""):gmatch("[^,%s]+") do t[#t + 1] = item end
  return t
end

-- Assert that the request with one line changed is answered with status.
local function answered(req, status)
  local s = server()
  s:feed(req)
  local evs = util.events(s)
  assert.are.same({ "error", "close" }, util.kinds(evs))
  assert.is_string(evs[1][2])
  assert.are.equal(status, evs[1][3])
  assert.are.same({ "close", 1006, "", false }, evs[2])
  assert.are.equal("CLOSED", s:state())
  local out = s:output()
  local first, headers = util.parse_http(out)
  assert.is_truthy(first, "a complete response head")
  assert.are.equal("HTTP/1.1 " .. status, first:sub(1, 12))
  assert.are.equal("", s:output())
  return out, headers
end

describe("handshake, client session", function()
  it("starts CONNECTING and sends a complete request", function()
    local s = client()
    assert.are.equal("CONNECTING", s:state())
    local out = s:output()
    local first, h, rest = util.parse_http(out)
    assert.are.equal("GET /chat?x=1 HTTP/1.1", first)
    assert.are.equal("", rest)
    assert.are.equal("example.com", h.host)
    assert.are.equal("websocket", h.upgrade:lower())
    assert.is_truthy(h.connection:lower():find("upgrade", 1, true))
    assert.are.equal(KEY, h["sec-websocket-key"])
    assert.are.equal("13", h["sec-websocket-version"])
    assert.are.equal("http://example.com", h.origin)
    assert.are.same({ "chat", "superchat" }, split_list(h["sec-websocket-protocol"]))
    assert.are.equal("yes", h["x-custom"])
    assert.is_nil(h["sec-websocket-extensions"])
    assert.are.equal("", s:output())
    assert.is_nil(s:next_event())
  end)

  it("puts the port in Host only when it is not the default", function()
    local cases = {
      { "ws://example.com:8080/", "example.com:8080", "GET / HTTP/1.1" },
      { "ws://example.com", "example.com", "GET / HTTP/1.1" },
      { "ws://example.com:80/a/b", "example.com", "GET /a/b HTTP/1.1" },
      { "wss://example.com/secure", "example.com", "GET /secure HTTP/1.1" },
      { "wss://example.com:8443/?q", "example.com:8443", "GET /?q HTTP/1.1" },
      { "ws://[::1]:9000/v6", "[::1]:9000", "GET /v6 HTTP/1.1" },
    }
    for _, c in ipairs(cases) do
      local s = core.session { role = "client", url = c[1] }
      local first, h = util.parse_http(s:output())
      assert.are.equal(c[3], first, c[1])
      assert.are.equal(c[2], h.host, c[1])
      assert.are.equal(24, #h["sec-websocket-key"], c[1])
      assert.is_nil(h.origin)
      assert.is_nil(h["sec-websocket-protocol"])
    end
  end)

  it("uses a fresh random key per session when none is given", function()
    local a = core.session { role = "client", url = "ws://h/" }
    local b = core.session { role = "client", url = "ws://h/" }
    local _, ha = util.parse_http(a:output())
    local _, hb = util.parse_http(b:output())
    assert.is_truthy(ha["sec-websocket-key"]:match("^[%w%+/]+==$"))
    assert.are_not.equal(ha["sec-websocket-key"], hb["sec-websocket-key"])
  end)

  it("raises on a missing or bad url", function()
    assert.has_error(function() core.session { role = "client" } end)
    assert.has_error(function() core.session { role = "client", url = "http://example.com/" } end)
    assert.has_error(function() core.session { role = "client", url = 42 } end)
  end)

  it("refuses to send before the handshake completes", function()
    local s = client()
    s:output()
    local ok, err = s:send("early")
    assert.is_nil(ok)
    assert.is_string(err)
    ok, err = s:ping("early")
    assert.is_nil(ok)
    assert.is_string(err)
    ok, err = s:send_fragment("early", false)
    assert.is_nil(ok)
    assert.is_string(err)
    assert.are.equal("", s:output())
    assert.are.equal("CONNECTING", s:state())
  end)

  it("opens on a valid 101 response", function()
    local s = client()
    s:output()
    local evs = util.feed(s, GOOD_RESPONSE)
    assert.are.same({ "open" }, util.kinds(evs))
    local info = evs[1][2]
    assert.are.equal(101, info.status)
    assert.are.equal("chat", info.protocol)
    assert.are.equal(ACCEPT, info.headers["sec-websocket-accept"])
    assert.are.equal("websocket", info.headers.upgrade)
    assert.are.equal("OPEN", s:state())
    assert.are.equal("chat", s:protocol())
    assert.is_nil(s:extensions())
    assert.is_true(s:send("now"))
    assert.are.equal(util.out_frame(s, OP.text, "now"), s:output())
  end)

  it("keeps a frame that arrives in the same chunk as the 101", function()
    local s = client()
    s:output()
    local evs = util.feed(s, GOOD_RESPONSE .. util.sframe(OP.text, "hello") .. util.sframe(OP.ping, "p"))
    assert.are.same({ "open", "message", "ping" }, util.kinds(evs))
    assert.are.same({ "message", "hello", "text" }, evs[2])
    assert.are.equal(util.out_frame(s, OP.pong, "p"), s:output())
  end)

  it("opens with the response split in two at every byte", function()
    for cut = 1, #GOOD_RESPONSE - 1 do
      local s = client()
      s:output()
      assert.are.same({}, util.feed(s, GOOD_RESPONSE:sub(1, cut)), "cut " .. cut)
      assert.are.same({ "open", "message" },
        util.kinds(util.feed(s, GOOD_RESPONSE:sub(cut + 1) .. util.sframe(OP.text, "x"))), "cut " .. cut)
    end
  end)

  it("opens with the response fed one byte at a time", function()
    local s = client()
    s:output()
    local bytes = GOOD_RESPONSE .. util.sframe(OP.binary, "after")
    local evs = util.feed_bytes(s, bytes)
    assert.are.same({ "open", "message" }, util.kinds(evs))
    assert.are.same({ "message", "after", "binary" }, evs[2])
  end)

  it("reports a non-101 answer with its status and headers, then 1006", function()
    local s = client()
    s:output()
    local evs = util.feed(s, "HTTP/1.1 403 Forbidden\r\nX-Why: because\r\nContent-Length: 4\r\n\r\nnope")
    assert.are.same({ "error", "close" }, util.kinds(evs))
    assert.is_string(evs[1][2])
    assert.are.equal(403, evs[1][3])
    assert.is_table(evs[1][4])
    assert.are.equal("because", evs[1][4]["x-why"])
    assert.are.same({ "close", 1006, "", false }, evs[2])
    assert.are.equal("CLOSED", s:state())
    assert.are.equal("", s:output())
  end)

  it("takes Upgrade and Connection tokens in any case and in a list", function()
    local s = client()
    s:output()
    local evs = util.feed(s, response {
      "HTTP/1.1 101 Switching Protocols", "upgrade: WebSocket", "CONNECTION: keep-alive, UPGRADE",
      "sec-websocket-accept: " .. ACCEPT })
    assert.are.same({ "open" }, util.kinds(evs))
    assert.is_nil(s:protocol())
  end)

  local BAD = {
    { "a wrong Sec-WebSocket-Accept", response {
      "HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
      "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=" } },
    { "a missing Sec-WebSocket-Accept", response {
      "HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade" } },
    { "a missing Upgrade", response {
      "HTTP/1.1 101 Switching Protocols", "Connection: Upgrade", "Sec-WebSocket-Accept: " .. ACCEPT } },
    { "a missing Connection", response {
      "HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Sec-WebSocket-Accept: " .. ACCEPT } },
    { "a subprotocol that was not offered", response {
      "HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
      "Sec-WebSocket-Accept: " .. ACCEPT, "Sec-WebSocket-Protocol: other" } },
    { "an extension that was not offered", response {
      "HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
      "Sec-WebSocket-Accept: " .. ACCEPT, "Sec-WebSocket-Extensions: x-unknown" } },
    { "garbage", "this is not HTTP\r\n\r\n" },
  }
  for _, c in ipairs(BAD) do
    it("fails on " .. c[1] .. " with an error, then 1006", function()
      local s = client()
      s:output()
      local evs = util.feed(s, c[2] .. util.sframe(OP.text, "never"))
      assert.are.same({ "error", "close" }, util.kinds(evs))
      assert.is_string(evs[1][2])
      assert.are.same({ "close", 1006, "", false }, evs[2])
      assert.are.equal("CLOSED", s:state())
      assert.is_nil(s:next_event())
    end)
  end

  it("reports 1006 when the transport ends during the handshake", function()
    local s = client()
    s:output()
    s:feed(GOOD_RESPONSE:sub(1, 20))
    s:eof()
    local evs = util.events(s)
    assert.are.equal(1, util.count(evs, "close"))
    assert.are.same({ "close", 1006, "", false }, evs[#evs])
    assert.are.equal(0, util.count(evs, "open"))
    assert.are.equal("CLOSED", s:state())
  end)
end)

describe("handshake, server session", function()
  it("reports a valid request and waits for the application", function()
    local s = server()
    assert.are.equal("CONNECTING", s:state())
    local evs = util.feed(s, GOOD_REQUEST)
    assert.are.same({ "request" }, util.kinds(evs))
    local req = evs[1][2]
    assert.are.equal("GET", req.method)
    assert.are.equal("/chat", req.path)
    assert.are.equal("x=1", req.query)
    assert.are.equal("server.example.com", req.headers.host)
    assert.are.equal("yes", req.headers["x-custom"])
    assert.are.equal("http://example.com", req.origin)
    assert.are.same({ "chat", "superchat" }, req.protocols)
    assert.are.equal(KEY, req.key)
    assert.are.equal("", s:output())
    assert.are.equal("CONNECTING", s:state())
  end)

  it("takes a browser-like request with mixed case and a Connection list", function()
    local s = server()
    local evs = util.feed(s, request {
      "GET /p?a=b&c=d HTTP/1.1", "host: h:8080", "upgrade: WebSocket", "Connection: keep-alive, Upgrade",
      "sec-websocket-key: " .. KEY, "sec-websocket-version: 13",
      "Sec-WebSocket-Protocol: chat", "Sec-WebSocket-Protocol: superchat" })
    assert.are.same({ "request" }, util.kinds(evs))
    local req = evs[1][2]
    assert.are.equal("/p", req.path)
    assert.are.equal("a=b&c=d", req.query)
    assert.are.same({ "chat", "superchat" }, req.protocols)
    assert.are.equal("h:8080", req.headers.host)
  end)

  it("reports no query and no origin when there are none", function()
    local s = server()
    local evs = util.feed(s, request {
      "GET / HTTP/1.1", "Host: h", "Upgrade: websocket", "Connection: Upgrade",
      "Sec-WebSocket-Key: " .. KEY, "Sec-WebSocket-Version: 13" })
    local req = evs[1][2]
    assert.are.equal("/", req.path)
    assert.is_nil(req.query)
    assert.is_nil(req.origin)
    assert.is_true(req.protocols == nil or next(req.protocols) == nil)
  end)

  it("accepts with a subprotocol and extra headers", function()
    local s = server()
    util.feed(s, GOOD_REQUEST)
    s:accept { protocol = "chat", headers = { ["X-Server"] = "lua-ws" } }
    local first, h, rest = util.parse_http(s:output())
    assert.are.equal("HTTP/1.1 101", first:sub(1, 12))
    assert.are.equal("", rest)
    assert.are.equal("websocket", h.upgrade:lower())
    assert.is_truthy(h.connection:lower():find("upgrade", 1, true))
    assert.are.equal(ACCEPT, h["sec-websocket-accept"])
    assert.are.equal("chat", h["sec-websocket-protocol"])
    assert.are.equal("lua-ws", h["x-server"])
    assert.is_nil(h["sec-websocket-extensions"])
    assert.are.equal("OPEN", s:state())
    assert.are.same({ "open" }, util.kinds(util.events(s)))
    assert.are.equal("chat", s:protocol())
  end)

  it("accepts without a subprotocol when the server supports none", function()
    local s = server { protocols = false }
    util.feed(s, GOOD_REQUEST)
    s:accept {}
    local _, h = util.parse_http(s:output())
    assert.is_nil(h["sec-websocket-protocol"])
    assert.is_nil(s:protocol())
    local evs = util.events(s)
    assert.are.same({ "open" }, util.kinds(evs))
    assert.is_nil(evs[1][2].protocol)
  end)

  it("picks a supported subprotocol offered by the client on accept{}", function()
    local s = server { protocols = { "superchat" } }
    util.feed(s, GOOD_REQUEST)
    s:accept {}
    local _, h = util.parse_http(s:output())
    assert.are.equal("superchat", h["sec-websocket-protocol"])
    assert.are.equal("superchat", s:protocol())
  end)

  it("chooses no subprotocol when none offered is supported", function()
    local s = server { protocols = { "other" } }
    util.feed(s, GOOD_REQUEST)
    s:accept {}
    local _, h = util.parse_http(s:output())
    assert.is_nil(h["sec-websocket-protocol"])
    assert.is_nil(s:protocol())
  end)

  it("sends the 101 and a frame in one output", function()
    local s = server()
    util.feed(s, GOOD_REQUEST)
    s:accept { protocol = "chat" }
    assert.is_true(s:send("welcome"))
    local _, _, rest = util.parse_http(s:output())
    assert.are.equal(util.sframe(OP.text, "welcome"), rest)
  end)

  it("takes frames after the handshake", function()
    local s = server()
    util.feed(s, GOOD_REQUEST)
    s:accept {}
    s:output()
    util.events(s)
    assert.are.same({ { "message", "hi", "text" } }, util.feed(s, util.cframe(OP.text, "hi")))
  end)

  it("keeps a frame that arrived right behind the request until after accept", function()
    local s = server()
    local evs = util.feed(s, GOOD_REQUEST .. util.cframe(OP.text, "eager"))
    assert.are.same({ "request" }, util.kinds(evs))
    s:accept {}
    assert.are.same({ "open", "message" }, util.kinds(util.events(s)))
  end)

  it("does not accept twice, nor accept or reject once open", function()
    local s = server()
    util.feed(s, GOOD_REQUEST)
    s:accept {}
    s:output()
    util.events(s)
    local function refused(ok, a, b)
      -- raising or returning nil, err are both fine; doing it is not
      if ok then
        assert.is_nil(a)
        assert.is_string(b)
      end
    end
    refused(pcall(s.accept, s, {}))
    refused(pcall(s.reject, s, 400, "late"))
    assert.are.equal("", s:output())
    assert.are.equal("OPEN", s:state())
    assert.are.same({}, util.events(s))
  end)

  it("does not accept before a request arrived", function()
    local s = server()
    local ok, a, b = pcall(s.accept, s, {})
    if ok then
      assert.is_nil(a)
      assert.is_string(b)
    end
    assert.are.equal("", s:output())
    assert.are.equal("CONNECTING", s:state())
  end)

  it("reports the request split in two at every byte", function()
    for cut = 1, #GOOD_REQUEST - 1 do
      local s = server()
      assert.are.same({}, util.feed(s, GOOD_REQUEST:sub(1, cut)), "cut " .. cut)
      assert.are.same({ "request" }, util.kinds(util.feed(s, GOOD_REQUEST:sub(cut + 1))), "cut " .. cut)
    end
  end)

  it("reports the request fed one byte at a time", function()
    local s = server()
    local evs = util.feed_bytes(s, GOOD_REQUEST)
    assert.are.same({ "request" }, util.kinds(evs))
    assert.are.equal("/chat", evs[1][2].path)
  end)

  it("rejects with a status, a reason and headers, then reports 1006", function()
    local s = server()
    util.feed(s, GOOD_REQUEST)
    s:reject(403, "nope", { ["X-Why"] = "because" })
    local out = s:output()
    local first, h, body = util.parse_http(out)
    assert.are.equal("HTTP/1.1 403", first:sub(1, 12))
    assert.are.equal("because", h["x-why"])
    assert.is_truthy(body:find("nope", 1, true) or first:find("nope", 1, true))
    assert.are.equal("CLOSED", s:state())
    assert.are.same({ { "close", 1006, "", false } }, util.events(s))
    assert.are.equal("", s:output())
  end)

  it("answers a request without Sec-WebSocket-Key with 400", function()
    answered(request {
      "GET / HTTP/1.1", "Host: h", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13" }, 400)
  end)

  it("answers a request with a malformed key with 400", function()
    answered(request {
      "GET / HTTP/1.1", "Host: h", "Upgrade: websocket", "Connection: Upgrade",
      "Sec-WebSocket-Key: short", "Sec-WebSocket-Version: 13" }, 400)
  end)

  it("answers a request without Upgrade: websocket with 400 or 426", function()
    local s = server()
    s:feed(request {
      "GET / HTTP/1.1", "Host: h", "Connection: Upgrade", "Sec-WebSocket-Key: " .. KEY,
      "Sec-WebSocket-Version: 13" })
    local evs = util.events(s)
    assert.are.same({ "error", "close" }, util.kinds(evs))
    assert.is_true(evs[1][3] == 400 or evs[1][3] == 426, "status " .. tostring(evs[1][3]))
    assert.are.equal("HTTP/1.1 " .. evs[1][3], s:output():sub(1, 12))
  end)

  it("answers a request without Host with 400", function()
    answered(request {
      "GET / HTTP/1.1", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: " .. KEY,
      "Sec-WebSocket-Version: 13" }, 400)
  end)

  it("answers version 12 with 426 and Sec-WebSocket-Version: 13", function()
    local out, h = answered(request {
      "GET / HTTP/1.1", "Host: h", "Upgrade: websocket", "Connection: Upgrade",
      "Sec-WebSocket-Key: " .. KEY, "Sec-WebSocket-Version: 12" }, 426)
    assert.are.equal("HTTP/1.1 426", out:sub(1, 12))
    assert.are.equal("13", h["sec-websocket-version"])
    assert.is_truthy(out:find("Sec-WebSocket-Version: 13", 1, true))
  end)

  it("answers POST with 405", function()
    answered(request {
      "POST / HTTP/1.1", "Host: h", "Upgrade: websocket", "Connection: Upgrade",
      "Sec-WebSocket-Key: " .. KEY, "Sec-WebSocket-Version: 13" }, 405)
  end)

  it("answers garbage with 400", function()
    answered("NOT HTTP AT ALL\r\n\r\n", 400)
  end)

  it("answers a head larger than max_head with an error status", function()
    local s = server { max_head = 512 }
    s:feed("GET / HTTP/1.1\r\nHost: h\r\nX-Big: " .. string.rep("a", 1000))
    local evs = util.events(s)
    assert.are.same({ "error", "close" }, util.kinds(evs))
    assert.are.same({ "close", 1006, "", false }, evs[2])
    assert.are.equal("HTTP/1.1 4", s:output():sub(1, 10))
  end)

  it("answers more than max_headers headers with an error status", function()
    local lines = { "GET / HTTP/1.1", "Host: h", "Upgrade: websocket", "Connection: Upgrade",
      "Sec-WebSocket-Key: " .. KEY, "Sec-WebSocket-Version: 13" }
    for i = 1, 10 do lines[#lines + 1] = "X-H" .. i .. ": v" end
    local s = server { max_headers = 8 }
    s:feed(request(lines))
    local evs = util.events(s)
    assert.are.same({ "error", "close" }, util.kinds(evs))
    assert.are.equal("HTTP/1.1 4", s:output():sub(1, 10))
  end)

  it("reports 1006 when the transport ends before the request is complete", function()
    local s = server()
    s:feed(GOOD_REQUEST:sub(1, 30))
    s:eof()
    local evs = util.events(s)
    assert.are.equal(1, util.count(evs, "close"))
    assert.are.same({ "close", 1006, "", false }, evs[#evs])
    assert.are.equal(0, util.count(evs, "request"))
  end)
end)

describe("handshake, client and server sessions wired together", function()
  local function wired(copts, sopts)
    local c, s = client(copts), server(sopts)
    util.pump(c, s)
    return c, s
  end

  it("opens both sides with the chosen subprotocol and exchanges messages", function()
    local c, s = wired()
    local evs = util.events(s)
    assert.are.same({ "request" }, util.kinds(evs))
    local req = evs[1][2]
    assert.are.equal("/chat", req.path)
    assert.are.equal("x=1", req.query)
    assert.are.equal("http://example.com", req.origin)
    assert.are.same({ "chat", "superchat" }, req.protocols)
    assert.are.equal("yes", req.headers["x-custom"])
    assert.are.equal("example.com", req.headers.host)
    assert.is_nil(c:next_event())

    s:accept { protocol = "superchat" }
    util.pump(c, s)
    local cevs, sevs = util.events(c), util.events(s)
    assert.are.same({ "open" }, util.kinds(cevs))
    assert.are.same({ "open" }, util.kinds(sevs))
    assert.are.equal(101, cevs[1][2].status)
    assert.are.equal("superchat", cevs[1][2].protocol)
    assert.are.equal("superchat", sevs[1][2].protocol)
    assert.are.equal("superchat", c:protocol())
    assert.are.equal("superchat", s:protocol())
    assert.are.equal("OPEN", c:state())
    assert.are.equal("OPEN", s:state())

    c:send("from client")
    s:send(util.hex("00 01 02"), "binary")
    util.pump(c, s)
    assert.are.same({ { "message", "from client", "text" } }, util.events(s))
    assert.are.same({ { "message", util.hex("00 01 02"), "binary" } }, util.events(c))

    c:close(1000, "bye")
    util.pump(c, s)
    assert.are.same({ { "close", 1000, "bye", true } }, util.events(s))
    assert.are.same({ { "close", 1000, "bye", true } }, util.events(c))
  end)

  it("delivers a message sent right after the 101 in the same chunk", function()
    local c, s = wired()
    util.events(s)
    s:accept { protocol = "chat" }
    s:send("first!")
    c:feed(s:output())
    assert.are.same({ "open", "message" }, util.kinds(util.events(c)))
  end)

  it("lets the client see a rejection with status and headers", function()
    local c, s = wired()
    util.events(s)
    s:reject(403, "nope", { ["X-Why"] = "because" })
    util.pump(c, s)
    local evs = util.events(c)
    assert.are.same({ "error", "close" }, util.kinds(evs))
    assert.are.equal(403, evs[1][3])
    assert.are.equal("because", evs[1][4]["x-why"])
    assert.are.same({ "close", 1006, "", false }, evs[2])
    assert.are.same({ { "close", 1006, "", false } }, util.events(s))
  end)

  it("lets the client see a 426 for a server that the session answered itself", function()
    local c = client()
    local s = server()
    local req = c:output():gsub("Sec%-WebSocket%-Version: 13", "Sec-WebSocket-Version: 8")
    s:feed(req)
    assert.are.same({ "error", "close" }, util.kinds(util.events(s)))
    c:feed(s:output())
    local evs = util.events(c)
    assert.are.same({ "error", "close" }, util.kinds(evs))
    assert.are.equal(426, evs[1][3])
    assert.are.equal("13", evs[1][4]["sec-websocket-version"])
  end)

  it("opens with both heads split at every byte", function()
    local c0 = client()
    local req = c0:output()
    for cut = 1, #req - 1 do
      local s = server()
      s:feed(req:sub(1, cut))
      assert.is_nil(s:next_event())
      s:feed(req:sub(cut + 1))
      assert.are.same({ "request" }, util.kinds(util.events(s)))
    end
    local s0 = server()
    s0:feed(req)
    util.events(s0)
    s0:accept { protocol = "chat" }
    local resp = s0:output()
    for cut = 1, #resp - 1 do
      local c = client()
      c:output()
      c:feed(resp:sub(1, cut))
      assert.is_nil(c:next_event())
      c:feed(resp:sub(cut + 1))
      assert.are.same({ "open" }, util.kinds(util.events(c)))
      assert.are.equal("chat", c:protocol())
    end
  end)
end)
