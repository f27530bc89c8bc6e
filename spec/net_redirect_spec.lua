-- follow_redirects: lua-ws servers whose on_upgrade answers 301/302/303/
-- 307/308 with a Location; the limit, relative and http(s):// targets,
-- wss:// never downgraded unless redirect_insecure, credentials dropped on
-- a hop to another origin, callback style on one connection object, and a
-- close while a redirect is under way.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"
local certs = require("spec.helpers.certs").get()
local ws = net.ws

-- A server that redirects every upgrade to location(req) with status.
local function redirector(status, location, extra)
  local seen = {}
  local opts = {
    on_upgrade = function(req)
      seen[#seen + 1] = req
      return false, status, "Moved", { Location = location(req) }
    end,
  }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return net.listen(opts), seen
end

-- An echo server that records the upgrade requests it accepts.
local function target(extra)
  local seen = {}
  local opts = { on_upgrade = function(req) seen[#seen + 1] = req end }
  for k, v in pairs(extra or {}) do opts[k] = v end
  local srv = net.echo_server(opts)
  return srv, seen
end

local function connect(url, opts)
  opts = opts or {}
  if opts.timeout == nil then opts.timeout = 3 end
  return net.connect(url, opts)
end

describe("follow_redirects", function()
  after_each(function() net.cleanup() end)

  it("is off by default: the 3xx answer is the error, with its Location", function()
    local srv = redirector(302, function() return "ws://127.0.0.1:9/" end)
    local c, err, info = connect(net.url(srv))
    assert.is_nil(c)
    assert.equal("handshake failed: expected status 101, got 302", err)
    assert.equal(302, info.status)
    assert.equal("ws://127.0.0.1:9/", info.headers.location)
  end)

  for _, status in ipairs({ 301, 302, 303, 307, 308 }) do
    it("follows " .. status .. " to another server; c.url is the final URL", function()
      local dst, dseen = target()
      local final = net.url(dst, "/there?q=1")
      local src, sseen = redirector(status, function() return final end)
      local c, err = connect(net.url(src, "/here"), { follow_redirects = 2 })
      assert.is_nil(err)
      assert.equal(final, c.url)
      assert.equal(1, #sseen)
      assert.equal("/there", dseen[1].path)
      c:send("after " .. status)
      assert.same({ "after " .. status, "text" }, { c:receive(3) })
    end)
  end

  it("resolves relative Locations and maps http:// to ws://", function()
    local dst, dseen = target()
    local hops = 0
    local src = net.listen{ on_upgrade = function(req)
      hops = hops + 1
      if req.path == "/a/b" then return false, 302, "Found", { Location = "c" } end       -- -> /a/c
      if req.path == "/a/c" then return false, 302, "Found", { Location = "/d" } end      -- -> /d
      if req.path == "/d" then
        return false, 307, "Temporary Redirect", { Location = "http://127.0.0.1:" .. dst.port .. "/e" }
      end
      return false, 404
    end }
    local c, err = connect(net.url(src, "/a/b"), { follow_redirects = 5 })
    assert.is_nil(err)
    assert.equal(3, hops)
    assert.equal("/e", dseen[1].path)
    assert.equal("ws://127.0.0.1:" .. dst.port .. "/e", c.url)
  end)

  it("follows a scheme-relative Location; one that is no WebSocket URL is the error", function()
    local dst, dseen = target()
    local src = redirector(302, function() return "//127.0.0.1:" .. dst.port .. "/f" end)
    local c, err = connect(net.url(src), { follow_redirects = 2 })
    assert.is_nil(err)
    assert.equal("ws://127.0.0.1:" .. dst.port .. "/f", c.url)
    assert.equal("/f", dseen[1].path)
    local info
    src = redirector(302, function() return "ftp://127.0.0.1/x" end)
    c, err, info = connect(net.url(src), { follow_redirects = 2 })
    assert.is_nil(c)
    assert.equal("handshake failed: invalid redirect to 'ftp://127.0.0.1/x': unsupported scheme 'ftp'",
      err)
    assert.equal(302, info.status)
  end)

  it("names a malformed ws+unix Location and what is wrong with it", function()
    local cases = {
      { "ws+unix://relative:/x", "ws+unix:// needs an absolute socket path" },
      { "ws+unix://", "ws+unix:// needs an absolute socket path" },
      { "ws+unix:///tmp/s:x", "the request path after ':' must start with '/'" },
      { "ws+unix:///" .. ("d"):rep(300), "Unix socket path too long" },
    }
    for _, case in ipairs(cases) do
      local src = redirector(307, function() return case[1] end)
      local c, err, info = connect(net.url(src), { follow_redirects = 2 })
      assert.is_nil(c)
      assert.equal("handshake failed: invalid redirect to '" .. case[1] .. "': " .. case[2], err)
      assert.equal(307, info.status)
      assert.is_nil(err:find("bad argument", 1, true))
    end
    -- A relative Location is named beside the URL it resolved to.
    local src = redirector(302, function() return "//127.0.0.1:99999/x" end)
    local c, err = connect(net.url(src), { follow_redirects = 2 })
    assert.is_nil(c)
    assert.equal("handshake failed: invalid redirect to 'ws://127.0.0.1:99999/x' " ..
      "(Location '//127.0.0.1:99999/x'): invalid port '99999'", err)
  end)

  it("stops at the limit: 'too many redirects', the server saw limit + 1 requests", function()
    local src, seen
    src, seen = redirector(302, function(req) return req.path .. "x" end)
    local c, err, info = connect(net.url(src, "/loop"), { follow_redirects = 3 })
    assert.is_nil(c)
    assert.equal("handshake failed: too many redirects (follow_redirects = 3)", err)
    assert.equal(4, #seen)
    assert.equal("/loopxxx", seen[4].path)
    assert.equal(302, info.status)
    -- true means 10
    src, seen = redirector(302, function() return "/again" end)
    assert.is_nil((connect(net.url(src), { follow_redirects = true })))
    assert.equal(11, #seen)
  end)

  it("never goes from wss:// to ws:// unless redirect_insecure is set", function()
    local dst = target()
    local src = redirector(302, function() return net.url(dst, "/plain") end,
      { tls = { cert = certs.server_cert, key = certs.server_key } })
    local url = "wss://localhost:" .. src.port .. "/"
    local c, err = connect(url, { follow_redirects = 3, tls = { cafile = certs.ca } })
    assert.is_nil(c)
    assert.matches("redirect from wss:// to 'ws://127.0.0.1:%d+/plain' refused " ..
      "%(redirect_insecure = true allows it%)", err)
    c, err = connect(url, { follow_redirects = 3, redirect_insecure = true, tls = { cafile = certs.ca } })
    assert.is_nil(err)
    c:send("downgraded on purpose")
    assert.same({ "downgraded on purpose", "text" }, { c:receive(3) })
  end)

  it("follows ws:// to wss:// with the TLS options", function()
    local dst, dseen = target{ tls = { cert = certs.server_cert, key = certs.server_key } }
    local src = redirector(301, function() return "wss://localhost:" .. dst.port .. "/secure" end)
    local c, err = connect(net.url(src), { follow_redirects = 1, tls = { cafile = certs.ca } })
    assert.is_nil(err)
    assert.equal("localhost", dseen[1].server_name)
    assert.equal("OPEN", c.ready_state)
  end)

  it("keeps Authorization and Cookie on the same origin, drops them for another", function()
    local dst, dseen = target()
    local hop = 0
    local src, sseen = redirector(302, function()
      hop = hop + 1
      if hop == 1 then return "/second" end
      return net.url(dst, "/elsewhere")
    end)
    local c, err = connect(net.url(src, "/first"), { follow_redirects = 3,
      headers = { Authorization = "Bearer t0ken", { "Cookie", "s=1" }, ["X-Keep"] = "yes" } })
    assert.is_nil(err)
    assert.equal("OPEN", c.ready_state)
    assert.equal(2, #sseen)
    assert.equal("Bearer t0ken", sseen[2].headers.authorization)
    assert.equal("s=1", sseen[2].headers.cookie)
    assert.is_nil(dseen[1].headers.authorization)
    assert.is_nil(dseen[1].headers.cookie)
    assert.equal("yes", dseen[1].headers["x-keep"])
  end)

  it("in callback style the same object opens once; the 3xx reaches no callback", function()
    local dst = target()
    local src = redirector(308, function() return net.url(dst, "/cb") end)
    local seen = {}
    local c
    c = connect(net.url(src), { follow_redirects = 1,
      on_open = function(cc) seen[#seen + 1] = "open"; assert.equal(c, cc); cc:send("cb") end,
      on_message = function(cc, data) seen[#seen + 1] = data; cc:close() end,
      on_error = function(_, e) seen[#seen + 1] = "error " .. e end,
      on_close = function(_, code) seen[#seen + 1] = code end })
    assert.truthy(net.wait_until(function() return #seen >= 3 end, 5))
    assert.same({ "open", "cb", 1000 }, seen)
  end)

  it("a close while the next hop connects ends with 1006 and no open", function()
    local dst, devents = net.echo_server()
    local src = redirector(302, function() return net.url(dst, "/late") end)
    local seen = {}
    local c = connect(net.url(src), { follow_redirects = 2,
      on_open = function() seen[#seen + 1] = "open" end,
      on_error = function(_, e) seen[#seen + 1] = e end,
      on_close = function(_, code, _, clean) seen[#seen + 1] = { code, clean } end })
    -- The URL changes when the next hop starts; close right then.
    assert.truthy(net.wait_until(function() return c.url:find("/late", 1, true) end, 3))
    assert.equal("CONNECTING", c.ready_state)
    c:close()
    assert.truthy(net.wait_until(function() return #seen > 0 end, 3))
    net.run_for(0.1)
    assert.same({ { 1006, false } }, seen)
    assert.equal("CLOSED", c.ready_state)
    assert.same({}, net.select(devents, "open"))
  end)

  it("raises for a bad follow_redirects, naming it", function()
    assert.error_matches(function() ws.connect("ws://127.0.0.1:9/", { follow_redirects = "yes" }) end,
      "'follow_redirects'")
    assert.error_matches(function() ws.connect("ws://127.0.0.1:9/", { follow_redirects = -1 }) end,
      "'follow_redirects'")
  end)
end)
