-- permessage-deflate offer parameters a server session meets (RFC 7692 5,
-- 7): quoted values, tabs around parameters, window sizes out of range or
-- malformed, empty, unknown, repeated and valued flags (each declines that
-- offer, the connection goes on without compression), a later offer taken
-- when the first is declined, another extension first, and the server's
-- own window ceiling.  Table-driven through ws.core.session.
-- Lua 5.1 compatible.

local core = require "ws.core"

local KEY = "dGhlIHNhbXBsZSBub25jZQ=="

-- The Sec-WebSocket-Extensions answer to `offer` (false: none), after a
-- 101 (the upgrade itself never fails over an extension offer).
local function answer(offer, compress)
  local s = core.session { role = "server", compress = compress or true }
  s:feed("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    .. "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " .. KEY .. "\r\n"
    .. "Sec-WebSocket-Extensions: " .. offer .. "\r\n\r\n")
  assert.are.equal("request", (s:next_event()), offer)
  assert.is_true(s:accept(), offer)
  local out = s:output()
  assert.matches("^HTTP/1.1 101 ", out, nil, offer)
  return out:match("\r\nSec%-WebSocket%-Extensions: ([^\r]*)\r\n") or false
end

describe("permessage-deflate offer parameters", function()
  it("answers each offer as RFC 7692 asks", function()
    local cases = {
      { 'permessage-deflate; client_max_window_bits="10"', "permessage-deflate" },
      { "permessage-deflate;\tserver_max_window_bits=9\t", "permessage-deflate; server_max_window_bits=9" },
      { "permessage-deflate; client_max_window_bits", "permessage-deflate" },
      { "permessage-deflate; server_max_window_bits=10, permessage-deflate",
        "permessage-deflate; server_max_window_bits=10" },
      { "x-other, permessage-deflate; client_no_context_takeover",
        "permessage-deflate; client_no_context_takeover" },
      -- declined: zlib has no 8-bit raw window, out of range, not a number
      { "permessage-deflate; server_max_window_bits=8", false },
      { "permessage-deflate; server_max_window_bits=16", false },
      { "permessage-deflate; server_max_window_bits=1a", false },
      { 'permessage-deflate; server_max_window_bits="1', false },
      -- declined: empty, unknown, valued flag, repeated parameter
      { "permessage-deflate; ; client_no_context_takeover", false },
      { "permessage-deflate; foo", false },
      { "permessage-deflate; foo=1", false },
      { "permessage-deflate; server_no_context_takeover=1", false },
      { "permessage-deflate; client_max_window_bits; client_max_window_bits", false },
      -- a declined offer, then one that is taken
      { "permessage-deflate; foo, permessage-deflate; server_no_context_takeover",
        "permessage-deflate; server_no_context_takeover" },
    }
    for _, case in ipairs(cases) do
      assert.are.equal(case[2], answer(case[1]), case[1])
    end
  end)

  it("keeps its own window ceiling below what the client asks for", function()
    assert.are.equal("permessage-deflate; server_max_window_bits=10",
      answer("permessage-deflate; server_max_window_bits=12", { window_bits = 10 }))
    assert.are.equal("permessage-deflate", answer("permessage-deflate", { window_bits = 10 }))
    assert.are.equal("permessage-deflate; client_no_context_takeover",
      answer("permessage-deflate; client_max_window_bits", { window_bits = 11, client_no_context_takeover = true }))
  end)

  it("inflates what a client compressed with a small window and takes its messages", function()
    local c = core.session { role = "client", url = "ws://h/", compress = { window_bits = 9, threshold = 0 } }
    local s = core.session { role = "server", compress = { window_bits = 10 } }
    s:feed(c:output())
    assert.are.equal("request", (s:next_event()))
    assert.is_true(s:accept())
    c:feed(s:output())
    assert.are.equal("open", (c:next_event()))
    local msg = string.rep("window ", 5000)
    assert.is_true(c:send(msg))
    s:feed(c:output())
    local kind, data
    repeat kind, data = s:next_event() until kind ~= "open"
    assert.are.equal("message", kind)
    assert.is_true(data == msg)
  end)
end)
