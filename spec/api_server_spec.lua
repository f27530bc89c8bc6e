-- Server-side API details: srv:close validates like c:close and returns
-- true; host = "*" listens on IPv6 and IPv4; header lookup ignores case
-- and repeated Cookie headers join with "; "; c:pong().
-- Lua 5.1 compatible.

local ws = require "ws"
local net = require "spec.helpers.net_util"

describe("srv:close", function()
  after_each(function() net.cleanup() end)

  it("raises on a bad code or reason, keeps listening and serving, and returns true", function()
    local srv = net.echo_server()
    local c = net.track_conn(assert(ws.connect(net.url(srv))))
    for _, bad in ipairs({ { 5 }, { 1005 }, { 1000.5 }, { 1000, string.rep("r", 124) },
                           { 1000, "\255\254" } }) do
      local ok, err = pcall(function() srv:close(bad[1], bad[2]) end)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("bad argument #%d to 'close'"), err)
    end
    assert.is_true(srv.listening)
    c:send("still")
    assert.are.equal("still", (c:receive(5)))
    assert.is_true(srv:close(4000, "bye"))
    assert.is_false(srv.listening)
    local data, what, code, reason = c:receive(5)
    assert.are.same({ nil, "closed", 4000, "bye" }, { data, what, code, reason })
  end)

  it("closes with 1001 by default", function()
    local srv = net.echo_server()
    local c = net.track_conn(assert(ws.connect(net.url(srv))))
    assert.is_true(srv:close())
    local _, _, code = c:receive(5)
    assert.are.equal(1001, code)
  end)
end)

describe("host = '*'", function()
  after_each(function() net.cleanup() end)

  local function has_ipv6()
    local f = io.open("/proc/net/if_inet6")
    if not f then return false end
    local any = f:read("*l") ~= nil
    f:close()
    return any
  end

  it("accepts IPv4 clients (reported as IPv4) and IPv6 clients on one port", function()
    local peers = {}
    local srv = net.listen { host = "*", on_open = function(c)
      peers[#peers + 1] = c.remote_address
    end }
    local c4 = net.track_conn(assert(ws.connect("ws://127.0.0.1:" .. srv.port .. "/")))
    assert.are.equal("OPEN", c4.ready_state)
    if has_ipv6() then
      local c6 = net.track_conn(assert(ws.connect("ws://[::1]:" .. srv.port .. "/")))
      assert.are.equal("OPEN", c6.ready_state)
    end
    net.wait_until(function() return #peers >= (has_ipv6() and 2 or 1) end, 5)
    assert.are.equal("127.0.0.1", peers[1])
    if has_ipv6() then assert.are.equal("::1", peers[2]) end
  end)
end)

describe("headers", function()
  after_each(function() net.cleanup() end)

  it("req.headers and c.headers find names in any case; Cookie headers join with '; '", function()
    local seen
    local srv = net.listen { on_upgrade = function(req)
      seen = { req.headers.Authorization, req.headers["X-Custom-Thing"], req.headers.authorization,
        req.headers.cookie, req.headers["Accept-Language"] }
      return { headers = { ["X-Answer"] = "yes" } }
    end }
    local c = net.track_conn(assert(ws.connect(net.url(srv), { headers = {
      { "Authorization", "Bearer t" }, { "x-custom-thing", "1" },
      { "Cookie", "a=1" }, { "Cookie", "b=2" },
      { "Accept-Language", "en" }, { "Accept-Language", "fr" } } })))
    assert.are.same({ "Bearer t", "1", "Bearer t", "a=1; b=2", "en, fr" }, seen)
    assert.are.equal("yes", c.headers["X-Answer"])
    assert.are.equal("yes", c.headers["x-answer"])
    -- stored lowercased: pairs sees one name per header
    local names = {}
    for k in pairs(c.headers) do names[#names + 1] = k end
    for _, k in ipairs(names) do assert.are.equal(k:lower(), k) end
  end)
end)

describe("c:pong", function()
  after_each(function() net.cleanup() end)

  it("sends an unsolicited pong the peer's on_pong sees, from both sides", function()
    local got = {}
    local srv = net.listen {
      on_open = function(sc) assert.is_true(sc:pong("from server")) end,
      on_pong = function(_, payload) got[#got + 1] = "server got " .. payload end,
    }
    local c = net.track_conn(assert(ws.connect(net.url(srv), { wait = true,
      on_pong = function(_, payload) got[#got + 1] = "client got " .. payload end })))
    assert.is_true(c:pong("from client"))
    assert.is_true(c:pong())
    net.wait_until(function() return #got >= 3 end, 5)
    table.sort(got)
    assert.are.same({ "client got from server", "server got ", "server got from client" }, got)
  end)

  it("rejects a payload over 125 bytes and answers nil, err once closed", function()
    local srv = net.echo_server()
    local c = net.track_conn(assert(ws.connect(net.url(srv))))
    local ok, err = pcall(c.pong, c, string.rep("p", 126))
    assert.is_false(ok)
    assert.truthy(tostring(err):find("pong payload over 125 bytes", 1, true))
    c:close()
    net.wait_until(function() return c.ready_state == "CLOSED" end, 5)
    local r, e = c:pong("late")
    assert.is_nil(r)
    assert.is_string(e)
  end)
end)
