-- What the server does with requests it does not accept: on_upgrade
-- rejections (status, reason, the client's error and response table),
-- on_upgrade's view of the request and its choice of subprotocol, plain HTTP
-- answered by on_request (or 426 without it), garbage (400), oversized heads
-- (431), a wrong version (426) and half handshakes cut by handshake_timeout.
-- Raw requests go through the raw TCP helper.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"

describe("server rejections and plain HTTP", function()
  after_each(function()
    net.cleanup()
  end)

  it("answers a valid raw upgrade with 101 and the RFC 6455 accept key", function()
    local srv = net.echo_server()
    local raw = assert(net.raw_connect(srv.port))
    local resp = assert(raw:handshake(srv.port, "/raw"))
    assert.are.equal(101, resp.status)
    assert.are.equal("websocket", resp.headers["upgrade"]:lower())
    assert.matches("upgrade", resp.headers["connection"]:lower())
    assert.are.equal(net.ACCEPT, resp.headers["sec-websocket-accept"])
    raw:send_frame(1, "raw hello")
    local f = raw:next_frame(3)
    assert.are.same({ 1, "raw hello", false }, { f and f.opcode, f and f.payload, f and f.masked })
  end)

  describe("on_upgrade", function()
    it("rejects with 403: the client gets nil, the error and the response", function()
      local opened = 0
      local srv = net.listen {
        on_upgrade = function() return false, 403, "go away" end,
        on_open = function() opened = opened + 1 end,
      }
      local c, err, resp = net.connect(net.url(srv, "/private"))
      assert.is_nil(c)
      assert.are.equal("handshake failed: expected status 101, got 403", err)
      assert.is_table(resp)
      assert.are.equal(403, resp.status)
      assert.is_table(resp.headers)
      assert.is_string(resp.body)
      net.run_for(0.05)
      assert.are.equal(0, opened)
      assert.are.equal(0, #srv:clients())
    end)

    it("its results come back from the call itself: no helper chunk in the registry", function()
      local srv = net.listen { on_upgrade = function() return false, 409, "taken", { ["X-Why"] = "busy" } end }
      local r = net.http_exchange(srv.port, net.upgrade_request(srv.port, "/"))
      assert.are.equal(409, r and r.status)
      assert.are.equal("busy", r.headers["x-why"])
      assert.is_nil(debug.getregistry()["ws.core.collect"])
    end)

    it("rejects with 403 when no status is given", function()
      local srv = net.listen { on_upgrade = function() return false end }
      local c, err, resp = net.connect(net.url(srv))
      assert.is_nil(c)
      assert.matches("expected status 101, got 403", err)
      assert.are.equal(403, resp and resp.status)
    end)

    it("rejects with another status and the reason reaches the raw response", function()
      local srv = net.listen { on_upgrade = function() return false, 401, "token please" end }
      local c, err, resp = net.connect(net.url(srv))
      assert.is_nil(c)
      assert.are.equal("handshake failed: expected status 101, got 401", err)
      assert.are.equal(401, resp and resp.status)
      local r = net.http_exchange(srv.port, net.upgrade_request(srv.port, "/"))
      assert.is_table(r)
      assert.are.equal(401, r.status)
      assert.is_truthy((r.reason .. " " .. r.body):find("token please", 1, true))
    end)

    it("rejects in callback style: on_error with the status, on_close 1006, no on_open", function()
      local srv = net.listen { on_upgrade = function() return false, 403, "no" end }
      local log = {}
      local c = net.connect(net.url(srv), {
        on_open = function() log[#log + 1] = "open" end,
        on_error = function(_, err) log[#log + 1] = "error " .. tostring(err) end,
        on_close = function(_, code, _, was_clean) log[#log + 1] = "close " .. code .. " " .. tostring(was_clean) end,
      })
      assert.is_true(net.wait_until(function() return #log >= 2 end))
      net.run_for(0.05)
      assert.are.same({ "error handshake failed: expected status 101, got 403", "close 1006 false" }, log)
      assert.are.equal("CLOSED", c.ready_state)
    end)

    it("sees method, path, query, headers, origin, offered protocols and the peer", function()
      local seen
      local srv = net.listen {
        protocols = { "p2" },
        on_upgrade = function(req) seen = req end,
      }
      local c = assert(net.connect("ws://127.0.0.1:" .. srv.port .. "/room/7?user=ann&x=%20", {
        protocols = { "p1", "p2" }, origin = "https://app.example", headers = { ["X-Custom"] = "v" },
      }))
      assert.is_table(seen)
      assert.are.equal("GET", seen.method)
      assert.are.equal("/room/7", seen.path)
      assert.are.equal("user=ann&x=%20", seen.query)
      assert.are.equal("v", seen.headers["x-custom"])
      assert.are.equal("websocket", seen.headers["upgrade"]:lower())
      assert.are.equal("https://app.example", seen.origin)
      assert.are.same({ "p1", "p2" }, seen.protocols)
      assert.are.equal("127.0.0.1", seen.peer_address)
      assert.is_true(seen.peer_port > 0 and seen.peer_port < 65536)
      assert.are.equal("p2", c.protocol)
    end)

    it("picks the subprotocol when it returns a string", function()
      local srv, events = net.echo_server {
        protocols = { "a", "b", "c" },
        keep_request = true,
        on_upgrade = function() return "c" end,
      }
      local c = assert(net.connect(net.url(srv), { protocols = { "a", "b", "c" } }))
      assert.are.equal("c", c.protocol)
      assert.is_true(net.wait_until(function() return #net.select(events, "open") == 1 end))
      local sc = net.select(events, "open")[1][2]
      assert.are.equal("c", sc.protocol)
      assert.are.same({ "a", "b", "c" }, sc.request.protocols)
    end)

    it("accepts when it returns true, choosing the client's first supported offer", function()
      local srv = net.echo_server {
        protocols = { "y", "x" },
        on_upgrade = function() return true end,
      }
      local c = assert(net.connect(net.url(srv), { protocols = { "z", "x", "y" } }))
      assert.are.equal("x", c.protocol)
    end)

    it("a server without protocols accepts without a subprotocol", function()
      local srv = net.echo_server()
      local c = assert(net.connect(net.url(srv), { protocols = { "chat" } }))
      assert.is_true(c.protocol == nil or c.protocol == "", "protocol " .. tostring(c.protocol))
      assert.is_nil(c.headers["sec-websocket-protocol"])
    end)
  end)

  describe("plain HTTP", function()
    it("is answered by on_request with status, headers and body, then closed", function()
      local seen = {}
      local srv = net.listen {
        on_request = function(req, res)
          seen[#seen + 1] = req
          res.status = 200
          res.headers = { ["Content-Type"] = "text/plain", ["X-Test"] = "yes" }
          res.body = "ok\n"
        end,
      }
      local r, text, eof = net.http_exchange(srv.port,
        "GET /health?verbose=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: spec\r\n\r\n")
      assert.is_true(eof, "the server did not close the connection")
      assert.is_table(r, "no HTTP response: " .. tostring(text))
      assert.are.equal(200, r.status)
      assert.are.equal("text/plain", r.headers["content-type"])
      assert.are.equal("yes", r.headers["x-test"])
      assert.are.equal("3", r.headers["content-length"])
      assert.are.equal("ok\n", r.body)
      assert.are.equal(1, #seen)
      assert.are.equal("GET", seen[1].method)
      assert.are.equal("/health", seen[1].path)
      assert.are.equal("verbose=1", seen[1].query)
      assert.are.equal("spec", seen[1].headers["user-agent"])
    end)

    it("on_request: status defaults to 200; other statuses and empty bodies work", function()
      local srv = net.listen {
        on_request = function(req, res)
          if req.path == "/missing" then
            res.status = 404
            res.body = "nope"
          elseif req.path == "/empty" then
            res.status = 204
          else
            res.body = "default"
          end
        end,
      }
      local r = net.http_exchange(srv.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.are.same({ 200, "default", "7" }, { r.status, r.body, r.headers["content-length"] })
      r = net.http_exchange(srv.port, "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.are.same({ 404, "nope" }, { r.status, r.body })
      r = net.http_exchange(srv.port, "GET /empty HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.are.same({ 204, "" }, { r.status, r.body })
    end)

    it("on_request and WebSocket upgrades share the port", function()
      local srv = net.echo_server {
        on_request = function(_, res) res.body = "page" end,
      }
      local r = net.http_exchange(srv.port, "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.are.equal("page", r.body)
      local c = assert(net.connect(net.url(srv)))
      assert.is_true(c:send("still a websocket server"))
      assert.are.equal("still a websocket server", (c:receive(5)))
    end)

    it("without on_request gets 426 with Sec-WebSocket-Version: 13, then closed", function()
      local srv = net.echo_server()
      local r, text, eof = net.http_exchange(srv.port, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
      assert.is_true(eof)
      assert.is_table(r, "no HTTP response: " .. tostring(text))
      assert.are.equal(426, r.status)
      assert.are.equal("13", r.headers["sec-websocket-version"])
    end)
  end)

  describe("hostile input", function()
    it("answers text garbage with 400 and closes", function()
      local srv = net.echo_server()
      local r, text, eof = net.http_exchange(srv.port, "this is not http at all\r\n\r\n")
      assert.is_true(eof)
      assert.matches("^HTTP/1%.1 400", text)
      assert.are.equal(400, r.status)
    end)

    it("answers binary garbage with 400 and closes", function()
      local srv = net.echo_server()
      local _, text, eof = net.http_exchange(srv.port, "\22\3\1\0\165\1\0\0\161\3\3\0\255\r\n\r\n")
      assert.is_true(eof)
      assert.matches("^HTTP/1%.1 400", text)
    end)

    it("answers garbage that never ends a line (a TLS ClientHello) with 400 at once", function()
      local srv = net.echo_server()
      local t0 = net.now()
      local _, text, eof = net.http_exchange(srv.port, "\22\3\1\0\165\1\0\0\161\3\3", 3)
      assert.is_true(eof, "the server did not close the connection")
      assert.is_true(net.now() - t0 < 2, "closed after " .. (net.now() - t0) .. " s")
      assert.matches("^HTTP/1%.1 400", text)
    end)

    it("answers a wrong Sec-WebSocket-Version with 426 and Sec-WebSocket-Version: 13", function()
      local srv = net.echo_server()
      local req = net.upgrade_request(srv.port, "/"):gsub("Sec%-WebSocket%-Version: 13", "Sec-WebSocket-Version: 8")
      local r, text = net.http_exchange(srv.port, req)
      assert.is_table(r, "no HTTP response: " .. tostring(text))
      assert.are.equal(426, r.status)
      assert.are.equal("13", r.headers["sec-websocket-version"])
    end)

    it("answers an upgrade without a key with 400", function()
      local srv = net.echo_server()
      local req = net.upgrade_request(srv.port, "/"):gsub("Sec%-WebSocket%-Key: [^\r]*\r\n", "")
      local r = net.http_exchange(srv.port, req)
      assert.are.equal(400, r and r.status)
    end)

    it("answers an oversized head with 431", function()
      local srv = net.echo_server()
      local req = net.upgrade_request(srv.port, "/", "X-Big: " .. string.rep("a", 10000) .. "\r\n")
      local r, text = net.http_exchange(srv.port, req)
      assert.is_table(r, "no HTTP response: " .. tostring(text):sub(1, 200))
      assert.are.equal(431, r.status)
    end)

    it("cuts a client that sends half a handshake and stalls, after handshake_timeout", function()
      local srv, events = net.echo_server { handshake_timeout = 0.3 }
      local raw = assert(net.raw_connect(srv.port))
      local t0 = net.now()
      raw:send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
      assert.is_true(raw:wait_eof(4), "the connection was not closed")
      local elapsed = net.now() - t0
      assert.is_true(elapsed >= 0.25, "closed after only " .. elapsed .. " s")
      assert.is_true(elapsed < 3, "closed after " .. elapsed .. " s")
      assert.are.equal(0, #net.select(events, "open"))
    end)

    it("cuts a client that connects and sends nothing, after handshake_timeout", function()
      local srv = net.echo_server { handshake_timeout = 0.3 }
      local raw = assert(net.raw_connect(srv.port))
      local t0 = net.now()
      assert.is_true(raw:wait_eof(4), "the connection was not closed")
      assert.is_true(net.now() - t0 >= 0.25)
    end)

    it("keeps serving after hostile clients", function()
      local srv = net.echo_server { handshake_timeout = 0.3 }
      local stalled = assert(net.raw_connect(srv.port))
      stalled:send("GET / HT")
      net.http_exchange(srv.port, "\0\0\0\0\r\n\r\n")
      net.http_exchange(srv.port, "GET / HTTP/1.1\r\n" .. string.rep("X: y\r\n", 200) .. "\r\n")
      local c = assert(net.connect(net.url(srv)))
      assert.is_true(c:send("fine"))
      assert.are.equal("fine", (c:receive(5)))
      assert.is_true(stalled:wait_eof(4))
      assert.are.equal("OPEN", c.ready_state)
    end)
  end)
end)
