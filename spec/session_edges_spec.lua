-- Session edges through ws.core.session: a fragmented text message whose
-- last fragment ends inside a UTF-8 sequence (1007), an HTTP/1.0 upgrade
-- request (400), sends and control frames while a fragmented message is
-- under way and after the close, the argument checks of close, ping,
-- pong and send, and client handshakes failed by the response head.
-- Lua 5.1 compatible.

local core = require "ws.core"
local util = require "spec.helpers.session_util"

local function events(s)
  local out = {}
  for kind, a, b in s:events() do out[#out + 1] = { kind, a, b } end
  return out
end

describe("session edges", function()
  it("fails a text message that ends inside a UTF-8 sequence with 1007", function()
    local s = util.server()
    s:feed(core.build_frame { opcode = 1, payload = "\195", fin = false, mask = "abcd" }
      .. core.build_frame { opcode = 0, payload = "", mask = "abcd" })
    local evs = events(s)
    assert.are.same({ "error", "text message ends inside a UTF-8 sequence", 1007 }, evs[1])
    assert.are.same({ "close", 1007, "text message ends inside a UTF-8 sequence" }, evs[2])
  end)

  it("answers an HTTP/1.0 upgrade request with 400", function()
    local s = core.session { role = "server" }
    s:feed("GET / HTTP/1.0\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      .. "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    local evs = events(s)
    assert.are.same({ "error", "HTTP/1.1 required", 400 }, evs[1])
    assert.matches("^HTTP/1.1 400 Bad Request\r\n", s:output())
  end)

  it("refuses a message while a fragmented one is being sent, allows control frames", function()
    local c = util.client()
    assert.is_true(c:send_fragment("a", false))
    local ok, err = c:send("b")
    assert.is_nil(ok)
    assert.are.equal("a fragmented message is being sent", err)
    assert.is_true(c:ping("x"))
    assert.is_true(c:send_fragment("b", true))
    assert.is_true(c:send("c"))
  end)

  it("refuses sends, fragments and pings after the close", function()
    local c = util.client()
    assert.is_true(c:close(1000, "bye"))
    for name, call in pairs { send = function() return c:send("b") end,
      send_fragment = function() return c:send_fragment("b", true) end,
      ping = function() return c:ping("x") end,
      pong = function() return c:pong("x") end } do
      local ok, err = call()
      assert.is_nil(ok, name)
      assert.are.equal("connection is not open", err, name)
    end
  end)

  it("checks the arguments of close, ping, pong and send", function()
    local c = util.client()
    local cases = {
      { "close reason is not valid UTF-8", c.close, 1000, "\255" },
      { "close reason over 123 bytes", c.close, 1000, string.rep("r", 124) },
      { "invalid close code", c.close, 0, "x" },
      { "ping payload over 125 bytes", c.ping, string.rep("p", 126) },
      { "pong payload over 125 bytes", c.pong, string.rep("p", 126) },
      { "invalid UTF-8 in a text message; send it as binary", c.send, "\255" },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(case[2], c, case[3], case[4])
      assert.is_false(ok, case[1])
      assert.matches(case[1], err, nil, true)
    end
    -- still open and usable
    assert.are.equal("OPEN", c:state())
    assert.is_true(c:send("\255", "binary"))
  end)

  it("fails a client whose response head is too large, has too many headers, or is not 101", function()
    local cases = {
      { { max_head = 64 }, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nX: "
        .. string.rep("a", 100) .. "\r\n\r\n", "response head too large" },
      { { max_headers = 2 }, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nA: 1\r\nB: 2\r\n\r\n",
        "too many headers in the response", 101 },
      -- a body longer than its Content-Length
      { {}, "HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nhello world", "expected status 101, got 403", 403 },
    }
    for _, case in ipairs(cases) do
      local opts = { role = "client", url = "ws://h/" }
      for k, v in pairs(case[1]) do opts[k] = v end
      local c = core.session(opts)
      assert.is_true(c:memory() > 0) -- with its handshake state
      assert.matches("^GET / HTTP/1.1\r\n", c:output())
      c:feed(case[2])
      local kind, why, status = c:next_event()
      assert.are.same({ "error", case[3], case[4] }, { kind, why, status }, case[3])
      assert.are.equal("CLOSED", c:state())
    end
  end)

  it("reads ready_state as a field, and nothing else", function()
    local s = core.session { role = "server" }
    assert.are.equal("CONNECTING", s.ready_state)
    assert.is_nil(s.no_such_field)
  end)
end)
