-- Pings and pongs (RFC 6455 5.5.2, 5.5.3): automatic pong with the same
-- payload, pong events, control frame limits, control frames between
-- fragments, and the application's own pings and pongs.
local util = require "spec.helpers.session_util"

local OP = util.OP

for _, role in ipairs { "server", "client" } do
  describe("ping/pong, " .. role .. " role", function()
    for _, n in ipairs { 0, 1, 10, 125 } do
      it("answers a ping of " .. n .. " bytes with an identical pong", function()
        local s = util.session(role)
        local p = util.bytes(n, n + 40)
        local evs = util.feed(s, util.in_frame(s, OP.ping, p))
        assert.are.same({ { "ping", p } }, evs)
        assert.are.equal(util.out_frame(s, OP.pong, p), s:output())
        assert.are.equal("", s:output())
        assert.are.equal("OPEN", s:state())
      end)
    end

    it("answers a ping fed one byte at a time", function()
      local s = util.session(role)
      local p = "keepalive"
      local evs = util.feed_bytes(s, util.in_frame(s, OP.ping, p))
      assert.are.same({ { "ping", p } }, evs)
      assert.are.equal(util.out_frame(s, OP.pong, p), s:output())
    end)

    it("reports a pong without answering it", function()
      local s = util.session(role)
      local evs = util.feed(s, util.in_frame(s, OP.pong, "data") .. util.in_frame(s, OP.pong, ""))
      assert.are.same({ { "pong", "data" }, { "pong", "" } }, evs)
      assert.are.equal("", s:output())
    end)

    it("accepts an unsolicited pong of 125 bytes", function()
      local s = util.session(role)
      local p = util.bytes(125, 1)
      assert.are.same({ { "pong", p } }, util.feed(s, util.in_frame(s, OP.pong, p)))
      assert.are.equal("", s:output())
      assert.are.equal("OPEN", s:state())
    end)

    it("answers ten pings in one feed with ten pongs in order", function()
      local s = util.session(role)
      local bytes, expected_out, expected = {}, {}, {}
      for i = 1, 10 do
        local p = "ping " .. i
        bytes[i] = util.in_frame(s, OP.ping, p)
        expected_out[i] = util.out_frame(s, OP.pong, p)
        expected[i] = { "ping", p }
      end
      assert.are.same(expected, util.feed(s, table.concat(bytes)))
      assert.are.equal(table.concat(expected_out), s:output())
    end)

    it("fails with 1002 on a ping of 126 bytes", function()
      local s = util.session(role)
      local evs = util.feed(s, util.in_frame(s, OP.ping, string.rep("p", 126))
        .. util.in_frame(s, OP.text, "after"))
      util.assert_fail(s, evs, 1002)
    end)

    it("fails with 1002 on a pong of 126 bytes", function()
      local s = util.session(role)
      local evs = util.feed(s, util.in_frame(s, OP.pong, string.rep("p", 126)))
      util.assert_fail(s, evs, 1002)
    end)

    it("fails with 1002 on a 126-byte ping from its header alone", function()
      local s = util.session(role)
      local f = util.in_frame(s, OP.ping, string.rep("p", 200))
      local hl = role == "server" and 8 or 4
      local evs = util.feed(s, f:sub(1, hl))
      util.assert_fail(s, evs, 1002)
    end)

    it("fails with 1002 on a ping without FIN", function()
      local s = util.session(role)
      local evs = util.feed(s, util.in_frame(s, OP.ping, "frag", { fin = false })
        .. util.in_frame(s, OP.cont, "ment"))
      util.assert_fail(s, evs, 1002)
    end)

    it("fails with 1002 on a pong without FIN", function()
      local s = util.session(role)
      local evs = util.feed(s, util.in_frame(s, OP.pong, "x", { fin = false }))
      util.assert_fail(s, evs, 1002)
    end)

    it("handles a ping and a pong between the fragments of a message", function()
      local s = util.session(role)
      local bytes = util.in_frame(s, OP.text, "Hel", { fin = false })
        .. util.in_frame(s, OP.ping, "p1")
        .. util.in_frame(s, OP.cont, "lo, ", { fin = false })
        .. util.in_frame(s, OP.pong, "p2")
        .. util.in_frame(s, OP.ping, "p3")
        .. util.in_frame(s, OP.cont, "world")
      local evs = util.feed(s, bytes)
      assert.are.same({
        { "ping", "p1" }, { "pong", "p2" }, { "ping", "p3" }, { "message", "Hello, world", "text" },
      }, evs)
      assert.are.equal(util.out_frame(s, OP.pong, "p1") .. util.out_frame(s, OP.pong, "p3"), s:output())
    end)

    it("handles control frames between fragments fed one byte at a time", function()
      local s = util.session(role)
      local bytes = util.in_frame(s, OP.binary, "ab", { fin = false })
        .. util.in_frame(s, OP.ping, "")
        .. util.in_frame(s, OP.cont, "", { fin = false })
        .. util.in_frame(s, OP.ping, "x")
        .. util.in_frame(s, OP.cont, "cd")
      local evs = util.feed_bytes(s, bytes)
      assert.are.same({ { "ping", "" }, { "ping", "x" }, { "message", "abcd", "binary" } }, evs)
      assert.are.equal(util.out_frame(s, OP.pong, "") .. util.out_frame(s, OP.pong, "x"), s:output())
    end)

    it("sends a ping with and without payload", function()
      local s = util.session(role)
      assert.is_true(s:ping())
      assert.is_true(s:ping("hello"))
      assert.is_true(s:ping(string.rep("z", 125)))
      assert.are.equal(util.out_frame(s, OP.ping, "") .. util.out_frame(s, OP.ping, "hello")
        .. util.out_frame(s, OP.ping, string.rep("z", 125)), s:output())
    end)

    it("sends a pong of its own", function()
      local s = util.session(role)
      assert.is_true(s:pong())
      assert.is_true(s:pong("beat"))
      assert.are.equal(util.out_frame(s, OP.pong, "") .. util.out_frame(s, OP.pong, "beat"), s:output())
    end)

    it("raises on a ping or pong payload of 126 bytes, sending nothing", function()
      local s = util.session(role)
      assert.has_error(function() s:ping(string.rep("a", 126)) end)
      assert.has_error(function() s:pong(string.rep("a", 126)) end)
      assert.are.equal("", s:output())
      assert.are.equal("OPEN", s:state())
    end)

    it("refuses to ping or pong once closed", function()
      local s = util.session(role)
      s:feed(util.in_frame(s, OP.close, util.close_payload(1000)))
      util.events(s)
      s:output()
      local ok, err = s:ping("late")
      assert.is_nil(ok)
      assert.is_string(err)
      ok, err = s:pong("late")
      assert.is_nil(ok)
      assert.is_string(err)
      assert.are.equal("", s:output())
    end)

    it("does not answer a ping that arrives after the peer's close", function()
      local s = util.session(role)
      local evs = util.feed(s, util.in_frame(s, OP.close, util.close_payload(1000))
        .. util.in_frame(s, OP.ping, "late"))
      assert.are.same({ "close" }, util.kinds(evs))
      local frames = util.decode(s:output())
      assert.are.equal(1, #frames)
      assert.are.equal(OP.close, frames[1].opcode)
    end)

    it("reports a ping received while closing and sends at most its pong", function()
      -- After our close frame only control frames may follow (RFC 6455 5.5.1).
      local s = util.session(role)
      assert.is_true(s:close(1000))
      s:output()
      local evs = util.feed(s, util.in_frame(s, OP.ping, "still there?"))
      assert.are.same({ { "ping", "still there?" } }, evs)
      local out = s:output()
      assert.is_true(out == "" or out == util.out_frame(s, OP.pong, "still there?"),
        "only a pong may be sent while closing, got " .. util.tohex(out))
      assert.are.equal("CLOSING", s:state())
    end)
  end)
end
