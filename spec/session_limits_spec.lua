-- Limits (RFC 6455 7.4.1 code 1009): max_message and max_frame with exact
-- boundaries, detection from the frame header alone, the 16 MiB default,
-- and option checking of core.session.
local core = require "ws.core"
local util = require "spec.helpers.session_util"

local OP = util.OP
local MiB = 1024 * 1024

local function raises_naming(option, opts)
  local ok, err = pcall(core.session, opts)
  assert.is_false(ok, option .. " should raise")
  assert.is_truthy(tostring(err):find(option, 1, true), "error should name " .. option .. ": " .. tostring(err))
end

for _, role in ipairs { "server", "client" } do
  describe("limits, " .. role .. " role", function()
    it("accepts a message of exactly max_message bytes", function()
      local s = util.session(role, { max_message = 1000 })
      local p = util.ascii(1000, 1)
      assert.are.same({ { "message", p, "text" } }, util.feed(s, util.in_frame(s, OP.text, p)))
    end)

    it("fails with 1009 on a message of max_message + 1 bytes", function()
      local s = util.session(role, { max_message = 1000 })
      local evs = util.feed(s, util.in_frame(s, OP.binary, util.bytes(1001, 1)) .. util.in_frame(s, OP.text, "x"))
      util.assert_fail(s, evs, 1009)
    end)

    it("fails with 1009 from the header of a too large frame, before its payload", function()
      local s = util.session(role, { max_message = 1000 })
      local f = util.in_frame(s, OP.binary, util.bytes(1001, 1))
      local hl = role == "server" and 8 or 4
      util.assert_fail(s, util.feed(s, f:sub(1, hl)), 1009)
    end)

    it("accepts fragments summing to exactly max_message", function()
      local s = util.session(role, { max_message = 1000 })
      local a, b = util.ascii(600, 2), util.ascii(400, 3)
      local evs = util.feed(s, util.in_frame(s, OP.text, a, { fin = false }) .. util.in_frame(s, OP.cont, b))
      assert.are.same({ { "message", a .. b, "text" } }, evs)
    end)

    it("fails with 1009 on fragments whose sum exceeds max_message", function()
      local s = util.session(role, { max_message = 1000 })
      assert.are.same({}, util.feed(s, util.in_frame(s, OP.text, util.ascii(600, 2), { fin = false })))
      local evs = util.feed(s, util.in_frame(s, OP.cont, util.ascii(401, 3)) .. util.in_frame(s, OP.text, "x"))
      util.assert_fail(s, evs, 1009)
    end)

    it("fails with 1009 on many small fragments exceeding max_message", function()
      local s = util.session(role, { max_message = 100 })
      local t = {}
      for i = 1, 11 do
        t[i] = util.in_frame(s, i == 1 and OP.binary or OP.cont, "0123456789", { fin = i == 11 })
      end
      util.assert_fail(s, util.feed(s, table.concat(t)), 1009)
    end)

    it("does not count control frames toward max_message", function()
      local s = util.session(role, { max_message = 10 })
      local evs = util.feed(s, util.in_frame(s, OP.text, "01234", { fin = false })
        .. util.in_frame(s, OP.ping, string.rep("p", 100)) .. util.in_frame(s, OP.cont, "56789"))
      assert.are.same({ { "ping", string.rep("p", 100) }, { "message", "0123456789", "text" } }, evs)
    end)

    it("applies max_frame to each frame, below max_message", function()
      local s = util.session(role, { max_message = 1000, max_frame = 100 })
      local a, b = util.ascii(100, 4), util.ascii(100, 5)
      local evs = util.feed(s, util.in_frame(s, OP.text, a, { fin = false }) .. util.in_frame(s, OP.cont, b))
      assert.are.same({ { "message", a .. b, "text" } }, evs)
      local f = util.in_frame(s, OP.text, util.ascii(101, 6))
      util.assert_fail(s, util.feed(s, f:sub(1, role == "server" and 6 or 2)), 1009)
    end)

    it("defaults max_frame to max_message", function()
      local s = util.session(role, { max_message = 50 })
      local f = util.in_frame(s, OP.binary, util.bytes(51, 2))
      util.assert_fail(s, util.feed(s, f:sub(1, role == "server" and 6 or 2)), 1009)
    end)

    it("fails with 1009 on a header announcing 2^40 bytes, at once", function()
      local s = util.session(role)
      local hdr = util.frame { opcode = OP.binary, length = 2 ^ 40, mask = role == "server" and util.PEER_KEY or nil }
      assert.are.equal(role == "server" and 14 or 10, #hdr)
      util.assert_fail(s, util.feed(s, hdr), 1009)
    end)

    it("fails with 1002 on a 64-bit length with the most significant bit set", function()
      local s = util.session(role)
      local b2 = role == "server" and 255 or 127
      local hdr = string.char(130, b2, 128, 0, 0, 0, 0, 0, 0, 5)
      if role == "server" then hdr = hdr .. util.PEER_KEY end
      util.assert_fail(s, util.feed(s, hdr .. "hello"), 1002)
    end)
  end)
end

describe("limits, the 16 MiB default", function()
  it("accepts a 16 MiB message and fails with 1009 on 16 MiB + 1 from its header", function()
    local s = util.server()
    local p = string.rep(util.bytes(4096, 3), 4096)
    assert.are.equal(16 * MiB, #p)
    local f = util.cframe(OP.binary, p)
    local step = 1024 * 1024
    for i = 1, #f, step do
      s:feed(f:sub(i, i + step - 1))
    end
    local kind, data, k = s:next_event()
    assert.are.equal("message", kind)
    assert.are.equal("binary", k)
    assert.are.equal(16 * MiB, #data)
    assert.is_true(data == p, "payload differs")
    data, p, f = nil, nil, nil -- luacheck: ignore 311
    collectgarbage()
    local hdr = util.frame { opcode = OP.binary, length = 16 * MiB + 1, mask = util.PEER_KEY }
    util.assert_fail(s, util.feed(s, hdr), 1009)
  end)
end)

describe("limits, options", function()
  it("raises when role is missing or unknown", function()
    raises_naming("role", {})
    raises_naming("role", { role = "peer" })
    raises_naming("role", { role = 1 })
  end)

  local WRONG = {
    { "max_message", { role = "server", max_message = -1 } },
    { "max_message", { role = "server", max_message = "big" } },
    { "max_message", { role = "client", max_message = {} } },
    { "max_frame", { role = "server", max_frame = "big" } },
    { "max_frame", { role = "server", max_frame = -5 } },
    { "handshake", { role = "server", handshake = "no" } },
    { "stream", { role = "server", stream = "yes" } },
    { "mask_key", { role = "client", handshake = false, mask_key = 1234 } },
    { "mask_key", { role = "client", handshake = false, mask_key = "abc" } },
    { "protocols", { role = "client", url = "ws://h/", protocols = 42 } },
    { "protocols", { role = "client", url = "ws://h/", protocols = { "ok", 7 } } },
    { "protocols", { role = "server", protocols = 42 } },
    { "headers", { role = "client", url = "ws://h/", headers = "X-A: b" } },
    { "origin", { role = "client", url = "ws://h/", origin = 5 } },
    { "max_head", { role = "server", max_head = "x" } },
    { "max_headers", { role = "server", max_headers = "x" } },
  }
  for _, c in ipairs(WRONG) do
    local v = c[2][c[1]]
    local shown = type(v) == "table" and "a table" or string.format("%q", tostring(v))
    it("raises naming " .. c[1] .. " when a " .. c[2].role .. " gets " .. shown, function()
      raises_naming(c[1], c[2])
    end)
  end

  it("takes a fixed mask_key with any 4 bytes, zero bytes included", function()
    local key = string.char(0, 1, 0, 2)
    local s = core.session { role = "client", handshake = false, mask_key = key }
    assert.is_true(s:send("abc"))
    assert.are.equal(util.frame { opcode = OP.text, payload = "abc", mask = key }, s:output())
  end)

  it("raises when core.session gets no table", function()
    assert.has_error(function() core.session() end)
    assert.has_error(function() core.session("server") end)
  end)

  it("accepts the documented options", function()
    local s = core.session {
      role = "server", handshake = false, max_message = 100, max_frame = 50, stream = false,
      max_head = 4096, max_headers = 10,
    }
    assert.are.equal("OPEN", s:state())
    s = core.session { role = "client", handshake = false, mask_key = util.KEY }
    assert.are.equal("OPEN", s:state())
  end)
end)
