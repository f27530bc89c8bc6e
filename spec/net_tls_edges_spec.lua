-- TLS edges a well-behaved client never shows: a raw TCP peer that speaks
-- plain HTTP to a wss:// server, one that sends half a ClientHello and
-- resets, one that connects and stays silent until the server closes; a
-- message large enough to fill the socket buffer in both directions; a
-- server whose client-certificate trust store does not load; a client
-- context that fails to be made while the context cache is full.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"
local certs = require("spec.helpers.certs").get()

local function tls_server(extra)
  local opts = { tls = { cert = certs.server_cert, key = certs.server_key } }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return net.echo_server(opts)
end

-- A good client still gets its echo.
local function still_serves(srv)
  local c, err = net.connect("wss://localhost:" .. srv.port .. "/", { tls = { cafile = certs.ca }, timeout = 5 })
  assert(c, err)
  assert.is_true(c:send("still here"))
  assert.are.equal("still here", (c:receive(5)))
  c:close()
end

describe("TLS edges", function()
  after_each(function()
    net.cleanup()
  end)

  it("a plain HTTP request to a wss:// server is dropped without an open, and the server goes on", function()
    local srv, events = tls_server()
    local raw = assert(net.raw_connect(srv.port))
    raw:send("GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\r\n")
    assert.is_true(raw:wait_eof(5))
    -- at most a TLS alert came back, never HTTP
    assert.is_nil(raw:data():find("HTTP", 1, true))
    assert.are.equal(0, #net.select(events, "open"))
    still_serves(srv)
  end)

  it("half a ClientHello then a reset, or silence until the server closes, cost nothing", function()
    local srv, events = tls_server()
    local half = assert(net.raw_connect(srv.port))
    half:send("\22\3\1\2\0\1\0\1\252\3\3")
    local silent = assert(net.raw_connect(srv.port))
    still_serves(srv)
    half:reset()
    still_serves(srv)
    assert.are.equal(2, #net.select(events, "open"))
    srv:close()
    assert.is_true(silent:wait_eof(5))
    assert.are.equal(0, #silent:data())
  end)

  it("echoes 8 MiB each way (both sides' socket buffers fill)", function()
    local srv = tls_server { max_message = 16 * 1024 * 1024 }
    local c, err = net.connect("wss://localhost:" .. srv.port .. "/",
      { tls = { cafile = certs.ca }, timeout = 10, max_message = 16 * 1024 * 1024 })
    assert(c, err)
    local big = net.payload(8 * 1024 * 1024, "binary")
    assert.is_true(c:send(big, "binary"))
    local back, kind = c:receive(60)
    assert.are.equal("binary", kind)
    assert.is_true(back == big, "the echo differs")
    c:close()
  end)

  it("a client context that cannot be made leaves a full context cache as it is", function()
    local testing = require "ws.testing"
    testing.tls_client_cache_clear()
    -- 16 option sets (the cache's size), each made by a connect to a closed port
    for i = 1, 16 do
      local c = net.connect("wss://127.0.0.1:1/", { tls = { cafile = certs.ca, alpn = "p" .. i }, timeout = 5 })
      assert.is_nil(c)
    end
    assert.are.equal(16, testing.tls_client_contexts())
    local ok, err = pcall(net.connect, "wss://127.0.0.1:1/", { tls = { cafile = certs.ca, ciphers = "NONE-SUCH" } })
    assert.is_false(ok)
    assert.matches("no usable cipher", err, nil, true)
    assert.are.equal(16, testing.tls_client_contexts())
    -- a 17th set that works starts a new cache
    assert.is_nil((net.connect("wss://127.0.0.1:1/", { tls = { cafile = certs.ca, alpn = "p17" }, timeout = 5 })))
    assert.are.equal(1, testing.tls_client_contexts())
  end)

  it("a server requiring client certificates from a CA file that does not load fails to listen", function()
    local ok, err = pcall(tls_server, { tls = { cert = certs.server_cert, key = certs.server_key, verify = true,
      cafile = "/nonexistent/ca.pem" } })
    assert.is_false(ok)
    assert.matches("ws.listen: TLS: cannot load CA file '/nonexistent/ca.pem'", err, nil, true)
  end)
end)
