-- UTF-8 handling of text messages (RFC 6455 5.6, 8.1): valid text accepted
-- however it is split; invalid text fails the connection with 1007 as soon
-- as the offending byte arrives (fail fast), across fragments and within a
-- frame; a truncated character fails only with the final frame.
local util = require "spec.helpers.session_util"

local OP = util.OP
local hex = util.hex

local VALID = {
  { "ASCII", "Hello-µ@ßöäüàá-UTF-8!!" },
  { "2-byte", hex("ce ba e1 bd b9 cf 83 ce bc ce b5") },
  { "3-byte euro signs", hex("e2 82 ac e2 82 ac e2 82 ac") },
  { "4-byte", hex("f0 9f 98 80 f0 9d 84 9e") },
  { "U+0080", hex("c2 80") },
  { "U+07FF", hex("df bf") },
  { "U+0800", hex("e0 a0 80") },
  { "U+D7FF", hex("ed 9f bf") },
  { "U+E000", hex("ee 80 80") },
  { "U+FFFD", hex("ef bf bd") },
  { "U+FFFF", hex("ef bf bf") },
  { "U+10000", hex("f0 90 80 80") },
  { "U+10FFFF", hex("f4 8f bf bf") },
  { "NUL", "a" .. string.char(0) .. "b" },
}

-- {name, bytes, position of the first impossible byte}
local INVALID = {
  { "overlong C0 80", hex("c0 80"), 1 },
  { "overlong E0 80 80", hex("e0 80 80"), 2 },
  { "overlong F0 80 80 80", hex("f0 80 80 80"), 2 },
  { "overlong slash C0 AF", hex("c0 af"), 1 },
  { "surrogate ED A0 80", hex("ed a0 80"), 2 },
  { "surrogate ED BF BF", hex("ed bf bf"), 2 },
  { "surrogate pair", hex("ed a0 80 ed b0 80"), 2 },
  { "above U+10FFFF F4 90 80 80", hex("f4 90 80 80"), 2 },
  { "lead F5", hex("f5 80 80 80"), 1 },
  { "lead F7", hex("f7 bf bf bf"), 1 },
  { "lead F8", hex("f8 88 80 80 80"), 1 },
  { "lead FC", hex("fc 84 80 80 80 80"), 1 },
  { "lead FE", hex("fe"), 1 },
  { "lead FF", hex("ff"), 1 },
  { "lone 80", hex("80"), 1 },
  { "lone BF", hex("bf"), 1 },
  { "continuation after ASCII", "abc" .. hex("80") .. "def", 4 },
  { "missing continuation", hex("ce") .. "x", 2 },
  { "text then surrogate", "kosme" .. hex("ed a0 80") .. "edited", 7 },
}

local function fragments(s, opcode, parts)
  local t = {}
  for i, p in ipairs(parts) do
    t[i] = util.in_frame(s, i == 1 and opcode or OP.cont, p, { fin = i == #parts })
  end
  return table.concat(t)
end

for _, role in ipairs { "server", "client" } do
  describe("UTF-8, " .. role .. " role", function()
    for _, c in ipairs(VALID) do
      local name, text = c[1], c[2]

      it("accepts " .. name .. " whole", function()
        local s = util.session(role)
        assert.are.same({ { "message", text, "text" } }, util.feed(s, util.in_frame(s, OP.text, text)))
      end)

      it("accepts " .. name .. " split into two fragments at every position", function()
        for cut = 0, #text do
          local s = util.session(role)
          local evs = util.feed(s, fragments(s, OP.text, { text:sub(1, cut), text:sub(cut + 1) }))
          assert.are.same({ { "message", text, "text" } }, evs)
        end
      end)

      it("accepts " .. name .. " as one fragment per byte", function()
        local s = util.session(role)
        local parts = {}
        for i = 1, #text do parts[i] = text:sub(i, i) end
        if #parts == 0 then parts[1] = "" end
        assert.are.same({ { "message", text, "text" } }, util.feed(s, fragments(s, OP.text, parts)))
      end)

      it("accepts " .. name .. " fed one byte at a time", function()
        local s = util.session(role)
        assert.are.same({ { "message", text, "text" } }, util.feed_bytes(s, util.in_frame(s, OP.text, text)))
      end)
    end

    it("accepts a long text mixing every sequence length", function()
      local s = util.session(role)
      local text = string.rep("a" .. hex("c3 a9 e2 82 ac f0 9f 98 80"), 10000)
      local evs = util.feed(s, util.in_frame(s, OP.text, text))
      assert.are.equal(1, #evs)
      assert.is_true(evs[1][2] == text)
    end)

    for _, c in ipairs(INVALID) do
      local name, bad, pos = c[1], c[2], c[3]

      it("fails with 1007 on " .. name .. " in a single frame", function()
        local s = util.session(role)
        local evs = util.feed(s, util.in_frame(s, OP.text, bad) .. util.in_frame(s, OP.text, "after"))
        util.assert_fail(s, evs, 1007)
      end)

      it("fails with 1007 on " .. name .. " in a middle fragment, before the message ends", function()
        local s = util.session(role)
        assert.are.same({}, util.feed(s, util.in_frame(s, OP.text, "start ", { fin = false })))
        local evs = util.feed(s, util.in_frame(s, OP.cont, bad, { fin = false }))
        util.assert_fail(s, evs, 1007)
      end)

      it("fails with 1007 on " .. name .. " on the very byte that makes it invalid", function()
        local s = util.session(role)
        local payload = "ok " .. bad .. string.rep("z", 40)
        local f = util.in_frame(s, OP.text, payload)
        local hl = #f - #payload
        local bad_at = hl + 3 + pos -- position of the offending byte in f
        for i = 1, bad_at - 1 do
          s:feed(f:sub(i, i))
          if s:next_event() ~= nil then
            error("event after byte " .. i .. ", the bad byte is " .. bad_at)
          end
        end
        assert.are.equal("", s:output())
        s:feed(f:sub(bad_at, bad_at))
        util.assert_fail(s, util.events(s), 1007)
      end)
    end

    it("fails with 1007 on an invalid sequence split across two fragments", function()
      local s = util.session(role)
      assert.are.same({}, util.feed(s, util.in_frame(s, OP.text, "a" .. hex("ed"), { fin = false })))
      local evs = util.feed(s, util.in_frame(s, OP.cont, hex("a0 80"), { fin = false }))
      util.assert_fail(s, evs, 1007)
    end)

    it("fails with 1007 on the continuation fragment whose first byte is impossible", function()
      local s = util.session(role)
      assert.are.same({}, util.feed(s, util.in_frame(s, OP.text, hex("f4"), { fin = false })))
      local f = util.in_frame(s, OP.cont, hex("90 80 80") .. "tail", { fin = false })
      local hl = #f - 7
      assert.are.same({}, util.feed(s, f:sub(1, hl)))
      util.assert_fail(s, util.feed(s, f:sub(hl + 1, hl + 1)), 1007)
    end)

    it("accepts a truncated character at the end of a non-final fragment", function()
      local s = util.session(role)
      assert.are.same({}, util.feed(s, util.in_frame(s, OP.text, "a" .. hex("e2 82"), { fin = false })))
      assert.are.same({ { "message", "a" .. hex("e2 82 ac"), "text" } },
        util.feed(s, util.in_frame(s, OP.cont, hex("ac"))))
    end)

    it("fails with 1007 on a truncated character only when the final frame arrives", function()
      local s = util.session(role)
      assert.are.same({}, util.feed(s, util.in_frame(s, OP.text, "a" .. hex("e2 82"), { fin = false })))
      assert.are.same({}, util.feed(s, util.in_frame(s, OP.cont, "", { fin = false })))
      assert.are.equal("", s:output())
      local evs = util.feed(s, util.in_frame(s, OP.cont, ""))
      util.assert_fail(s, evs, 1007)
    end)

    it("fails with 1007 on a single frame ending in a truncated character", function()
      local s = util.session(role)
      local f = util.in_frame(s, OP.text, "a" .. hex("e2 82"))
      assert.are.same({}, util.feed(s, f:sub(1, -2)))
      util.assert_fail(s, util.feed(s, f:sub(-1)), 1007)
    end)

    it("fails with 1007 on a 4-byte character cut after 3 bytes", function()
      local s = util.session(role)
      local evs = util.feed(s, fragments(s, OP.text, { "x", hex("f0 9f 98") }))
      util.assert_fail(s, evs, 1007)
    end)

    it("does not validate binary messages", function()
      local s = util.session(role)
      local bytes = hex("c0 80 ed a0 80 f4 90 80 80 ff e2 82")
      assert.are.same({ { "message", bytes, "binary" } }, util.feed(s, util.in_frame(s, OP.binary, bytes)))
      assert.are.equal("OPEN", s:state())
    end)

    it("starts each text message with a fresh validator state", function()
      local s = util.session(role)
      local evs = util.feed(s, util.in_frame(s, OP.binary, hex("e2 82")) .. util.in_frame(s, OP.text, hex("ac")))
      assert.are.same({ "message", hex("e2 82"), "binary" }, evs[1])
      util.assert_fail(s, evs, 1007, { before = { "message" } })
    end)

    it("validates ping payloads not at all", function()
      local s = util.session(role)
      local evs = util.feed(s, util.in_frame(s, OP.ping, hex("ff fe")))
      assert.are.same({ { "ping", hex("ff fe") } }, evs)
      assert.are.equal(util.out_frame(s, OP.pong, hex("ff fe")), s:output())
    end)
  end)
end
