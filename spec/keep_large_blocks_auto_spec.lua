-- The large-block cache turned on by lua-ws itself, on every Lua: after
-- the first message of 128 KiB or more, given back one second after the
-- last one, and never against the application's own choice
-- (ws.keep_large_blocks).  Every scenario runs in a child process with a
-- server and a client on 127.0.0.1; each prints what it saw.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"

local IS_JIT = rawget(_G, "jit") ~= nil
local MIB = 1048576

-- A server echoing every message, a client to it, and echo(n): send a
-- binary message of n bytes and check the echo.  Then the scenario.
local PRELUDE = [[
local ws = require "ws"
local MIB = 1048576
local function status(what)
  local held, mode, limit = ws.keep_large_blocks()
  print(what .. " " .. held .. " " .. mode .. " " .. limit)
end
local function rss_kb()
  local f = io.open("/proc/self/status", "rb")
  local s = f:read("*a"); f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end
local srv = ws.listen { host = "127.0.0.1", port = 0,
  on_message = function(c, d, bin) c:send(d, bin and "binary" or "text") end }
local c = assert(ws.connect("ws://127.0.0.1:" .. srv.port .. "/"))
local function echo(n, tag)
  local msg = string.rep(tag or "e", n - 1) .. "!"
  assert(c:send(msg, "binary"))
  local got = assert(c:receive(30))
  assert(got == msg, "echo of " .. n .. " bytes differs")
end
-- Idle turns until the cache and the loop's large output buffer (its own
-- timer, two seconds after its last use) are both given back; at most 4.
local function wait_given_back()
  local _, large = 0, 0
  local turns = 0
  repeat
    ws.step(10)
    turns = turns + 1
    _, large = require("ws.testing").loop_output_pool(ws.loop())
  until (ws.keep_large_blocks() == 0 and large == 0) or turns == 4
  return turns
end
]]

local function run(source, ...)
  local child = net.spawn_lua(PRELUDE .. source, ...)
  assert.is_true(child:wait_exit(60), "child did not exit")
  assert.are.equal("", child:errors())
  return child:output()
end

-- held, mode, limit of the line "what held mode limit"
local function status(out, what)
  local held, mode, limit = out:match(what .. " (%d+) (%a+) (%d+)\n")
  assert.is_truthy(held, "no line '" .. what .. "' in:\n" .. out)
  return tonumber(held), mode, tonumber(limit)
end

describe("the automatic large-block cache", function()
  after_each(function() net.cleanup() end)

  it("turns on at the first message of 128 KiB or more", function()
    local out = run [[
      status("start")
      echo(131071)
      collectgarbage(); collectgarbage()
      status("below")
      echo(131072)
      status("at")
      for i = 1, 6 do echo(MIB, string.char(96 + i)) end
      collectgarbage(); collectgarbage()
      status("after")
      c:close(); srv:close()
    ]]
    assert.are.same({ 0, "none", 0 }, { status(out, "start") })
    assert.are.same({ 0, "none", 0 }, { status(out, "below") })
    local held, mode, limit = status(out, "after")
    assert.are.equal("auto", select(2, status(out, "at")))
    assert.are.equal("auto", mode)
    assert.are.equal(128 * MIB, limit)
    assert.is_true(held >= MIB, out) -- the freed 1 MiB strings
  end)

  it("gives the blocks back one second after the last large message, waking the idle loop once", function()
    local out = run([[
      for i = 1, 12 do echo(MIB, string.char(96 + i)) end
      collectgarbage(); collectgarbage()
      status("busy")
      print("rss_busy " .. rss_kb())
      -- Idle from here: turns wait for the give-back timers and no more.
      local t0 = ws.loop():now()
      print("turns " .. wait_given_back())
      print("first_wait " .. string.format("%.3f", ws.loop():now() - t0))
      status("idle")
      print("rss_idle " .. rss_kb())
      t0 = ws.loop():now()
      ws.step(1.5)
      print("second_wait " .. string.format("%.3f", ws.loop():now() - t0))
      -- and the next large message turns it on again
      for i = 1, 4 do echo(MIB, "x") end
      collectgarbage(); collectgarbage()
      status("again")
      c:close(); srv:close()
    ]])
    local busy = status(out, "busy")
    assert.is_true(busy >= (IS_JIT and 4 or 1) * MIB, out)
    local held, mode = status(out, "idle")
    assert.are.same({ 0, "auto" }, { held, mode })
    local rss_busy, rss_idle = tonumber(out:match("rss_busy (%d+)")), tonumber(out:match("rss_idle (%d+)"))
    -- the held blocks left the process (at least 3/4 of them, in KiB; on
    -- PUC Lua they went back to malloc, which may keep them)
    if IS_JIT then assert.is_true(rss_busy - rss_idle >= busy / 1024 * 3 / 4, out) end
    -- woke for the timers (the cache's 1 to 2 s after the last large
    -- message, the output buffer's 2 s after its last use: one wake-up
    -- each at most), then slept the whole 1.5 s
    assert.is_true(tonumber(out:match("turns (%d+)")) <= 2, out)
    assert.is_true(tonumber(out:match("first_wait ([%d.]+)")) < 5, out)
    assert.is_true(tonumber(out:match("second_wait ([%d.]+)")) >= 1.4, out)
    assert.is_true(status(out, "again") >= MIB, out)
  end)

  it("follows the loop: its loop closed with the timer armed, then large messages on a new loop", function()
    local out = run([[
      for i = 1, 4 do echo(MIB, "a") end
      c:close(); srv:close()
      ws.loop():close() -- the loop holding the timer goes, the timer with it
      status("closed")
      srv = ws.listen { host = "127.0.0.1", port = 0,
        on_message = function(conn, d, bin) conn:send(d, bin and "binary" or "text") end }
      c = assert(ws.connect("ws://127.0.0.1:" .. srv.port .. "/"))
      for i = 1, 6 do echo(MIB, "b") end
      collectgarbage(); collectgarbage()
      status("new_loop")
      wait_given_back() -- the new loop's timer gives the blocks back
      status("idle")
      c:close(); srv:close()
    ]])
    assert.matches("closed %d+ auto", out)
    local held, mode = status(out, "new_loop")
    assert.are.equal("auto", mode)
    assert.is_true(held >= MIB, out)
    held, mode = status(out, "idle")
    assert.are.same({ 0, "auto" }, { held, mode })
  end)

  it("stays off after ws.keep_large_blocks(false), even once it was on", function()
    local out = run([[
      ws.keep_large_blocks(false)
      for i = 1, 6 do echo(MIB) end
      collectgarbage(); collectgarbage()
      status("off")
      ws.keep_large_blocks(32 * MIB)
      ws.keep_large_blocks(0)
      for i = 1, 6 do echo(MIB) end
      collectgarbage(); collectgarbage()
      status("off_again")
      c:close(); srv:close()
    ]])
    assert.are.same({ 0, "off", 0 }, { status(out, "off") })
    assert.are.same({ 0, "off", 0 }, { status(out, "off_again") })
  end)

  -- Mappings of this process that carry the huge-page advice ("hg" in
  -- their VmFlags; set by the advice whatever the system's THP mode), counted
  -- before and after three 8 MiB echoes.
  local ADVISED = [[
      local function advised()
        local n = 0
        for l in io.lines("/proc/self/smaps") do
          if l:match("^VmFlags:") and (l .. " "):match(" hg ") then n = n + 1 end
        end
        return n
      end
      local function echoes()
        print("before " .. advised())
        for i = 1, 3 do echo(8 * MIB, string.char(96 + i)) end
        print("after " .. advised())
        c:close(); srv:close()
      end
  ]]

  local function counts(out)
    local before, after = out:match("before (%d+)\nafter (%d+)\n")
    assert.is_truthy(before, out)
    return tonumber(before), tonumber(after)
  end

  it("advises huge pages over blocks of a huge page or more only when asked (ws.advise_huge_pages)", function()
    local thp = io.open("/sys/kernel/mm/transparent_hugepage/enabled")
    local smaps = io.open("/proc/self/smaps")
    local flags = smaps and smaps:read("*a"):match("\nVmFlags:")
    if thp then thp:close() end
    if smaps then smaps:close() end
    if not thp or not flags then
      pending("this kernel has no transparent huge pages, or its smaps no VmFlags")
      return
    end
    local pmd = io.open("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size")
    local page = pmd and tonumber(pmd:read("*l")) or 2 * MIB
    if pmd then pmd:close() end
    if page > 4 * MIB then
      pending("huge pages of " .. page .. " bytes: an 8 MiB block spans none")
      return
    end
    local before, after = counts(run(ADVISED .. [[
      print("default " .. tostring(ws.advise_huge_pages()))
      echoes()
    ]]))
    assert.are.equal(before, after)

    local out = run(ADVISED .. [[
      print("now " .. tostring(ws.advise_huge_pages(true)))
      echoes()
    ]])
    assert.matches("now true\n", out)
    before, after = counts(out)
    assert.is_true(after > before, out)

    -- asked, but the cache turned off: nothing is advised
    before, after = counts(run(ADVISED .. [[
      ws.advise_huge_pages(true)
      ws.keep_large_blocks(false)
      echoes()
    ]]))
    assert.are.equal(before, after)
  end)

  it("ws.advise_huge_pages: reports without an argument, raises naming a bad one", function()
    local out = run([[
      print(ws.advise_huge_pages(), ws.advise_huge_pages(true), ws.advise_huge_pages(),
        ws.advise_huge_pages(false))
      local ok, err = pcall(ws.advise_huge_pages, "yes")
      print(ok, err)
      c:close(); srv:close()
    ]])
    assert.matches("^false\ttrue\ttrue\tfalse\n", out)
    assert.matches("false\t.*bad argument #1 to '.-' %(boolean expected", out)
  end)

  it("turned off while on: gives its blocks back at once", function()
    local out = run([[
      for i = 1, 6 do echo(MIB) end
      collectgarbage(); collectgarbage()
      status("auto")
      print("returned " .. ws.keep_large_blocks(false))
      status("off")
      echo(MIB)
      c:close(); srv:close()
    ]])
    assert.is_true(status(out, "auto") >= MIB, out)
    assert.matches("returned 0\n", out)
    assert.are.same({ 0, "off", 0 }, { status(out, "off") })
  end)

  it("leaves an explicit budget in force: no automatic limit, nothing given back when idle", function()
    local out = run([[
      for i = 1, 4 do echo(MIB) end -- automatic first
      ws.keep_large_blocks(3 * MIB + 4096, 256 * 1024)
      for i = 1, 8 do echo(MIB, string.char(96 + i)) end
      collectgarbage(); collectgarbage()
      status("explicit")
      ws.step(1.5)
      status("later")
      c:close(); srv:close()
    ]])
    local held, mode, limit = status(out, "explicit")
    assert.are.equal("on", mode)
    assert.are.equal(3 * MIB + 4096, limit)
    assert.is_true(held >= MIB and held <= limit, out)
    assert.are.same({ held, "on", limit }, { status(out, "later") })
  end)

  it("gives its blocks back and retries when the allocator underneath fails", function()
    if not IS_JIT then
      pending("LuaJIT only: malloc may keep what the cache gives back, so the retry could fail anyway")
      return
    end
    local flag = net.tmpdir() .. "/limit_set"
    -- Warm up (8 MiB held), say how much address space is used, wait until
    -- the parent has capped it at that plus 4 MiB, then make an 8 MiB
    -- string: it fits only once the held blocks are given back.
    local child = net.spawn_lua(PRELUDE .. [[
      local base = string.rep("b", 8 * MIB)
      for i = 1, 12 do echo(MIB, string.char(96 + i)) end
      collectgarbage(); collectgarbage()
      status("warm")
      local f = io.open("/proc/self/status", "rb")
      local s = f:read("*a"); f:close()
      print("vm " .. s:match("VmSize:%s*(%d+)"))
      local flag = arg[1]
      while not io.open(flag, "rb") do ws.step(0.02) end
      local ok, big = pcall(string.sub, base, 2)
      print("big " .. tostring(ok) .. " " .. (ok and #big or tostring(big)))
      status("after_failure")
      big = nil
      c:close(); srv:close()
    ]], flag)
    local vm = tonumber(child:wait_output("vm (%d+)\n", 60))
    local warm = status(child:output(), "warm")
    assert.is_true(warm >= 8 * MIB, child:output())
    local out, code = net.run_status(string.format("prlimit --pid %d --as=%d 2>&1", child.pid,
      (vm + 4096) * 1024))
    assert.are.equal(0, code, out)
    net.write_file(flag, "")
    assert.is_true(child:wait_exit(60), "child did not exit")
    assert.are.equal("", child:errors())
    out = child:output()
    assert.matches("big true " .. (8 * MIB - 1) .. "\n", out)
    assert.is_true(status(out, "after_failure") < warm, out)
  end)

  it("ends the script cleanly with blocks held (the state's close gives them back)", function()
    local dir = net.tmpdir()
    local script = dir .. "/held_at_exit.lua"
    net.write_file(script, string.format("package.path = %q\npackage.cpath = %q\n", package.path,
      package.cpath) .. PRELUDE .. [[
      for i = 1, 6 do echo(MIB) end
      collectgarbage(); collectgarbage()
      status("exit")
      -- a connection and the server still open, the loop's timer armed
    ]])
    local out, code = net.run_status(net.quote(net.lua_interpreter()) .. " " .. net.quote(script) .. " 2>&1")
    assert.are.equal(0, code, out)
    local held, mode = status(out, "exit")
    assert.is_true(held >= MIB, out)
    assert.are.equal("auto", mode)
  end)
end)
