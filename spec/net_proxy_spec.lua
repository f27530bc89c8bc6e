-- HTTP CONNECT proxies: ws:// and wss:// through a real tinyproxy started
-- here (with and without Basic auth), TLS to the origin inside the tunnel
-- (SNI and verification use the origin's name), a proxy that refuses, one
-- that is not there, one that dies mid-tunnel, the proxy environment
-- variables (in a child process) and `proxy = false`.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"
local proc = require "spec.helpers.proc"
local tinyproxy = require "spec.helpers.tinyproxy"
local certs = require("spec.helpers.certs").get()
local ws = net.ws

local function connect(url, opts)
  opts = opts or {}
  if opts.timeout == nil then opts.timeout = 5 end
  return net.connect(url, opts)
end

describe("HTTP CONNECT proxy", function()
  if not tinyproxy.available() then
    error("tinyproxy is not installed: run scripts/deps.sh")
  end

  after_each(function()
    net.cleanup()
    tinyproxy.stop_all()
  end)

  describe("without authentication", function()
    local p
    before_each(function() p = tinyproxy.start() end)

    it("carries ws:// through the tunnel: echo, then a clean close from the client", function()
      local srv = net.echo_server()
      local c, err = connect(net.url(srv, "/chat?x=1"), { proxy = p.url })
      assert.is_nil(err)
      assert.equal("OPEN", c.ready_state)
      assert.equal(1, p:tunnels())
      assert.truthy(p:log():find("CONNECT 127.0.0.1:" .. srv.port, 1, true) or
        p:log():find("127.0.0.1:" .. srv.port, 1, true))
      assert.is_true(c:send("through"))
      assert.same({ "through", "text" }, { c:receive(3) })
      c:close(1000, "bye")
      assert.same({ nil, "closed", 1000, "bye" }, { c:receive(3) })
      assert.is_true(c.was_clean)
    end)

    it("lets the server close first through the tunnel", function()
      local srv = net.listen{ on_message = function(sc) sc:close(4001, "server done") end }
      local c = assert(connect(net.url(srv), { proxy = p.url }))
      c:send("x")
      assert.same({ nil, "closed", 4001, "server done" }, { c:receive(3) })
      assert.is_true(c.was_clean)
    end)

    it("runs TLS to the origin inside the tunnel: SNI and the certificate are the origin's", function()
      local names = {}
      local srv = net.echo_server{ tls = { cert = certs.server_cert, key = certs.server_key },
        on_upgrade = function(req) names[#names + 1] = req.server_name end }
      -- The proxy is dialled by IP; the origin's name is what TLS sees.
      local c, err = connect("wss://localhost:" .. srv.port .. "/", { proxy = p.url,
        tls = { cafile = certs.ca } })
      assert.is_nil(err)
      assert.same({ "localhost" }, names)
      assert.equal("localhost", c and c.server_name or names[1])
      c:send("secret")
      assert.same({ "secret", "text" }, { c:receive(3) })
      assert.equal(1, p:tunnels())
    end)

    it("verifies the origin's name through the tunnel: a wrong certificate fails", function()
      local srv = net.echo_server{ tls = { cert = certs.wrong_cert, key = certs.wrong_key } }
      local c, err = connect("wss://localhost:" .. srv.port .. "/", { proxy = p.url,
        tls = { cafile = certs.ca } })
      assert.is_nil(c)
      assert.matches("certificate verify failed for localhost", err, 1, true)
    end)

    it("reports a proxy that dies mid-tunnel as on_close 1006, not clean", function()
      local srv = net.echo_server()
      local closes, echoed = {}, false
      local c = connect(net.url(srv), { proxy = p.url,
        on_open = function(cc) cc:send("up") end,
        on_message = function() echoed = true end,
        on_close = function(_, code, _, clean) closes[#closes + 1] = { code, clean } end })
      -- The tunnel carried a message; now the proxy dies (killed from the
      -- spec, not from a callback: waiting for its exit runs the loop).
      assert.truthy(net.wait_until(function() return echoed end, 5))
      assert.equal(0, #closes)
      p:kill()
      assert.truthy(net.wait_until(function() return #closes > 0 end, 5))
      assert.same({ { 1006, false } }, closes)
      assert.equal("CLOSED", c.ready_state)
    end)

    it("proxy = false goes straight to the server", function()
      local srv = net.echo_server()
      local c = assert(connect(net.url(srv), { proxy = false }))
      c:send("direct")
      assert.same({ "direct", "text" }, { c:receive(3) })
      assert.equal(0, p:tunnels())
    end)
  end)

  describe("with Basic authentication", function()
    local p
    before_each(function() p = tinyproxy.start{ user = "alice", password = "s3cret" } end)

    it("sends the credentials of the proxy URL as Proxy-Authorization", function()
      local srv = net.echo_server()
      local c, err = connect(net.url(srv), { proxy = "http://alice:s3cret@127.0.0.1:" .. p.port })
      assert.is_nil(err)
      c:send("authed")
      assert.same({ "authed", "text" }, { c:receive(3) })
    end)

    it("fails with the proxy's answer (407, 401) without or with wrong credentials", function()
      local srv, events = net.echo_server()
      local c, err = connect(net.url(srv), { proxy = p.url })
      assert.is_nil(c)
      assert.equal("proxy answered 407 Proxy Authentication Required", err)
      -- tinyproxy answers wrong credentials with 401.
      c, err = connect(net.url(srv), { proxy = "http://alice:nope@127.0.0.1:" .. p.port })
      assert.is_nil(c)
      assert.equal("proxy answered 401 Unauthorized", err)
      assert.same({}, net.select(events, "open"))
    end)

    it("reaches on_error then on_close 1006 in callback style", function()
      local srv = net.echo_server()
      local seen = {}
      connect(net.url(srv), { proxy = p.url,
        on_open = function() seen[#seen + 1] = "open" end,
        on_error = function(_, e) seen[#seen + 1] = e end,
        on_close = function(_, code) seen[#seen + 1] = code end })
      assert.truthy(net.wait_until(function() return #seen >= 2 end, 5))
      assert.same({ "proxy answered 407 Proxy Authentication Required", 1006 }, seen)
    end)
  end)

  describe("failures", function()
    it("a proxy that refuses the target port: its 403 is the error", function()
      local p = tinyproxy.start{ connect_ports = { 1 } }
      local srv, events = net.echo_server()
      local c, err = connect(net.url(srv), { proxy = p.url })
      assert.is_nil(c)
      assert.matches("^proxy answered 403 ", err)
      assert.same({}, net.select(events, "open"))
    end)

    it("a proxy that is not there: 'cannot connect to proxy'", function()
      local p = tinyproxy.start()
      local port = p.port
      p:kill()
      local srv = net.echo_server()
      local c, err = connect(net.url(srv), { proxy = "http://127.0.0.1:" .. port })
      assert.is_nil(c)
      assert.equal("cannot connect to proxy 127.0.0.1 port " .. port .. ": connection refused", err)
    end)

    it("raises for a bad proxy option, naming it", function()
      local url = "ws://127.0.0.1:9/"
      assert.error_matches(function() ws.connect(url, { proxy = 5 }) end, "'proxy' must be a URL string or false")
      assert.error_matches(function() ws.connect(url, { proxy = true }) end, "'proxy' must be")
      assert.error_matches(function() ws.connect(url, { proxy = "socks5://127.0.0.1:1080" }) end,
        "SOCKS proxies are not supported", 1, true)
      assert.error_matches(function() ws.connect(url, { proxy = "https://127.0.0.1:99999" }) end,
        "'proxy': invalid port", 1, true)
      assert.error_matches(function() ws.connect(url, { proxy = "http://127.0.0.1:99999" }) end,
        "'proxy': invalid port", 1, true)
      assert.error_matches(function() ws.connect(url, { proxy = "ftp://127.0.0.1:21" }) end,
        "'proxy': unsupported proxy scheme 'ftp'", 1, true)
      assert.error_matches(function() ws.connect(url, { proxy = "http://127.0.0.1:3128/path" }) end,
        "'proxy': a proxy URL has no path", 1, true)
      assert.error_matches(function() ws.connect(url, { unix_socket = "" }) end,
        "'unix_socket' must be a path of 1 to 255 bytes", 1, true)
      assert.error_matches(function() ws.connect(url, { unix_socket = "/" .. string.rep("s", 300) }) end,
        "'unix_socket' must be a path of 1 to 255 bytes", 1, true)
    end)
  end)

  describe("environment variables (in a child process)", function()
    local p
    before_each(function() p = tinyproxy.start() end)

    -- Runs a client in a child with `env` prepended; returns its output.
    local function child(env, url, opts_src)
      local script = net.next_name("proxy_child") .. ".lua"
      net.write_file(script, ([[
local ws = require "ws"
local c, err = ws.connect(%q, %s)
if not c then print("ERR " .. err) os.exit(1) end
c:send("env")
print("GOT " .. tostring(c:receive(3)))
c:close()
]]):format(url, opts_src or "{ timeout = 5 }"))
      local cmd = ("%s LUA_PATH=%s LUA_CPATH=%s %s %s"):format(env, net.quote(package.path),
        net.quote(package.cpath), net.quote(net.lua_interpreter()), net.quote(script))
      return proc.sh(cmd, 15)
    end

    local function run_server()
      -- The child needs our loop turning to be answered: serve from a
      -- second child instead, so this process only watches.
      local ch, port = net.spawn_echo_server()
      return ch, port
    end

    it("HTTP_PROXY carries ws:// (lowercase http_proxy too)", function()
      local _, port = run_server()
      local out = child("HTTP_PROXY=" .. p.url, "ws://127.0.0.1:" .. port .. "/")
      assert.matches("GOT env", out, 1, true)
      assert.equal(1, p:tunnels())
      out = child("http_proxy=" .. p.url, "ws://127.0.0.1:" .. port .. "/")
      assert.matches("GOT env", out, 1, true)
      assert.equal(2, p:tunnels())
    end)

    it("HTTPS_PROXY is for wss:// only; ALL_PROXY covers both", function()
      local _, port = run_server()
      local out = child("HTTPS_PROXY=" .. p.url, "ws://127.0.0.1:" .. port .. "/")
      assert.matches("GOT env", out, 1, true)
      assert.equal(0, p:tunnels())
      out = child("ALL_PROXY=" .. p.url, "ws://127.0.0.1:" .. port .. "/")
      assert.matches("GOT env", out, 1, true)
      assert.equal(1, p:tunnels())
    end)

    it("NO_PROXY and proxy = false bypass the environment's proxy", function()
      local _, port = run_server()
      local url = "ws://127.0.0.1:" .. port .. "/"
      assert.matches("GOT env", child("HTTP_PROXY=" .. p.url .. " NO_PROXY=example.org,127.0.0.1", url), 1, true)
      assert.matches("GOT env", child("HTTP_PROXY=" .. p.url .. " no_proxy='*'", url), 1, true)
      -- Bracketed IPv6 entries (with a port, or unterminated) do not hide the next one.
      local np = " NO_PROXY='[::1]:80,[fe80::1,127.0.0.1'"
      assert.matches("GOT env", child("HTTP_PROXY=" .. p.url .. np, url), 1, true)
      assert.matches("GOT env", child("HTTP_PROXY=" .. p.url .. " NO_PROXY=127.0.0.1:" .. port, url), 1, true)
      assert.matches("GOT env", child("HTTP_PROXY=" .. p.url, url, "{ timeout = 5, proxy = false }"), 1, true)
      -- empty entries are skipped; ".localhost" matches localhost itself
      assert.matches("GOT env", child("HTTP_PROXY=" .. p.url .. " NO_PROXY=',, .localhost'",
        "ws://localhost:" .. port .. "/"), 1, true)
      assert.equal(0, p:tunnels())
      -- A NO_PROXY entry for another port does not match.
      assert.matches("GOT env", child("HTTP_PROXY=" .. p.url .. " NO_PROXY=127.0.0.1:1", url), 1, true)
      assert.equal(1, p:tunnels())
    end)

    it("a broken proxy variable is an error naming the variable", function()
      local out = child("HTTP_PROXY=socks5://127.0.0.1:1", "ws://127.0.0.1:9/")
      assert.matches("invalid proxy in HTTP_PROXY: SOCKS proxies are not supported", out, 1, true)
    end)
  end)
end)
