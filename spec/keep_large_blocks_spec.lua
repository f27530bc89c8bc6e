-- ws.keep_large_blocks: freed large blocks held back from the Lua state's
-- allocator and reused.  The scripts run in child processes, so this
-- process's allocator is never touched; each prints what it saw.
-- Lua 5.1 compatible.

local ws = require "ws"
local net = require "spec.helpers.net_util"

local IS_JIT = rawget(_G, "jit") ~= nil

-- Run `source` in a child Lua and return its stdout once it has exited.
local function run(source)
  local child = net.spawn_lua(source)
  assert.is_true(child:wait_exit(60), "child did not exit")
  assert.are.equal("", child:errors())
  return child:output()
end

describe("ws.keep_large_blocks", function()
  after_each(function() net.cleanup() end)

  it("rejects bad arguments, naming them", function()
    local function err(...)
      local ok, e = pcall(ws.keep_large_blocks, ...)
      assert.is_false(ok)
      return tostring(e)
    end
    assert.matches("bad argument #1", err("lots"))
    assert.matches("bad argument #1", err(true))
    assert.matches("bad argument #1", err(-1))
    assert.matches("bad argument #1", err(nil, 4096))
    assert.matches("bad argument #2.*4096 or more", err(1e6, 100))
    assert.matches("bad argument #2", err(1e6, "big"))
  end)

  it("with no argument, reports what is held and in which mode, changing nothing", function()
    local out = run [[
      local ws = require "ws"
      print("first " .. table.concat({ ws.keep_large_blocks() }, " "))
      ws.keep_large_blocks(4 * 1048576, 8192)
      print("on " .. table.concat({ ws.keep_large_blocks() }, " "))
      ws.keep_large_blocks(false)
      print("off " .. table.concat({ ws.keep_large_blocks() }, " "))
    ]]
    assert.matches("first 0 none 0 0\n", out)
    assert.matches("on 0 on 4194304 0\n", out)
    assert.matches("off 0 off 0 0\n", out)
  end)

  it("holds a freed large string and hands its block to the next one", function()
    local out = run [[
      local ws = require "ws"
      local MIB = 1048576
      print("start " .. ws.keep_large_blocks(8 * MIB))
      local s = string.rep("x", MIB)
      s = nil
      collectgarbage(); collectgarbage()
      local held = ws.keep_large_blocks(8 * MIB)
      print("held " .. held)
      local t = string.rep("y", MIB) -- reuses what was held
      print("after " .. ws.keep_large_blocks(8 * MIB) .. " " .. #t .. " " .. t:sub(1, 1) .. t:sub(-1))
      print("off " .. ws.keep_large_blocks(false))
      t = nil
      collectgarbage(); collectgarbage()
      print("still off " .. ws.keep_large_blocks(0))
      local u = string.rep("z", 3 * MIB) -- the allocator underneath works alone again
      print("len " .. #u)
    ]]
    assert.matches("start 0\n", out)
    local held = tonumber(out:match("held (%d+)"))
    assert.is_true(held >= 1048576, out)
    local after = tonumber(out:match("after (%d+) 1048576 yy"))
    assert.is_truthy(after, out)
    assert.is_true(after < held, out)
    assert.matches("off 0\n", out)
    assert.matches("still off 0\n", out)
    assert.matches("len 3145728\n", out)
  end)

  it("keeps at most `bytes`, only blocks of at least `min`, and gives them back at exit", function()
    local out = run [[
      local ws = require "ws"
      local MIB = 1048576
      ws.keep_large_blocks(2 * MIB + 65536, 512 * 1024)
      local t = {}
      for i = 1, 6 do t[i] = string.rep("x", MIB + i) end
      local small = string.rep("s", 300 * 1024)
      t, small = nil, nil
      collectgarbage(); collectgarbage()
      print("held " .. ws.keep_large_blocks(2 * MIB + 65536, 512 * 1024))
      -- exit with blocks held: the state's close gives them back
    ]]
    local held = tonumber(out:match("held (%d+)"))
    assert.is_truthy(held, out)
    assert.is_true(held >= 1048576 and held <= 2 * 1048576 + 65536, out)
  end)

  it("lets a server echo 1 MiB messages intact while it reuses their blocks", function()
    local out = run [[
      local ws = require "ws"
      ws.keep_large_blocks(32 * 1048576)
      local srv = ws.listen { port = 0,
        on_message = function(c, d, bin) c:send(d, bin and "binary" or "text") end }
      local c = assert(ws.connect("ws://127.0.0.1:" .. srv.port .. "/"))
      local ok = 0
      for i = 1, 8 do
        local msg = string.rep(string.char(65 + i), 1048576 - i) .. i
        assert(c:send(msg, "binary"))
        local got = c:receive(30)
        if got == msg then ok = ok + 1 end
      end
      c:close(); srv:close()
      collectgarbage(); collectgarbage() -- (when the strings are freed is the collector's choice)
      print("echoed " .. ok)
      print("held " .. ws.keep_large_blocks(32 * 1048576))
    ]]
    assert.matches("echoed 8\n", out)
    assert.is_true(tonumber(out:match("held (%d+)")) > 0, out)
  end)

  it("on LuaJIT, saves the page faults of a fresh mapping per large string", function()
    if not IS_JIT then
      pending("LuaJIT maps every block of 128 KiB or more; what glibc's malloc does varies from run to run")
      return
    end
    local script = [[
      local ws = require "ws"
      if arg[1] == "on" then ws.keep_large_blocks(16 * 1048576) end
      local function faults()
        local f = io.open("/proc/self/stat", "rb")
        local st = f:read("*a"); f:close()
        return tonumber(st:match("^%d+ %b() %S+ " .. ("%S+ "):rep(6) .. "(%d+)"))
      end
      -- s:sub makes each string straight from base (string.rep would go
      -- through LuaJIT's own temporary buffer, which the collector shrinks)
      local base = string.rep("v", 1048576 + 64)
      for i = 1, 3 do local s = base:sub(i) end
      collectgarbage(); collectgarbage()
      local f0 = faults()
      for i = 1, 20 do
        local s = base:sub(i)
        s = nil
        collectgarbage()
      end
      print("faults " .. (faults() - f0))
    ]]
    local function faults(mode)
      local child = net.spawn_lua(script, mode)
      assert.is_true(child:wait_exit(60))
      return tonumber(child:output():match("faults (%d+)"))
    end
    local off, on = faults("off"), faults("on")
    -- off: ~256 faults per MiB string; on: the same pages again
    assert.is_true(off >= 20 * 100, "off: " .. tostring(off))
    assert.is_true(on < 20 * 20, "on: " .. tostring(on))
  end)
end)
