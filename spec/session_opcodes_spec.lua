-- Opcodes (RFC 6455 5.2, 11.8): 3-7 are reserved for further non-control
-- frames and 11-15 for further control frames; receiving one fails the
-- connection with 1002.
local util = require "spec.helpers.session_util"

local OP = util.OP

for _, role in ipairs { "server", "client" } do
  describe("opcodes, " .. role .. " role", function()
    for _, op in ipairs { 3, 4, 5, 6, 7, 11, 12, 13, 14, 15 } do
      it("fails with 1002 on reserved opcode " .. op .. " without payload", function()
        local s = util.session(role)
        local evs = util.feed(s, util.in_frame(s, op, "") .. util.in_frame(s, OP.text, "after"))
        util.assert_fail(s, evs, 1002)
      end)

      it("fails with 1002 on reserved opcode " .. op .. " with payload", function()
        local s = util.session(role)
        local evs = util.feed(s, util.in_frame(s, op, "reserved payload")
          .. util.in_frame(s, OP.ping, "after"))
        util.assert_fail(s, evs, 1002)
      end)
    end

    it("fails with 1002 on reserved opcode 3 with FIN clear", function()
      local s = util.session(role)
      local evs = util.feed(s, util.in_frame(s, 3, "x", { fin = false }) .. util.in_frame(s, OP.cont, "y"))
      util.assert_fail(s, evs, 1002)
    end)

    it("fails with 1002 on reserved opcode 11 between fragments", function()
      local s = util.session(role)
      local evs = util.feed(s, util.in_frame(s, OP.text, "a", { fin = false })
        .. util.in_frame(s, 11, "") .. util.in_frame(s, OP.cont, "b"))
      util.assert_fail(s, evs, 1002)
    end)

    it("delivers a message sent before a reserved opcode, then fails", function()
      local s = util.session(role)
      local evs = util.feed(s, util.in_frame(s, OP.text, "ok") .. util.in_frame(s, 5, "")
        .. util.in_frame(s, OP.text, "never"))
      assert.are.same({ "message", "ok", "text" }, evs[1])
      util.assert_fail(s, evs, 1002, { before = { "message" } })
    end)

    it("fails with 1002 on a reserved opcode from its first header bytes", function()
      local s = util.session(role)
      local f = util.in_frame(s, 7, string.rep("r", 40))
      local evs = util.feed(s, f:sub(1, role == "server" and 6 or 2))
      util.assert_fail(s, evs, 1002)
    end)
  end)
end
