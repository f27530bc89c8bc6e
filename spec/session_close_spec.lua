-- The closing handshake (RFC 6455 5.5.1, 7): initiated by either side in
-- both roles, codes and reasons, code validation (7.4), 1005/1006
-- semantics, state transitions, and exactly one close event per session.
local util = require "spec.helpers.session_util"

local OP = util.OP
local hex = util.hex

local VALID_CODES = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
  3000, 3999, 4000, 4999 }
local INVALID_CODES = { 0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535 }

local function close_frame(s, code, reason)
  return util.in_frame(s, OP.close, util.close_payload(code, reason))
end

-- Decode exactly one close frame from the output of s; returns code, reason.
local function output_close(s)
  local frames, rest = util.decode(s:output())
  assert.are.equal("", rest)
  assert.are.equal(1, #frames)
  assert.are.equal(OP.close, frames[1].opcode)
  assert.is_true(frames[1].fin)
  assert.are.equal(util.role(s) == "client", frames[1].masked)
  return util.close_code(frames[1].payload)
end

for _, role in ipairs { "server", "client" } do
  describe("close, " .. role .. " role", function()
    it("echoes the peer's close and reports it clean", function()
      local s = util.session(role)
      local evs = util.feed(s, close_frame(s, 1000, "normal"))
      assert.are.same({ { "close", 1000, "normal", true } }, evs)
      local code = output_close(s)
      assert.are.equal(1000, code)
      assert.are.equal("CLOSED", s:state())
    end)

    it("answers an empty close with an empty close and reports 1005", function()
      local s = util.session(role)
      local evs = util.feed(s, util.in_frame(s, OP.close, ""))
      assert.are.same({ { "close", 1005, "", true } }, evs)
      assert.are.equal(util.out_frame(s, OP.close, ""), s:output())
      assert.are.equal("CLOSED", s:state())
    end)

    for _, code in ipairs(VALID_CODES) do
      it("echoes a received close with code " .. code, function()
        local s = util.session(role)
        local evs = util.feed(s, close_frame(s, code, "r"))
        assert.are.same({ { "close", code, "r", true } }, evs)
        assert.are.equal(code, (output_close(s)))
      end)
    end

    for _, code in ipairs(INVALID_CODES) do
      it("fails with 1002 on a received close with code " .. code, function()
        local s = util.session(role)
        local evs = util.feed(s, close_frame(s, code, "") .. util.in_frame(s, OP.text, "after"))
        util.assert_fail(s, evs, 1002)
      end)
    end

    it("fails with 1002 on a close payload of one byte", function()
      local s = util.session(role)
      util.assert_fail(s, util.feed(s, util.in_frame(s, OP.close, hex("03"))), 1002)
    end)

    it("fails with 1002 on a close payload of 126 bytes", function()
      local s = util.session(role)
      util.assert_fail(s, util.feed(s, close_frame(s, 1000, string.rep("r", 124))), 1002)
    end)

    it("accepts a received reason of 123 bytes", function()
      local s = util.session(role)
      local reason = string.rep("r", 123)
      assert.are.same({ { "close", 1000, reason, true } }, util.feed(s, close_frame(s, 1000, reason)))
    end)

    it("accepts a received reason in multi-byte UTF-8", function()
      local s = util.session(role)
      local reason = hex("ce ba e1 bd b9 cf 83 ce bc ce b5 f0 9f 98 80")
      assert.are.same({ { "close", 1001, reason, true } }, util.feed(s, close_frame(s, 1001, reason)))
    end)

    it("fails with 1007 on a received reason that is not UTF-8", function()
      local s = util.session(role)
      util.assert_fail(s, util.feed(s, close_frame(s, 1000, "bye" .. hex("ed a0 80"))), 1007)
    end)

    it("fails with 1007 on a received reason ending in a truncated character", function()
      local s = util.session(role)
      util.assert_fail(s, util.feed(s, close_frame(s, 1000, "bye" .. hex("e2 82"))), 1007)
    end)

    it("ignores everything after the peer's close", function()
      local s = util.session(role)
      local evs = util.feed(s, close_frame(s, 1000, "") .. util.in_frame(s, OP.text, "late")
        .. util.in_frame(s, OP.ping, "late") .. close_frame(s, 1001, "again"))
      assert.are.same({ { "close", 1000, "", true } }, evs)
      assert.are.equal(1000, (output_close(s)))
      s:feed(util.in_frame(s, OP.text, "later"))
      assert.is_nil(s:next_event())
      assert.are.equal("", s:output())
    end)

    it("handles a close fed one byte at a time", function()
      local s = util.session(role)
      local evs = util.feed_bytes(s, close_frame(s, 3000, "piecewise"))
      assert.are.same({ { "close", 3000, "piecewise", true } }, evs)
    end)

    it("initiates: OPEN -> CLOSING -> CLOSED with the peer's code and reason", function()
      local s = util.session(role)
      assert.are.equal("OPEN", s:state())
      assert.is_true(s:close(1000, "bye"))
      assert.are.equal("CLOSING", s:state())
      assert.are.equal(util.out_frame(s, OP.close, util.close_payload(1000, "bye")), s:output())
      assert.is_nil(s:next_event())
      local evs = util.feed(s, close_frame(s, 1001, "going"))
      assert.are.same({ { "close", 1001, "going", true } }, evs)
      assert.are.equal("CLOSED", s:state())
      assert.are.equal("", s:output(), "no second close frame")
    end)

    it("initiates with a code only", function()
      local s = util.session(role)
      assert.is_true(s:close(4000))
      assert.are.equal(util.out_frame(s, OP.close, util.close_payload(4000)), s:output())
      assert.are.same({ { "close", 4000, "", true } }, util.feed(s, close_frame(s, 4000)))
    end)

    it("initiates without a code", function()
      local s = util.session(role)
      assert.is_true(s:close())
      local frames = util.decode(s:output())
      assert.are.equal(1, #frames)
      assert.are.equal(OP.close, frames[1].opcode)
      local p = frames[1].payload
      assert.is_true(p == "" or p == util.close_payload(1000), "empty or 1000, got " .. util.tohex(p))
      assert.are.same({ { "close", 1005, "", true } }, util.feed(s, util.in_frame(s, OP.close, "")))
      assert.are.equal("CLOSED", s:state())
    end)

    it("sends a reason of exactly 123 bytes", function()
      local s = util.session(role)
      local reason = string.rep("x", 123)
      assert.is_true(s:close(1000, reason))
      assert.are.equal(util.out_frame(s, OP.close, util.close_payload(1000, reason)), s:output())
    end)

    it("raises on a reason of 124 bytes, sending nothing", function()
      local s = util.session(role)
      assert.has_error(function() s:close(1000, string.rep("x", 124)) end)
      assert.are.equal("", s:output())
      assert.are.equal("OPEN", s:state())
    end)

    it("raises on a reason that is not UTF-8, sending nothing", function()
      local s = util.session(role)
      assert.has_error(function() s:close(1000, "bye" .. hex("ff")) end)
      assert.are.equal("", s:output())
      assert.are.equal("OPEN", s:state())
    end)

    it("sends a multi-byte UTF-8 reason", function()
      local s = util.session(role)
      local reason = hex("e2 82 ac f0 9f 98 80")
      assert.is_true(s:close(1000, reason))
      assert.are.equal(util.out_frame(s, OP.close, util.close_payload(1000, reason)), s:output())
    end)

    it("raises on codes that must not be sent", function()
      local s = util.session(role)
      for _, code in ipairs { 0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535, -1 } do
        assert.has_error(function() s:close(code) end, nil, "code " .. code)
      end
      assert.are.equal("", s:output())
      assert.are.equal("OPEN", s:state())
    end)

    it("raises on codes that only look valid after truncation to 16 or 32 bits", function()
      local s = util.session(role)
      for _, code in ipairs { 66536, 4294968296 } do -- 65536 + 1000, 2^32 + 1000
        assert.has_error(function() s:close(code) end, nil, "code " .. code)
      end
      assert.are.equal("", s:output())
      assert.are.equal("OPEN", s:state())
    end)

    it("sends a close with code 3000 and 4999", function()
      for _, code in ipairs { 3000, 4999, 1001, 1011 } do
        local s = util.session(role)
        assert.is_true(s:close(code, "why"))
        assert.are.equal(util.out_frame(s, OP.close, util.close_payload(code, "why")), s:output())
      end
    end)

    it("returns nil, err for a second close and sends nothing", function()
      local s = util.session(role)
      assert.is_true(s:close(1000))
      s:output()
      local ok, err = s:close(1000)
      assert.is_nil(ok)
      assert.is_string(err)
      assert.are.equal("", s:output())
      assert.are.equal("CLOSING", s:state())
    end)

    it("refuses to send data while closing", function()
      local s = util.session(role)
      s:close(1000)
      s:output()
      local ok, err = s:send("late")
      assert.is_nil(ok)
      assert.is_string(err)
      ok, err = s:send_fragment("late", true)
      assert.is_nil(ok)
      assert.is_string(err)
      assert.are.equal("", s:output())
    end)

    it("refuses to send and close after the close completed", function()
      local s = util.session(role)
      util.feed(s, close_frame(s, 1000))
      s:output()
      local ok, err = s:send("late")
      assert.is_nil(ok)
      assert.is_string(err)
      ok, err = s:close(1000)
      assert.is_nil(ok)
      assert.is_string(err)
      assert.are.equal("", s:output())
    end)

    it("takes a message in flight while closing, then the peer's close", function()
      local s = util.session(role)
      s:close(1000)
      s:output()
      local evs = util.feed(s, util.in_frame(s, OP.text, "in flight") .. close_frame(s, 1000))
      -- delivering or dropping the message are both fine; failing is not
      assert.is_true(#evs == 1 or #evs == 2)
      if #evs == 2 then
        assert.are.same({ "message", "in flight", "text" }, evs[1])
      end
      assert.are.same({ { "close", 1000, "", true } }, { evs[#evs] })
      assert.are.equal("CLOSED", s:state())
      assert.are.equal("", s:output())
    end)

    it("fails with 1002 while CLOSING without sending a second close frame", function()
      local s = util.session(role)
      assert.is_true(s:close(1000, "bye"))
      s:output()
      local evs = util.feed(s, util.in_frame(s, 3, "") .. close_frame(s, 1000))
      assert.are.same({ "error", "close" }, util.kinds(evs))
      assert.are.equal(1002, evs[1][3])
      assert.are.same({ "close", 1002 }, { evs[2][1], evs[2][2] })
      assert.is_false(evs[2][4])
      assert.are.equal("", s:output())
      assert.are.equal("CLOSED", s:state())
    end)

    it("reports 1006 not clean on eof while OPEN", function()
      local s = util.session(role)
      s:eof()
      assert.are.same({ { "close", 1006, "", false } }, util.events(s))
      assert.are.equal("CLOSED", s:state())
      assert.are.equal("", s:output())
    end)

    it("delivers a complete message fed before eof, then reports 1006", function()
      local s = util.session(role)
      s:feed(util.in_frame(s, OP.text, "last words"))
      s:eof()
      assert.are.same({ { "message", "last words", "text" }, { "close", 1006, "", false } }, util.events(s))
    end)

    it("reports 1006 not clean on eof in the middle of a frame", function()
      local s = util.session(role)
      local f = util.in_frame(s, OP.text, "incomplete")
      s:feed(f:sub(1, 5))
      s:eof()
      assert.are.same({ { "close", 1006, "", false } }, util.events(s))
    end)

    it("reports 1006 not clean on eof while CLOSING", function()
      local s = util.session(role)
      s:close(1000, "bye")
      s:output()
      s:eof()
      assert.are.same({ { "close", 1006, "", false } }, util.events(s))
      assert.are.equal("CLOSED", s:state())
    end)

    it("reports 1006 not clean on abort (close timeout) while CLOSING", function()
      local s = util.session(role)
      s:close(1000)
      s:output()
      s:abort()
      assert.are.same({ { "close", 1006, "", false } }, util.events(s))
      assert.are.equal("CLOSED", s:state())
      assert.are.equal("", s:output())
    end)

    it("reports 1006 not clean on abort while OPEN", function()
      local s = util.session(role)
      s:abort()
      assert.are.same({ { "close", 1006, "", false } }, util.events(s))
    end)

    it("emits exactly one close event however the session goes on", function()
      local s = util.session(role)
      local all = {}
      local function take()
        for _, e in ipairs(util.events(s)) do all[#all + 1] = e end
      end
      s:feed(util.in_frame(s, OP.text, "hi"))
      take()
      s:close(1000)
      take()
      s:feed(close_frame(s, 1000, "done"))
      take()
      s:feed(close_frame(s, 1000, "again"))
      take()
      s:eof()
      take()
      s:abort()
      take()
      s:eof()
      take()
      assert.are.same({ { "message", "hi", "text" }, { "close", 1000, "done", true } }, all)
    end)

    it("emits one close event after a protocol error, eof and abort", function()
      local s = util.session(role)
      s:feed(util.in_frame(s, 3, ""))
      s:eof()
      s:abort()
      s:feed(close_frame(s, 1000))
      local evs = util.events(s)
      assert.are.equal(1, util.count(evs, "close"))
      assert.are.same({ "close", 1002 }, { evs[#evs][1], evs[#evs][2] })
    end)

    it("emits one close event after eof then a late close frame", function()
      local s = util.session(role)
      s:eof()
      s:feed(close_frame(s, 1000))
      s:eof()
      assert.are.same({ { "close", 1006, "", false } }, util.events(s))
      assert.are.equal("", s:output())
    end)
  end)
end

describe("close, two sessions wired together", function()
  for _, first in ipairs { "client", "server" } do
    it("completes the handshake cleanly when the " .. first .. " closes first", function()
      local c, srv = util.client(), util.server()
      local a = first == "client" and c or srv
      local b = first == "client" and srv or c
      assert.is_true(a:close(1000, "done"))
      assert.are.equal("CLOSING", a:state())
      util.pump(a, b)
      assert.are.same({ { "close", 1000, "done", true } }, util.events(b))
      assert.are.same({ { "close", 1000, "done", true } }, util.events(a))
      assert.are.equal("CLOSED", a:state())
      assert.are.equal("CLOSED", b:state())
    end)
  end

  it("handles both sides closing at the same time", function()
    local c, srv = util.client(), util.server()
    assert.is_true(c:close(1000, "from client"))
    assert.is_true(srv:close(1001, "from server"))
    local to_srv, to_c = c:output(), srv:output()
    srv:feed(to_srv)
    c:feed(to_c)
    assert.are.same({ { "close", 1000, "from client", true } }, util.events(srv))
    assert.are.same({ { "close", 1001, "from server", true } }, util.events(c))
    assert.are.equal("", c:output())
    assert.are.equal("", srv:output())
    assert.are.equal("CLOSED", c:state())
    assert.are.equal("CLOSED", srv:state())
  end)

  it("delivers messages sent before the close, then closes", function()
    local c, srv = util.client(), util.server()
    c:send("one")
    c:send("two", "binary")
    c:close(1000)
    util.pump(c, srv)
    assert.are.same({ { "message", "one", "text" }, { "message", "two", "binary" }, { "close", 1000, "", true } },
      util.events(srv))
    assert.are.same({ { "close", 1000, "", true } }, util.events(c))
  end)
end)
