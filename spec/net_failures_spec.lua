-- Failure paths of the networked layer, each with the error a user sees:
--   * TLS: certificate or key files that do not load, a key that does not
--     match its certificate (server and client side), a peer that resets
--     in the middle of the TLS handshake (either side);
--   * listen/bind: a port in use, an address that is not local, a host
--     that does not resolve;
--   * connect: the next address is tried after a refused one (a host name
--     with an IPv6 and an IPv4 address, one listening), and the error
--     names the host when every address fails;
--   * DNS: a lookup that never answers, cut by the connect timeout, by
--     close(), and by the script's exit;
--   * a script that exits right after a lookup (the resolver thread must
--     not run unloaded code);
--   * a large send written directly that meets a full socket with nothing
--     queued: the rest is queued and arrives intact.
-- Host names and a silent name server come from a private mount namespace
-- (`unshare -m`, /etc/hosts and /etc/resolv.conf bind-mounted for one child
-- process only) and a python3 UDP socket that never answers.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"
local certs = require("spec.helpers.certs").get()
local ws = require "ws"

local quote = net.quote

local run = net.run_status

-- True when this machine lets a child have its own /etc/hosts.
local namespaces
local function have_namespaces()
  if namespaces == nil then
    local _, code = run("command -v unshare >/dev/null && command -v python3 >/dev/null && "
      .. "unshare -m sh -c 'mount --bind /etc/hosts /etc/hosts' 2>/dev/null")
    namespaces = code == 0
  end
  return namespaces
end

-- Run `source` (Lua) in a child whose /etc/hosts and /etc/resolv.conf are
-- the given texts; returns its output, its exit status and the seconds it
-- took (whole seconds are enough for what is checked).
local function run_isolated(source, hosts, resolv)
  local dir = net.tmpdir()
  net.write_file(dir .. "/hosts", hosts)
  net.write_file(dir .. "/resolv.conf", resolv or "nameserver 127.0.0.1\n")
  net.write_file(dir .. "/child.lua", string.format("package.path = %q\npackage.cpath = %q\n",
    package.path, package.cpath) .. "io.stdout:setvbuf('no')\n" .. source)
  local cmd = string.format("timeout 30 unshare -m sh -c %s",
    quote(string.format("mount --bind %s /etc/hosts && mount --bind %s /etc/resolv.conf && exec %s %s",
      quote(dir .. "/hosts"), quote(dir .. "/resolv.conf"), quote(net.lua_interpreter()),
      quote(dir .. "/child.lua"))))
  local t0 = os.time()
  local out, code = run(cmd)
  return out, code, os.time() - t0
end

-- A UDP socket on port 53 of a fresh loopback address that reads nothing
-- and answers nothing; returns its address and a function that stops it.
local function silent_name_server()
  local ip = string.format("127.%d.%d.%d", math.random(1, 254), math.random(1, 254), math.random(2, 254))
  local dir = net.tmpdir()
  local script = "import socket,sys,time\n"
    .. "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
    .. "s.bind((sys.argv[1],53))\n"
    .. "print('READY',flush=True)\n"
    .. "time.sleep(60)\n"
  net.write_file(dir .. "/ns.py", script)
  local p = assert(io.popen(string.format("timeout 90 python3 %s %s >%s 2>&1 & echo $!",
    quote(dir .. "/ns.py"), ip, quote(dir .. "/ns.out"))))
  local pid = tonumber(p:read("*l"))
  p:close()
  assert(net.wait_until(function() return (net.read_file(dir .. "/ns.out") or ""):find("READY") end, 10),
    "the silent name server did not start: " .. tostring(net.read_file(dir .. "/ns.out")))
  return ip, function() os.execute("kill " .. pid .. " 2>/dev/null") end
end

-- A TCP listener (python3) that accepts one connection, reads what comes
-- (a ClientHello) and resets it; returns its port.
local function resetting_listener()
  local dir = net.tmpdir()
  local script = "import socket,struct\n"
    .. "s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(1)\n"
    .. "print(s.getsockname()[1],flush=True)\n"
    .. "c,_=s.accept(); c.recv(5)\n"
    .. "c.setsockopt(socket.SOL_SOCKET,socket.SO_LINGER,struct.pack('ii',1,0)); c.close()\n"
  net.write_file(dir .. "/rst.py", script)
  os.execute(string.format("timeout 30 python3 %s >%s 2>&1 &", quote(dir .. "/rst.py"), quote(dir .. "/rst.out")))
  local port
  net.wait_until(function()
    port = tonumber((net.read_file(dir .. "/rst.out") or ""):match("^(%d+)"))
    return port
  end, 10)
  return assert(port, "the resetting listener did not start")
end

describe("network failures", function()
  after_each(function()
    net.cleanup()
  end)

  describe("TLS configuration", function()
    local function listen_error(tls)
      local ok, err = pcall(net.listen, { tls = tls })
      assert.is_false(ok)
      return tostring(err)
    end

    it("a server certificate or key that does not load raises, naming the file and why", function()
      assert.matches("ws%.listen: TLS: cannot load certificate '/nonexistent/cert%.pem': no such file",
        listen_error { cert = "/nonexistent/cert.pem", key = certs.server_key })
      assert.matches("ws%.listen: TLS: cannot load private key '/nonexistent/key%.pem': no such file",
        listen_error { cert = certs.server_cert, key = "/nonexistent/key.pem" })
      -- A key file where the certificate belongs: not a PEM certificate.
      assert.matches("cannot load certificate '.*server%.key': no start line",
        listen_error { cert = certs.server_key, key = certs.server_key })
      assert.matches("'tls' needs cert and key files", listen_error { key = certs.server_key }, 1, true)
    end)

    it("a server key that does not match its certificate raises, naming both", function()
      local err = listen_error { cert = certs.server_cert, key = certs.wrong_key }
      assert.matches("private key '.*wrong%.key' does not match certificate '.*server%.pem'", err)
    end)

    it("a client certificate, key or CA file that does not load raises at connect, naming it", function()
      local srv = net.echo_server()
      local url = "wss://127.0.0.1:" .. srv.port .. "/"
      for _, case in ipairs {
        { { cafile = "/nonexistent/ca.pem" }, "cannot load CA file '/nonexistent/ca.pem'" },
        { { cafile = certs.ca, cert = "/nonexistent/c.pem", key = certs.client_key },
          "cannot load certificate '/nonexistent/c.pem'" },
        { { cafile = certs.ca, cert = certs.client_cert, key = certs.server_key }, "does not match certificate" },
        { { cafile = certs.ca, cert = certs.client_cert, key = "/nonexistent/k.pem" },
          "cannot load private key '/nonexistent/k.pem': no such file or directory" },
        { { cafile = certs.ca, key = certs.client_key }, "a key needs its certificate (cert)" },
      } do
        local ok, err = pcall(ws.connect, url, { tls = case[1], timeout = 3 })
        assert.is_false(ok)
        assert.is_truthy(tostring(err):find("ws.connect: TLS: " .. case[2], 1, true) or
          tostring(err):find(case[2], 1, true), tostring(err))
      end
    end)
  end)

  describe("a reset in the middle of the TLS handshake", function()
    it("client side: connect returns nil and an error; nothing opens", function()
      if not have_namespaces() then pending("python3 is missing") return end
      local port = resetting_listener()
      local c, err = net.connect("wss://127.0.0.1:" .. port .. "/", { tls = { cafile = certs.ca }, timeout = 3 })
      assert.is_nil(c)
      assert.matches("reset", tostring(err))
    end)

    it("server side: the server drops the half handshake quietly and keeps serving", function()
      local srv, events = net.echo_server { tls = { cert = certs.server_cert, key = certs.server_key } }
      local before = net.settled_fd_count()
      for _ = 1, 5 do
        local raw = assert(net.raw_connect(srv.port))
        raw:send("\22\3\1\0\165\1\0\0\161\3\3") -- the start of a ClientHello
        net.run_for(0.02)
        raw:reset()
      end
      net.run_for(0.1)
      assert.are.equal(0, #events)
      assert.are.equal(before, net.settled_fd_count())
      local c = assert(net.connect("wss://localhost:" .. srv.port .. "/", { tls = { cafile = certs.ca }, timeout = 3 }))
      assert.is_true(c:send("still serving"))
      assert.are.equal("still serving", (c:receive(5)))
    end)
  end)

  describe("listening", function()
    it("on a port in use raises 'Address already in use' with the address", function()
      local srv = net.listen {}
      local ok, err = pcall(net.listen, { port = srv.port })
      assert.is_false(ok)
      assert.matches("ws%.listen: cannot listen on 127%.0%.0%.1 port " .. srv.port .. ": Address already in use",
        tostring(err))
      -- The first server is untouched.
      srv:close()
      srv = net.echo_server()
      assert.truthy(net.connect(net.url(srv)))
    end)

    it("on an address that is not local, or one that does not resolve, raises", function()
      local ok, err = pcall(net.listen, { host = "192.0.2.1" })
      assert.is_false(ok)
      assert.matches("cannot listen on 192%.0%.2%.1 port 0: Cannot assign requested address", tostring(err))
      ok, err = pcall(net.listen, { host = "256.1.1.1" })
      assert.is_false(ok)
      assert.matches("cannot resolve '256%.1%.1%.1'", tostring(err))
    end)
  end)

  describe("connecting to a host name with several addresses", function()
    it("tries the next address when one refuses, whichever comes first", function()
      if not have_namespaces() then pending("unshare -m or python3 is not available") return end
      -- Both orders: for one of them the address tried first refuses.
      local out, code = run_isolated([[
local ws = require "ws"
for _, host in ipairs { "127.0.0.1", "::1" } do
  local ok, srv = pcall(ws.listen, { host = host, port = 0, on_message = function(c, d) c:send(d) end })
  if not ok then
    print("NOLISTEN " .. host)
  else
    local c, err = ws.connect("ws://multi.lua-ws.test:" .. srv.port .. "/", { timeout = 5 })
    if c then
      c:send("x")
      print("OK " .. host .. " " .. tostring((c:receive(5))) .. " " .. tostring(c.remote_address))
      c:close()
    else
      print("FAIL " .. host .. " " .. tostring(err))
    end
    srv:close()
  end
end
local _, err = ws.connect("ws://multi.lua-ws.test:1/", { timeout = 5 })
print("NONE " .. tostring(err))
]], "127.0.0.1 localhost\n::1 multi.lua-ws.test\n127.0.0.1 multi.lua-ws.test\n")
      assert.are.equal(0, code, out)
      if out:find("NOLISTEN ::1") then pending("no IPv6 loopback") return end
      assert.matches("OK 127%.0%.0%.1 x 127%.0%.0%.1\n", out)
      assert.matches("OK ::1 x ::1\n", out)
      assert.matches("NONE cannot connect to multi%.lua%-ws%.test port 1: connection refused", out)
    end)
  end)

  describe("a DNS lookup that never answers", function()
    it("is cut by the connect timeout, by close() and by the script's exit", function()
      if not have_namespaces() then pending("unshare -m or python3 is not available") return end
      local ip, stop = silent_name_server()
      local out, code, seconds = run_isolated([[
local ws = require "ws"
local clock = require("ws.core").loop()
local t0 = clock:now()
local c, err = ws.connect("ws://slow.lua-ws.test/", { timeout = 0.3 })
print(string.format("TIMEOUT %s %s %.1f", tostring(c), tostring(err), clock:now() - t0))
local log = {}
c = ws.connect("ws://slow.lua-ws.test/", {
  on_open = function() log[#log + 1] = "open" end,
  on_error = function(_, e) log[#log + 1] = "error " .. e end,
  on_close = function(_, code) log[#log + 1] = "close " .. code end,
})
print("LOOKING " .. c.ready_state)
c:close()
t0 = clock:now()
ws.run()
print(string.format("CLOSED %s %s %.1f", c.ready_state, table.concat(log, ";"), clock:now() - t0))
ws.connect("ws://slow.lua-ws.test/", { on_open = function() print("never") end })
print("EXIT")
]], "127.0.0.1 localhost\n", "nameserver " .. ip .. "\noptions timeout:20 attempts:1\n")
      stop()
      assert.are.equal(0, code, out)
      assert.matches("TIMEOUT nil connect timeout after 0%.3 s 0%.[345]\n", out)
      assert.matches("LOOKING CONNECTING\n", out)
      assert.matches("CLOSED CLOSED close 1006 0%.0\n", out)
      assert.matches("EXIT\n", out)
      assert.is_nil(out:find("never", 1, true))
      -- The blocked lookups (20 s each) held up neither ws.run nor the exit.
      assert.is_true(seconds < 10, "the child took " .. seconds .. " s")
    end)
  end)

  describe("a script that exits right after a lookup", function()
    it("exits cleanly: the resolver thread's code stays mapped after lua_close", function()
      -- The lookup thread reports, then still runs a few instructions of
      -- ws/core.so; the script's exit unloads the module meanwhile.  This
      -- crashed about one run in six before the module was pinned.
      local dir = net.tmpdir()
      net.write_file(dir .. "/lookup_exit.lua", string.format("package.path = %q\npackage.cpath = %q\n",
        package.path, package.cpath)
        .. "local ws = require 'ws'\nprint(select(2, ws.connect('ws://localhost:1/', { timeout = 3 })))\n")
      local cmd = string.format("for i in $(seq 1 25); do timeout 20 %s %s || echo \"FAILED $?\"; done",
        quote(net.lua_interpreter()), quote(dir .. "/lookup_exit.lua"))
      local out, code = run(cmd)
      assert.are.equal(0, code, out)
      assert.is_nil(out:find("FAILED", 1, true), out)
      local _, refused = out:gsub("cannot connect to localhost port 1: connection refused", "")
      assert.are.equal(25, refused, out)
    end)
  end)

  describe("a large send that meets a full socket with nothing queued", function()
    it("writes what fits at once, queues the rest, and the peer gets the whole frame", function()
      local conn
      local srv = net.listen { on_open = function(c) conn = c end }
      local raw = assert(net.raw_connect(srv.port))
      local resp = raw:handshake(srv.port, "/")
      assert.are.equal(101, resp and resp.status)
      assert.is_truthy(net.wait_until(function() return conn end))
      -- More than the kernel buffers of both ends hold; the raw client
      -- reads nothing until the send returned.
      local payload = net.payload(12 * 1024 * 1024, "binary")
      assert.are.equal(0, conn:buffered_amount())
      assert.is_true(conn:send(payload, "binary"))
      -- The socket could not take 8 MiB: the rest waits in the queue.
      assert.is_true(conn:buffered_amount() > 0)
      assert.is_true(conn:buffered_amount() < #payload)
      local f = raw:next_frame(20)
      assert.is_table(f)
      assert.are.equal(2, f.opcode)
      assert.is_true(f.fin)
      assert.is_true(net.same(payload, f.payload))
      assert.is_true(net.wait_until(function() return conn:buffered_amount() == 0 end))
    end)
  end)
end)
