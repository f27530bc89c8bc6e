-- ws.listen edges: on_accept_error when accept() runs out of descriptors
-- (called once, accepting resumes once descriptors are free), an error
-- raised in on_request (the client gets 500, the error comes out of
-- ws.step), an on_upgrade answer with an unknown key (likewise),
-- `protocols` given as one string, and a `tls` option that is not a table.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"
local ws = net.ws

local NOFILE_SERVER = [[
local ws = require "ws"
local errors = 0
local srv
srv = ws.listen { port = 0,
  on_accept_error = function(_, err) errors = errors + 1 print("ACCEPT_ERROR " .. errors .. " " .. err) end,
  on_message = function(c, d) c:send(d) end,
  -- the script ends normally (a --coverage build writes its counts then)
  on_close = function() srv:close() end }
local hold = require("spec.helpers.nofile").use_up()
print("PORT " .. srv.port)
while errors == 0 do ws.step(0.05) end
-- a few more turns while out of descriptors: the callback is not called again
for _ = 1, 5 do ws.step(0.05) end
require("spec.helpers.nofile").release(hold)
print("FREED " .. errors)
ws.run()
print("DONE")
]]

-- Step the loop until a callback's error comes out of ws.step (at most 5 s);
-- returns it.
local function step_until_error()
  local ok, err = true, nil
  local deadline = net.now() + 5
  while ok and net.now() < deadline do
    ok, err = pcall(ws.step, 0.01)
  end
  assert.is_false(ok, "no error came out of ws.step")
  return err
end

describe("server edges", function()
  after_each(function() net.cleanup() end)

  it("calls on_accept_error once when out of descriptors, then accepts again once some are free", function()
    local child = net.spawn_lua_limited(64, NOFILE_SERVER)
    local port = tonumber(child:wait_output("PORT (%d+)"))
    local raw = assert(net.raw_connect(port))
    local msg = child:wait_output("ACCEPT_ERROR 1 ([^\n]*)\n")
    assert.are.equal("accept: Too many open files; accepting paused until descriptors free up", msg)
    assert.are.equal("1", child:wait_output("FREED (%d+)"))
    -- the connection that waited is accepted now
    local head = assert(raw:handshake(port, "/", nil, 10))
    assert.are.equal(101, head.status)
    raw:send_frame(1, "after the pause")
    local frame = raw:next_frame(10)
    assert.are.equal("after the pause", frame.payload)
    raw:send_close(1000)
    assert.are.equal("DONE", child:wait_output("(DONE)"))
    assert.is_true(child:wait_exit(10))
  end)

  it("answers 500 to a plain HTTP request whose on_request raises, and the error comes out of ws.step", function()
    local srv = net.listen { on_request = function() error("boom in on_request") end }
    local raw = assert(net.raw_connect(srv.port))
    raw:send("GET /plain HTTP/1.1\r\nHost: localhost\r\n\r\n")
    local err = step_until_error()
    assert.matches("boom in on_request", err, nil, true)
    assert.is_true(raw:wait_eof(5))
    assert.matches("^HTTP/1.1 500 ", raw:data())
  end)

  it("an on_upgrade answer with an unknown key raises naming it, and the client gets 500", function()
    local srv = net.listen { on_upgrade = function() return { nope = 1 } end }
    local raw = assert(net.raw_connect(srv.port))
    raw:send(net.upgrade_request(srv.port, "/"))
    local err = step_until_error()
    assert.matches("on_upgrade's answer: unknown option 'nope' (valid: protocol, headers)", err, nil, true)
    local head = assert(raw:read_head(5))
    assert.are.equal(500, head.status)
  end)

  it("takes protocols as one string", function()
    local srv = net.echo_server { protocols = "chat" }
    local c, err = net.connect("ws://127.0.0.1:" .. srv.port .. "/", { protocols = { "other", "chat" }, timeout = 5 })
    assert(c, err)
    assert.are.equal("chat", c.protocol)
  end)

  it("rejects a tls option that is not a table, naming it", function()
    local ok, err = pcall(ws.listen, { port = 0, tls = "cert.pem" })
    assert.is_false(ok)
    assert.matches("'tls' must be a table", err, nil, true)
  end)
end)
