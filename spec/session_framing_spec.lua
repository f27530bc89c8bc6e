-- Base framing (RFC 6455 5.2, 5.3, 5.6): payload lengths and their minimal
-- encoding in both directions, masking by role, arbitrary splits on receive.
local core = require "ws.core"
local util = require "spec.helpers.session_util"

local OP = util.OP
local LENGTHS = { 0, 1, 125, 126, 127, 65535, 65536, 100000 }

local function min_header_len(n)
  if n <= 125 then return 2 elseif n <= 65535 then return 4 end
  return 10
end

for _, role in ipairs { "server", "client" } do
  describe("framing, " .. role .. " role", function()
    it("starts OPEN without a handshake", function()
      local s = util.session(role)
      assert.are.equal("OPEN", s:state())
      assert.are.equal("", s:output())
      assert.is_nil(s:next_event())
    end)

    for _, n in ipairs(LENGTHS) do
      it("receives a binary message of " .. n .. " bytes", function()
        local s = util.session(role)
        local p = util.bytes(n, n + 17)
        local evs = util.feed(s, util.in_frame(s, OP.binary, p))
        assert.are.equal(1, #evs)
        assert.are.equal("message", evs[1][1])
        assert.are.equal("binary", evs[1][3])
        assert.are.equal(#p, #evs[1][2])
        assert.is_true(p == evs[1][2], "payload differs")
        assert.are.equal("", s:output())
      end)

      it("receives a text message of " .. n .. " bytes", function()
        local s = util.session(role)
        local p = util.ascii(n, n + 3)
        local evs = util.feed(s, util.in_frame(s, OP.text, p))
        assert.are.equal(1, #evs)
        assert.are.equal("message", evs[1][1])
        assert.are.equal("text", evs[1][3])
        assert.is_true(p == evs[1][2], "payload differs")
      end)

      it("sends a binary message of " .. n .. " bytes with the minimal length encoding", function()
        local s = util.session(role)
        local p = util.bytes(n, n + 5)
        assert.is_true(s:send(p, "binary"))
        local out = s:output()
        assert.is_true(util.out_frame(s, OP.binary, p) == out, "frame bytes differ")
        local h = core.parse_frame_header(out)
        local masked = role == "client"
        assert.are.equal(min_header_len(n) + (masked and 4 or 0), h.header_len)
        assert.are.equal(n, h.length)
        assert.are.equal(masked, h.masked)
        assert.are.equal(OP.binary, h.opcode)
        assert.is_true(h.fin)
        assert.are.equal(#out, h.header_len + n)
        assert.are.equal("", s:output())
      end)

      it("sends a text message of " .. n .. " bytes", function()
        local s = util.session(role)
        local p = util.ascii(n, n + 9)
        assert.is_true(s:send(p))
        local frames, rest = util.decode(s:output())
        assert.are.equal("", rest)
        assert.are.equal(1, #frames)
        assert.are.equal(OP.text, frames[1].opcode)
        assert.are.equal(min_header_len(n) + (role == "client" and 4 or 0), frames[1].header_len)
        assert.is_true(p == frames[1].payload, "payload differs")
      end)
    end

    it("sends text by default and binary when asked", function()
      local s = util.session(role)
      assert.is_true(s:send("a"))
      assert.is_true(s:send("b", "text"))
      assert.is_true(s:send("c", "binary"))
      assert.are.equal(util.out_frame(s, OP.text, "a") .. util.out_frame(s, OP.text, "b")
        .. util.out_frame(s, OP.binary, "c"), s:output())
    end)

    it("raises when sending text that is not UTF-8, accepts such bytes as binary", function()
      local s = util.session(role)
      assert.has_error(function() s:send(util.hex("c0 80")) end)
      assert.has_error(function() s:send("ok" .. util.hex("ed a0 80"), "text") end)
      assert.are.equal("", s:output())
      assert.is_true(s:send(util.hex("c0 80 ff"), "binary"))
      assert.are.equal(util.out_frame(s, OP.binary, util.hex("c0 80 ff")), s:output())
      assert.are.equal("OPEN", s:state())
    end)

    it("receives several frames from one feed, in order", function()
      local s = util.session(role)
      local bytes = util.in_frame(s, OP.text, "one") .. util.in_frame(s, OP.binary, "two")
        .. util.in_frame(s, OP.text, "") .. util.in_frame(s, OP.text, "four")
      local evs = util.feed(s, bytes)
      assert.are.same({
        { "message", "one", "text" },
        { "message", "two", "binary" },
        { "message", "", "text" },
        { "message", "four", "text" },
      }, evs)
    end)

    for _, n in ipairs { 0, 5, 125, 126, 300, 65536 } do
      it("receives a " .. n .. "-byte frame fed one byte at a time, only when complete", function()
        local s = util.session(role)
        local p = util.bytes(n, 77)
        local f = util.in_frame(s, OP.binary, p)
        for i = 1, #f - 1 do
          s:feed(f:sub(i, i))
          if s:next_event() ~= nil then
            error("event after byte " .. i .. " of " .. #f)
          end
        end
        s:feed(f:sub(-1))
        local kind, data, k = s:next_event()
        assert.are.equal("message", kind)
        assert.are.equal("binary", k)
        assert.is_true(data == p, "payload differs")
        assert.is_nil(s:next_event())
      end)
    end

    it("receives a frame split in two at every byte boundary", function()
      for _, n in ipairs { 3, 130, 65540 } do
        local p = util.bytes(n, n)
        local probe = util.session(role)
        local f = util.in_frame(probe, OP.binary, p)
        local cuts = {}
        if n < 1000 then
          for i = 1, #f - 1 do cuts[#cuts + 1] = i end
        else
          for i = 1, 20 do cuts[#cuts + 1] = i end
          cuts[#cuts + 1] = 1000
          cuts[#cuts + 1] = #f - 1
        end
        for _, cut in ipairs(cuts) do
          local s = util.session(role)
          assert.are.same({}, util.feed(s, f:sub(1, cut)))
          local evs = util.feed(s, f:sub(cut + 1))
          assert.are.equal(1, #evs, "cut " .. cut)
          assert.is_true(evs[1][2] == p, "payload differs at cut " .. cut)
        end
      end
    end)

    it("ignores an empty feed", function()
      local s = util.session(role)
      s:feed("")
      assert.is_nil(s:next_event())
      local f = util.in_frame(s, OP.text, "x")
      s:feed(f:sub(1, 1))
      s:feed("")
      s:feed(f:sub(2))
      assert.are.same({ { "message", "x", "text" } }, util.events(s))
    end)

    it("delivers events through the s:events() iterator", function()
      local s = util.session(role)
      s:feed(util.in_frame(s, OP.text, "a") .. util.in_frame(s, OP.binary, "b"))
      local got = {}
      for kind, a, b in s:events() do
        got[#got + 1] = kind .. ":" .. a .. ":" .. b
      end
      assert.are.same({ "message:a:text", "message:b:binary" }, got)
      assert.is_nil(s:next_event())
    end)

    it("lets the application send while draining events", function()
      local s = util.session(role)
      s:feed(util.in_frame(s, OP.text, "a") .. util.in_frame(s, OP.text, "b"))
      local n = 0
      for kind, data in s:events() do
        assert.are.equal("message", kind)
        n = n + 1
        assert.is_true(s:send("echo " .. data))
      end
      assert.are.equal(2, n)
      assert.are.equal(util.out_frame(s, OP.text, "echo a") .. util.out_frame(s, OP.text, "echo b"), s:output())
    end)
  end)
end

describe("framing, masking rules", function()
  it("a server fails the connection with 1002 on an unmasked frame", function()
    local s = util.server()
    local evs = util.feed(s, util.sframe(OP.text, "unmasked") .. util.cframe(OP.text, "after"))
    util.assert_fail(s, evs, 1002)
  end)

  it("a server fails on an unmasked control frame too", function()
    local s = util.server()
    local evs = util.feed(s, util.sframe(OP.ping, "p"))
    util.assert_fail(s, evs, 1002)
  end)

  it("a client fails the connection with 1002 on a masked frame", function()
    local s = util.client()
    local evs = util.feed(s, util.cframe(OP.binary, "masked") .. util.sframe(OP.text, "after"))
    util.assert_fail(s, evs, 1002)
  end)

  it("a server delivers the message before a later unmasked frame fails it", function()
    local s = util.server()
    local evs = util.feed(s, util.cframe(OP.text, "good") .. util.sframe(OP.text, "bad"))
    assert.are.same({ "message", "good", "text" }, evs[1])
    table.remove(evs, 1)
    util.assert_fail(s, evs, 1002)
  end)

  it("a server accepts an all-zero masking key", function()
    local s = util.server()
    local evs = util.feed(s, util.frame { opcode = OP.text, payload = "zero", mask = string.rep("\0", 4) })
    assert.are.same({ { "message", "zero", "text" } }, evs)
  end)

  it("a client with a fixed key masks every frame with it", function()
    local s = util.client()
    s:send("a")
    s:ping("p")
    s:pong("q")
    s:close(1000, "bye")
    local out = s:output()
    local frames, rest = util.decode(out)
    assert.are.equal("", rest)
    assert.are.equal(4, #frames)
    for _, f in ipairs(frames) do
      assert.is_true(f.masked)
      assert.are.equal(util.KEY, f.mask)
    end
    assert.are.equal(util.out_frame(s, OP.text, "a") .. util.out_frame(s, OP.ping, "p")
      .. util.out_frame(s, OP.pong, "q") .. util.out_frame(s, OP.close, util.close_payload(1000, "bye")), out)
  end)

  it("a client without a fixed key masks with fresh keys", function()
    local s = core.session { role = "client", handshake = false }
    local keys, n = {}, 0
    for _ = 1, 8 do
      s:send("same payload")
      local frames = util.decode(s:output())
      assert.are.equal(1, #frames)
      assert.is_true(frames[1].masked)
      assert.are.equal("same payload", frames[1].payload)
      if not keys[frames[1].mask] then
        keys[frames[1].mask] = true
        n = n + 1
      end
    end
    assert.is_true(n >= 7, "only " .. n .. " distinct masking keys in 8 frames")
  end)

  it("a server never masks", function()
    local s = util.server()
    s:send("a")
    s:send("b", "binary")
    s:ping("c")
    s:pong("d")
    s:close(1001)
    local frames = util.decode(s:output())
    assert.are.equal(5, #frames)
    for _, f in ipairs(frames) do
      assert.is_false(f.masked)
    end
  end)
end)
