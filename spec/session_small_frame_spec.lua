-- Whole small frames (1..125 bytes, unfragmented text or binary), the most
-- common input, are decoded on a shorter path: its edges.  Several in one
-- input, beside frames it leaves to the general path (empty, 126 bytes,
-- fragments, control frames, RSV bits, the wrong masking), limits, UTF-8
-- failures inside one such frame, streaming mode, a close between two of
-- them in one input, and input cut anywhere.
local util = require "spec.helpers.session_util"

local OP = util.OP

for _, role in ipairs { "server", "client" } do
  describe("small frames, " .. role .. " role", function()
    it("delivers several in one input, in order, between other frames", function()
      local s = util.session(role)
      local b125, b126 = util.bytes(125, 1), util.bytes(126, 2)
      local input = util.in_frame(s, OP.text, "a") .. util.in_frame(s, OP.binary, b125)
        .. util.in_frame(s, OP.text, "") .. util.in_frame(s, OP.binary, b126)
        .. util.in_frame(s, OP.ping, "p") .. util.in_frame(s, OP.text, "he", { fin = false })
        .. util.in_frame(s, OP.cont, "llo") .. util.in_frame(s, OP.text, "h\195\169")
      assert.are.same({
        { "message", "a", "text" }, { "message", b125, "binary" }, { "message", "", "text" },
        { "message", b126, "binary" }, { "ping", "p" }, { "message", "hello", "text" },
        { "message", "h\195\169", "text" },
      }, util.feed(s, input))
    end)

    it("gives the same events when the input is cut anywhere", function()
      local s = util.session(role)
      local input = util.in_frame(s, OP.binary, util.bytes(40, 3)) .. util.in_frame(s, OP.text, "xyz")
        .. util.in_frame(s, OP.binary, "q")
      local want = { { "message", util.bytes(40, 3), "binary" }, { "message", "xyz", "text" },
        { "message", "q", "binary" } }
      assert.are.same(want, util.feed_bytes(s, input))
      for cut = 1, #input - 1 do
        local t = util.session(role)
        local evs = util.feed(t, input:sub(1, cut))
        for _, e in ipairs(util.feed(t, input:sub(cut + 1))) do evs[#evs + 1] = e end
        assert.are.same(want, evs, "cut at " .. cut)
      end
    end)

    it("fails with 1007 on invalid UTF-8 inside one text frame", function()
      local s = util.session(role)
      local evs = util.feed(s, util.in_frame(s, OP.text, "ok") .. util.in_frame(s, OP.text, "a\255b"))
      util.assert_fail(s, evs, 1007, { before = { "message" } })
      assert.are.equal("invalid UTF-8 in a text message", evs[2][2])
    end)

    it("fails with 1007 on a text frame that ends inside a UTF-8 sequence", function()
      local s = util.session(role)
      local evs = util.feed(s, util.in_frame(s, OP.text, "ab\195"))
      util.assert_fail(s, evs, 1007)
      assert.are.equal("text message ends inside a UTF-8 sequence", evs[1][2])
    end)

    it("applies max_frame and max_message to a whole small frame", function()
      local s = util.session(role, { max_message = 1000, max_frame = 10 })
      util.assert_fail(s, util.feed(s, util.in_frame(s, OP.binary, util.bytes(11, 4))), 1009)
      local t = util.session(role, { max_message = 10 })
      local evs = util.feed(t, util.in_frame(t, OP.binary, util.bytes(10, 5))
        .. util.in_frame(t, OP.text, util.ascii(11, 6)))
      util.assert_fail(t, evs, 1009, { before = { "message" } })
      -- a frame limit above the message limit: the message limit decides
      local u = util.session(role, { max_message = 10, max_frame = 1000 })
      evs = util.feed(u, util.in_frame(u, OP.binary, util.bytes(10, 7))
        .. util.in_frame(u, OP.binary, util.bytes(11, 8)))
      util.assert_fail(u, evs, 1009, { before = { "message" } })
      assert.are.equal("message too big", evs[2][2])
    end)

    it("fails with 1002 on the wrong masking and on RSV bits", function()
      local s = util.session(role)
      local wrong = role == "server" and util.sframe(OP.text, "abc") or util.cframe(OP.text, "abc")
      util.assert_fail(s, util.feed(s, wrong), 1002)
      local t = util.session(role)
      util.assert_fail(t, util.feed(t, util.in_frame(t, OP.binary, "abc", { rsv2 = true })), 1002)
    end)

    it("delivers the last one before the end of input, then closes with 1006", function()
      local s = util.session(role)
      s:feed(util.in_frame(s, OP.text, "x") .. util.in_frame(s, OP.binary, "yz"))
      s:eof()
      local evs = util.events(s)
      assert.are.same({ { "message", "x", "text" }, { "message", "yz", "binary" } }, { evs[1], evs[2] })
      assert.are.same({ "close", 1006 }, { evs[3][1], evs[3][2] })
      assert.are.equal(3, #evs)
    end)

    it("delivers them as final fragments in streaming mode", function()
      local s = util.session(role, { stream = true })
      local evs = util.feed(s, util.in_frame(s, OP.binary, "ab") .. util.in_frame(s, OP.text, "cd"))
      assert.are.same({ { "fragment", "ab", "binary", true }, { "fragment", "cd", "text", true } }, evs)
    end)

    it("reads nothing after a close sent between two of them in one input", function()
      local s = util.session(role)
      s:feed(util.in_frame(s, OP.text, "one") .. util.in_frame(s, OP.text, "two"))
      assert.are.same({ "message", "one", "text" }, { s:next_event() })
      s:close(1000, "bye")
      -- closing: the session still reads until the peer's close arrives
      assert.are.same({ { "message", "two", "text" } }, util.events(s))
      local evs = util.feed(s, util.in_frame(s, OP.close, util.close_payload(1000, "")))
      assert.are.same("close", evs[#evs][1])
      assert.are.same({}, util.feed(s, util.in_frame(s, OP.text, "three")))
    end)
  end)
end
