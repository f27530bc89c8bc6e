-- Reserved bits (RFC 6455 5.2): RSV1-3 must be 0 unless an extension
-- defines them; with no extension negotiated a set bit fails the
-- connection with 1002, and nothing after the offending frame counts.
local util = require "spec.helpers.session_util"

local OP = util.OP

local BITS = {
  { "RSV1", { rsv1 = true } },
  { "RSV2", { rsv2 = true } },
  { "RSV3", { rsv3 = true } },
  { "RSV1+RSV2", { rsv1 = true, rsv2 = true } },
  { "RSV2+RSV3", { rsv2 = true, rsv3 = true } },
  { "RSV1+RSV2+RSV3", { rsv1 = true, rsv2 = true, rsv3 = true } },
}

local FRAMES = {
  { "text", OP.text, "Hello" },
  { "empty text", OP.text, "" },
  { "binary", OP.binary, util.hex("00 ff 10") },
  { "ping", OP.ping, "ping" },
  { "pong", OP.pong, "pong" },
  { "close", OP.close, util.close_payload(1000, "bye") },
}

for _, role in ipairs { "server", "client" } do
  describe("reserved bits, " .. role .. " role", function()
    for _, b in ipairs(BITS) do
      for _, fr in ipairs(FRAMES) do
        it("fails with 1002 on a " .. fr[1] .. " frame with " .. b[1], function()
          local s = util.session(role)
          local bytes = util.in_frame(s, fr[2], fr[3], b[2])
            .. util.in_frame(s, OP.text, "after") .. util.in_frame(s, OP.ping, "after")
          util.assert_fail(s, util.feed(s, bytes), 1002)
        end)
      end
    end

    it("fails with 1002 on RSV1 on a continuation frame", function()
      local s = util.session(role)
      local evs = util.feed(s, util.in_frame(s, OP.text, "ab", { fin = false })
        .. util.in_frame(s, OP.cont, "cd", { rsv1 = true }))
      util.assert_fail(s, evs, 1002)
    end)

    it("delivers what came before the bad frame, then fails", function()
      local s = util.session(role)
      local bytes = util.in_frame(s, OP.text, "first") .. util.in_frame(s, OP.ping, "p")
        .. util.in_frame(s, OP.binary, "bad", { rsv2 = true }) .. util.in_frame(s, OP.text, "never")
      local evs = util.feed(s, bytes)
      assert.are.same({ "message", "first", "text" }, evs[1])
      assert.are.same({ "ping", "p" }, evs[2])
      local frames = util.assert_fail(s, evs, 1002, { before = { "message", "ping" }, before_frames = 1 })
      assert.are.equal(OP.pong, frames[1].opcode)
      assert.are.equal("p", frames[1].payload)
    end)

    it("fails as soon as the header arrives, before the payload", function()
      local s = util.session(role)
      local f = util.in_frame(s, OP.text, string.rep("x", 50), { rsv3 = true })
      local evs = util.feed(s, f:sub(1, role == "server" and 6 or 2))
      util.assert_fail(s, evs, 1002)
    end)

    it("fails with 1002 on RSV bits fed one byte at a time", function()
      local s = util.session(role)
      local evs = util.feed_bytes(s, util.in_frame(s, OP.text, "abc", { rsv1 = true })
        .. util.in_frame(s, OP.text, "after"))
      util.assert_fail(s, evs, 1002)
    end)
  end)
end
