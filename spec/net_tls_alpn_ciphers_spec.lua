-- The `alpn` and `ciphers` TLS options, seen from the other side by the
-- openssl command line (s_client against a lua-ws server, s_server against
-- a lua-ws client): what the server selects and the client offers, the
-- TLS 1.2 cipher actually negotiated, and the errors for bad lists.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"
local proc = require "spec.helpers.proc"
local certs = require("spec.helpers.certs").get()

local function tls_server(tls)
  tls.cert, tls.key = certs.server_cert, certs.server_key
  return net.echo_server { tls = tls }
end

-- openssl s_client to 127.0.0.1:port with extra arguments; it ends at the
-- end of its stdin (/dev/null) once the handshake is done.  Returns what it
-- printed (the ws loop runs meanwhile).
local function s_client(port, ...)
  local argv = { "openssl", "s_client", "-connect", "127.0.0.1:" .. port, "-CAfile", certs.ca }
  for i = 1, select("#", ...) do argv[#argv + 1] = select(i, ...) end
  local p = proc.start("openssl s_client", argv)
  assert.is_true(p:wait_exit(15), "s_client did not finish")
  return p:output() .. p:errors()
end

-- openssl s_server for one connection (-www answers HTTP, not WebSocket);
-- returns the process and its port.
local function s_server(...)
  local argv = { "openssl", "s_server", "-accept", "0", "-naccept", "1", "-www",
    "-cert", certs.server_cert, "-key", certs.server_key }
  for i = 1, select("#", ...) do argv[#argv + 1] = select(i, ...) end
  local p = proc.start("openssl s_server", argv)
  return p, tonumber(p:wait_for("ACCEPT [^\n]*:(%d+)\n"))
end

describe("TLS alpn and ciphers options", function()
  after_each(function()
    proc.stop_all()
    net.cleanup()
  end)

  describe("on a server", function()
    it("selects its first protocol that the client offers (names trimmed)", function()
      local srv = tls_server { alpn = " x-first , http/1.1" }
      local out = s_client(srv.port, "-alpn", "h2,http/1.1")
      assert.matches("ALPN protocol: http/1.1", out, nil, true)
      out = s_client(srv.port, "-alpn", "http/1.1,x-first")
      assert.matches("ALPN protocol: x-first", out, nil, true)
    end)

    it("completes the handshake without ALPN when nothing matches", function()
      local srv = tls_server { alpn = "http/1.1" }
      local out = s_client(srv.port, "-alpn", "h2")
      assert.matches("No ALPN negotiated", out, nil, true)
      assert.matches("Verify return code: 0 (ok)", out, nil, true)
    end)

    it("negotiates a TLS 1.2 cipher from its list only", function()
      local srv = tls_server { ciphers = "ECDHE-ECDSA-AES128-SHA" }
      local out = s_client(srv.port, "-tls1_2")
      assert.matches("Cipher is ECDHE-ECDSA-AES128-SHA", out, nil, true)
      -- a client offering none of them is refused
      out = s_client(srv.port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384")
      assert.is_nil(out:find("Cipher is ECDHE", 1, true), out)
      -- and without the option the server prefers a stronger one
      local plain = tls_server {}
      out = s_client(plain.port, "-tls1_2")
      assert.matches("Cipher is ECDHE-ECDSA-AES256-GCM-SHA384", out, nil, true)
    end)

    it("rejects a bad list with a clear error", function()
      assert.has_error(function() tls_server { ciphers = "NO-SUCH-CIPHER" } end,
        "ws.listen: TLS: no usable cipher in 'NO-SUCH-CIPHER'")
      assert.has_error(function() tls_server { alpn = "http/1.1,,h2" } end,
        "ws.listen: TLS: bad ALPN protocol list 'http/1.1,,h2'")
      -- a name longer than 255 bytes (the message is cut short)
      local ok, err = pcall(tls_server, { alpn = "h2," .. string.rep("p", 256) })
      assert.is_false(ok)
      assert.matches("ws.listen: TLS: bad ALPN protocol list 'h2,ppp", err, nil, true)
      ok, err = pcall(tls_server, { alpn = 11 })
      assert.is_false(ok)
      assert.matches("'alpn' must be a string", err, nil, true)
    end)
  end)

  describe("on a client", function()
    it("offers its protocols in its order", function()
      local server, port = s_server("-alpn", "http/1.1")
      local c, err = net.connect("wss://localhost:" .. port .. "/",
        { timeout = 10, tls = { cafile = certs.ca, alpn = "x-mine, http/1.1" } })
      -- s_server -www answers HTTP 200, not an upgrade
      assert.is_nil(c)
      assert.is_nil(tostring(err):find("TLS", 1, true), err)
      assert.is_true(server:wait_exit(10))
      assert.matches("ALPN protocols advertised by the client: x-mine, http/1.1", server:output(), nil, true)
      assert.matches("ALPN protocols selected: http/1.1", server:output(), nil, true)
    end)

    it("offers only its TLS 1.2 ciphers", function()
      local _, port = s_server("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA")
      local c, err = net.connect("wss://localhost:" .. port .. "/",
        { timeout = 10, tls = { cafile = certs.ca, ciphers = "ECDHE-ECDSA-AES256-GCM-SHA384" } })
      assert.is_nil(c)
      assert.matches("TLS handshake failed", err, nil, true)

      _, port = s_server("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA")
      c, err = net.connect("wss://localhost:" .. port .. "/",
        { timeout = 10, tls = { cafile = certs.ca, ciphers = "ECDHE-ECDSA-AES128-SHA" } })
      assert.is_nil(c)
      -- through TLS, then refused by HTTP
      assert.is_nil(tostring(err):find("TLS", 1, true), err)
    end)

    it("rejects a bad list with a clear error", function()
      local srv = tls_server {}
      local ok, err = pcall(net.connect, "wss://localhost:" .. srv.port .. "/",
        { timeout = 3, tls = { cafile = certs.ca, ciphers = "NO-SUCH-CIPHER" } })
      assert.is_false(ok)
      assert.matches("ws.connect: TLS: no usable cipher in 'NO-SUCH-CIPHER'", err, nil, true)
      ok, err = pcall(net.connect, "wss://localhost:" .. srv.port .. "/",
        { timeout = 3, tls = { cafile = certs.ca, alpn = "," } })
      assert.is_false(ok)
      assert.matches("ws.connect: TLS: bad ALPN protocol list ','", err, nil, true)
    end)
  end)
end)
