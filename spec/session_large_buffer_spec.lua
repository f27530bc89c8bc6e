-- Large frames: the input buffer a large frame was received into is kept for
-- the next one while large frames keep coming, and released at the first
-- frame that is not large (s:memory() counts it meanwhile).
local util = require "spec.helpers.session_util"

local OP = util.OP
local BIG = 256 * 1024

for _, role in ipairs { "server", "client" } do
  describe("large frames, " .. role .. " role", function()
    it("keeps the input buffer between large messages and releases it after a small one", function()
      local s = util.session(role)
      assert.are.equal(0, (s:memory()))
      local p = util.bytes(BIG, 7)
      local evs = util.feed(s, util.in_frame(s, OP.binary, p))
      assert.are.equal(1, #evs)
      assert.is_true(p == evs[1][2], "payload differs")
      local kept = s:memory()
      assert.is_true(kept >= BIG, "buffer kept: " .. kept)
      -- the next large message reuses it: nothing more is held
      local q = util.bytes(BIG, 11)
      evs = util.feed(s, util.in_frame(s, OP.binary, q))
      assert.are.equal(1, #evs)
      assert.is_true(q == evs[1][2], "second payload differs")
      assert.are.equal(kept, (s:memory()))
      -- a small message: the spare is released
      evs = util.feed(s, util.in_frame(s, OP.text, "hi"))
      assert.are.equal("hi", evs[1][2])
      assert.is_true(s:memory() < 1024, "released: " .. s:memory())
    end)

    it("receives a large frame arriving in pieces larger than the kept buffer", function()
      local s = util.session(role)
      local small = util.bytes(20 * 1024, 9)
      local evs = util.feed(s, util.in_frame(s, OP.binary, small))
      assert.is_true(small == evs[1][2])
      local kept = s:memory()
      assert.is_true(kept >= #small and kept < BIG, "a buffer of the 20 KiB frame's size kept: " .. kept)
      local p = util.bytes(BIG, 13)
      local wire = util.in_frame(s, OP.binary, p)
      local got = {}
      for i = 1, #wire, 3 * kept do
        for _, ev in ipairs(util.feed(s, wire:sub(i, i + 3 * kept - 1))) do got[#got + 1] = ev end
      end
      assert.are.equal(1, #got)
      assert.is_true(p == got[1][2], "payload differs")
    end)

    it("releases the kept buffer at a ping and when the session closes", function()
      local s = util.session(role)
      util.feed(s, util.in_frame(s, OP.binary, util.bytes(BIG, 3)))
      assert.is_true(s:memory() >= BIG)
      local evs = util.feed(s, util.in_frame(s, OP.ping, "p"))
      assert.are.equal("ping", evs[1][1])
      assert.is_true(s:memory() < 1024)
      util.feed(s, util.in_frame(s, OP.binary, util.bytes(BIG, 5)))
      assert.is_true(s:memory() >= BIG)
      util.feed(s, util.in_frame(s, OP.close, "\3\232"))
      assert.is_true(s:memory() < 1024, "after close: " .. s:memory())
    end)
  end)
end
