-- The UTF-8 validators (scalar state machine, SSSE3 and AVX2 lookup
-- tables) give the same answers: each is forced through ws.testing on the
-- same texts, valid and broken at every position around the 16-, 32- and
-- 64-byte blocks the vector code works in, whole and fed in chunks.
local testing = require "ws.testing"

local IMPLS = { "scalar", "ssse3", "avx2" }
local CHARS = { "a", "\195\169", "\226\130\172", "\240\159\152\128", "\239\191\191", "\244\143\191\191" }
local BROKEN = {
  overlong = "\192\128",
  overlong3 = "\224\128\175",
  surrogate = "\237\160\128",
  too_big = "\244\144\128\128",
  stray_continuation = "\128",
  bad_lead = "\255",
  short_sequence = "\226\130a",
}

-- A valid text of exactly n bytes (ASCII pads what a character cannot fill).
local function text(n, seed)
  local parts, len, i = {}, 0, seed
  while len < n do
    local c = CHARS[i % #CHARS + 1]
    if len + #c > n then c = "a" end
    parts[#parts + 1] = c
    len = len + #c
    i = i + 1
  end
  return table.concat(parts)
end

local function each_impl(fn)
  local ran = 0
  for _, impl in ipairs(IMPLS) do
    if testing.utf8_with("", impl) ~= nil then
      fn(impl)
      ran = ran + 1
    end
  end
  return ran
end

describe("UTF-8 validators", function()
  it("runs the scalar one everywhere and a vector one on x86-64", function()
    assert.are.equal(true, testing.utf8_with("", "scalar"))
    if jit and jit.arch ~= "x64" then return end
    local f = io.open("/proc/cpuinfo")
    local info = f and f:read("*a") or ""
    if f then f:close() end
    if info:find(" ssse3") then assert.is_not_nil(testing.utf8_with("", "ssse3")) end
    if info:find(" avx2") then assert.is_not_nil(testing.utf8_with("", "avx2")) end
  end)

  it("accept valid text of every length up to 200 bytes, whole and in chunks", function()
    each_impl(function(impl)
      for n = 0, 200 do
        local s = text(n, n)
        for _, chunk in ipairs { #s, 1, 7, 64 } do
          local whole, fed = testing.utf8_with(s, impl, chunk)
          assert.is_true(whole, impl .. " length " .. n)
          assert.are.equal("ok", fed, impl .. " length " .. n .. " chunk " .. chunk)
        end
      end
    end)
  end)

  it("reject a broken sequence at every position around the block edges", function()
    each_impl(function(impl)
      for name, bad in pairs(BROKEN) do
        for _, at in ipairs { 0, 1, 14, 15, 16, 17, 30, 31, 32, 33, 62, 63, 64, 65, 127, 128, 190 } do
          local s = text(at, at) .. bad .. text(70, at + 1)
          for _, chunk in ipairs { #s, 5, 64 } do
            local whole, fed = testing.utf8_with(s, impl, chunk)
            local what = ("%s: %s at %d, chunk %d"):format(impl, name, at, chunk)
            assert.is_false(whole, what)
            assert.are.equal("invalid", fed, what)
          end
        end
      end
    end)
  end)

  it("skip long ASCII runs and still see what follows them", function()
    each_impl(function(impl)
      local ascii = ("x"):rep(64 * 5)
      assert.is_true((testing.utf8_with(ascii .. text(100, 3), impl)))
      assert.is_false((testing.utf8_with(ascii .. "\237\160\128" .. ascii, impl)))
      assert.is_false((testing.utf8_with(ascii .. ascii .. "\128", impl)))
    end)
  end)

  it("tell a text cut inside a character from a broken one", function()
    each_impl(function(impl)
      for _, c in ipairs { "\195\169", "\226\130\172", "\240\159\152\128" } do
        for cut = 1, #c - 1 do
          local s = text(100, cut) .. c:sub(1, cut)
          local whole, fed = testing.utf8_with(s, impl, 33)
          assert.is_false(whole)
          assert.are.equal("partial", fed, impl .. " cut " .. cut .. " of " .. #c)
        end
      end
    end)
  end)
end)
