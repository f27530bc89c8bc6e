-- One shape for the upgrade request a server receives: on_upgrade's
-- request, the session's "request" event and ws.core.accept's table have
-- the same fields, with every Sec-WebSocket-Extensions and
-- Sec-WebSocket-Protocol header read.
local core = require "ws.core"
local net = require "spec.helpers.net_util"

local EXTRA = "Origin: https://app.example\r\n"
  .. "Sec-WebSocket-Protocol: chat, superchat\r\n"
  .. "Sec-WebSocket-Protocol: echo\r\n"
  .. "Sec-WebSocket-Extensions: x-one\r\n"
  .. "Sec-WebSocket-Extensions: x-two; a=1\r\n"

local COMMON = { "method", "path", "query", "origin", "key", "head_length", "extensions" }

local function common(req)
  local t = {}
  for _, k in ipairs(COMMON) do t[k] = req[k] end
  t.protocols = req.protocols
  t.upgrade = req.headers and req.headers.upgrade
  return t
end

describe("the upgrade request table", function()
  after_each(function() net.cleanup() end)

  it("is the same from on_upgrade, the session's request event and ws.core.accept", function()
    local text = net.upgrade_request(1, "/room?x=1", EXTRA)

    local _, from_accept = core.accept(text)
    assert.is_table(from_accept)

    local s = core.session { role = "server" }
    s:feed(text)
    local kind, from_session = s:next_event()
    assert.are.equal("request", kind)

    local from_upgrade
    local srv = net.listen { on_upgrade = function(req) from_upgrade = req; return false, 403 end }
    net.http_exchange(srv.port, net.upgrade_request(srv.port, "/room?x=1", EXTRA))
    assert.is_table(from_upgrade)

    local want = {
      method = "GET", path = "/room", query = "x=1", origin = "https://app.example",
      key = net.KEY, head_length = #text, extensions = "x-one, x-two; a=1",
      protocols = { "chat", "superchat", "echo" }, upgrade = "websocket",
    }
    assert.are.same(want, common(from_accept))
    assert.are.same(want, common(from_session))
    -- The host header holds the port, so only the head length differs.
    want.head_length = #net.upgrade_request(srv.port, "/room?x=1", EXTRA)
    assert.are.same(want, common(from_upgrade))
    assert.is_string(from_upgrade.peer_address)
  end)

  it("picks the subprotocol the same way in the session and ws.core.accept", function()
    local text = net.upgrade_request(1, "/", EXTRA)
    local _, info = core.accept(text, { protocols = { "echo", "superchat" } })
    assert.are.equal("superchat", info.protocol)
    local s = core.session { role = "server", protocols = { "echo", "superchat" } }
    s:feed(text)
    s:next_event()
    assert.is_true(s:accept())
    local out = s:output()
    assert.matches("Sec%-WebSocket%-Protocol: superchat\r\n", out)
  end)
end)

describe("the size limits", function()
  it("have the same ranges in the session, the server, the client and the parsers", function()
    local req = "GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    -- 10 bytes: refused by the session and accepted by the parsers before
    assert.is_truthy(core.session { role = "server", max_head = 10 })
    local ok = pcall(core.parse_request, req, { max_head = 10 })
    assert.is_true(ok)
    -- over the ranges: refused everywhere, naming the option
    for _, opts in ipairs { { max_head = 2 ^ 20 + 1 }, { max_headers = 1025 } } do
      local k = next(opts)
      local e1 = select(2, pcall(core.parse_request, req, opts))
      opts.role = "server"
      local e2 = select(2, pcall(core.session, opts))
      assert.matches(k, tostring(e1))
      assert.matches(k, tostring(e2))
    end
  end)
end)
