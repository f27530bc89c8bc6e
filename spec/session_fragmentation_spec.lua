-- Fragmentation (RFC 6455 5.4): reassembly of 1..N fragments including
-- empty ones, protocol errors in fragment sequences, sending a message in
-- parts, and stream mode (one event per data frame).
local util = require "spec.helpers.session_util"

local OP = util.OP
local hex = util.hex

-- The frames of a message split into the given parts.
local function fragments(s, opcode, parts)
  local t = {}
  for i, p in ipairs(parts) do
    t[i] = util.in_frame(s, i == 1 and opcode or OP.cont, p, { fin = i == #parts })
  end
  return table.concat(t)
end

for _, role in ipairs { "server", "client" } do
  describe("fragmentation, " .. role .. " role", function()
    for n = 1, 10 do
      it("reassembles a text message of " .. n .. " fragments", function()
        local s = util.session(role)
        local parts = {}
        for i = 1, n do parts[i] = "part" .. i .. ";" end
        local evs = util.feed(s, fragments(s, OP.text, parts))
        assert.are.same({ { "message", table.concat(parts), "text" } }, evs)
        assert.are.equal("", s:output())
      end)
    end

    it("reassembles a binary message of 3 fragments", function()
      local s = util.session(role)
      local parts = { util.bytes(1000, 1), util.bytes(70000, 2), util.bytes(3, 3) }
      local evs = util.feed(s, fragments(s, OP.binary, parts))
      assert.are.equal(1, #evs)
      assert.are.equal("message", evs[1][1])
      assert.are.equal("binary", evs[1][3])
      assert.is_true(evs[1][2] == table.concat(parts), "payload differs")
    end)

    it("emits nothing until the final fragment arrives", function()
      local s = util.session(role)
      assert.are.same({}, util.feed(s, util.in_frame(s, OP.text, "a", { fin = false })))
      assert.are.same({}, util.feed(s, util.in_frame(s, OP.cont, "b", { fin = false })))
      assert.are.same({ { "message", "abc", "text" } }, util.feed(s, util.in_frame(s, OP.cont, "c")))
    end)

    local EMPTY = {
      { "an empty first fragment", { "", "abc", "def" }, "abcdef" },
      { "an empty last fragment", { "abc", "def", "" }, "abcdef" },
      { "an empty middle fragment", { "abc", "", "def" }, "abcdef" },
      { "only empty fragments", { "", "", "" }, "" },
      { "two empty fragments", { "", "" }, "" },
    }
    for _, c in ipairs(EMPTY) do
      for _, kind in ipairs { "text", "binary" } do
        it("reassembles a " .. kind .. " message with " .. c[1], function()
          local s = util.session(role)
          local evs = util.feed(s, fragments(s, OP[kind], c[2]))
          assert.are.same({ { "message", c[3], kind } }, evs)
        end)
      end
    end

    it("reassembles fragments fed one byte at a time", function()
      local s = util.session(role)
      local evs = util.feed_bytes(s, fragments(s, OP.text, { "one ", "", "two ", "three" }))
      assert.are.same({ { "message", "one two three", "text" } }, evs)
    end)

    it("reassembles text split in the middle of multi-byte characters", function()
      local s = util.session(role)
      local parts = { "x" .. hex("e2"), hex("82"), hex("ac f0 9f"), hex("98 80 c3"), hex("a9") }
      local evs = util.feed(s, fragments(s, OP.text, parts))
      assert.are.same({ { "message", "x" .. hex("e2 82 ac f0 9f 98 80 c3 a9"), "text" } }, evs)
    end)

    it("accepts two fragmented messages back to back", function()
      local s = util.session(role)
      local evs = util.feed(s, fragments(s, OP.text, { "a", "b" }) .. fragments(s, OP.binary, { "c", "d" }))
      assert.are.same({ { "message", "ab", "text" }, { "message", "cd", "binary" } }, evs)
    end)

    it("fails with 1002 on a continuation frame with no message started", function()
      local s = util.session(role)
      local evs = util.feed(s, util.in_frame(s, OP.cont, "orphan") .. util.in_frame(s, OP.text, "after"))
      util.assert_fail(s, evs, 1002)
    end)

    it("fails with 1002 on a non-final continuation with no message started", function()
      local s = util.session(role)
      local evs = util.feed(s, util.in_frame(s, OP.cont, "orphan", { fin = false })
        .. util.in_frame(s, OP.cont, "more"))
      util.assert_fail(s, evs, 1002)
    end)

    it("fails with 1002 on a continuation after a complete message", function()
      local s = util.session(role)
      local evs = util.feed(s, util.in_frame(s, OP.text, "done") .. util.in_frame(s, OP.cont, "extra"))
      assert.are.same({ "message", "done", "text" }, evs[1])
      util.assert_fail(s, evs, 1002, { before = { "message" } })
    end)

    it("fails with 1002 on a text frame inside a fragmented message", function()
      local s = util.session(role)
      local evs = util.feed(s, util.in_frame(s, OP.text, "a", { fin = false })
        .. util.in_frame(s, OP.text, "b") .. util.in_frame(s, OP.cont, "c"))
      util.assert_fail(s, evs, 1002)
    end)

    it("fails with 1002 on a binary frame inside a fragmented message", function()
      local s = util.session(role)
      local evs = util.feed(s, util.in_frame(s, OP.binary, "a", { fin = false })
        .. util.in_frame(s, OP.binary, "b", { fin = false }) .. util.in_frame(s, OP.cont, "c"))
      util.assert_fail(s, evs, 1002)
    end)

    it("fails with 1002 on a fragmented close frame", function()
      local s = util.session(role)
      local evs = util.feed(s, util.in_frame(s, OP.close, util.close_payload(1000), { fin = false })
        .. util.in_frame(s, OP.cont, ""))
      util.assert_fail(s, evs, 1002)
    end)

    it("takes a close between fragments as the end, dropping the partial message", function()
      local s = util.session(role)
      local evs = util.feed(s, util.in_frame(s, OP.text, "partial", { fin = false })
        .. util.in_frame(s, OP.close, util.close_payload(1000, "bye")) .. util.in_frame(s, OP.cont, "late"))
      assert.are.same({ { "close", 1000, "bye", true } }, evs)
      local frames = util.decode(s:output())
      assert.are.equal(1, #frames)
      assert.are.equal(1000, (util.close_code(frames[1].payload)))
    end)

    describe("sending in parts", function()
      it("sends a text message as a first frame, continuations and a final frame", function()
        local s = util.session(role)
        assert.is_true(s:send_fragment("Hel", false))
        assert.is_true(s:send_fragment("lo, ", false))
        assert.is_true(s:send_fragment("world", true))
        local frames, rest = util.decode(s:output())
        assert.are.equal("", rest)
        assert.are.equal(3, #frames)
        assert.are.same({ OP.text, OP.cont, OP.cont },
          { frames[1].opcode, frames[2].opcode, frames[3].opcode })
        assert.are.same({ false, false, true }, { frames[1].fin, frames[2].fin, frames[3].fin })
        assert.are.same({ "Hel", "lo, ", "world" },
          { frames[1].payload, frames[2].payload, frames[3].payload })
        for _, f in ipairs(frames) do
          assert.are.equal(role == "client", f.masked)
          assert.is_false(f.rsv1)
        end
      end)

      it("sends exact bytes for a binary message in parts", function()
        local s = util.session(role)
        assert.is_true(s:send_fragment("ab", false, "binary"))
        assert.is_true(s:send_fragment("", false))
        assert.is_true(s:send_fragment("cd", true))
        assert.are.equal(util.out_frame(s, OP.binary, "ab", { fin = false })
          .. util.out_frame(s, OP.cont, "", { fin = false })
          .. util.out_frame(s, OP.cont, "cd"), s:output())
      end)

      it("sends a one-part message like send", function()
        local s = util.session(role)
        assert.is_true(s:send_fragment("whole", true))
        assert.are.equal(util.out_frame(s, OP.text, "whole"), s:output())
        assert.is_true(s:send_fragment("bin", true, "binary"))
        assert.are.equal(util.out_frame(s, OP.binary, "bin"), s:output())
      end)

      it("allows control frames between the parts", function()
        local s = util.session(role)
        assert.is_true(s:send_fragment("a", false))
        assert.is_true(s:ping("p"))
        s:feed(util.in_frame(s, OP.ping, "q"))
        assert.are.same({ { "ping", "q" } }, util.events(s))
        assert.is_true(s:send_fragment("b", true))
        assert.are.equal(util.out_frame(s, OP.text, "a", { fin = false }) .. util.out_frame(s, OP.ping, "p")
          .. util.out_frame(s, OP.pong, "q") .. util.out_frame(s, OP.cont, "b"), s:output())
      end)

      it("starts a new message after a finished one", function()
        local s = util.session(role)
        s:send_fragment("a", false)
        s:send_fragment("b", true)
        s:output()
        assert.is_true(s:send_fragment("c", false, "binary"))
        assert.is_true(s:send_fragment("d", true))
        assert.are.equal(util.out_frame(s, OP.binary, "c", { fin = false }) .. util.out_frame(s, OP.cont, "d"),
          s:output())
      end)

      it("sends text parts that split a character when the whole is valid", function()
        local s = util.session(role)
        assert.is_true(s:send_fragment("a" .. hex("e2 82"), false))
        assert.is_true(s:send_fragment(hex("ac"), true))
        local frames = util.decode(s:output())
        assert.are.equal(2, #frames)
        assert.are.equal("a" .. hex("e2 82 ac"), frames[1].payload .. frames[2].payload)
      end)

      it("raises on a text part that can no longer be UTF-8, sending nothing", function()
        local s = util.session(role)
        assert.has_error(function() s:send_fragment(hex("ff"), false) end)
        assert.are.equal("", s:output())
        assert.is_true(s:send_fragment("ok", false))
        assert.has_error(function() s:send_fragment(hex("c0 80"), true) end)
        assert.are.equal(util.out_frame(s, OP.text, "ok", { fin = false }), s:output())
      end)

      it("raises on a final text part that ends inside a character", function()
        local s = util.session(role)
        assert.is_true(s:send_fragment("a" .. hex("e2"), false))
        assert.has_error(function() s:send_fragment(hex("82"), true) end)
      end)

      it("refuses a whole message while a message in parts is unfinished", function()
        local s = util.session(role)
        assert.is_true(s:send_fragment("a", false))
        local ok, err = s:send("interleaved")
        assert.is_nil(ok)
        assert.is_string(err)
        assert.is_true(s:send_fragment("b", true))
        assert.is_true(s:send("after"))
        assert.are.equal(util.out_frame(s, OP.text, "a", { fin = false }) .. util.out_frame(s, OP.cont, "b")
          .. util.out_frame(s, OP.text, "after"), s:output())
      end)

      it("round-trips a message sent in parts to a peer session", function()
        local s = util.session(role)
        local peer = util.session(role == "server" and "client" or "server")
        s:send_fragment("x", false)
        s:send_fragment("y", false)
        s:send_fragment("z", true)
        peer:feed(s:output())
        assert.are.same({ { "message", "xyz", "text" } }, util.events(peer))
      end)
    end)

    describe("stream mode", function()
      it("emits one fragment event per data frame and no message event", function()
        local s = util.session(role, { stream = true })
        local evs = util.feed(s, fragments(s, OP.text, { "Hel", "lo", "!" }))
        assert.are.same({
          { "fragment", "Hel", "text", false },
          { "fragment", "lo", "text", false },
          { "fragment", "!", "text", true },
        }, evs)
      end)

      it("emits a single frame as one final fragment", function()
        local s = util.session(role, { stream = true })
        local evs = util.feed(s, util.in_frame(s, OP.binary, "all"))
        assert.are.same({ { "fragment", "all", "binary", true } }, evs)
      end)

      it("passes frame payloads through as they are, split characters included", function()
        local s = util.session(role, { stream = true })
        local evs = util.feed(s, fragments(s, OP.text, { "a" .. hex("e2"), hex("82 ac") }))
        assert.are.same({
          { "fragment", "a" .. hex("e2"), "text", false },
          { "fragment", hex("82 ac"), "text", true },
        }, evs)
      end)

      it("keeps control frames in order between fragments", function()
        local s = util.session(role, { stream = true })
        local evs = util.feed(s, util.in_frame(s, OP.binary, "1", { fin = false })
          .. util.in_frame(s, OP.ping, "p") .. util.in_frame(s, OP.cont, "2"))
        assert.are.same({
          { "fragment", "1", "binary", false }, { "ping", "p" }, { "fragment", "2", "binary", true },
        }, evs)
        assert.are.equal(util.out_frame(s, OP.pong, "p"), s:output())
      end)

      it("still fails with 1007 on invalid UTF-8 in a text fragment", function()
        local s = util.session(role, { stream = true })
        local evs = util.feed(s, util.in_frame(s, OP.text, "ok", { fin = false })
          .. util.in_frame(s, OP.cont, hex("c0 80"), { fin = false }) .. util.in_frame(s, OP.cont, "z"))
        assert.are.same({ "fragment", "ok", "text", false }, evs[1])
        util.assert_fail(s, evs, 1007, { before = { "fragment" } })
      end)

      it("still fails with 1002 on a continuation without a start", function()
        local s = util.session(role, { stream = true })
        local evs = util.feed(s, util.in_frame(s, OP.cont, "x"))
        util.assert_fail(s, evs, 1002)
      end)
    end)
  end)
end
