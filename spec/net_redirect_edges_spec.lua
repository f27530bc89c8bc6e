-- follow_redirects edges that net_redirect_spec.lua leaves out: an
-- https:// Location (followed as wss://), a relative Location from a URL
-- without a path and from a ws+unix:// URL, credentials in the array form of `headers` dropped on a
-- hop to another origin, a 3xx without a Location, and a next hop whose
-- TLS context cannot be made.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"
local certs = require("spec.helpers.certs").get()

-- A server that answers every upgrade whose path is not `accept_path`
-- with status and the Location location(req) (none when location is nil);
-- upgrades it accepts are echoed and recorded in `seen`.
local function redirector(status, location, accept_path)
  local seen = {}
  local srv = net.echo_server {
    on_upgrade = function(req)
      if req.path == accept_path then
        seen[#seen + 1] = req
        return
      end
      return false, status, "Moved", location and { Location = location(req) } or nil
    end,
  }
  return srv, seen
end

local function connect(url, opts)
  opts.timeout = opts.timeout or 5
  return net.connect(url, opts)
end

local function echoes(c)
  assert.is_true(c:send("hello"))
  assert.are.equal("hello", (c:receive(5)))
end

describe("follow_redirects edges", function()
  after_each(function() net.cleanup() end)

  it("follows an https:// Location as wss://", function()
    local tls = net.echo_server { tls = { cert = certs.server_cert, key = certs.server_key } }
    local src = redirector(302, function() return "https://localhost:" .. tls.port .. "/secure" end)
    local c, err = connect("ws://127.0.0.1:" .. src.port .. "/", { follow_redirects = 1, tls = { cafile = certs.ca } })
    assert(c, err)
    assert.are.equal("wss://localhost:" .. tls.port .. "/secure", c.url)
    echoes(c)
  end)

  it("resolves a relative Location against a URL without a path", function()
    local srv, seen = redirector(302, function() return "there" end, "/there")
    local c, err = connect("ws://127.0.0.1:" .. srv.port, { follow_redirects = 1 })
    assert(c, err)
    assert.are.equal("ws://127.0.0.1:" .. srv.port .. "/there", c.url)
    assert.are.equal(1, #seen)
    echoes(c)
  end)

  it("resolves a relative Location against a ws+unix:// URL's request path", function()
    local sock = net.tmpdir() .. "/redirect.sock"
    local seen = {}
    net.echo_server { unix = sock, on_upgrade = function(req)
      seen[#seen + 1] = req.path
      if req.path ~= "/dir/there" then return false, 302, "Moved", { Location = "there" } end
    end }
    local c, err = connect("ws+unix://" .. sock .. ":/dir/here", { follow_redirects = 1 })
    assert(c, err)
    assert.are.equal("ws+unix://" .. sock .. ":/dir/there", c.url)
    assert.are.same({ "/dir/here", "/dir/there" }, seen)
    echoes(c)
  end)

  it("drops credentials given as {name, value} pairs on a hop to another origin, keeps the rest", function()
    local dst, dseen = redirector(302, nil, "/x")
    local src = redirector(307, function() return "ws://localhost:" .. dst.port .. "/x" end)
    local c, err = connect("ws://127.0.0.1:" .. src.port .. "/", { follow_redirects = 1,
      headers = { { "Authorization", "secret" }, { "Cookie", "c=1" }, { "X-Keep", "1" } } })
    assert(c, err)
    assert.are.equal(1, #dseen)
    local h = dseen[1].headers
    assert.are.equal("1", h["x-keep"])
    assert.is_nil(h.authorization)
    assert.is_nil(h.cookie)
  end)

  it("does not follow a 3xx without a Location", function()
    local srv = redirector(302, nil)
    local c, err, info = connect("ws://127.0.0.1:" .. srv.port .. "/", { follow_redirects = 3 })
    assert.is_nil(c)
    assert.are.equal("handshake failed: expected status 101, got 302", err)
    assert.are.equal(302, info.status)
  end)

  it("fails with the reason when the next hop's TLS context cannot be made", function()
    local tls = net.echo_server { tls = { cert = certs.server_cert, key = certs.server_key } }
    local src = redirector(302, function() return "https://localhost:" .. tls.port .. "/" end)
    -- the tls options are not used for the first, ws:// hop
    local c, err = connect("ws://127.0.0.1:" .. src.port .. "/",
      { follow_redirects = 1, tls = { cafile = certs.ca, ciphers = "NONE-SUCH" } })
    assert.is_nil(c)
    assert.are.equal("handshake failed: redirect to 'wss://localhost:" .. tls.port
      .. "/' failed: TLS: no usable cipher in 'NONE-SUCH'", err)
  end)
end)
