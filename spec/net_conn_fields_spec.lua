-- Connection fields at the edges: read-only fields and callbacks a client
-- cannot have refuse assignment, callbacks must be functions, fields of
-- the user's own are kept, and after the loop closed every field still
-- reads (CLOSED, nil or the kept peer address) and pause/resume say the
-- connection is closed.  On Lua 5.4, `local c <close>` closes the
-- connection at the end of its scope.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"
local ws = net.ws

local function pair()
  local srv = net.echo_server { protocols = { "chat" } }
  local c = assert(net.connect("ws://127.0.0.1:" .. srv.port .. "/", { protocols = { "chat" }, timeout = 5 }))
  return srv, c
end

describe("connection fields", function()
  after_each(function() net.cleanup() end)

  it("refuse what cannot be assigned, keep what the user adds", function()
    local _, c = pair()
    local ok, err = pcall(function() c.ready_state = 1 end)
    assert.is_false(ok)
    assert.matches("connection field 'ready_state' is read-only", err, nil, true)
    ok, err = pcall(function() c.on_upgrade = print end)
    assert.is_false(ok)
    assert.matches("connection field 'on_upgrade' is read-only", err, nil, true)
    ok, err = pcall(function() c.on_message = 1 end)
    assert.is_false(ok)
    assert.matches("connection field 'on_message' must be a function", err, nil, true)
    assert.is_nil(c.no_such_field)
    c.mine = 5
    assert.are.equal(5, c.mine)
    assert.is_nil(c.still_no_such_field)
  end)

  it("a client connection has no topics", function()
    local _, c = pair()
    for _, m in ipairs { "subscribe", "unsubscribe" } do
      local ok, err = pcall(c[m], c, "room")
      assert.is_false(ok, m)
      assert.matches(m .. ": topics belong to a server's connections, not to a client", err, nil, true)
    end
    assert.are.same({}, c:topics())
  end)

  it("still read after the loop closed", function()
    local _, c = pair()
    local port = c.remote_port
    assert.are.equal("chat", c.protocol)
    c.mine = "kept"
    ws.loop():close()
    assert.are.equal("CLOSED", c.ready_state)
    assert.is_nil(c.protocol)
    assert.is_nil(c.extensions)
    assert.is_nil(c.server_name)
    assert.are.equal("127.0.0.1", c.remote_address)
    assert.are.equal(port, c.remote_port)
    assert.are.equal("kept", c.mine)
    for _, m in ipairs { "pause", "resume" } do
      local ok, err = c[m](c)
      assert.is_nil(ok, m)
      assert.are.equal("connection is closed", err, m)
    end
  end)

  it("closes at the end of a <close> scope (Lua 5.4)", function()
    if _VERSION ~= "Lua 5.4" then
      pending("to-be-closed variables are Lua 5.4")
      return
    end
    local srv, events = net.echo_server()
    local chunk = assert(load([[
      local net, url = ...
      local c <close> = assert(net.connect(url, { timeout = 5 }))
      assert(c:send("in scope"))
      assert(c:receive(5) == "in scope")
      return c
    ]]))
    local c = chunk(net, "ws://127.0.0.1:" .. srv.port .. "/")
    assert.is_true(net.wait_until(function() return c.ready_state == "CLOSED" end, 5))
    assert.is_true(net.wait_until(function() return #net.select(events, "close") == 1 end, 5))
    assert.are.equal(1000, net.select(events, "close")[1][3])
  end)
end)
