-- Server fields (README: ws.listen; the reference's Server.fields): port,
-- listening and unix are read-only, any other field can be set and read,
-- a callback set to nil is removed; broadcast refuses text that is not
-- UTF-8 and takes it as binary.
local ws = require "ws"

describe("server fields", function()
  it("port and listening follow the socket; unix is nil on TCP; they are read-only", function()
    local srv = ws.listen { port = 0 }
    assert.is_true(srv.listening)
    assert.is_true(srv.port > 0)
    assert.is_nil(srv.unix)
    for _, k in ipairs { "port", "listening", "unix" } do
      local ok, err = pcall(function() srv[k] = 1 end)
      assert.is_false(ok)
      assert.truthy(err:find("server field '" .. k .. "' is read-only", 1, true), err)
    end
    srv:close()
    assert.is_false(srv.listening)
  end)

  it("keeps any other field and removes a callback set to nil", function()
    local got = {}
    local srv = ws.listen { port = 0, on_message = function(c, data) got[#got + 1] = data; c:close() end }
    srv.user = "bob"
    assert.are.equal("bob", srv.user)
    assert.is_function(srv.on_message)
    srv.on_open = function(c) c.server.on_message = nil end
    local c = assert(ws.connect("ws://127.0.0.1:" .. srv.port .. "/"))
    c:send("first")
    -- with on_message in place the server would have closed the connection
    assert.are.same({ nil, "timeout" }, { c:receive(0.3) })
    assert.are.same({}, got)
    assert.is_nil(srv.on_message)
    c:close()
    srv:close()
    ws.run()
  end)

  it("broadcast raises on text that is not UTF-8 and sends it as binary", function()
    local srv = ws.listen { port = 0 }
    local ok, err = pcall(srv.broadcast, srv, "\255")
    assert.is_false(ok)
    assert.truthy(err:find("invalid UTF-8 in a text message; send it as binary", 1, true), err)
    assert.are.equal(0, srv:broadcast("\255", "binary"))
    srv:close()
  end)
end)
