-- Malformed and unusual input to the sans-I/O HTTP and handshake code,
-- table-driven through ws.core: request and status lines, header lines,
-- the end of a head, absolute-form targets, keys, subprotocol and
-- extension lists in requests and responses (RFC 7230 3, RFC 6455 4);
-- URLs with bad percent-encoding, IPv6 hosts, ports and schemes.
-- Lua 5.1 compatible.

local core = require "ws.core"

local KEY = "dGhlIHNhbXBsZSBub25jZQ=="

local function request(first, lines)
  return first .. "\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    .. table.concat(lines or { "Sec-WebSocket-Key: " .. KEY }, "\r\n") .. "\r\n\r\n"
end

describe("core: malformed heads", function()
  it("finds the end of a head past a CR that is not followed by LF", function()
    local head = "GET / HTTP/1.1\r\nA: b\r\n\rx\r\n\r\n"
    assert.are.equal(#head, (core.head_end(head)))
    assert.are.equal(0, (core.head_end("GET / HTTP/1.1\r\n\r\r")))
  end)

  it("refuses status lines whose version is not HTTP/d.d", function()
    for _, v in ipairs { "HTTQ/1.1", "HTTP/1x1", "HTTP/a.1", "HTTP/!.1", "HTTP/1.a", "HTTP/1./", "HTTP/1.10",
      "HTTP/1.1x" } do
      local head, err = core.parse_response(v .. " 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
      assert.is_nil(head, v)
      assert.are.equal("malformed response head", err, v)
    end
    assert.are.equal(101, assert(core.parse_response("HTTP/1.1 101 Switching Protocols\r\n\r\n")).status)
  end)

  it("refuses request lines that are not METHOD SP target SP HTTP/1.x", function()
    local cases = {
      ["GET  / HTTP/1.1"] = "malformed request head",
      ["GET / HTTP/1.1 x"] = "malformed request head",
      ["GET /"] = "malformed request head",
      ["GET\t/ HTTP/1.1"] = "malformed request head",
      ["GET / FTP/1.1"] = "malformed request head",
      ["GET / HTTP/1.1\r"] = "malformed request head",
      ["GET / HTTP/2.0"] = "unsupported HTTP version (HTTP/1.1 or later required)",
      ["GET / HTTP/1.0"] = "unsupported HTTP version (HTTP/1.1 or later required)",
    }
    for line, want in pairs(cases) do
      local head, err = core.parse_request(line .. "\r\nHost: h\r\n\r\n")
      assert.is_nil(head, line)
      assert.are.equal(want, err, line)
    end
    -- a method is a token, in any case; the check of "GET" is the handshake's
    assert.are.equal("get", assert(core.parse_request("get / HTTP/1.1\r\nHost: h\r\n\r\n")).method)
  end)

  it("refuses header lines without a name, with space before the colon or with control bytes", function()
    for _, h in ipairs { "X : a", "X", ": a", "X\1: a", "X: a\127b", "X: a\0b" } do
      local head, err = core.parse_request("GET / HTTP/1.1\r\nHost: h\r\n" .. h .. "\r\n\r\n")
      assert.is_nil(head, h)
      assert.are.equal("malformed request head", err, h)
    end
    -- a continuation line before any header
    assert.is_nil((core.parse_request("GET / HTTP/1.1\r\n Host: h\r\n\r\n")))
  end)

  it("trims optional whitespace and joins folded lines with spaces", function()
    local head = assert(core.parse_request("GET / HTTP/1.1\r\nHost: h\r\nX:\ta\t\r\nY: a\r\n b\r\n\r\n"))
    assert.are.same({ name = "X", value = "a" }, head.headers[2])
    assert.are.same({ name = "Y", value = "a   b" }, head.headers[3])
  end)
end)

describe("core: unusual handshakes", function()
  it("takes absolute-form targets and keeps their path and query", function()
    for target, want in pairs { ["ws://h"] = { "/" }, ["http://h?x=1"] = { "/", "x=1" },
      ["ws://h/p?q"] = { "/p", "q" } } do
      local resp, info = core.accept(request("GET " .. target .. " HTTP/1.1"))
      assert.matches("^HTTP/1.1 101 ", resp, nil, target)
      assert.are.equal(want[1], info.path, target)
      assert.are.equal(want[2], info.query, target)
    end
  end)

  it("refuses a key of the right length whose padding is wrong", function()
    for _, key in ipairs { "AAAAAAAAAAAAAAAAAAAAAA=A", "AAAAAAAAAAAAAAAAAAAAAAA=", "AAAAAAAAAAAAAAAAAAAAAA==x" } do
      local resp, status, reason = core.accept(request("GET / HTTP/1.1", { "Sec-WebSocket-Key: " .. key }))
      assert.is_nil(resp, key)
      assert.are.equal(400, status, key)
      assert.matches("Sec-WebSocket-Key", reason, nil, true)
    end
  end)

  it("trims whitespace around list elements of a request", function()
    local resp = assert(core.accept(request("GET / HTTP/1.1", { "Sec-WebSocket-Key: " .. KEY,
      "Sec-WebSocket-Protocol: x-other \t, chat \t" }), { protocols = { "chat" } }))
    assert.matches("\r\nSec%-WebSocket%-Protocol: chat\r\n", resp)
  end)

  it("reads quoted parameters with escapes in a request's extension offers", function()
    local s = core.session { role = "server", compress = true }
    s:feed(request("GET / HTTP/1.1", { "Sec-WebSocket-Key: " .. KEY,
      'Sec-WebSocket-Extensions: x-foo; p="a\\"b, c", permessage-deflate; client_max_window_bits' }))
    assert.are.equal("request", (s:next_event()))
    assert.is_true(s:accept())
    assert.matches("\r\nSec%-WebSocket%-Extensions: permessage%-deflate[^\r]*\r\n", s:output())
  end)

  it("checks a response's extensions: one header, offered names only, names trimmed", function()
    local _, accept = core.client_handshake("ws://h/", { key = KEY })
    local function response(lines)
      return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        .. "Sec-WebSocket-Accept: " .. accept .. "\r\n" .. table.concat(lines, "\r\n") .. "\r\n\r\n"
    end
    local ok, err = core.check_response(response { "Sec-WebSocket-Extensions: a", "Sec-WebSocket-Extensions: b" },
      accept, { extensions = "a, b" })
    assert.is_nil(ok)
    assert.are.equal("multiple Sec-WebSocket-Extensions headers", err)
    ok, err = core.check_response(response { "Sec-WebSocket-Extensions: x-foo ; p=1" }, accept)
    assert.is_nil(ok)
    assert.are.equal("server accepted extension 'x-foo' that was not offered", err)
    assert.is_truthy(core.check_response(response { "Sec-WebSocket-Extensions: x-foo ; p=1" }, accept,
      { extensions = "x-bar, x-foo; q" }))
  end)
end)

describe("core: heads past max_head", function()
  it("are answered 414, 431 or 400 by what they hold so far", function()
    local pad = string.rep("a", 100)
    local cases = {
      { "GET /" .. pad, 414, "request target too long" },
      { "GET / HTTP/1.1\nX: " .. pad, 431, "request head too large" },
      { "GET / HTTP/1.1\r\nX: " .. pad, 431, "request head too large" },
      { "GE\rT / HTTP/1.1\r\nX: " .. pad, 400, "malformed HTTP request" },
      { "G@T /" .. pad, 400, "malformed HTTP request" },
      { "GET / HTTX/1.1\r\nX: " .. pad, 400, "malformed HTTP request" },
      { pad, 400, "malformed HTTP request" },
    }
    for _, case in ipairs(cases) do
      local s = core.session { role = "server", max_head = 64 }
      s:feed(case[1])
      local kind, why, status = s:next_event()
      assert.are.same({ "error", case[3], case[2] }, { kind, why, status }, case[1])
      assert.matches("^HTTP/1.1 " .. case[2] .. " ", s:output())
    end
  end)
end)

describe("core: bad handshake arguments", function()
  it("are argument errors naming the value", function()
    local req = request("GET / HTTP/1.1", { "Sec-WebSocket-Key: " .. KEY, "Sec-WebSocket-Protocol: a" })
    local cases = {
      { "invalid extensions value 'a\r\nb'", core.accept, req, { extensions = "a\r\nb" } },
      { "invalid extensions value 'a\127b'", core.accept, req, { extensions = "a\127b" } },
      { "invalid subprotocol 'a b'", core.accept, req, { protocols = { "a b" } } },
      { "invalid header name 'X Y'", core.accept, req, { headers = { ["X Y"] = "1" } } },
      { "invalid value for header 'X' (control characters)", core.accept, req, { headers = { X = "1\r\n" } } },
      { "invalid subprotocol 'a b' (must be a token)", core.client_handshake, "ws://h/", { protocols = { "a b" } } },
      { "invalid header name 'Bad Name'", core.client_handshake, "ws://h/", { headers = { ["Bad Name"] = "x" } } },
      { "invalid extensions offer 'x\r\n'", core.client_handshake, "ws://h/", { extensions = "x\r\n" } },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(case[2], case[3], case[4])
      assert.is_false(ok, case[1])
      assert.matches("bad argument #2 to '[^']*' %(", err)
      assert.matches(case[1], err, nil, true)
    end
  end)
end)

describe("core: malformed URLs", function()
  it("names what is wrong", function()
    local cases = {
      ["ws://u%zz@h/"] = "invalid percent-encoding in userinfo",
      ["ws://u%2@h/"] = "invalid percent-encoding in userinfo",
      ["ws://u%a@h/"] = "invalid percent-encoding in userinfo",
      ["ws://u%00@h/"] = "userinfo contains a NUL byte",
      ["ws://[]/"] = "invalid IPv6 address ''",
      ["ws://[" .. string.rep("1", 50) .. "]/"] = "invalid IPv6 address '" .. string.rep("1", 50) .. "'",
      ["ws://a:b:c/"] = "invalid port 'b:c'",
      ["ws://::1/"] = "IPv6 address must be in brackets",
      ["1ws://h/"] = "missing scheme (expected ws:// or wss://)",
      ["ws"] = "missing scheme (expected ws:// or wss://)",
      ["://h"] = "missing scheme (expected ws:// or wss://)",
      ["w-s+x.1://h/"] = "unsupported scheme 'w-s+x.1'",
      ["ws:/"] = "expected '//' after the scheme",
    }
    for url, want in pairs(cases) do
      local ok, err = pcall(core.parse_url, url)
      assert.is_false(ok, url)
      assert.matches("invalid URL: " .. want, err, nil, true)
    end
  end)

  it("decodes percent-encoded userinfo and takes the scheme in any case", function()
    local u = core.parse_url("WSS://u%41%3a@H/")
    assert.is_true(u.secure)
    assert.are.equal("h", u.host)
    assert.are.equal("uA:", u.userinfo)
  end)
end)
