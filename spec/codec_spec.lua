-- The pure codec helpers of ws.core: frame building, header parsing,
-- masking and UTF-8 validation (RFC 6455 sections 5.2, 5.3, 8.1).
local core = require "ws.core"
local util = require "spec.helpers.session_util"

local hex = util.hex
local char = string.char

-- RFC 6455 5.7 uses this masking key in its examples.
local RFC_KEY = hex("37 fa 21 3d")

describe("core.build_frame", function()
  it("builds the RFC 6455 5.7 examples byte for byte", function()
    assert.are.equal(hex("81 05") .. "Hello", core.build_frame { opcode = 1, payload = "Hello" })
    assert.are.equal(hex("81 85 37 fa 21 3d 7f 9f 4d 51 58"),
      core.build_frame { opcode = 1, payload = "Hello", mask = RFC_KEY })
    assert.are.equal(hex("01 03") .. "Hel", core.build_frame { opcode = 1, payload = "Hel", fin = false })
    assert.are.equal(hex("80 02") .. "lo", core.build_frame { opcode = 0, payload = "lo" })
    assert.are.equal(hex("89 05") .. "Hello", core.build_frame { opcode = 9, payload = "Hello" })
    assert.are.equal(hex("8a 85 37 fa 21 3d 7f 9f 4d 51 58"),
      core.build_frame { opcode = 10, payload = "Hello", mask = RFC_KEY })
  end)

  it("uses the 16-bit length for 256 bytes and the 64-bit length for 65536", function()
    local p256 = string.rep("a", 256)
    assert.are.equal(hex("82 7e 01 00") .. p256, core.build_frame { opcode = 2, payload = p256 })
    local p64k = string.rep("b", 65536)
    assert.are.equal(hex("82 7f 00 00 00 00 00 01 00 00") .. p64k,
      core.build_frame { opcode = 2, payload = p64k })
  end)

  it("defaults to fin=true and an empty payload", function()
    assert.are.equal(hex("88 00"), core.build_frame { opcode = 8 })
    assert.are.equal(hex("80 00"), core.build_frame { opcode = 0 })
  end)

  it("sets each RSV bit and accepts any opcode 0..15", function()
    assert.are.equal(hex("c1 00"), core.build_frame { opcode = 1, rsv1 = true })
    assert.are.equal(hex("a1 00"), core.build_frame { opcode = 1, rsv2 = true })
    assert.are.equal(hex("91 00"), core.build_frame { opcode = 1, rsv3 = true })
    assert.are.equal(hex("71 00"), core.build_frame { opcode = 1, fin = false, rsv1 = true, rsv2 = true, rsv3 = true })
    for op = 0, 15 do
      assert.are.equal(char(128 + op, 0), core.build_frame { opcode = op })
    end
  end)

  it("matches the reference encoder at every length boundary, masked and not", function()
    for _, n in ipairs { 0, 1, 2, 3, 4, 5, 124, 125, 126, 127, 128, 65534, 65535, 65536, 65537, 100000 } do
      local p = util.bytes(n, n + 1)
      for op = 1, 2 do
        assert.are.equal(util.frame { opcode = op, payload = p },
          core.build_frame { opcode = op, payload = p }, "length " .. n)
        assert.are.equal(util.frame { opcode = op, payload = p, mask = RFC_KEY },
          core.build_frame { opcode = op, payload = p, mask = RFC_KEY }, "masked length " .. n)
      end
    end
  end)

  it("takes any 4-byte masking key, zero bytes included", function()
    assert.are.equal(hex("81 82 00 00 00 00") .. "ab",
      core.build_frame { opcode = 1, payload = "ab", mask = char(0, 0, 0, 0) })
    local key = char(1, 0, 2, 0)
    assert.are.equal(hex("82 83") .. key .. util.lua_mask("xyz", key),
      core.build_frame { opcode = 2, payload = "xyz", mask = key })
  end)

  it("raises on an opcode outside 0..15, naming the option", function()
    for _, op in ipairs { 16, -1 } do
      local ok, err = pcall(core.build_frame, { opcode = op })
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("opcode", 1, true), tostring(err))
    end
  end)

  it("masks with the reference XOR (not just with some involution)", function()
    local p = util.bytes(37, 7)
    local f = core.build_frame { opcode = 2, payload = p, mask = util.PEER_KEY }
    assert.are.equal(hex("82 a5") .. util.PEER_KEY .. util.lua_mask(p, util.PEER_KEY), f)
  end)
end)

describe("core.parse_frame_header", function()
  it("reads every field of a masked frame", function()
    local h = core.parse_frame_header(hex("81 85 37 fa 21 3d 7f 9f 4d 51 58"))
    assert.is_true(h.fin)
    assert.is_false(h.rsv1)
    assert.is_false(h.rsv2)
    assert.is_false(h.rsv3)
    assert.are.equal(1, h.opcode)
    assert.is_true(h.masked)
    assert.are.equal(RFC_KEY, h.mask)
    assert.are.equal(5, h.length)
    assert.are.equal(6, h.header_len)
  end)

  it("reads an unmasked non-final frame with RSV bits", function()
    local h = core.parse_frame_header(hex("72 03") .. "abc")
    assert.is_false(h.fin)
    assert.is_true(h.rsv1)
    assert.is_true(h.rsv2)
    assert.is_true(h.rsv3)
    assert.are.equal(2, h.opcode)
    assert.is_false(h.masked)
    assert.is_nil(h.mask)
    assert.are.equal(3, h.length)
    assert.are.equal(2, h.header_len)
  end)

  it("reports the header length of each length encoding", function()
    local cases = {
      { 0, 2 }, { 125, 2 }, { 126, 4 }, { 65535, 4 }, { 65536, 10 }, { 100000, 10 },
    }
    for _, c in ipairs(cases) do
      local n, hl = c[1], c[2]
      local f = util.frame { opcode = 2, payload = string.rep("x", n) }
      local h = core.parse_frame_header(f)
      assert.are.equal(n, h.length)
      assert.are.equal(hl, h.header_len)
      h = core.parse_frame_header(util.frame { opcode = 2, payload = string.rep("x", n), mask = RFC_KEY })
      assert.are.equal(n, h.length)
      assert.are.equal(hl + 4, h.header_len)
    end
  end)

  it("needs only the header, not the payload", function()
    local h = core.parse_frame_header(hex("82 7f 00 00 00 01 00 00 00 05"))
    assert.are.equal(4294967301, h.length)
    assert.are.equal(10, h.header_len)
    h = core.parse_frame_header(hex("82 7e ff ff"))
    assert.are.equal(65535, h.length)
  end)

  it("takes a non-minimal length encoding as written", function()
    local h = core.parse_frame_header(hex("81 7e 00 05") .. "hello")
    assert.are.equal(5, h.length)
    assert.are.equal(4, h.header_len)
  end)

  it("returns nil for every incomplete header", function()
    local frames = {
      util.frame { opcode = 1, payload = "hi" },
      util.frame { opcode = 1, payload = "hi", mask = RFC_KEY },
      util.frame { opcode = 2, payload = string.rep("y", 300), mask = RFC_KEY },
      util.frame { opcode = 2, payload = string.rep("y", 70000), mask = RFC_KEY },
    }
    for _, f in ipairs(frames) do
      local hl = core.parse_frame_header(f).header_len
      for i = 0, hl - 1 do
        local a, b = core.parse_frame_header(f:sub(1, i))
        assert.is_nil(a)
        assert.is_nil(b)
      end
      assert.is_table(core.parse_frame_header(f:sub(1, hl)))
    end
  end)

  it("rejects a 64-bit length with the most significant bit set", function()
    local h, err = core.parse_frame_header(hex("82 7f 80 00 00 00 00 00 00 01"))
    assert.is_nil(h)
    assert.is_string(err)
    h, err = core.parse_frame_header(hex("82 ff ff ff ff ff ff ff ff ff 01 02 03 04"))
    assert.is_nil(h)
    assert.is_string(err)
  end)
end)

describe("core.mask", function()
  it("masks the RFC example", function()
    assert.are.equal(hex("7f 9f 4d 51 58"), core.mask("Hello", RFC_KEY))
  end)

  it("returns an empty string for empty data", function()
    assert.are.equal("", core.mask("", RFC_KEY))
  end)

  it("agrees with the reference XOR at every length and offset", function()
    local data = util.bytes(80, 3)
    for n = 0, 80 do
      local d = data:sub(1, n)
      for off = 0, 7 do
        assert.are.equal(util.lua_mask(d, util.PEER_KEY, off), core.mask(d, util.PEER_KEY, off),
          "length " .. n .. " offset " .. off)
      end
    end
  end)

  it("continues across chunks with the offset", function()
    local data = util.bytes(100003, 11)
    local whole = core.mask(data, RFC_KEY)
    assert.are.equal(util.lua_mask(data:sub(99000), RFC_KEY, 98999), whole:sub(99000))
    for _, cut in ipairs { 1, 2, 3, 4, 5, 7, 13, 4096, 65537 } do
      local a = core.mask(data:sub(1, cut), RFC_KEY)
      local b = core.mask(data:sub(cut + 1), RFC_KEY, cut)
      assert.are.equal(whole, a .. b, "cut at " .. cut)
    end
  end)

  it("takes offsets beyond 32 bits", function()
    local data = util.bytes(21, 8)
    assert.are.equal(core.mask(data, RFC_KEY, 1), core.mask(data, RFC_KEY, 2 ^ 33 + 1))
    assert.are.equal(core.mask(data, RFC_KEY, 3), core.mask(data, RFC_KEY, 2 ^ 40 + 7))
  end)

  it("is an involution", function()
    local data = util.bytes(1000, 5)
    assert.are.equal(data, core.mask(core.mask(data, RFC_KEY), RFC_KEY))
    assert.are_not.equal(data, core.mask(data, RFC_KEY))
  end)
end)

-- UTF-8 samples (RFC 3629).  `bad` is the 1-based position of the first
-- byte after which the input can no longer be a prefix of valid UTF-8.
local VALID = {
  { "empty", "" },
  { "ascii", "Hello, world" },
  { "nul", "a" .. char(0) .. "b" },
  { "2-byte", hex("c2 a9 c3 a9 df bf") },
  { "3-byte", hex("e2 82 ac e0 a0 80") },
  { "4-byte", hex("f0 9f 98 80 f0 90 80 80") },
  { "U+D7FF", hex("ed 9f bf") },
  { "U+E000", hex("ee 80 80") },
  { "U+FFFF", hex("ef bf bf") },
  { "U+FFFE", hex("ef bf be") },
  { "U+10FFFF", hex("f4 8f bf bf") },
  { "mixed", "k" .. hex("c3 b6 c3 a4 e2 82 ac f0 9d 84 9e") .. "z" },
}

local INVALID = {
  { "overlong 2", hex("c0 80"), 1 },
  { "overlong 2 c1", hex("c1 bf"), 1 },
  { "overlong 3", hex("e0 80 80"), 2 },
  { "overlong 3 max", hex("e0 9f bf"), 2 },
  { "overlong 4", hex("f0 80 80 80"), 2 },
  { "overlong 4 max", hex("f0 8f bf bf"), 2 },
  { "surrogate low", hex("ed a0 80"), 2 },
  { "surrogate high", hex("ed bf bf"), 2 },
  { "above U+10FFFF", hex("f4 90 80 80"), 2 },
  { "lead f5", hex("f5 80 80 80"), 1 },
  { "lead f8", hex("f8 88 80 80 80"), 1 },
  { "lead fe", hex("fe"), 1 },
  { "lead ff", hex("ff"), 1 },
  { "lone continuation 80", hex("80"), 1 },
  { "lone continuation bf", hex("bf"), 1 },
  { "continuation after ascii", "ab" .. hex("80") .. "cd", 3 },
  { "missing continuation", hex("c2 41"), 2 },
  { "missing continuation 3", hex("e2 82 41"), 3 },
  { "missing continuation 4", hex("f0 9f 98 41"), 4 },
  { "two leads", hex("e2 e2 82 ac"), 2 },
  { "extra continuation", hex("e2 82 ac 80"), 4 },
  { "late", "hello " .. hex("ce ba e1 bd b9 cf 83 ce bc ce b5 ed a0 80") .. "edited", 19 },
}

local TRUNCATED = {
  { "2 of 2", hex("c2") },
  { "2 of 3", "a" .. hex("e2 82") },
  { "3 of 4", hex("f0 9f 98") },
  { "1 of 4", "xyz" .. hex("f4") },
}

describe("core.utf8_valid", function()
  it("accepts valid UTF-8", function()
    for _, c in ipairs(VALID) do
      assert.is_true(core.utf8_valid(c[2]), c[1])
    end
  end)

  it("rejects invalid UTF-8", function()
    for _, c in ipairs(INVALID) do
      assert.is_false(core.utf8_valid(c[2]), c[1])
    end
  end)

  it("rejects a truncated sequence at the end", function()
    for _, c in ipairs(TRUNCATED) do
      assert.is_false(core.utf8_valid(c[2]), c[1])
    end
  end)

  it("finds one bad byte at any position of a long ASCII text", function()
    local text = util.ascii(1000, 9)
    assert.is_true(core.utf8_valid(text))
    for _, pos in ipairs { 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 500, 992, 999, 1000 } do
      local bad = text:sub(1, pos - 1) .. hex("ff") .. text:sub(pos + 1)
      assert.is_false(core.utf8_valid(bad), "0xff at " .. pos)
      bad = text:sub(1, pos - 1) .. hex("80") .. text:sub(pos + 1)
      assert.is_false(core.utf8_valid(bad), "0x80 at " .. pos)
    end
  end)

  it("accepts long multi-byte text and rejects it cut before its last byte", function()
    local text = string.rep(hex("e2 82 ac") .. "a" .. hex("f0 9f 98 80 c3 a9"), 500)
    assert.is_true(core.utf8_valid(text))
    assert.is_false(core.utf8_valid(text:sub(1, -2)))
  end)
end)

describe("core.utf8_validator", function()
  it("accepts valid samples fed whole, in two parts at every cut, and byte by byte", function()
    for _, c in ipairs(VALID) do
      local s = c[2]
      local v = core.utf8_validator()
      assert.is_true(v:feed(s), c[1])
      assert.is_true(v:finish(), c[1])
      for cut = 0, #s do
        v = core.utf8_validator()
        assert.is_true(v:feed(s:sub(1, cut)), c[1])
        assert.is_true(v:feed(s:sub(cut + 1)), c[1])
        assert.is_true(v:finish(), c[1] .. " cut " .. cut)
      end
      v = core.utf8_validator()
      for i = 1, #s do
        assert.is_true(v:feed(s:sub(i, i)), c[1] .. " byte " .. i)
      end
      assert.is_true(v:finish(), c[1])
    end
  end)

  it("fails fast: false exactly on the feed that delivers the impossible byte", function()
    for _, c in ipairs(INVALID) do
      local s, bad = c[2], c[3]
      local v = core.utf8_validator()
      for i = 1, #s do
        local ok = v:feed(s:sub(i, i))
        if i < bad then
          assert.is_true(ok, c[1] .. ": byte " .. i .. " is still a valid prefix")
        else
          assert.is_false(ok, c[1] .. ": byte " .. i .. " (bad at " .. bad .. ")")
        end
      end
      assert.is_false(v:finish(), c[1])
    end
  end)

  it("fails on the chunk that holds the bad byte when fed in chunks", function()
    for _, c in ipairs(INVALID) do
      local s, bad = c[2], c[3]
      local v = core.utf8_validator()
      assert.is_true(v:feed(s:sub(1, bad - 1)), c[1])
      assert.is_false(v:feed(s:sub(bad)), c[1])
      assert.is_false(v:feed("ok"), c[1] .. ": stays failed")
      assert.is_false(v:finish(), c[1])
    end
  end)

  it("accepts a truncated tail while feeding, rejects it at finish", function()
    for _, c in ipairs(TRUNCATED) do
      local v = core.utf8_validator()
      assert.is_true(v:feed(c[2]), c[1])
      assert.is_false(v:finish(), c[1])
    end
  end)

  it("completes a sequence split across feeds", function()
    local v = core.utf8_validator()
    assert.is_true(v:feed("a" .. hex("f0")))
    assert.is_true(v:feed(hex("9f")))
    assert.is_true(v:feed(""))
    assert.is_true(v:feed(hex("98 80") .. "b"))
    assert.is_true(v:finish())
  end)

  it("finishes an empty stream as valid", function()
    local v = core.utf8_validator()
    assert.is_true(v:finish())
    v = core.utf8_validator()
    assert.is_true(v:feed(""))
    assert.is_true(v:finish())
  end)

  it("keeps independent state per validator", function()
    local a, b = core.utf8_validator(), core.utf8_validator()
    assert.is_true(a:feed(hex("e2 82")))
    assert.is_true(b:feed("plain"))
    assert.is_true(b:finish())
    assert.is_true(a:feed(hex("ac")))
    assert.is_true(a:finish())
  end)
end)

-- Long texts against a plain reference decoder, so a wrong answer from the
-- vector code in csrc/core/utf8.c (which works on 64-byte blocks and on the whole
-- characters of each feed) shows up at any offset and any split.
describe("core.utf8_valid and core.utf8_validator against a reference decoder", function()
  local byte = string.byte

  -- Park-Miller generator: exact in doubles and in integers, so every Lua
  -- sees the same sequence.
  local function rng(seed)
    local x = seed
    return function(n)
      x = x * 16807 % 2147483647
      return x % n + 1
    end
  end

  -- Code point bounds of an L-byte sequence (RFC 3629 section 3).
  local MIN_CP = { 0, 0x80, 0x800, 0x10000 }
  local MAX_CP = { 0x7f, 0x7ff, 0xffff, 0x10ffff }
  local POW64 = { 1, 64, 4096, 262144 } -- POW64[k] = 64 ^ (k - 1)

  -- Returns the position of the first byte after which s can no longer be
  -- the start of valid UTF-8 (nil if there is none), and whether s ends on a
  -- character boundary.  Works on code point values: a sequence cut short is
  -- still possible when some ending of it gives an allowed code point.
  local function reference(s)
    local i, n = 1, #s
    while i <= n do
      local c = byte(s, i)
      local len, cp
      if c < 0x80 then
        len, cp = 1, c
      elseif c >= 0xc0 and c < 0xe0 then
        len, cp = 2, c - 0xc0
      elseif c >= 0xe0 and c < 0xf0 then
        len, cp = 3, c - 0xe0
      elseif c >= 0xf0 and c < 0xf8 then
        len, cp = 4, c - 0xf0
      else
        return i, false
      end
      for m = 0, len - 1 do
        if m > 0 then
          if i + m > n then
            return nil, false
          end
          local d = byte(s, i + m)
          if d < 0x80 or d > 0xbf then
            return i + m, false
          end
          cp = cp * 64 + (d - 0x80)
        end
        -- the code points this sequence can still become
        local rest = POW64[len - m]
        local lo, hi = cp * rest, cp * rest + rest - 1
        if lo < MIN_CP[len] then
          lo = MIN_CP[len]
        end
        if hi > MAX_CP[len] then
          hi = MAX_CP[len]
        end
        if lo > hi or (lo >= 0xd800 and hi <= 0xdfff) then
          return i + m, false
        end
      end
      i = i + len
    end
    return nil, true
  end

  local PIECES = {
    "a", "hello ", string.rep("x", 70), hex("c3 a9"), hex("e2 82 ac"), hex("f0 9f 98 80"),
    hex("c2 80"), hex("df bf"), hex("e0 a0 80"), hex("ed 9f bf"), hex("ee 80 80"),
    hex("ef bf bf"), hex("f0 90 80 80"), hex("f4 8f bf bf"), hex("e1 bd b9 cf 83"),
  }

  local function mixed_text(len, seed)
    local rnd, parts, n = rng(seed), {}, 0
    while n < len do
      local p = PIECES[rnd(#PIECES)]
      if p:byte() == 0x78 and rnd(3) > 1 then
        p = "y" -- keep long ASCII runs rare
      end
      parts[#parts + 1] = p
      n = n + #p
    end
    return table.concat(parts)
  end

  local ERRORS = {
    { "overlong 2 (c0)", hex("c0 80") },
    { "overlong 2 (c1)", hex("c1 bf") },
    { "overlong 3", hex("e0 80 80") },
    { "overlong 3 max", hex("e0 9f bf") },
    { "overlong 4", hex("f0 80 80 80") },
    { "overlong 4 max", hex("f0 8f bf bf") },
    { "surrogate D800", hex("ed a0 80") },
    { "surrogate DFFF", hex("ed bf bf") },
    { "above U+10FFFF", hex("f4 90 80 80") },
    { "lead f5", hex("f5 80 80 80") },
    { "lead f7", hex("f7 bf bf bf") },
    { "lead f8", hex("f8 88 80 80") },
    { "byte fe", hex("fe") },
    { "byte ff", hex("ff") },
    { "stray continuation 80", hex("80") },
    { "stray continuation bf", hex("bf") },
    { "lead without continuation", hex("c2") },
    { "3-byte cut after 2", hex("e2 82") },
    { "4-byte cut after 3", hex("f0 9f 98") },
    { "continuation too many", hex("e2 82 ac 80") },
  }

  -- Feed s in random chunks (1..max bytes, some whole 64-byte runs) and
  -- check each answer against the reference.
  local function check_splits(s, bad, complete, rnd, label)
    local v, pos, n = core.utf8_validator(), 0, #s
    while pos < n do
      local k = rnd(3) == 1 and rnd(8) or rnd(130)
      local last = math.min(pos + k, n)
      local ok = v:feed(s:sub(pos + 1, last))
      local want = bad == nil or bad > last
      if ok ~= want then
        error(label .. ": feed of bytes " .. (pos + 1) .. ".." .. last .. " returned " ..
          tostring(ok) .. ", bad at " .. tostring(bad), 0)
      end
      pos = last
    end
    local fin = v:finish()
    if fin ~= (bad == nil and complete) then
      error(label .. ": finish returned " .. tostring(fin), 0)
    end
  end

  local function check(s, rnd, label)
    local bad, complete = reference(s)
    local want = bad == nil and complete
    if core.utf8_valid(s) ~= want then
      error(label .. ": utf8_valid returned " .. tostring(not want) .. " for " .. util.tohex(s), 0)
    end
    check_splits(s, bad, complete, rnd, label)
    return bad, complete
  end

  it("has a reference that agrees with the samples above", function()
    for _, c in ipairs(VALID) do
      local bad, complete = reference(c[2])
      assert.is_nil(bad, c[1])
      assert.is_true(complete, c[1])
    end
    for _, c in ipairs(INVALID) do
      assert.are.equal(c[3], (reference(c[2])), c[1])
    end
    for _, c in ipairs(TRUNCATED) do
      local bad, complete = reference(c[2])
      assert.is_nil(bad, c[1])
      assert.is_false(complete, c[1])
    end
    assert.are.equal(2, (reference(hex("f4 90"))))
    assert.are.equal(2, (reference(hex("ed a0"))))
  end)

  it("accepts valid mixed text of every length from 1 to 300 bytes, whole and split", function()
    local text = mixed_text(400, 7)
    local rnd = rng(11)
    for len = 1, 300 do
      local s = text:sub(1, len)
      check(s, rnd, "prefix " .. len)
    end
    for seed = 1, 40 do
      local s = mixed_text(rnd(1000), seed)
      local bad, complete = check(s, rnd, "text " .. seed)
      assert.is_nil(bad)
      assert.is_true(complete)
    end
  end)

  it("finds every kind of error at every position of a 300-byte text", function()
    local rnd = rng(23)
    local text = mixed_text(300, 101):sub(1, 300)
    for _, e in ipairs(ERRORS) do
      local found = 0
      for pos = 0, #text do
        local s = text:sub(1, pos) .. e[2] .. text:sub(pos + 1)
        local bad, complete = check(s, rnd, e[1] .. " at " .. pos)
        if bad or not complete then
          found = found + 1
        end
      end
      -- inserted on a character boundary it is always an error
      assert.is_true(found > #text / 2, e[1])
    end
  end)

  it("replaces each byte of a text by every kind of bad byte", function()
    local rnd = rng(31)
    local text = mixed_text(300, 5):sub(1, 200)
    for _, b in ipairs { 0x80, 0xbf, 0xc0, 0xc1, 0xc2, 0xe0, 0xed, 0xf0, 0xf4, 0xf5, 0xf8, 0xff, 0x41 } do
      for pos = 1, #text do
        local s = text:sub(1, pos - 1) .. char(b) .. text:sub(pos + 1)
        check(s, rnd, string.format("%02x at %d", b, pos))
      end
    end
  end)

  it("rejects a sequence cut short at the end of the text, after any length", function()
    local rnd = rng(41)
    local text = mixed_text(400, 3)
    for _, cut in ipairs { hex("c2"), hex("e2"), hex("e2 82"), hex("f0"), hex("f0 9f"), hex("f0 9f 98"),
      hex("f4 8f bf"), hex("ed 9f") } do
      for len = 0, 300 do
        local prefix = text:sub(1, len)
        local bad0, complete0 = reference(prefix)
        local s = prefix .. cut
        local bad, complete = check(s, rnd, util.tohex(cut) .. " after " .. len)
        if bad0 == nil and complete0 then
          assert.is_nil(bad)
          assert.is_false(complete)
        end
      end
    end
  end)
end)
