-- wss:// through OpenSSL with certificates generated at test time
-- (spec/helpers/certs.lua): verification on by default, CA file and CA
-- directory, self-signed and wrong-name failures, verify = false, SNI,
-- client certificates, large messages and clean close over TLS, no fd leak.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"
local certs = require("spec.helpers.certs").get()

local function tls_server(cert, key, extra)
  local opts = { tls = { cert = cert or certs.server_cert, key = key or certs.server_key } }
  for k, v in pairs(extra or {}) do
    if k == "tls" then
      for tk, tv in pairs(v) do opts.tls[tk] = tv end
    else
      opts[k] = v
    end
  end
  local upgrades = {}
  opts.on_upgrade = function(req) upgrades[#upgrades + 1] = req end
  local srv, events = net.echo_server(opts)
  return srv, events, upgrades
end

local function wss(srv, host, path)
  return "wss://" .. (host or "localhost") .. ":" .. srv.port .. (path or "/")
end

local function lower(s) return tostring(s):lower() end

-- net.connect with a 3 s timeout unless one is given (a failure must not
-- wait for the 30 s default).
local function connect(url, opts)
  opts = opts or {}
  if opts.timeout == nil then opts.timeout = 3 end
  return net.connect(url, opts)
end

describe("TLS (wss://)", function()
  after_each(function()
    net.cleanup()
  end)

  describe("with a CA-signed certificate", function()
    it("connects to wss://localhost with the CA file and echoes", function()
      local srv, events = tls_server()
      local c, err = connect(wss(srv, "localhost", "/secure"), { tls = { cafile = certs.ca } })
      assert(c, err)
      assert.are.equal("OPEN", c.ready_state)
      assert.are.equal("wss://localhost:" .. srv.port .. "/secure", c.url)
      assert.is_true(c:send("over tls"))
      local data, kind = c:receive(5)
      assert.are.equal("over tls", data)
      assert.are.equal("text", kind)
      assert.is_true(net.wait_until(function() return #net.select(events, "open") == 1 end))
      assert.are.equal("/secure", net.select(events, "open")[1][2].path)
    end)

    it("reuses one client context per TLS option set across connects", function()
      local testing = require "ws.testing"
      local srv = tls_server()
      -- the same CA file by a path no other test uses: an option set of its own
      local ca = certs.ca:gsub("([^/]+)$", "./%1")
      -- from none: a cache filled by earlier specs would be dropped when full
      testing.tls_client_cache_clear()
      local before = testing.tls_client_contexts()
      assert.are.equal(0, before)
      for i = 1, 3 do
        local c, err = connect(wss(srv), { tls = { cafile = ca } })
        assert(c, err)
        assert.is_true(c:send("n" .. i))
        assert.are.equal("n" .. i, (c:receive(5)))
        c:close()
      end
      assert.are.equal(before + 1, testing.tls_client_contexts())
      -- other options, another context; the failure of a bad one is not kept
      local c, err = connect(wss(srv), { tls = { cafile = ca, verify = false } })
      assert(c, err)
      c:close()
      assert.are.equal(before + 2, testing.tls_client_contexts())
      local ok, e = pcall(connect, wss(srv), { tls = { cafile = "/nonexistent/ca.pem" } })
      assert.is_false(ok and e ~= nil)
      assert.are.equal(before + 2, testing.tls_client_contexts())
      -- and the cached context still verifies: a self-signed server fails
      local srv2 = tls_server(certs.self_cert, certs.self_key)
      local bad, berr = connect(wss(srv2), { tls = { cafile = ca } })
      assert.is_nil(bad)
      assert.matches("verify failed", berr)
      assert.are.equal(before + 2, testing.tls_client_contexts())
    end)

    it("connects to wss://127.0.0.1 (IP address in the certificate's SAN)", function()
      local srv = tls_server()
      local c, err = connect(wss(srv, "127.0.0.1"), { tls = { cafile = certs.ca, verify = true } })
      assert(c, err)
      assert.is_true(c:send("\1\2\3", "binary"))
      local data, kind = c:receive(5)
      assert.are.equal("\1\2\3", data)
      assert.are.equal("binary", kind)
    end)

    it("connects with a CA directory (capath)", function()
      if not certs.capath then pending("openssl rehash is not available") return end
      local srv = tls_server()
      local c, err = connect(wss(srv, "localhost"), { tls = { capath = certs.capath } })
      assert(c, err)
      assert.are.equal("OPEN", c.ready_state)
    end)

    it("connects to a TLS echo server in another process", function()
      local child, port = net.spawn_echo_server("tls", certs.server_cert, certs.server_key)
      local c, err = connect("wss://localhost:" .. port .. "/remote", { tls = { cafile = certs.ca } })
      assert(c, err)
      local big = net.payload(300000, "binary")
      assert.is_true(c:send(big, "binary"))
      local data, kind = c:receive(10)
      assert.are.equal("binary", kind)
      assert.is_true(data == big, "300 kB message differs")
      c:close(4200, "bye child")
      assert.are.equal("closed", select(2, c:receive(5)))
      child:wait_output("CLOSE 4200", 5)
      assert.matches("OPEN /remote\n", child:output())
      assert.matches("CLOSE 4200 true bye child\n", child:output())
    end)

    it("connects over IPv6 to wss://[::1]", function()
      local ok, srv = pcall(net.listen, {
        host = "::1", tls = { cert = certs.server_cert, key = certs.server_key },
        on_message = function(sc, data) sc:send(data) end,
      })
      if not ok then pending("no IPv6 loopback: " .. tostring(srv)) return end
      local c, err = connect("wss://[::1]:" .. srv.port .. "/", { tls = { cafile = certs.ca } })
      assert(c, err)
      assert.are.equal("::1", c.remote_address)
      assert.is_true(c:send("v6"))
      assert.are.equal("v6", (c:receive(5)))
    end)

    it("sends SNI: the server sees the host name", function()
      local srv, _, upgrades = tls_server()
      assert(connect(wss(srv, "localhost"), { tls = { cafile = certs.ca } }))
      assert.are.equal(1, #upgrades)
      assert.are.equal("localhost", upgrades[1].server_name or upgrades[1].tls_server_name)
    end)

    it("sends no SNI for an IP address (RFC 6066)", function()
      local srv, _, upgrades = tls_server()
      assert(connect(wss(srv, "127.0.0.1"), { tls = { cafile = certs.ca } }))
      assert.are.equal(1, #upgrades)
      assert.is_nil(upgrades[1].server_name or upgrades[1].tls_server_name)
    end)

    it("carries large messages and bursts intact", function()
      local srv = tls_server()
      local c = assert(connect(wss(srv), { tls = { cafile = certs.ca } }))
      local big = net.payload(1024 * 1024 + 17, "binary")
      assert.is_true(c:send(big, "binary"))
      local data = c:receive(20)
      local same, why = net.same(big, data)
      assert(same, why)
      for i = 1, 300 do assert.is_true(c:send("tls " .. i)) end
      for i = 1, 300 do assert.are.equal("tls " .. i, (c:receive(5))) end
    end)

    it("closes cleanly over TLS with code and reason", function()
      local srv, events = tls_server()
      local c = assert(connect(wss(srv), { tls = { cafile = certs.ca } }))
      c:close(4100, "tls bye")
      assert.is_true(net.wait_until(function() return #net.select(events, "close") == 1 end))
      local cl = net.select(events, "close")[1]
      assert.are.same({ 4100, "tls bye", true }, { cl[3], cl[4], cl[5] })
      assert.is_true(net.wait_until(function() return c.ready_state == "CLOSED" end))
    end)

    it("leaks no fds over 40 TLS connect/close cycles", function()
      local srv = tls_server()
      local url = wss(srv)
      -- one warm-up cycle (OpenSSL loads the CA file, etc.)
      local c0 = assert(connect(url, { tls = { cafile = certs.ca } }))
      c0:close()
      assert.is_true(net.wait_until(function() return c0.ready_state == "CLOSED" and #srv:clients() == 0 end))
      collectgarbage()
      collectgarbage()
      local before = net.settled_fd_count()
      for _ = 1, 40 do
        local c = assert(connect(url, { tls = { cafile = certs.ca } }))
        assert.is_true(c:send("x"))
        assert.are.equal("x", (c:receive(5)))
        c:close()
        local data, why = c:receive(5)
        assert.is_nil(data)
        assert.are.equal("closed", why)
      end
      c0 = nil -- luacheck: ignore 311
      collectgarbage()
      collectgarbage()
      local after
      net.wait_until(function()
        after = net.fd_count()
        return after <= before and #srv:clients() == 0
      end, 3)
      assert.are.equal(before, after)
    end)
  end)

  describe("verification failures", function()
    it("rejects a self-signed certificate without a CA file: 'verify failed'", function()
      local srv, _, upgrades = tls_server(certs.self_cert, certs.self_key)
      local c, err = connect(wss(srv), { timeout = 5 })
      assert.is_nil(c)
      assert.is_string(err)
      assert.matches("verify failed", lower(err))
      assert.are.equal(0, #upgrades)
    end)

    it("rejects a self-signed certificate in callback style: on_error, on_close 1006, no on_open", function()
      local srv = tls_server(certs.self_cert, certs.self_key)
      local log = {}
      local c = connect(wss(srv), {
        on_open = function() log[#log + 1] = "open" end,
        on_error = function(_, err) log[#log + 1] = "error " .. tostring(err) end,
        on_close = function(_, code, _, was_clean) log[#log + 1] = "close " .. code .. " " .. tostring(was_clean) end,
      })
      assert.are.equal("CONNECTING", c.ready_state)
      assert.is_true(net.wait_until(function() return #log >= 2 end))
      net.run_for(0.1)
      assert.are.equal(2, #log)
      assert.matches("^error .*verify failed", lower(log[1]))
      assert.are.equal("close 1006 false", log[2])
      assert.are.equal("CLOSED", c.ready_state)
    end)

    it("rejects a certificate for another host name (CA-signed, wrong name)", function()
      local srv, _, upgrades = tls_server(certs.wrong_cert, certs.wrong_key)
      local c, err = connect(wss(srv, "localhost"), { tls = { cafile = certs.ca } })
      assert.is_nil(c)
      assert.is_string(err)
      local e = lower(err)
      assert.is_truthy(e:find("hostname", 1, true) or e:find("host name", 1, true) or e:find("mismatch", 1, true)
        or e:find("localhost", 1, true), "error does not mention the name: " .. err)
      assert.are.equal(0, #upgrades)
    end)

    it("rejects a certificate that does not cover the IP address", function()
      local srv = tls_server(certs.wrong_cert, certs.wrong_key)
      local c, err = connect(wss(srv, "127.0.0.1"), { tls = { cafile = certs.ca } })
      assert.is_nil(c)
      assert.is_string(err)
    end)

    it("rejects the CA-signed certificate when only another CA is trusted", function()
      local srv = tls_server()
      local c, err = connect(wss(srv), { tls = { cafile = certs.self_cert } })
      assert.is_nil(c)
      assert.matches("verify failed", lower(err))
    end)
  end)

  describe("verify = false", function()
    it("connects to a self-signed server", function()
      local srv = tls_server(certs.self_cert, certs.self_key)
      local c, err = connect(wss(srv), { tls = { verify = false } })
      assert(c, err)
      assert.is_true(c:send("insecure but working"))
      assert.are.equal("insecure but working", (c:receive(5)))
    end)

    it("connects to a server with the wrong name", function()
      local srv = tls_server(certs.wrong_cert, certs.wrong_key)
      local c, err = connect(wss(srv, "127.0.0.1"), { tls = { verify = false } })
      assert(c, err)
      assert.are.equal("OPEN", c.ready_state)
    end)
  end)

  describe("client certificates", function()
    local function mtls_server()
      return tls_server(nil, nil, { tls = { cafile = certs.ca, verify = true } })
    end

    it("a server that requires one refuses a client without one", function()
      local srv, events, upgrades = mtls_server()
      local c, err = connect(wss(srv), { tls = { cafile = certs.ca }, timeout = 5 })
      assert.is_nil(c)
      assert.is_string(err)
      net.run_for(0.1)
      assert.are.equal(0, #upgrades)
      assert.are.equal(0, #net.select(events, "open"))
    end)

    it("a server that requires one accepts a client with a CA-signed one", function()
      local srv, events, upgrades = mtls_server()
      local c, err = connect(wss(srv), {
        tls = { cafile = certs.ca, cert = certs.client_cert, key = certs.client_key },
      })
      assert(c, err)
      assert.is_true(c:send("authenticated"))
      assert.are.equal("authenticated", (c:receive(5)))
      assert.are.equal(1, #upgrades)
      assert.are.equal(1, #net.select(events, "open"))
    end)

    it("a server that requires one refuses a self-signed client certificate", function()
      local srv, _, upgrades = mtls_server()
      local c, err = connect(wss(srv), {
        tls = { cafile = certs.ca, cert = certs.self_cert, key = certs.self_key }, timeout = 5,
      })
      assert.is_nil(c)
      assert.is_string(err)
      assert.are.equal(0, #upgrades)
    end)
  end)

  describe("mismatched transports", function()
    it("ws:// to a TLS server fails with an error", function()
      local srv, events = tls_server()
      local c, err = connect("ws://127.0.0.1:" .. srv.port .. "/", { timeout = 3 })
      assert.is_nil(c)
      assert.is_string(err)
      assert.are.equal(0, #net.select(events, "open"))
    end)

    it("wss:// to a plain server fails with an error", function()
      local srv, events = net.echo_server()
      local c, err = connect("wss://127.0.0.1:" .. srv.port .. "/", { tls = { cafile = certs.ca }, timeout = 3 })
      assert.is_nil(c)
      assert.is_string(err)
      assert.are.equal(0, #net.select(events, "open"))
    end)
  end)
end)
