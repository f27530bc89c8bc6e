-- One meaning per name across connections, reconnecting connections and
-- sessions: ready_state is a field everywhere (s:state() stays as an
-- alias), protocol/extensions are nil when none was negotiated, and
-- __close starts a normal close on every object.
-- Lua 5.1 compatible (the <close> checks run on Lua 5.4 only).

local ws = require "ws"
local net = require "spec.helpers.net_util"
local util = require "spec.helpers.session_util"

local HAS_CLOSE = _VERSION == "Lua 5.4"

describe("names", function()
  after_each(function() net.cleanup() end)

  it("ready_state is a field of sessions too, equal to s:state()", function()
    local s = ws.session { role = "server", handshake = false }
    assert.are.equal("OPEN", s.ready_state)
    assert.are.equal(s:state(), s.ready_state)
    s:close(1000)
    assert.are.equal("CLOSING", s.ready_state)
    local c = ws.session { role = "client", url = "ws://h/" }
    assert.are.equal("CONNECTING", c.ready_state)
  end)

  it("protocol and extensions are nil when none was negotiated, on connections and sessions", function()
    local srv = net.echo_server()
    local c = net.track_conn(assert(ws.connect(net.url(srv))))
    assert.is_nil(c.protocol)
    assert.is_nil(c.extensions)
    local s = util.server {}
    assert.is_nil(s:protocol())
    assert.is_nil(s:extensions())
    local srv2 = net.listen { protocols = { "chat" }, compress = true }
    local c2 = net.track_conn(assert(ws.connect(net.url(srv2), { protocols = { "chat" }, compress = true })))
    assert.are.equal("chat", c2.protocol)
    assert.are.equal("permessage-deflate", c2.extensions)
  end)

  if HAS_CLOSE then
    it("<close> on a session starts a normal close, as on a connection and a server", function()
      local run = assert(load([[
        local ws, net, util = ...
        local out
        do
          local s <close> = ws.session { role = "server", handshake = false }
          _G.__session = s
        end
        local s = _G.__session
        _G.__session = nil
        out = s:output()
        local srv_closed
        do
          local srv <close> = net.listen {}
          srv_closed = srv
        end
        return s.ready_state, util.decode(out), srv_closed.listening
      ]]))
      local state, frames, listening = run(ws, net, util)
      assert.are.equal("CLOSING", state)
      assert.are.equal(8, frames[1].opcode)
      assert.are.equal(1000, util.close_code(frames[1].payload))
      assert.is_false(listening)
    end)
  end
end)
