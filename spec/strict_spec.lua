-- Where the RFCs are strict, lua-ws is strict: a client refuses a 101 that
-- claims HTTP/1.0 (RFC 7230 6.7), a server refuses a Sec-WebSocket-Key whose
-- base64 padding bits are set (RFC 4648 3.5, RFC 6455 4.2.1), a compressed
-- message with bytes after its final deflate block fails with 1007 (RFC 7692
-- 7.2.3.4 allows one 0x00 octet there), a head over max_head gets 431 only
-- when it is an HTTP request (414 for a request line that long, 400 for
-- garbage), on_request answers carry the standard reason phrases (RFC 9110
-- 15) and no content with 204/304, and what on_upgrade or on_request
-- return is checked: anything unexpected answers 500 and raises out of
-- ws.run / ws.step instead of being taken as an accept.
-- Lua 5.1 compatible.

local core = require "ws.core"
local ws = require "ws"
local util = require "spec.helpers.session_util"
local net = require "spec.helpers.net_util"

local hex = util.hex
local unpack = table.unpack or unpack

local KEY = "dGhlIHNhbXBsZSBub25jZQ=="
local ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

local function lines(t)
  return table.concat(t, "\r\n") .. "\r\n\r\n"
end

local function upgrade(key)
  return lines {
    "GET /chat HTTP/1.1", "Host: example.com", "Upgrade: websocket", "Connection: Upgrade",
    "Sec-WebSocket-Key: " .. key, "Sec-WebSocket-Version: 13",
  }
end

-- Step the loop until the raw client sees EOF, catching what ws.step
-- raises; returns the parsed response, the raw text and the errors.
local function exchange(port, request)
  local raw = assert(net.raw_connect(port))
  raw:send(request)
  local errors = {}
  local deadline = net.now() + 5
  while net.now() < deadline do
    local ok, err = pcall(ws.step, 0.01)
    if not ok then errors[#errors + 1] = tostring(err) end
    raw:poll()
    if raw.eof then break end
  end
  local text = raw:data()
  raw:close()
  return net.parse_http(text), text, errors
end

-- ws.connect in callback style, stepping the loop (catching its errors)
-- until the client is closed; returns the client, its log and the errors.
local function connect_catching(url, opts)
  local log = {}
  opts = opts or {}
  opts.on_open = function() log[#log + 1] = "open" end
  opts.on_error = function(_, e) log[#log + 1] = "error " .. tostring(e) end
  opts.on_close = function(_, code) log[#log + 1] = "close " .. code end
  local c = net.connect(url, opts)
  local errors = {}
  local deadline = net.now() + 5
  while net.now() < deadline and c.ready_state ~= "CLOSED" and c.ready_state ~= "OPEN" do
    local ok, err = pcall(ws.step, 0.01)
    if not ok then errors[#errors + 1] = tostring(err) end
  end
  return c, log, errors
end

describe("strict handshakes", function()
  after_each(function()
    net.cleanup()
  end)

  describe("the client", function()
    local function client()
      return util.set_role(core.session { role = "client", url = "ws://example.com/chat", key = KEY }, "client")
    end

    it("refuses a 101 that claims HTTP/1.0", function()
      local c = client()
      local evs = util.feed(c, lines {
        "HTTP/1.0 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
        "Sec-WebSocket-Accept: " .. ACCEPT,
      })
      assert.are.same({ "error", "close" }, util.kinds(evs))
      assert.are.equal("a 101 response must be HTTP/1.1, got HTTP/1.0", evs[1][2])
      assert.are.equal("CLOSED", c:state())
    end)

    it("still reports the status of a non-101 HTTP/1.0 answer", function()
      local c = client()
      local evs = util.feed(c, lines { "HTTP/1.0 403 Forbidden", "Content-Length: 0" })
      assert.are.same({ "error", "close" }, util.kinds(evs))
      assert.are.equal("expected status 101, got 403", evs[1][2])
      assert.are.equal(403, evs[1][3])
    end)

    it("accepts the same 101 over HTTP/1.1", function()
      local c = client()
      local evs = util.feed(c, lines {
        "HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
        "Sec-WebSocket-Accept: " .. ACCEPT,
      })
      assert.are.same({ "open" }, util.kinds(evs))
    end)
  end)

  describe("the server's Sec-WebSocket-Key check", function()
    local ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

    it("accepts exactly the 4 canonical last characters (padding bits zero) and 400s the 60 others", function()
      local accepted = {}
      for i = 1, 64 do
        local ch = ALPHABET:sub(i, i)
        local s = util.set_role(core.session { role = "server" }, "server")
        local evs = util.feed(s, upgrade(KEY:sub(1, 21) .. ch .. "=="))
        if evs[1][1] == "request" then
          accepted[#accepted + 1] = ch
        else
          assert.are.same({ "error", "close" }, util.kinds(evs))
          assert.are.equal(400, evs[1][3])
          assert.matches("invalid Sec%-WebSocket%-Key", evs[1][2])
          assert.matches("^HTTP/1%.1 400 Bad Request\r\n", s:output())
        end
      end
      assert.are.same({ "A", "Q", "g", "w" }, accepted)
    end)

    it("answers a non-canonical key over TCP with 400 and opens nothing", function()
      local srv, events = net.echo_server()
      local req = net.upgrade_request(srv.port, "/"):gsub(net.KEY, "dGhlIHNhbXBsZSBub25jZR==")
      local r, text, eof = net.http_exchange(srv.port, req)
      assert.is_true(eof)
      assert.is_table(r, "no HTTP response: " .. tostring(text))
      assert.are.equal(400, r.status)
      assert.are.equal("Bad Request", r.reason)
      assert.matches("invalid Sec%-WebSocket%-Key", r.body)
      assert.are.equal(0, #net.select(events, "open"))
    end)
  end)

  describe("a head over max_head", function()
    it("that is not HTTP (no request line) gets 400", function()
      local srv = net.echo_server()
      local r, text = net.http_exchange(srv.port, string.rep("A", 9000))
      assert.is_table(r, "no HTTP response: " .. tostring(text):sub(1, 100))
      assert.are.equal(400, r.status)
    end)

    it("whose first line is not a request line gets 400", function()
      local srv = net.echo_server()
      local r = net.http_exchange(srv.port, "HELLO THERE\r\n" .. string.rep("x: y\r\n", 2000))
      assert.are.equal(400, r and r.status)
    end)

    it("still in a request target gets 414", function()
      local srv = net.echo_server()
      local r = net.http_exchange(srv.port, "GET /" .. string.rep("a", 9000))
      assert.are.equal(414, r and r.status)
      assert.are.equal("URI Too Long", r and r.reason)
    end)

    it("of an HTTP request with too many header bytes gets 431", function()
      local srv = net.echo_server()
      local big = "X-Big: " .. string.rep("a", 9000) .. "\r\n"
      local r = net.http_exchange(srv.port, net.upgrade_request(srv.port, "/", big))
      assert.are.equal(431, r and r.status)
      assert.are.equal("Request Header Fields Too Large", r and r.reason)
    end)

    it("is judged the same by the session fed byte by byte", function()
      for _, case in ipairs {
        { string.rep("A", 9000), 400 },
        { "GET /" .. string.rep("a", 9000), 414 },
        { "GET / HTTP/1.1\r\nX: " .. string.rep("a", 9000), 431 },
        { "GET / HTTP/1.0\r\nX: " .. string.rep("a", 9000), 400 },
      } do
        local s = util.set_role(core.session { role = "server" }, "server")
        local evs = util.feed_bytes(s, case[1])
        assert.are.same({ "error", "close" }, util.kinds(evs))
        assert.are.equal(case[2], evs[1][3])
      end
    end)
  end)
end)

describe("strict permessage-deflate: bytes after a final block", function()
  local function client()
    return util.client { compress = {} }
  end

  it("reads a final block alone and the RFC 7692 7.2.3.4 form (one 0x00 after it)", function()
    assert.are.same({ { "message", "Hello", "text" } }, util.feed(client(), hex("c1 07 f3 48 cd c9 c9 07 00")))
    assert.are.same({ { "message", "Hello", "text" } }, util.feed(client(), hex("c1 08 f3 48 cd c9 c9 07 00 00")))
  end)

  it("fails with 1007 on a second 0x00, any other byte, or a second deflate stream", function()
    for _, payload in ipairs {
      "f3 48 cd c9 c9 07 00 00 00",
      "f3 48 cd c9 c9 07 00 ff",
      "f3 48 cd c9 c9 07 00 f3 48 cd c9 c9 07 00",
    } do
      local c = client()
      local bytes = hex(payload)
      local evs = util.feed(c, hex("c1") .. string.char(#bytes) .. bytes)
      util.assert_fail(c, evs, 1007)
      assert.are.equal("data after the final deflate block", evs[1][2])
    end
  end)

  it("fails with 1007 when the extra bytes come in a continuation frame", function()
    local c = client()
    local evs = util.feed(c, hex("41 08 f3 48 cd c9 c9 07 00 00"))
    assert.are.same({}, evs)
    evs = util.feed(c, hex("80 01 41"))
    util.assert_fail(c, evs, 1007)
  end)

  it("keeps reading messages after a message ended with a final block (context takeover)", function()
    local c = client()
    local evs = util.feed(c, hex("c1 08 f3 48 cd c9 c9 07 00 00") .. hex("c1 08 f3 48 cd c9 c9 07 00 00"))
    assert.are.same({ { "message", "Hello", "text" }, { "message", "Hello", "text" } }, evs)
  end)
end)

describe("strict server answers", function()
  after_each(function()
    net.cleanup()
  end)

  describe("on_request", function()
    local function serve(status, body)
      return net.listen {
        on_request = function(_, res)
          res.status = status
          res.body = body
        end,
      }
    end

    it("sends the standard reason phrase for every status, and the class name for unregistered ones", function()
      for _, case in ipairs {
        { 200, "OK" }, { 201, "Created" }, { 202, "Accepted" }, { 206, "Partial Content" },
        { 299, "Success" }, { 301, "Moved Permanently" }, { 302, "Found" }, { 303, "See Other" },
        { 307, "Temporary Redirect" }, { 308, "Permanent Redirect" }, { 399, "Redirection" },
        { 404, "Not Found" }, { 410, "Gone" }, { 413, "Content Too Large" }, { 418, "Client Error" },
        { 451, "Unavailable For Legal Reasons" }, { 502, "Bad Gateway" }, { 504, "Gateway Timeout" },
        { 599, "Server Error" },
      } do
        local srv = serve(case[1], "x")
        local _, text = net.http_exchange(srv.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert.are.equal("HTTP/1.1 " .. case[1] .. " " .. case[2] .. "\r\n", text:match("^[^\n]*\n"))
        srv:close()
      end
    end)

    it("sends 204 and 304 without Content-Length, Content-Type or body", function()
      for _, status in ipairs { 204, 304 } do
        local srv = serve(status, nil)
        local r, text, eof = net.http_exchange(srv.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert.is_true(eof)
        assert.are.equal(status, r and r.status, text)
        assert.is_nil(r.headers["content-length"])
        assert.is_nil(r.headers["content-type"])
        assert.are.equal("", r.body)
        srv:close()
      end
    end)

    it("answers 500 and raises for a body with 204, a status outside 200..599, or the wrong types", function()
      for _, case in ipairs {
        { 204, "x", "a 204 response has no body" },
        { 101, "", "res.status must be an integer from 200 to 599, got 101" },
        { 600, "", "got 600" },
        { 200.5, "", "got 200.5" },
        { "200", "", "got string" },
        { 200, {}, "res.body must be a string, got table" },
      } do
        local srv = serve(case[1], case[2])
        local r, _, errors = exchange(srv.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert.are.equal(500, r and r.status)
        assert.are.equal(1, #errors)
        assert.is_truthy(errors[1]:find(case[3], 1, true), errors[1])
        srv:close()
      end
    end)
  end)

  describe("on_upgrade", function()
    it("that returns a number or another unexpected type answers 500, raises, and opens nothing", function()
      for _, value in ipairs { 403, function() end, 0 } do
        local opened = 0
        local srv = net.listen {
          on_upgrade = function() return value end,
          on_open = function() opened = opened + 1 end,
        }
        local c, log, errors = connect_catching(net.url(srv))
        assert.are.equal("CLOSED", c.ready_state)
        assert.are.same({ "error handshake failed: expected status 101, got 500", "close 1006" }, log)
        assert.are.equal(1, #errors)
        assert.matches("on_upgrade returned a " .. type(value), errors[1])
        assert.are.equal(0, opened)
        srv:close()
      end
    end)

    it("that raises answers 500 and the error leaves ws.step with its message", function()
      local srv = net.listen { on_upgrade = function() error("upgrade check broke") end }
      local c, log, errors = connect_catching(net.url(srv))
      assert.are.equal("CLOSED", c.ready_state)
      assert.are.equal("error handshake failed: expected status 101, got 500", log[1])
      assert.are.equal(1, #errors)
      assert.matches("upgrade check broke", errors[1])
      -- The server keeps serving.
      srv:close()
      srv = net.echo_server()
      local ok = assert(net.connect(net.url(srv)))
      assert.are.equal("OPEN", ok.ready_state)
    end)

    it("that rejects with a status outside 300..599 or a wrong reason answers 500 and raises", function()
      for _, case in ipairs {
        { { false, 200 }, "rejection status must be an integer from 300 to 599, got 200" },
        { { false, "403" }, "got string" },
        { { false, 403, 7 }, "rejection reason must be a string, got number" },
        { { false, 403, "no", "x" }, "rejection headers must be a table, got string" },
      } do
        local srv = net.listen { on_upgrade = function() return unpack(case[1]) end }
        local r, _, errors = exchange(srv.port, net.upgrade_request(srv.port, "/"))
        assert.are.equal(500, r and r.status)
        assert.are.equal(1, #errors)
        assert.is_truthy(errors[1]:find(case[2], 1, true), errors[1])
        srv:close()
      end
    end)

    it("rejects with headers: they reach the response", function()
      local srv = net.listen {
        on_upgrade = function() return false, 401, "token please", { ["WWW-Authenticate"] = "Bearer" } end,
      }
      local r, _, errors = exchange(srv.port, net.upgrade_request(srv.port, "/"))
      assert.are.same({}, errors)
      assert.are.equal(401, r and r.status)
      assert.are.equal("Unauthorized", r.reason)
      assert.are.equal("Bearer", r.headers["www-authenticate"])
      assert.matches("token please", r.body)
    end)

    it("rejecting with a header the handshake owns: rejected without the headers, and raises", function()
      local srv = net.listen {
        on_upgrade = function() return false, 403, "no", { Upgrade = "h2c", ["X-Fine"] = "1" } end,
      }
      local r, _, errors = exchange(srv.port, net.upgrade_request(srv.port, "/"))
      assert.are.equal(403, r and r.status)
      assert.is_nil(r.headers["x-fine"])
      assert.are.equal(1, #errors)
      assert.matches("on_upgrade: header 'Upgrade' is set by the handshake", errors[1])
    end)

    it("accepts with {protocol=, headers=}: the client sees both", function()
      local srv = net.echo_server {
        protocols = { "a", "b" },
        on_upgrade = function() return { protocol = "b", headers = { ["X-Server"] = "yes" } } end,
      }
      local c = assert(net.connect(net.url(srv), { protocols = { "a", "b" } }))
      assert.are.equal("b", c.protocol)
      assert.are.equal("yes", c.headers["x-server"])
      assert.is_true(c:send("hi"))
      assert.are.equal("hi", (c:receive(5)))
    end)

    it("accepting with a subprotocol that is not a token answers 500 and raises", function()
      local srv = net.listen { on_upgrade = function() return { protocol = "not a token" } end }
      local c, log, errors = connect_catching(net.url(srv), { protocols = { "x" } })
      assert.are.equal("CLOSED", c.ready_state)
      assert.are.equal("error handshake failed: expected status 101, got 500", log[1])
      assert.are.equal(1, #errors)
      assert.matches("on_upgrade: invalid subprotocol 'not a token'", errors[1])
    end)
  end)
end)
