-- The collector keeps up with large message strings: the heap stays near
-- what the pause setting allows.  LuaJIT's collector takes one step per
-- allocation whatever its size, so without lua-ws's byte-paced steps
-- (csrc/lua/lua_gc_pace.c) 150 echoes of 1 MiB over a 10 MB heap of
-- tables peak at 19 times it (two sessions: 51); Lua 5.2 and later pace
-- by bytes themselves.  PUC Lua 5.1 paces as LuaJIT does but cannot tell
-- a collector the application stopped from a running one, so lua-ws adds
-- no steps there (10 times, 17 over sessions): its heap bounds are
-- pending.  Each scenario runs in a child process (a server and a client
-- on 127.0.0.1, or two sessions) and prints the heap (KiB) after setup
-- and its peak, sampled at every message and echo.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"

local PUC51 = _VERSION == "Lua 5.1" and rawget(_G, "jit") == nil

local function bounded_here()
  if PUC51 then pending("PUC Lua 5.1: no steps added (a stopped collector cannot be told apart)") end
  return not PUC51
end

-- About 10 MB of small tables kept, then live (the heap after setup, KiB)
-- and sample(), which keeps its peak in peak.
local HEAP = [[
KEEP = {}
for i = 1, 100000 do KEEP[i] = { i, i + 1 } end
collectgarbage(); collectgarbage()
local live = collectgarbage("count")
local peak = live
local function sample()
  local k = collectgarbage("count")
  if k > peak then peak = k end
end
]]

local SCENARIO = [[
local ws = require "ws"
local MIB = 1048576
local pause = tonumber(arg[1])
local close_in_callback = arg[2] == "close"
]] .. HEAP .. [[
if pause then collectgarbage("setpause", pause) end
local srv = ws.listen { host = "127.0.0.1", port = 0,
  on_message = function(c, d, bin)
    sample()
    c:send(d, bin and "binary" or "text")
    if close_in_callback and d:sub(-4) == " 150" then c:close(4000, "done") end
  end }
local c = assert(ws.connect("ws://127.0.0.1:" .. srv.port .. "/"))
for i = 1, 150 do
  local msg = string.rep(string.char(97 + i % 26), MIB - 4) .. string.format("%4d", i)
  assert(c:send(msg, "binary"))
  local got = assert(c:receive(30))
  assert(got == msg, "echo " .. i .. " differs")
  sample()
end
if close_in_callback then
  local got, err = c:receive(30)
  print("after_close " .. tostring(got) .. " " .. tostring(err) .. " " .. tostring(c.close_code))
end
print(string.format("live %.0f peak %.0f", live, peak))
c:close(); srv:close()
]]

local function run(...)
  local child = net.spawn_lua(SCENARIO, ...)
  assert.is_true(child:wait_exit(120), "child did not exit")
  assert.are.equal("", child:errors())
  local out = child:output()
  local live, peak = out:match("live (%d+) peak (%d+)")
  assert.is_truthy(live, out)
  return tonumber(live), tonumber(peak), out
end

describe("large message strings and the collector", function()
  after_each(function() net.cleanup() end)

  it("keep the heap near the pause setting (150 echoes of 1 MiB over a 10 MB heap)", function()
    if not bounded_here() then return end
    local live, peak, out = run()
    -- pause 200: a cycle starts at twice the heap; it finishes while more
    -- messages arrive (LuaJIT: 4.8 times, Lua 5.1: 2.6, 5.4: 2.3)
    assert.is_true(peak < 7 * live, out)
  end)

  it("leave a resting collector resting: a pause of 1000 is honoured", function()
    local live, peak, out = run(1000)
    -- steps taken below the pause would start cycles early and hold the
    -- heap near three times its size; honoured, it grows toward ten
    assert.is_true(peak > 6 * live, out)
    assert.is_true(peak < 16 * live, out)
  end)

  it("keep pace when the callback closes the connection after the last message", function()
    if not bounded_here() then return end
    local live, peak, out = run(nil, "close")
    assert.is_true(peak < 7 * live, out)
    assert.matches("after_close nil closed 4000", out, 1, true)
  end)

  it("leave a collector the application stopped stopped", function()
    local child = net.spawn_lua [[
      local ws = require "ws"
      local MIB = 1048576
      local srv = ws.listen { host = "127.0.0.1", port = 0,
        on_message = function(c, d, bin) c:send(d, bin and "binary" or "text") end }
      local c = assert(ws.connect("ws://127.0.0.1:" .. srv.port .. "/"))
      collectgarbage(); collectgarbage()
      collectgarbage("stop")
      local before = collectgarbage("count")
      for i = 1, 20 do
        local msg = string.rep(string.char(97 + i), MIB - 3) .. string.format("%3d", i)
        assert(c:send(msg, "binary"))
        assert(c:receive(30) == msg, "echo " .. i)
      end
      local ok, running = pcall(collectgarbage, "isrunning")
      print(string.format("grew %.0f running %s", collectgarbage("count") - before,
        ok and tostring(running) or "unknown"))
      collectgarbage("restart")
      c:close(); srv:close()
    ]]
    assert.is_true(child:wait_exit(120), "child did not exit")
    assert.are.equal("", child:errors())
    local grew, running = child:output():match("grew (%d+) running (%a+)")
    assert.is_truthy(grew, child:output())
    -- every 1 MiB message stays uncollected (LuaJIT: the server's string
    -- and the echo are the message itself, interned; PUC Lua: three copies)
    assert.is_true(tonumber(grew) >= 20 * 1024, child:output())
    assert.are_not.equal("true", running)
  end)

  it("raise, not crash, when a finalizer the steps run frees the session (next_event)", function()
    if not rawget(_G, "jit") then
      pending("LuaJIT only: no steps are added elsewhere")
      return
    end
    local child = net.spawn_lua [[
      local core = require "ws.core"
      local MIB = 1048576
      local srv = core.session { role = "server", handshake = false }
      local cli = core.session { role = "client", handshake = false }
      assert(cli:send(string.rep("x", MIB), "binary"))
      srv:feed(cli:output())
      local kind, d = srv:next_event()
      assert(kind == "message" and #d == MIB)
      d = nil -- luacheck: ignore
      -- garbage whose finalizer frees the session; a pause of 0 makes the
      -- steps the next next_event takes for that message finish the cycle
      local p = newproxy(true)
      getmetatable(p).__gc = function() getmetatable(srv).__gc(srv) end
      p = nil -- luacheck: ignore
      collectgarbage("setpause", 0)
      print("first", pcall(srv.next_event, srv))
      print("again", pcall(srv.next_event, srv))
    ]]
    assert.is_true(child:wait_exit(60), "child did not exit")
    assert.are.equal("", child:errors())
    local out = child:output()
    assert.matches("first\tfalse\t[^\n]*session is freed", out)
    assert.matches("again\tfalse\t[^\n]*session is freed", out)
  end)

  -- The same over a pair of sessions (ws.core.session) in one state: the
  -- steps for a message or output string are taken at the session's next
  -- next_event, before an event is taken.
  local SESSIONS = [[
    local core = require "ws.core"
    local MIB = 1048576
  ]] .. HEAP .. [[
    local srv = core.session { role = "server", handshake = false }
    local cli = core.session { role = "client", handshake = false }
    local function events(s)
      local list = {}
      for kind, d, k in s:events() do list[#list + 1] = { kind, d, k } end
      return list
    end
    for i = 1, 150 do
      local msg = string.rep(string.char(97 + i % 26), MIB - 4) .. string.format("%4d", i)
      assert(cli:send(msg, "binary"))
      srv:feed(cli:output())
      local evs = events(srv)
      assert(#evs == 1 and evs[1][2] == msg, "server: message " .. i)
      sample()
      assert(srv:send(evs[1][2], evs[1][3]))
      cli:feed(srv:output())
      evs = events(cli)
      assert(#evs == 1 and evs[1][2] == msg, "client: echo " .. i)
      sample()
    end
    print(string.format("live %.0f peak %.0f", live, peak))
  ]]

  it("keep the heap near the pause setting over sessions too", function()
    if not bounded_here() then return end
    local child = net.spawn_lua(SESSIONS)
    assert.is_true(child:wait_exit(120), "child did not exit")
    assert.are.equal("", child:errors())
    local live, peak = child:output():match("live (%d+) peak (%d+)")
    assert.is_truthy(live, child:output())
    -- without the steps: LuaJIT 51 times, Lua 5.1 17 times
    assert.is_true(tonumber(peak) < 7 * tonumber(live), child:output())
  end)
end)
