-- https:// proxies: TLS to the proxy itself, the CONNECT inside it, and the
-- origin's bytes inside that (TLS inside TLS for wss://).  The proxy is a
-- real tinyproxy behind a TLS terminator started here
-- (spec/helpers/tls_terminator.py) with a self-signed certificate, which
-- only `proxy_tls` trusts; the origin's certificate is signed by the test
-- CA, which only `tls` trusts, so mixing the two fails.  Covered: ws and
-- wss origins, Basic auth (407 and success), a proxy certificate that
-- fails verification (named as the proxy's), a "proxy" that does not
-- speak TLS, proxy_tls.verify = false, an origin that stops reading, a
-- script that ends with output queued,
-- close from either side, callbacks, a proxy that dies mid-tunnel (1006,
-- no hang), HTTPS_PROXY=https://... in a child, bad proxy_tls options,
-- file descriptors exhausted while dialling the proxy (in a child).
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"
local proc = require "spec.helpers.proc"
local exit = require "spec.helpers.exit_util"
local tinyproxy = require "spec.helpers.tinyproxy"
local certs = require("spec.helpers.certs").get()
local ws = net.ws

local PROXY_TRUST = { cafile = certs.self_cert }
local ORIGIN_TRUST = { cafile = certs.ca }

local function connect(url, opts)
  opts = opts or {}
  if opts.timeout == nil then opts.timeout = 5 end
  return net.connect(url, opts)
end

local function sni_seen(p)
  local names = {}
  for name in p:terminator_log():gmatch("sni (%S+)") do names[#names + 1] = name end
  return names
end

local function start(opts)
  opts = opts or {}
  opts.cert = opts.cert or certs.self_cert
  opts.key = opts.key or certs.self_key
  return tinyproxy.start_tls(opts)
end

local function wss_origin(extra)
  local names = {}
  local o = { tls = { cert = certs.server_cert, key = certs.server_key },
    on_upgrade = function(req) names[#names + 1] = req.server_name or "-" end }
  for k, v in pairs(extra or {}) do o[k] = v end
  local srv, events = net.echo_server(o)
  return srv, names, events
end

describe("https:// proxy (TLS to the proxy)", function()
  if not tinyproxy.available() then
    error("tinyproxy is not installed: run scripts/deps.sh")
  end

  after_each(function()
    net.cleanup()
    exit.cleanup()
    tinyproxy.stop_all()
  end)

  describe("without authentication", function()
    local p
    before_each(function() p = start{ host = "localhost" } end)

    it("carries ws:// inside TLS to the proxy: SNI is the proxy's name, echo, clean close", function()
      local srv = net.echo_server()
      local c, err = connect(net.url(srv, "/a?b=1"), { proxy = p.url, proxy_tls = PROXY_TRUST })
      assert.is_nil(err)
      assert.equal(1, p:tunnels())
      assert.same({ "localhost" }, sni_seen(p))
      assert.is_true(c:send("through tls"))
      assert.same({ "through tls", "text" }, { c:receive(3) })
      local big = net.payload(3 * 1024 * 1024 + 7, "binary")
      assert.is_true(c:send(big, "binary"))
      local got = c:receive(10)
      assert.is_true(got == big)
      c:close(1000, "bye")
      assert.same({ nil, "closed", 1000, "bye" }, { c:receive(3) })
      assert.is_true(c.was_clean)
    end)

    it("runs the origin's TLS inside the proxy's: each verified against its own name and trust", function()
      local srv, names = wss_origin()
      local c, err = connect("wss://127.0.0.1:" .. srv.port .. "/", { proxy = p.url,
        proxy_tls = PROXY_TRUST, tls = ORIGIN_TRUST })
      assert.is_nil(err)
      -- Outer SNI: the proxy's name; inner: the origin dialled by address
      -- sends none (and its certificate's IP entry is what is checked).
      assert.same({ "localhost" }, sni_seen(p))
      assert.same({ "-" }, names)
      c:send("nested")
      assert.same({ "nested", "text" }, { c:receive(3) })
      -- Records of one layer span several of the other both ways.
      local big = net.payload(4 * 1024 * 1024 + 3, "binary")
      assert.is_true(c:send(big, "binary"))
      assert.is_true(c:receive(15) == big)
      c:close()
      assert.same({ nil, "closed", 1000, "" }, { c:receive(3) })
      assert.is_true(c.was_clean)
    end)

    it("sends the origin's name as the inner SNI", function()
      local q = start() -- dialled by address: no outer SNI
      local srv, names = wss_origin()
      local c, err = connect("wss://localhost:" .. srv.port .. "/", { proxy = q.url,
        proxy_tls = PROXY_TRUST, tls = ORIGIN_TRUST })
      assert.is_nil(err)
      assert.same({ "localhost" }, names)
      assert.same({ "-" }, sni_seen(q))
      c:send("x")
      assert.same({ "x", "text" }, { c:receive(3) })
    end)

    it("lets the server close first, inside both layers", function()
      local srv = wss_origin{ on_message = function(sc) sc:close(4002, "origin done") end }
      local c = assert(connect("wss://localhost:" .. srv.port .. "/", { proxy = p.url,
        proxy_tls = PROXY_TRUST, tls = ORIGIN_TRUST }))
      c:send("x")
      assert.same({ nil, "closed", 4002, "origin done" }, { c:receive(3) })
      assert.is_true(c.was_clean)
    end)

    it("works in callback style: on_open sends, on_message closes", function()
      local srv = wss_origin()
      local seen = {}
      connect("wss://localhost:" .. srv.port .. "/", { proxy = p.url,
        proxy_tls = PROXY_TRUST, tls = ORIGIN_TRUST,
        on_open = function(c) seen[#seen + 1] = "open"; c:send("cb") end,
        on_message = function(c, m) seen[#seen + 1] = m; c:close(1000, "") end,
        on_close = function(_, code, _, clean) seen[#seen + 1] = code; seen[#seen + 1] = clean end })
      assert.truthy(net.wait_until(function() return #seen >= 4 end, 5))
      assert.same({ "open", "cb", 1000, true }, seen)
    end)

    it("never uses one layer's trust for the other", function()
      local srv, names = wss_origin()
      local url = "wss://localhost:" .. srv.port .. "/"
      -- The origin's CA does not vouch for the proxy.
      local c, err = connect(url, { proxy = p.url, tls = ORIGIN_TRUST })
      assert.is_nil(c)
      assert.equal("proxy localhost port " .. p.tls_port ..
        ": TLS certificate verify failed for localhost: self-signed certificate", err)
      assert.equal(0, p:tunnels())
      -- The proxy's trust does not vouch for the origin: the origin's name
      -- is the one that failed.
      c, err = connect(url, { proxy = p.url, proxy_tls = PROXY_TRUST, tls = PROXY_TRUST })
      assert.is_nil(c)
      assert.matches("^TLS certificate verify failed for localhost: ", err)
      assert.is_nil(err:find("proxy", 1, true))
      assert.equal(1, p:tunnels())
      assert.same({}, names)
    end)

    it("proxy_tls.verify = false skips the proxy's check only", function()
      local srv = wss_origin{ tls = { cert = certs.self_cert, key = certs.self_key } }
      local c, err = connect("wss://localhost:" .. srv.port .. "/", { proxy = p.url,
        proxy_tls = { verify = false }, tls = ORIGIN_TRUST })
      assert.is_nil(c)
      assert.equal("TLS certificate verify failed for localhost: self-signed certificate", err)
      c, err = connect(net.url((net.echo_server())), { proxy = p.url, proxy_tls = { verify = false } })
      assert.is_nil(err)
      c:send("insecure proxy")
      assert.same({ "insecure proxy", "text" }, { c:receive(3) })
    end)

    it("pushes back when the origin stops reading, and delivers everything once it reads again", function()
      local got, server_conn = {}, nil
      local srv = wss_origin{
        on_open = function(sc) server_conn = sc; sc:pause() end,
        on_message = function(_, m) got[#got + 1] = #m end }
      local c = assert(connect("wss://localhost:" .. srv.port .. "/", { proxy = p.url,
        proxy_tls = PROXY_TRUST, tls = ORIGIN_TRUST, max_buffered = 1024 * 1024 }))
      assert.truthy(net.wait_until(function() return server_conn ~= nil end, 3))
      local chunk, sent, full = string.rep("p", 256 * 1024), 0, nil
      for _ = 1, 400 do
        local ok, err = c:send(chunk)
        if not ok then full = err break end
        sent = sent + 1
        net.run_for(0.005)
      end
      assert.equal("send buffer full", full)
      assert.is_true(sent > 4)
      assert.same({}, got)
      server_conn:resume()
      assert.truthy(net.wait_until(function() return #got == sent end, 15))
      assert.is_true(c:send("after"))
      assert.truthy(net.wait_until(function() return got[#got] == 5 end, 5))
    end)

    it("a script that ends with output queued: the origin gets every message, then 1001", function()
      local got, closes = {}, {}
      local srv = wss_origin{
        on_message = function(_, m) got[#got + 1] = #m end,
        on_close = function(_, code, _, clean) closes[#closes + 1] = { code, clean } end }
      local child = exit.spawn(([[
local ws = require "ws"
local c = assert(ws.connect(arg[1], { proxy = arg[2], proxy_tls = { cafile = arg[3] },
  tls = { cafile = arg[4] }, timeout = 5 }))
for _ = 1, 4 do assert(c:send(string.rep("q", 300000))) end
]]), "wss://localhost:" .. srv.port .. "/", p.url, certs.self_cert, certs.ca)
      assert.equal(0, child:wait(), child:describe())
      assert.truthy(net.wait_until(function() return #closes > 0 end, 10))
      assert.same({ 300000, 300000, 300000, 300000 }, got)
      assert.same({ { 1001, true } }, closes)
    end)

    it("reports a proxy that dies mid-tunnel as 1006 (ws and wss), without hanging", function()
      local plain = net.echo_server()
      local srv = wss_origin()
      local closes, echoed = {}, 0
      local cbs = {
        on_open = function(cc) cc:send("up") end,
        on_message = function() echoed = echoed + 1 end,
        on_close = function(_, code, _, clean) closes[#closes + 1] = { code, clean } end }
      local function opts(extra)
        local o = { proxy = p.url, proxy_tls = PROXY_TRUST }
        for k, v in pairs(cbs) do o[k] = v end
        for k, v in pairs(extra or {}) do o[k] = v end
        return o
      end
      local a = connect(net.url(plain), opts())
      local b = connect("wss://localhost:" .. srv.port .. "/", opts{ tls = ORIGIN_TRUST })
      assert.truthy(net.wait_until(function() return echoed == 2 end, 5))
      p:kill()
      assert.truthy(net.wait_until(function() return #closes == 2 end, 5))
      assert.same({ { 1006, false }, { 1006, false } }, closes)
      assert.equal("CLOSED", a.ready_state)
      assert.equal("CLOSED", b.ready_state)
    end)

    it("a proxy that dies during a blocking receive ends it with 1006", function()
      local srv = wss_origin()
      local c = assert(connect("wss://localhost:" .. srv.port .. "/", { proxy = p.url,
        proxy_tls = PROXY_TRUST, tls = ORIGIN_TRUST }))
      -- Killed from a timer: the receive below is waiting in the loop.
      local t = ws.timer(0.2, function() os.execute("kill -KILL " .. p.terminator.pid) end)
      net.track_timer(t)
      local r = { c:receive(5) }
      assert.same({ nil, "closed", 1006 }, { r[1], r[2], r[3] })
    end)
  end)

  describe("with Basic authentication", function()
    local p
    before_each(function() p = start{ user = "alice", password = "s3cret" } end)

    it("answers 407 without credentials, 401 with wrong ones; succeeds with the URL's", function()
      local srv, _, events = wss_origin()
      local url = "wss://localhost:" .. srv.port .. "/"
      local c, err = connect(url, { proxy = p.url, proxy_tls = PROXY_TRUST, tls = ORIGIN_TRUST })
      assert.is_nil(c)
      assert.equal("proxy answered 407 Proxy Authentication Required", err)
      c, err = connect(url, { proxy = "https://alice:nope@127.0.0.1:" .. p.tls_port,
        proxy_tls = PROXY_TRUST, tls = ORIGIN_TRUST })
      assert.is_nil(c)
      assert.equal("proxy answered 401 Unauthorized", err)
      assert.same({}, net.select(events, "open"))
      c, err = connect(url, { proxy = "https://alice:s3cret@127.0.0.1:" .. p.tls_port,
        proxy_tls = PROXY_TRUST, tls = ORIGIN_TRUST })
      assert.is_nil(err)
      c:send("authed")
      assert.same({ "authed", "text" }, { c:receive(3) })
      assert.equal(1, p:tunnels())
    end)
  end)

  describe("failures", function()
    it("a proxy certificate for another name fails, naming the proxy", function()
      local p = start{ cert = certs.wrong_cert, key = certs.wrong_key }
      local c, err = connect(net.url((net.echo_server())), { proxy = p.url, proxy_tls = ORIGIN_TRUST })
      assert.is_nil(c)
      assert.equal("proxy 127.0.0.1 port " .. p.tls_port ..
        ": TLS certificate verify failed for 127.0.0.1: IP address mismatch", err)
      assert.equal(0, p:tunnels())
    end)

    it("a server that does not speak TLS fails the handshake, naming the proxy", function()
      local plain = net.echo_server() -- answers the ClientHello with an HTTP 400
      local c, err = connect(net.url((net.echo_server())), { proxy = "https://127.0.0.1:" .. plain.port,
        proxy_tls = PROXY_TRUST })
      assert.is_nil(c)
      assert.matches("^proxy 127.0.0.1 port " .. plain.port .. ": TLS handshake failed: ", err)
    end)

    it("raises for bad proxy_tls options, naming them", function()
      local url = "ws://127.0.0.1:9/"
      local https = "https://127.0.0.1:9"
      assert.error_matches(function() ws.connect(url, { proxy = https, proxy_tls = 5 }) end,
        "'proxy_tls' must be a table", 1, true)
      assert.error_matches(function() ws.connect(url, { proxy = https, proxy_tls = { cafle = "x" } }) end,
        "proxy_tls.cafle", 1, true)
      assert.error_matches(function()
        ws.connect(url, { proxy = https, proxy_tls = { cafile = "/nonexistent/ca.pem" } })
      end, "cannot load CA file '/nonexistent/ca.pem'", 1, true)
      assert.error_matches(function() ws.connect(url, { proxy_tsl = {} }) end, "proxy_tls", 1, true)
      -- Checked even when the proxy is not https:// (or there is none).
      assert.error_matches(function() ws.connect(url, { proxy = false, proxy_tls = "yes" }) end,
        "'proxy_tls' must be a table", 1, true)
      assert.error_matches(function() ws.connect(url, { proxy = "http://127.0.0.1:9", proxy_tls = { vrify = false } })
      end, "proxy_tls.vrify", 1, true)
    end)
  end)

  describe("out of file descriptors (in a child limited to 64)", function()
    local NOFILE = [==[
local ws = require "ws"
-- arg: proxy port, its CA, the origin's CA, origin port, a copy of the proxy's CA (no context yet)
local port, pca, oca, sport, pca2 = arg[1], arg[2], arg[3], arg[4], arg[5]
local url = "wss://localhost:" .. sport .. "/"
-- what this process has open (less the listing's own pipe)
local function fds()
  local p = io.popen("ls -l /proc/" .. ws.core.pid() .. "/fd")
  local open = {}
  for target in p:read("*a"):gmatch("%-> ([^\n]+)") do
    if not target:find("^pipe:") then open[#open + 1] = target end
  end
  p:close()
  table.sort(open)
  return table.concat(open, ",")
end
local function dial(name, host, cafile)
  local ok, c, err = pcall(ws.connect, url, { timeout = 5, proxy = "https://" .. host .. ":" .. port,
    proxy_tls = { cafile = cafile or pca }, tls = { cafile = oca } })
  if not ok then
    print(name .. " raised " .. tostring(c))
  elseif c then
    c:send("echo")
    print(name .. " ok " .. tostring((c:receive(5))))
    c:close()
    -- its socket closes once the TCP close is done
    local loop, deadline = ws.loop(), os.time() + 5
    while loop:members() > 0 and os.time() < deadline do loop:step(0.01) end
  else
    print(name .. " failed " .. tostring(err))
  end
end
dial("warmup", "127.0.0.1") -- the proxy's TLS context is cached from here on
collectgarbage(); collectgarbage()
local base = fds()
local hold = require("spec.helpers.nofile").use_up()
print("held " .. #hold)
dial("by_name", "localhost")
dial("by_addr", "127.0.0.1")
dial("new_ca", "127.0.0.1", pca2)
-- one descriptor free: enough for the socket to the proxy and all inside it
hold[#hold]:close(); hold[#hold] = nil
dial("one_free", "127.0.0.1")
require("spec.helpers.nofile").release(hold)
hold = nil
collectgarbage(); collectgarbage()
print("released")
dial("by_name", "localhost")
dial("by_addr", "127.0.0.1")
dial("new_ca", "127.0.0.1", pca2)
collectgarbage(); collectgarbage()
print("fds " .. base .. " | " .. fds())
print("DONE")
]==]

    it("dialling the proxy fails with an error naming the proxy and the cause; nothing leaks", function()
      local p = start()
      local _, sport = net.spawn_echo_server("tls", certs.server_cert, certs.server_key)
      local dir = net.tmpdir()
      local ca_copy = dir .. "/proxy_ca.pem"
      net.write_file(ca_copy, assert(net.read_file(certs.self_cert)))
      local script = dir .. "/nofile_proxy.lua"
      net.write_file(script, string.format("package.path = %q\npackage.cpath = %q\n", package.path, package.cpath)
        .. NOFILE)
      local out, code = net.run_status(string.format("ulimit -n 64 && exec timeout 60 %s %s %s %s %s %s %s",
        net.quote(net.lua_interpreter()), net.quote(script), p.url:match("%d+$"), net.quote(certs.self_cert),
        net.quote(certs.ca), sport, net.quote(ca_copy)))
      assert.are.equal(0, code, out)
      local port = p.url:match("%d+$")
      local before, after = out:match("^(.*)\nreleased\n(.*)$")
      assert(before, out)
      before = before .. "\n"
      assert.matches("\nby_name failed proxy localhost port " .. port
        .. ": cannot resolve 'localhost': [^\n]*Too many open files\n", before)
      assert.matches("\nby_addr failed cannot connect to proxy 127%.0%.0%.1 port " .. port
        .. ": [^\n]*Too many open files\n", before)
      -- a CA file that cannot be read raises, as for any proxy_tls that cannot be loaded
      assert.matches("\nnew_ca raised [^\n]*proxy_tls: cannot load CA file '[^']*proxy_ca%.pem': too many open files\n",
        before)
      -- one descriptor is all a tunnel through an https:// proxy takes
      assert.matches("\none_free ok echo\n", before)
      for _, name in ipairs { "by_name", "by_addr", "new_ca" } do
        assert.matches("\n" .. name .. " ok echo\n", "\n" .. after, nil, name .. ":\n" .. after)
      end
      local base, now = after:match("\nfds ([^\n]*) | ([^\n]*)\n")
      assert.is_truthy(base, out)
      assert.are.equal(base, now, out)
      assert.matches("\nDONE\n$", out)
    end)
  end)

  describe("HTTPS_PROXY=https://... (in a child process)", function()
    it("carries wss:// through TLS to the proxy; proxy_tls applies to it", function()
      local p = start()
      local _, sport = net.spawn_echo_server("tls", certs.server_cert, certs.server_key)
      local script = net.next_name("proxy_tls_child") .. ".lua"
      net.write_file(script, ([[
local ws = require "ws"
local c, err = ws.connect(%q, { timeout = 5, proxy_tls = { cafile = %q }, tls = { cafile = %q } })
if not c then print("ERR " .. err) os.exit(1) end
c:send("env")
print("GOT " .. tostring(c:receive(3)))
c:close()
]]):format("wss://localhost:" .. sport .. "/", certs.self_cert, certs.ca))
      local cmd = ("HTTPS_PROXY=%s LUA_PATH=%s LUA_CPATH=%s %s %s"):format(p.url, net.quote(package.path),
        net.quote(package.cpath), net.quote(net.lua_interpreter()), net.quote(script))
      local out = proc.sh(cmd, 15)
      assert.matches("GOT env", out, 1, true)
      assert.equal(1, p:tunnels())
      assert.same({ "-" }, sni_seen(p))
    end)
  end)
end)
