-- Wrong arguments and options of the C bindings raise errors that name the
-- argument or the option; objects print their kind; a closed loop refuses
-- use.  Each case is one the other specs do not reach.
local ws = require "ws"
local core = require "ws.core"

local function raises(pattern, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "no error, expected " .. pattern)
  assert.truthy(tostring(err):find(pattern, 1, true), tostring(err))
end

local noop = function() end

describe("binding arguments", function()
  it("codecs: a frame payload that is not a string, a mask key that is not 4 bytes, a negative offset", function()
    raises("bad option 'payload' (string expected, got number)", core.build_frame, { payload = 5 })
    raises("bad option 'mask' (4 bytes expected)", core.build_frame, { payload = "x", mask = "abc" })
    -- (Lua 5.1 and LuaJIT do not know the function's name: '?')
    raises("bad argument #2 to '", core.mask, "x", "abc")
    raises("(4-byte key expected)", core.mask, "x", "abc")
    raises("bad argument #3 to '", core.mask, "x", "abcd", -1)
    raises("(offset must not be negative)", core.mask, "x", "abcd", -1)
  end)

  it("options: numbers, header lists, compress tables, buffer_policy, tls and callbacks", function()
    local url = "ws://127.0.0.1:1/"
    raises("'timeout' must be a number, got string", ws.connect, url, { timeout = "x", on_open = noop })
    raises("'headers' list entries must be {name, value} pairs, got number", ws.session,
      { role = "client", url = url, headers = { 5 } })
    raises("'compress' keys must be option names, got a number", ws.session,
      { role = "client", handshake = false, compress = { [1] = true } })
    raises([['buffer_policy' must be "error" or "close"]], ws.listen, { buffer_policy = "nope" })
    raises("'tls' must be a table", ws.connect, "wss://127.0.0.1:1/", { tls = 5, on_open = noop })
    raises("'on_open' must be a function", ws.connect, url, { on_open = 5 })
  end)

  it("connections: read-only fields, callback fields, a close reason that is not UTF-8, tostring", function()
    local srv = ws.listen { port = 0 }
    local errors, printed = {}, nil
    ws.connect("ws://127.0.0.1:" .. srv.port .. "/", {
      on_open = function(c)
        printed = tostring(c)
        errors[1] = select(2, pcall(function() c.ready_state = "OPEN" end))
        errors[2] = select(2, pcall(function() c.on_message = 5 end))
        errors[3] = select(2, pcall(c.close, c, 1000, "\255"))
        c:close()
        srv:close()
      end,
    })
    ws.run()
    assert.truthy(printed and printed:find("^ws%.conn %("), printed)
    assert.truthy(errors[1]:find("connection field 'ready_state' is read-only", 1, true), errors[1])
    assert.truthy(errors[2]:find("connection field 'on_message' must be a function", 1, true), errors[2])
    assert.truthy(errors[3]:find("close reason is not valid UTF-8", 1, true), errors[3])
  end)

  it("sessions and loops print their kind; a closed loop refuses use", function()
    assert.truthy(tostring(ws.session { role = "client", handshake = false }):find("^ws%.core%.session %("))
    local loop = core.loop()
    assert.truthy(tostring(loop):find("^ws%.core%.loop %("))
    loop:close()
    assert.truthy(tostring(loop):find("^ws%.core%.loop %(closed, "))
    raises("loop is closed", loop.step, loop, 0)
  end)

  it("read_input: a bad descriptor or size raises naming it; a failed read is nil, err, errno", function()
    raises("fd must be a non-negative integer", core.read_input, -1)
    raises("size must be 1..65536", core.read_input, 0, 0)
    raises("size must be 1..65536", core.read_input, 0, 65537)
    local data, err, code = core.read_input(1048576) -- no such descriptor
    assert.is_nil(data)
    assert.equal("read_input: Bad file descriptor", err)
    assert.equal(9, code) -- EBADF
  end)
end)
