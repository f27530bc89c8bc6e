-- The opening handshake (csrc/core/handshake.c) through ws.core: the client
-- request and response check, and the server's accept.
local core = require "ws.core"

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

-- Plain-arithmetic base64 decoder (no bit ops, so it runs on Lua 5.1).
local function b64decode(s)
  local out, bits, nbits = {}, 0, 0
  for c in s:gmatch("[^=]") do
    local v = B64:find(c, 1, true)
    assert(v, "not base64: " .. s)
    bits = bits * 64 + (v - 1)
    nbits = nbits + 6
    if nbits >= 8 then
      nbits = nbits - 8
      local p = 2 ^ nbits
      out[#out + 1] = string.char(math.floor(bits / p))
      bits = bits % p
    end
  end
  return table.concat(out)
end

local function lines(...)
  return table.concat({...}, "\r\n") .. "\r\n\r\n"
end

local function header_value(text, name)
  return text:match("\r\n" .. name .. ": ([^\r]*)\r\n")
end

local KEY, ACCEPT = "dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

-- A valid client request with some lines replaced (false drops a line).
local function request(over)
  over = over or {}
  local order = {"request_line", "host", "upgrade", "connection", "key", "version"}
  local base = {
    request_line = "GET /chat?x=1 HTTP/1.1",
    host = "server.example.com",
    upgrade = "Upgrade: websocket",
    connection = "Connection: Upgrade",
    key = "Sec-WebSocket-Key: " .. KEY,
    version = "Sec-WebSocket-Version: 13",
  }
  base.host = "Host: " .. base.host
  local out = {}
  for _, k in ipairs(order) do
    local v = base[k]
    if over[k] ~= nil then v = over[k] end
    if v then out[#out + 1] = v end
  end
  for _, extra in ipairs(over) do out[#out + 1] = extra end
  return table.concat(out, "\r\n") .. "\r\n\r\n"
end

-- A valid 101 response for KEY with some lines replaced (false drops).
local function response(over)
  over = over or {}
  local order = {"status", "upgrade", "connection", "accept"}
  local base = {
    status = "HTTP/1.1 101 Switching Protocols",
    upgrade = "Upgrade: websocket",
    connection = "Connection: Upgrade",
    accept = "Sec-WebSocket-Accept: " .. ACCEPT,
  }
  local out = {}
  for _, k in ipairs(order) do
    local v = base[k]
    if over[k] ~= nil then v = over[k] end
    if v then out[#out + 1] = v end
  end
  for _, extra in ipairs(over) do out[#out + 1] = extra end
  return table.concat(out, "\r\n") .. "\r\n\r\n"
end

describe("Sec-WebSocket-Accept", function()
  local vectors = {
    [KEY] = ACCEPT,
    ["x3JJHMbDL1EzLkh9GBhXDw=="] = "HSmrc0sMlYUkAGmm5OPpG2HaGWk=",
    ["Iv8io/9s+lYFgZWcXczP8Q=="] = "hsBlbuDTkk24srzEOTBUlZAlC2g=",
  }
  for key, accept in pairs(vectors) do
    it("maps " .. key .. " to " .. accept .. " on both sides", function()
      local _, expected = core.client_handshake("ws://h/", {key = key})
      assert.equal(accept, expected)
      local resp = assert(core.accept(request({key = "Sec-WebSocket-Key: " .. key})))
      assert.equal(accept, header_value(resp, "Sec%-WebSocket%-Accept"))
    end)
  end
end)

describe("client_handshake", function()
  it("writes every required header", function()
    local req, accept = core.client_handshake("ws://example.com/chat?a=b", {key = KEY})
    assert.equal(ACCEPT, accept)
    assert.equal("GET /chat?a=b HTTP/1.1\r\n", req:sub(1, 24))
    assert.equal("example.com", header_value(req, "Host"))
    assert.equal("websocket", header_value(req, "Upgrade"))
    assert.equal("Upgrade", header_value(req, "Connection"))
    assert.equal(KEY, header_value(req, "Sec%-WebSocket%-Key"))
    assert.equal("13", header_value(req, "Sec%-WebSocket%-Version"))
    assert.is_nil(header_value(req, "Origin"))
    assert.is_nil(header_value(req, "Sec%-WebSocket%-Protocol"))
    assert.is_nil(header_value(req, "Sec%-WebSocket%-Extensions"))
    assert.is_nil(header_value(req, "Authorization"))
    assert.equal("\r\n\r\n", req:sub(-4))
    -- the server side of this library parses it
    assert.truthy(core.parse_request(req))
  end)

  it("puts the port in Host only when it is not the default", function()
    local cases = {
      ["ws://h/"] = "h", ["ws://h:80/"] = "h", ["ws://h:443/"] = "h:443",
      ["wss://h/"] = "h", ["wss://h:443/"] = "h", ["wss://h:80/"] = "h:80",
      ["ws://h:8080/"] = "h:8080", ["ws://[::1]/"] = "[::1]", ["ws://[::1]:9/"] = "[::1]:9",
      ["wss://[2001:db8::1]:443"] = "[2001:db8::1]",
    }
    for url, host in pairs(cases) do
      local req = core.client_handshake(url)
      assert.equal(host, header_value(req, "Host"), url)
    end
  end)

  it("uses / for a URL without a path and keeps the query", function()
    assert.equal("GET / HTTP/1.1", (core.client_handshake("ws://h")):match("^[^\r]*"))
    assert.equal("GET /?q=1 HTTP/1.1", (core.client_handshake("ws://h?q=1")):match("^[^\r]*"))
  end)

  it("generates a fresh 16-byte key for every call", function()
    local seen = {}
    for _ = 1, 20 do
      local req, accept = core.client_handshake("ws://h/")
      local key = header_value(req, "Sec%-WebSocket%-Key")
      assert.equal(24, #key)
      assert.equal(16, #b64decode(key))
      assert.is_nil(seen[key])
      seen[key] = true
      -- the expected accept belongs to this key
      local resp = assert(core.accept(request({key = "Sec-WebSocket-Key: " .. key})))
      assert.equal(accept, header_value(resp, "Sec%-WebSocket%-Accept"))
    end
  end)

  it("sends Origin, protocols, extensions and extra headers", function()
    local req = core.client_handshake("ws://h/", {
      origin = "https://app.example",
      protocols = {"chat.v2", "chat.v1"},
      extensions = "permessage-deflate; client_max_window_bits",
      headers = {{"X-First", "1"}, {"X-Second", 2}, ["X-Map"] = "m"},
    })
    assert.equal("https://app.example", header_value(req, "Origin"))
    assert.equal("chat.v2, chat.v1", header_value(req, "Sec%-WebSocket%-Protocol"))
    assert.equal("permessage-deflate; client_max_window_bits",
      header_value(req, "Sec%-WebSocket%-Extensions"))
    assert.equal("1", header_value(req, "X%-First"))
    assert.equal("2", header_value(req, "X%-Second"))
    assert.equal("m", header_value(req, "X%-Map"))
    -- list headers keep their order
    assert.is_true(req:find("X-First", 1, true) < req:find("X-Second", 1, true))
  end)

  it("accepts a single protocol given as a string", function()
    local req = core.client_handshake("ws://h/", {protocols = "chat"})
    assert.equal("chat", header_value(req, "Sec%-WebSocket%-Protocol"))
  end)

  it("turns URL credentials into Basic authorization", function()
    local req = core.client_handshake("ws://Aladdin:open%20sesame@h/")
    assert.equal("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", header_value(req, "Authorization"))
    -- an explicit Authorization header wins
    req = core.client_handshake("ws://a:b@h/", {headers = {authorization = "Bearer t"}})
    assert.equal("Bearer t", header_value(req, "authorization"))
    assert.is_nil(header_value(req, "Authorization"))
  end)

  local function arg_error(url, opts)
    -- a plain (not tail) call through a field, so every Lua can name it
    local ok, err = pcall(function()
      local req = core.client_handshake(url, opts)
      return req
    end)
    assert.is_false(ok)
    return err
  end

  it("rejects reserved header names in any case", function()
    for _, name in ipairs({"Host", "upgrade", "CONNECTION", "Sec-WebSocket-Key",
                           "sec-websocket-version", "Sec-WebSocket-Accept", "Sec-WebSocket-Protocol",
                           "Sec-WebSocket-Extensions", "Content-Length", "transfer-encoding"}) do
      local err = arg_error("ws://h/", {headers = {[name] = "x"}})
      assert.matches("bad argument #2", err, 1, true)
      assert.matches("header '" .. name .. "' is set by the handshake", err, 1, true)
    end
  end)

  it("rejects header values with CR, LF or NUL and bad names", function()
    assert.matches("invalid value for header 'X'", arg_error("ws://h/", {headers = {X = "a\r\nEvil: 1"}}), 1, true)
    assert.matches("invalid value for header 'X'", arg_error("ws://h/", {headers = {X = "a\nb"}}), 1, true)
    assert.matches("invalid value for header 'X'", arg_error("ws://h/", {headers = {X = "a\rb"}}), 1, true)
    assert.matches("NUL", arg_error("ws://h/", {headers = {X = "a\0b"}}), 1, true)
    assert.matches("invalid header name 'X Y'", arg_error("ws://h/", {headers = {["X Y"] = "v"}}), 1, true)
    assert.matches("invalid header name 'X:'", arg_error("ws://h/", {headers = {{"X:", "v"}}}), 1, true)
    assert.matches("invalid header name ''", arg_error("ws://h/", {headers = {[""] = "v"}}), 1, true)
    assert.matches("'headers'", arg_error("ws://h/", {headers = "X: y"}), 1, true)
    assert.matches("'headers'", arg_error("ws://h/", {headers = {"X: y"}}), 1, true)
    assert.matches("header values", arg_error("ws://h/", {headers = {X = true}}), 1, true)
    -- HTAB is fine
    local req = core.client_handshake("ws://h/", {headers = {X = "a\tb"}})
    assert.equal("a\tb", header_value(req, "X"))
  end)

  it("rejects protocols that are not unique tokens", function()
    assert.matches("invalid subprotocol 'a b'", arg_error("ws://h/", {protocols = {"a b"}}), 1, true)
    assert.matches("invalid subprotocol 'a,b'", arg_error("ws://h/", {protocols = {"a,b"}}), 1, true)
    assert.matches("invalid subprotocol ''", arg_error("ws://h/", {protocols = {""}}), 1, true)
    assert.matches("duplicate subprotocol 'a'", arg_error("ws://h/", {protocols = {"a", "b", "a"}}), 1, true)
    assert.matches("'protocols'", arg_error("ws://h/", {protocols = {1}}), 1, true)
    assert.matches("'protocols'", arg_error("ws://h/", {protocols = true}), 1, true)
  end)

  it("rejects bad options and URLs with argument errors", function()
    assert.matches("'origin' must be a string", arg_error("ws://h/", {origin = 1}), 1, true)
    assert.matches("invalid origin", arg_error("ws://h/", {origin = "a\r\nb"}), 1, true)
    assert.matches("invalid extensions", arg_error("ws://h/", {extensions = "x\n"}), 1, true)
    assert.matches("bad argument #2", arg_error("ws://h/", "opts"), 1, true)
    assert.matches("invalid key", arg_error("ws://h/", {key = "a\r\nX: y"}), 1, true)
    assert.matches("invalid key", arg_error("ws://h/", {key = ""}), 1, true)
    assert.matches("bad argument #1 to '[%w.]*client_handshake' %(invalid URL: unsupported scheme 'http'%)",
      arg_error("http://h/"))
  end)
end)

describe("check_response", function()
  local function check(resp, opts)
    return core.check_response(resp, ACCEPT, opts)
  end

  it("accepts a valid 101", function()
    local r = assert(check(response()))
    assert.equal(101, r.status)
    assert.is_nil(r.protocol)
    assert.is_nil(r.extensions)
    assert.equal("websocket", r.headers.upgrade)
    assert.equal(ACCEPT, r.headers["sec-websocket-accept"])
  end)

  it("ignores bytes after the head and reports the head length", function()
    local resp = response()
    local r = assert(check(resp .. "\129\2hi"))
    assert.equal(#resp, r.head_length)
  end)

  it("accepts token lists and any case in Upgrade and Connection", function()
    assert.truthy(check(response({upgrade = "Upgrade: WebSocket", connection = "connection: keep-alive, UPGRADE"})))
    assert.truthy(check(response({connection = "Connection: keep-alive", "Connection: Upgrade"})))
  end)

  it("fails a non-101 status, carrying the status and headers", function()
    local r, err, status, headers = check(lines("HTTP/1.1 403 Forbidden", "X-Why: nope", "x-why: really",
                                                "Content-Length: 0"))
    assert.is_nil(r)
    assert.equal("expected status 101, got 403", err)
    assert.equal(403, status)
    assert.equal("nope, really", headers["x-why"])
    assert.equal("0", headers["content-length"])
  end)

  it("fails an unparsable head without a status", function()
    local r, err, status, headers = check("HTTP/1.1 10x OK\r\n\r\n")
    assert.is_nil(r)
    assert.equal("malformed response head", err)
    assert.is_nil(status)
    assert.is_nil(headers)
    r, err = check("HTTP/1.1 101 Switching")
    assert.is_nil(r)
    assert.equal("incomplete response head", err)
  end)

  local failures = {
    ["a missing Upgrade"] = {{upgrade = false}, "missing Upgrade header"},
    ["a wrong Upgrade"] = {{upgrade = "Upgrade: h2c"}, "Upgrade header is 'h2c', expected 'websocket'"},
    ["a missing Connection"] = {{connection = false}, "missing Connection header"},
    ["a wrong Connection"] = {{connection = "Connection: close"}, "Connection header is 'close', expected 'Upgrade'"},
    ["a missing accept"] = {{accept = false}, "missing Sec-WebSocket-Accept header"},
    ["a wrong accept"] = {{accept = "Sec-WebSocket-Accept: HSmrc0sMlYUkAGmm5OPpG2HaGWk="},
                          "Sec-WebSocket-Accept mismatch"},
    ["an accept in another case"] = {{accept = "Sec-WebSocket-Accept: " .. ACCEPT:lower()},
                                     "Sec-WebSocket-Accept mismatch"},
    ["a duplicate accept"] = {{"Sec-WebSocket-Accept: " .. ACCEPT}, "duplicate Sec-WebSocket-Accept header"},
    ["a protocol when none was offered"] = {{"Sec-WebSocket-Protocol: chat"},
                                            "server chose subprotocol 'chat' that was not offered"},
    ["an extension when none was offered"] = {{"Sec-WebSocket-Extensions: permessage-deflate"},
                                              "server accepted extension 'permessage-deflate' that was not offered"},
  }
  for what, case in pairs(failures) do
    it("fails " .. what, function()
      local r, err, status, headers = check(response(case[1]))
      assert.is_nil(r)
      assert.matches(case[2], err, 1, true)
      assert.equal(101, status)
      assert.equal("table", type(headers))
    end)
  end

  it("returns the chosen protocol when it was offered", function()
    local r = assert(check(response({"Sec-WebSocket-Protocol: chat.v1"}), {protocols = {"chat.v2", "chat.v1"}}))
    assert.equal("chat.v1", r.protocol)
    -- absent is fine too
    r = assert(check(response(), {protocols = {"chat.v2"}}))
    assert.is_nil(r.protocol)
  end)

  it("fails a protocol that was not offered, or two of them", function()
    local r, err = check(response({"Sec-WebSocket-Protocol: chat.v3"}), {protocols = {"chat.v1"}})
    assert.is_nil(r)
    assert.equal("server chose subprotocol 'chat.v3' that was not offered", err)
    r, err = check(response({"Sec-WebSocket-Protocol: chat.v1, chat.v2"}), {protocols = {"chat.v1", "chat.v2"}})
    assert.is_nil(r)
    assert.matches("not offered", err, 1, true)
    r, err = check(response({"Sec-WebSocket-Protocol: a", "Sec-WebSocket-Protocol: a"}), {protocols = {"a"}})
    assert.is_nil(r)
    assert.equal("duplicate Sec-WebSocket-Protocol header", err)
    -- names compare exactly
    r = check(response({"Sec-WebSocket-Protocol: Chat"}), {protocols = {"chat"}})
    assert.is_nil(r)
  end)

  it("accepts offered extensions and fails others", function()
    local offer = "permessage-deflate; client_max_window_bits, x-webkit-deflate-frame"
    local r = assert(check(response({"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover"}),
      {extensions = offer}))
    assert.equal("permessage-deflate; server_no_context_takeover", r.extensions)
    local err
    r, err = check(response({"Sec-WebSocket-Extensions: permessage-deflate, x-other"}), {extensions = offer})
    assert.is_nil(r)
    assert.equal("server accepted extension 'x-other' that was not offered", err)
    r, err = check(response({"Sec-WebSocket-Extensions: bad name"}), {extensions = offer})
    assert.is_nil(r)
    assert.matches("invalid Sec-WebSocket-Extensions element", err, 1, true)
  end)

  it("applies the head limits", function()
    local r, err = check(response(), {max_head = 20})
    assert.is_nil(r)
    assert.equal("response head too large", err)
    r, err = check(response(), {max_headers = 2})
    assert.is_nil(r)
    assert.equal("too many headers", err)
  end)
end)

describe("accept", function()
  it("answers a valid request with 101 and describes it", function()
    local resp, info = core.accept(request({"Origin: https://app.example", "X-Custom: a", "x-custom: b"}))
    assert.equal("HTTP/1.1 101 Switching Protocols\r\n", resp:sub(1, 34))
    assert.equal("websocket", header_value(resp, "Upgrade"))
    assert.equal("Upgrade", header_value(resp, "Connection"))
    assert.equal(ACCEPT, header_value(resp, "Sec%-WebSocket%-Accept"))
    assert.is_nil(header_value(resp, "Sec%-WebSocket%-Protocol"))
    assert.equal("\r\n\r\n", resp:sub(-4))
    assert.equal("GET", info.method)
    assert.equal("/chat", info.path)
    assert.equal("x=1", info.query)
    assert.equal("https://app.example", info.origin)
    assert.equal(KEY, info.key)
    assert.same({}, info.protocols)
    assert.is_nil(info.extensions)
    assert.is_nil(info.protocol)
    assert.equal("server.example.com", info.headers.host)
    assert.equal("a, b", info.headers["x-custom"])
  end)

  it("reports path and query forms", function()
    local _, info = core.accept(request({request_line = "GET / HTTP/1.1"}))
    assert.equal("/", info.path)
    assert.is_nil(info.query)
    _, info = core.accept(request({request_line = "GET /a? HTTP/1.1"}))
    assert.equal("/a", info.path)
    assert.equal("", info.query)
    _, info = core.accept(request({request_line = "GET ws://h.example/p?q HTTP/1.1"}))
    assert.equal("/p", info.path)
    assert.equal("q", info.query)
    assert.is_nil(info.origin)
    _, info = core.accept(request({request_line = "GET ws://h.example HTTP/1.1"}))
    assert.equal("/", info.path)
    assert.is_nil(info.query)
  end)

  it("accepts token lists and any case in Upgrade and Connection", function()
    assert.truthy(core.accept(request({upgrade = "upgrade: WebSocket",
                                       connection = "Connection: keep-alive, upgrade"})))
    assert.truthy(core.accept(request({connection = "Connection: keep-alive", "Connection: Upgrade"})))
    assert.truthy(core.accept(request({upgrade = "Upgrade: foo, websocket"})))
  end)

  local rejections = {
    ["a POST"] = {{request_line = "POST /chat HTTP/1.1"}, 405, "method not allowed"},
    ["a lowercase get"] = {{request_line = "get /chat HTTP/1.1"}, 405, "method not allowed"},
    ["HTTP/1.0"] = {{request_line = "GET /chat HTTP/1.0"}, 400, "HTTP/1.1"},
    ["an asterisk target"] = {{request_line = "GET * HTTP/1.1"}, 400, "invalid request target"},
    ["a relative target"] = {{request_line = "GET chat HTTP/1.1"}, 400, "invalid request target"},
    ["a target starting with ://"] = {{request_line = "GET ://h/ HTTP/1.1"}, 400, "invalid request target"},
    ["a missing Host"] = {{host = false}, 400, "missing Host header"},
    ["an empty Host"] = {{host = "Host:"}, 400, "empty Host header"},
    ["two Host headers"] = {{"Host: other"}, 400, "duplicate Host header"},
    ["a missing Upgrade"] = {{upgrade = false}, 400, "missing Upgrade header"},
    ["a wrong Upgrade"] = {{upgrade = "Upgrade: h2c"}, 400, "Upgrade header must contain 'websocket'"},
    ["a missing Connection"] = {{connection = false}, 400, "missing Connection header"},
    ["a wrong Connection"] = {{connection = "Connection: keep-alive"}, 400,
                              "Connection header must contain 'Upgrade'"},
    ["a missing version"] = {{version = false}, 426, "missing Sec-WebSocket-Version header"},
    ["version 8"] = {{version = "Sec-WebSocket-Version: 8"}, 426, "unsupported Sec-WebSocket-Version"},
    ["a version list"] = {{version = "Sec-WebSocket-Version: 13, 8"}, 426, "unsupported Sec-WebSocket-Version"},
    ["version 013"] = {{version = "Sec-WebSocket-Version: 013"}, 426, "unsupported Sec-WebSocket-Version"},
    ["two version headers"] = {{"Sec-WebSocket-Version: 13"}, 426, "unsupported Sec-WebSocket-Version"},
    ["a missing key"] = {{key = false}, 400, "missing Sec-WebSocket-Key header"},
    ["two keys"] = {{"Sec-WebSocket-Key: " .. KEY}, 400, "duplicate Sec-WebSocket-Key header"},
    ["a short key"] = {{key = "Sec-WebSocket-Key: dGhlIHNhbXBsZQ=="}, 400, "invalid Sec-WebSocket-Key"},
    ["a 17-byte key"] = {{key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZTE="}, 400, "invalid Sec-WebSocket-Key"},
    ["a key that is not base64"] = {{key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j*Q=="}, 400,
                                    "invalid Sec-WebSocket-Key"},
    ["an unpadded key"] = {{key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ"}, 400, "invalid Sec-WebSocket-Key"},
    ["a protocol that is not a token"] = {{"Sec-WebSocket-Protocol: chat, a/b"}, 400,
                                          "invalid Sec-WebSocket-Protocol"},
    ["a malformed head"] = {{"Bad Header: x"}, 400, "malformed request head"},
  }
  for what, case in pairs(rejections) do
    it("rejects " .. what .. " with " .. case[2], function()
      local resp, status, reason, text = core.accept(request(case[1]))
      assert.is_nil(resp)
      assert.equal(case[2], status)
      assert.matches(case[3], reason, 1, true)
      assert.equal("HTTP/1.1 " .. case[2] .. " ", text:sub(1, 13))
      assert.equal("close", header_value(text, "Connection"))
      assert.equal("text/plain", header_value(text, "Content%-Type"))
      local body = text:match("\r\n\r\n(.*)$")
      assert.equal(tonumber(header_value(text, "Content%-Length")), #body)
      assert.matches(reason, body, 1, true)
      if case[2] == 426 then
        assert.equal("13", header_value(text, "Sec%-WebSocket%-Version"))
        assert.matches("^HTTP/1.1 426 Upgrade Required\r\n", text)
      else
        assert.is_nil(header_value(text, "Sec%-WebSocket%-Version"))
      end
    end)
  end

  it("uses standard reason phrases", function()
    local _, _, _, text = core.accept(request({request_line = "PUT / HTTP/1.1"}))
    assert.matches("^HTTP/1.1 405 Method Not Allowed\r\n", text)
    _, _, _, text = core.accept(request({host = false}))
    assert.matches("^HTTP/1.1 400 Bad Request\r\n", text)
  end)

  it("answers 431 for heads over the limits", function()
    local resp, status, reason, text = core.accept(request(), {max_headers = 3})
    assert.is_nil(resp)
    assert.equal(431, status)
    assert.equal("too many headers", reason)
    assert.matches("^HTTP/1.1 431 Request Header Fields Too Large\r\n", text)
    resp, status, reason = core.accept(request(), {max_head = 50})
    assert.is_nil(resp)
    assert.equal(431, status)
    assert.equal("request head too large", reason)
    resp, status, reason = core.accept("GET / HTTP/1.1\r\nX: " .. string.rep("a", 9000))
    assert.is_nil(resp)
    assert.equal(431, status)
    assert.equal("request head too large", reason)
  end)

  it("answers 400 for an incomplete head", function()
    local resp, status, reason = core.accept("GET / HTTP/1.1\r\nHost: x\r\n")
    assert.is_nil(resp)
    assert.equal(400, status)
    assert.equal("incomplete request head", reason)
  end)

  it("chooses the first of the client's offers that the server supports", function()
    local head = request({"Sec-WebSocket-Protocol: a, b", "Sec-WebSocket-Protocol: c"})
    local resp, info = core.accept(head, {protocols = {"c", "b"}})
    assert.equal("b", info.protocol)
    assert.equal("b", header_value(resp, "Sec%-WebSocket%-Protocol"))
    assert.same({"a", "b", "c"}, info.protocols)
    resp, info = core.accept(head, {protocols = {"x"}})
    assert.is_nil(info.protocol)
    assert.is_nil(header_value(resp, "Sec%-WebSocket%-Protocol"))
    resp, info = core.accept(head)
    assert.is_nil(info.protocol)
    assert.is_nil(header_value(resp, "Sec%-WebSocket%-Protocol"))
    -- exact names only
    resp, info = core.accept(head, {protocols = {"A"}})
    assert.truthy(resp)
    assert.is_nil(info.protocol)
  end)

  it("reports the offered extensions and sends accepted ones", function()
    local head = request({"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
                          "Sec-WebSocket-Extensions: x-foo"})
    local resp, info = core.accept(head)
    assert.equal("permessage-deflate; client_max_window_bits, x-foo", info.extensions)
    assert.is_nil(header_value(resp, "Sec%-WebSocket%-Extensions"))
    resp = core.accept(head, {extensions = "permessage-deflate"})
    assert.equal("permessage-deflate", header_value(resp, "Sec%-WebSocket%-Extensions"))
  end)

  it("adds extra response headers and rejects bad ones up front", function()
    local resp = core.accept(request(), {headers = {{"Set-Cookie", "a=1"}, {"X-Server", "lua-ws"}}})
    assert.equal("a=1", header_value(resp, "Set%-Cookie"))
    assert.equal("lua-ws", header_value(resp, "X%-Server"))
    local ok, err = pcall(core.accept, request(), {headers = {["Sec-WebSocket-Accept"] = "x"}})
    assert.is_false(ok)
    assert.matches("is set by the handshake", err, 1, true)
    -- even when the request itself would be rejected
    ok, err = pcall(core.accept, "garbage", {headers = {X = "a\r\nb"}})
    assert.is_false(ok)
    assert.matches("invalid value for header 'X'", err, 1, true)
    ok, err = pcall(core.accept, request(), {protocols = {"a b"}})
    assert.is_false(ok)
    assert.matches("invalid subprotocol 'a b'", err, 1, true)
  end)
end)

describe("a full handshake", function()
  it("round-trips client request, accept and check_response", function()
    local url = "wss://user:pw@example.com:8443/live?room=7"
    local opts = {
      origin = "https://example.com",
      protocols = {"v2.chat", "v1.chat"},
      extensions = "permessage-deflate; client_max_window_bits",
      headers = {["X-Trace"] = "abc"},
    }
    local req, expected = core.client_handshake(url, opts)
    local resp, info = core.accept(req, {protocols = {"v1.chat", "v2.chat"}, extensions = "permessage-deflate",
                                         headers = {{"X-Server", "1"}}})
    assert.truthy(resp)
    assert.equal("/live", info.path)
    assert.equal("room=7", info.query)
    assert.equal("https://example.com", info.origin)
    assert.same({"v2.chat", "v1.chat"}, info.protocols)
    assert.equal("v2.chat", info.protocol)
    assert.equal(opts.extensions, info.extensions)
    assert.equal("example.com:8443", info.headers.host)
    assert.equal("abc", info.headers["x-trace"])
    assert.equal("Basic dXNlcjpwdw==", info.headers.authorization)
    local r = assert(core.check_response(resp, expected, opts))
    assert.equal(101, r.status)
    assert.equal("v2.chat", r.protocol)
    assert.equal("permessage-deflate", r.extensions)
    assert.equal("1", r.headers["x-server"])
  end)

  it("fails check_response with another request's accept", function()
    local req = core.client_handshake("ws://h/")
    local _, other = core.client_handshake("ws://h/")
    local resp = core.accept(req)
    local r, err, status = core.check_response(resp, other)
    assert.is_nil(r)
    assert.matches("Sec-WebSocket-Accept mismatch", err, 1, true)
    assert.equal(101, status)
  end)
end)
