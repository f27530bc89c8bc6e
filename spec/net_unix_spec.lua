-- Unix sockets: ws.listen{unix = path, mode = ...} and clients through
-- ws+unix:///socket:/request/path URLs or the unix_socket option; stale
-- socket files, paths in use, file modes, removal at close, TLS over a
-- Unix socket, and close from either side.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"
local certs = require("spec.helpers.certs").get()
local ws = net.ws

local function sock_path(name)
  return net.next_name(name or "sock") .. ".sock"
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return net.sh("test -S " .. net.quote(path) .. " && echo yes || true"):match("yes") ~= nil
end

local function unix_server(path, extra)
  local opts = { unix = path }
  for k, v in pairs(extra or {}) do opts[k] = v end
  local reqs = {}
  local up = opts.on_upgrade
  opts.on_upgrade = function(req)
    reqs[#reqs + 1] = req
    if up then return up(req) end
  end
  local srv, events = net.echo_server(opts)
  return srv, events, reqs
end

describe("Unix sockets", function()
  after_each(function() net.cleanup() end)

  it("serves ws+unix:///path:/request clients: echo, path, query and Host", function()
    local path = sock_path()
    local srv, _, reqs = unix_server(path)
    assert.equal(path, srv.unix)
    assert.equal(0, srv.port)
    local c, err = net.connect("ws+unix://" .. path .. ":/chat/room?id=7")
    assert.is_nil(err)
    assert.equal("ws+unix://" .. path .. ":/chat/room?id=7", c.url)
    c:send("over a file")
    assert.same({ "over a file", "text" }, { c:receive(3) })
    assert.equal("/chat/room", reqs[1].path)
    assert.equal("id=7", reqs[1].query)
    assert.equal("localhost", reqs[1].headers.host)
    c:close(1000, "done")
    assert.same({ nil, "closed", 1000, "done" }, { c:receive(3) })
    assert.is_true(c.was_clean)
  end)

  it("requests / when the URL has no request path", function()
    local path = sock_path()
    local _, _, reqs = unix_server(path)
    local c = assert(net.connect("ws+unix://" .. path))
    assert.equal("OPEN", c.ready_state)
    assert.equal("/", reqs[1].path)
  end)

  it("the unix_socket option keeps the URL's host and runs TLS with its name", function()
    local path = sock_path()
    local names = {}
    local _, _, reqs = unix_server(path, { tls = { cert = certs.server_cert, key = certs.server_key },
      on_upgrade = function(req) names[#names + 1] = req.server_name end })
    local c, err = net.connect("wss://localhost/tls", { unix_socket = path, tls = { cafile = certs.ca }, timeout = 3 })
    assert.is_nil(err)
    c:send("secure")
    assert.same({ "secure", "text" }, { c:receive(3) })
    assert.same({ "localhost" }, names)
    assert.equal("localhost", reqs[1].headers.host)
  end)

  it("the server closing first reaches the client's on_close", function()
    local path = sock_path()
    net.listen{ unix = path, on_message = function(sc) sc:close(4002, "bye") end }
    local closes = {}
    net.connect("ws+unix://" .. path .. ":/", {
      on_open = function(c) c:send("x") end,
      on_close = function(_, code, reason, clean) closes[#closes + 1] = { code, reason, clean } end,
    })
    assert.truthy(net.wait_until(function() return #closes > 0 end, 3))
    assert.same({ { 4002, "bye", true } }, closes)
  end)

  it("sets the mode bits (octal string or number) and removes its file at close", function()
    local path = sock_path()
    local srv = unix_server(path, { mode = "600" })
    assert.equal("600", net.sh("stat -c %a " .. net.quote(path)):match("%d+"))
    srv:close()
    assert.is_false(exists(path))
    local path2 = sock_path()
    local srv2 = unix_server(path2, { mode = tonumber("660", 8) })
    assert.equal("660", net.sh("stat -c %a " .. net.quote(path2)):match("%d+"))
    srv2:close()
  end)

  it("replaces a stale socket file nobody listens on", function()
    local path = sock_path()
    -- A listener that dies without cleaning up leaves its file behind.
    local child = net.spawn_lua(([[
local ws = require "ws"
ws.listen{ unix = %q }
print("PORT 1")
io.stdout:flush()
ws.run()
]]):format(path))
    child:wait_output("PORT (%d+)", 10)
    os.execute("kill -KILL " .. child.pid)
    net.wait_until(function() return net.proc_state(child.pid) == nil or net.proc_state(child.pid) == "Z" end, 3)
    assert.is_true(exists(path))
    unix_server(path)
    local c = assert(net.connect("ws+unix://" .. path .. ":/"))
    assert.equal("OPEN", c.ready_state)
  end)

  it("refuses a path where something listens, and a file that is not a socket", function()
    local path = sock_path()
    unix_server(path)
    assert.error_matches(function() ws.listen{ unix = path } end,
      "ws.listen: cannot listen on " .. path .. ": something is listening there", 1, true)
    -- The first server still works.
    assert(net.connect("ws+unix://" .. path .. ":/"))
    local file = net.next_name("plain")
    net.write_file(file, "keep me")
    assert.error_matches(function() ws.listen{ unix = file } end, "the file exists and is not a socket", 1, true)
    assert.equal("keep me", net.read_file(file))
  end)

  it("refuses paths it cannot use, naming the path and why", function()
    assert.error_matches(function() ws.listen{ unix = "/etc/passwd/x" } end,
      "ws.listen: cannot listen on /etc/passwd/x: Not a directory", 1, true)
    assert.error_matches(function() ws.listen{ unix = "/nonexistent-dir/s.sock" } end,
      "ws.listen: cannot listen on /nonexistent-dir/s.sock: bind: No such file or directory", 1, true)
    assert.error_matches(function() ws.listen{ unix = "/" .. string.rep("s", 200) } end,
      "ws.listen: Unix socket path must be 1 to 107 bytes", 1, true)
    local c, err = ws.connect("ws+unix:///" .. string.rep("s", 200) .. ":/", { timeout = 1 })
    assert.is_nil(c)
    assert.matches("^cannot connect to Unix socket /s+: path too long$", err)
  end)

  it("does not remove a socket file that another server made after it", function()
    local path = sock_path()
    local a = unix_server(path)
    os.remove(path)
    local b = unix_server(path)
    a:close()
    assert.is_true(exists(path))
    assert(net.connect("ws+unix://" .. path .. ":/"))
    b:close()
    assert.is_false(exists(path))
  end)

  it("reports a missing socket as a connect failure naming the path", function()
    local path = sock_path("missing")
    local c, err = net.connect("ws+unix://" .. path .. ":/", { timeout = 2 })
    assert.is_nil(c)
    assert.matches("cannot connect to Unix socket " .. path, err, 1, true)
  end)

  it("raises for bad Unix options and URLs, naming them", function()
    assert.error_matches(function() ws.connect("ws+unix://relative:/x") end, "absolute socket path")
    assert.error_matches(function() ws.connect("ws+unix:///tmp/s:x") end, "must start with '/'")
    assert.error_matches(function() ws.listen{ unix = sock_path(), mode = "9z" } end, "'mode' must be an octal string")
    assert.error_matches(function() ws.listen{ port = 0, mode = "600" } end, "'mode' applies to Unix sockets only")
    assert.error_matches(function() ws.connect("ws+unix:///tmp/x.sock", { proxy = "http://127.0.0.1:1" }) end,
      "'proxy' cannot be used with a Unix socket")
  end)
end)
