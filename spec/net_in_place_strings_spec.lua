-- A large message (one frame of 128 KiB or more that spans reads) is
-- received into a block laid out as the Lua string it becomes, and the
-- string is made in that block: no copy.  What is checked: every byte of
-- every message, text and binary, at lengths that end on every byte of a
-- word (LuaJIT clears a string's last word before it copies into it, so
-- there only lengths that are a multiple of 4 are made in place); how many
-- strings were made in place (ws.keep_large_blocks' fourth value; builds
-- for ASan and valgrind copy instead, as those report the copy onto
-- itself); the end of a message arriving with the next frame; and the block
-- given back when a message never completes (the connection reset
-- mid-message, its loop closed).  The server runs in a
-- child process, so the client's strings do not meet it (LuaJIT and Lua 5.1
-- intern strings: an equal one is reused, not made).  Lua 5.1 compatible.

local ws = require "ws"
local net = require "spec.helpers.net_util"

local KiB, MiB = 1024, 1024 * 1024
local COPIES = os.getenv("WS_TEST_VARIANT") == "sanitize" or os.getenv("WS_TEST_VARIANT") == "valgrind"
local JIT = rawget(_G, "jit") ~= nil

local function in_place() return select(4, ws.keep_large_blocks()) end

-- Echoes every message; "stats" answers with ws.keep_large_blocks()'s
-- fourth value and how many messages came.
local SERVER = [==[
local ws = require "ws"
local n = 0
local srv = ws.listen { host = "127.0.0.1", port = 0, max_message = 16 * 1024 * 1024,
  on_message = function(c, data, binary)
    if data == "stats" then
      local _, _, _, in_place = ws.keep_large_blocks()
      c:send(("%d %d"):format(in_place, n))
      return
    end
    n = n + 1
    c:send(data, binary and "binary" or "text")
  end }
print("PORT " .. srv.port)
ws.run()
]==]

-- A message of n bytes, different for each i (a text one ends in a
-- two-byte character, so a lost last byte is invalid UTF-8).
local function message(i, n, kind)
  local head = ("%06d:"):format(i)
  if kind == "text" then return head .. string.rep(string.char(97 + i % 26), n - #head - 2) .. "\195\169" end
  return head .. string.rep(string.char(i % 256), n - #head)
end

describe("large messages made into strings where they arrived", function()
  after_each(net.cleanup)

  it("delivers every byte of text and binary messages, and makes them in place", function()
    local child = net.spawn_lua(SERVER)
    local port = child:wait_output("PORT (%d+)", 15)
    assert.is_truthy(port, child:errors())
    local sizes = { MiB, MiB + 1, MiB + 2, MiB + 3, 4 * MiB + 5, 300 * KiB + 7, 16 * MiB }
    local sent, echoed, stats = 0, {}, nil
    local c = net.connect("ws://127.0.0.1:" .. port .. "/", { max_message = 16 * MiB,
      on_message = function(_, data, binary)
        if not binary and data:match("^%d+ %d+$") then stats = data return end
        echoed[#echoed + 1] = { data, binary }
      end })
    assert.truthy(net.wait_until(function() return c.ready_state == "OPEN" end, 10))
    local want, whole = {}, 0
    for i, n in ipairs(sizes) do
      if not JIT or n % 4 == 0 then whole = whole + 2 end
      for _, kind in ipairs { "text", "binary" } do
        sent = sent + 1
        want[sent] = { message(sent, n, kind), kind == "binary" }
        assert.is_true(c:send(want[sent][1], kind))
        assert.truthy(net.wait_until(function() return #echoed == sent end, 30), "message " .. i)
      end
    end
    for i = 1, sent do
      assert.equal(#want[i][1], #echoed[i][1])
      assert.is_true(want[i][1] == echoed[i][1], "message " .. i .. " differs")
      assert.equal(want[i][2], echoed[i][2])
    end
    c:send("stats")
    assert.truthy(net.wait_until(function() return stats ~= nil end, 10))
    local made, n = stats:match("^(%d+) (%d+)$")
    local in_place = tonumber(made) -- luacheck: ignore (shadows the helper)
    n = tonumber(n)
    assert.equal(sent, n)
    if COPIES then
      assert.equal(0, in_place)
    else -- all but the first (which turns the block cache on), when they span reads
      assert.is_true(in_place >= whole - 3 and in_place <= whole, "made in place: " .. in_place .. " of " .. whole)
    end
  end)

  it("makes a message in place when its last bytes arrive in one read with the next frame", function()
    local got = {}
    local srv = net.listen { max_message = 16 * MiB,
      on_message = function(_, data) got[#got + 1] = data end }
    local r = assert(net.raw_connect(srv.port))
    r:handshake(srv.port)
    r:send(net.client_frame(2, string.rep("a", MiB))) -- turns the block cache on
    assert.truthy(net.wait_until(function() return #got == 1 end, 20))
    -- Built, then collected: no equal string for LuaJIT or 5.1 to find.
    local frame = net.client_frame(2, string.rep("tail", MiB)) .. net.client_frame(1, "next")
    for _ = 1, 2 do collectgarbage() end
    local before = in_place()
    r:send(frame:sub(1, #frame - 8192 - 6 - 4))
    net.run_for(0.2)
    assert.equal(1, #got)
    r:send(frame:sub(#frame - 8192 - 6 - 4 + 1)) -- the last 8 KiB and the next frame, in one write
    assert.truthy(net.wait_until(function() return #got == 3 end, 20))
    assert.equal(4 * MiB, #got[2])
    assert.is_true(got[2] == string.rep("tail", MiB))
    assert.equal("next", got[3])
    assert.equal(COPIES and 0 or 1, in_place() - before)
  end)

  it("gives the block back when the connection is reset or its loop closed mid-message", function()
    for _, how in ipairs { "reset", "loop" } do
      local closes, got = {}, {}
      local srv = net.listen { max_message = 16 * MiB,
        on_message = function(_, data) got[#got + 1] = #data end,
        on_close = function(_, code) closes[#closes + 1] = code end }
      -- A first large message turns the block cache on; the second stops halfway.
      local r = assert(net.raw_connect(srv.port))
      r:handshake(srv.port)
      r:send(net.client_frame(2, string.rep("a", MiB)))
      assert.truthy(net.wait_until(function() return #got == 1 end, 20))
      local frame = net.client_frame(2, string.rep("b", 4 * MiB))
      r:send(frame:sub(1, 2 * MiB))
      net.run_for(0.2)
      if how == "reset" then
        r:reset()
        assert.truthy(net.wait_until(function() return #closes == 1 end, 10))
        assert.same({ 1006 }, closes)
      else
        ws.loop():close()
        assert.equal(1, #closes) -- (1006: no close frame fits in the middle of a message)
        r:close()
      end
      assert.same({ MiB }, got)
    end
  end)
end)
