-- The part of a session that exists only while bytes are in flight (input
-- partly parsed, output queued, the handshake running, a message received
-- or sent in fragments, an event due): an idle session holds none of it,
-- and s:memory() counts it while it is held.  The edges: idle mid-message,
-- output queued to a peer that does not read, fragments both ways, close
-- from either side and end of input while the part is held, the handshake,
-- and allocation failure when the part is taken (a sweep with
-- spec/helpers/failalloc.c preloaded, in child processes).
-- Lua 5.1 compatible.

local util = require "spec.helpers.session_util"
local net = require "spec.helpers.net_util"

local OP = util.OP

-- s:memory() of a session holding its part: the part's own bytes (over
-- 100) on top of the buffer in use, whose first capacity is 256 B.
local function held(s)
  local n = s:memory()
  assert.is_true(n > 356, "part held: memory " .. n)
  return n
end

local function idle(s)
  assert.are.equal(0, (s:memory()))
end

for _, role in ipairs { "server", "client" } do
  describe("session part, " .. role .. " role", function()
    it("an idle session holds none; a whole message takes and gives back the part", function()
      local s = util.session(role)
      idle(s)
      local evs = util.feed(s, util.in_frame(s, OP.text, "hello"))
      assert.are.same({ "message", "hello", "text" }, { evs[1][1], evs[1][2], evs[1][3] })
      idle(s)
    end)

    it("idle mid-message: half a frame keeps it, the rest delivers and releases it", function()
      local s = util.session(role)
      local wire = util.in_frame(s, OP.binary, string.rep("p", 300))
      local half = math.floor(#wire / 2)
      assert.are.same({}, util.feed(s, wire:sub(1, half)))
      held(s)
      -- only the header: the frame is begun, nothing of its payload is here
      local evs = util.feed(s, wire:sub(half + 1))
      assert.are.equal(1, #evs)
      assert.is_true(evs[1][2] == string.rep("p", 300))
      idle(s)
      assert.are.same({}, util.feed(s, wire:sub(1, 2)))
      held(s)
      evs = util.feed(s, wire:sub(3))
      assert.are.equal(1, #evs)
      idle(s)
    end)

    it("a fragmented message being received keeps it between fragments", function()
      local s = util.session(role)
      assert.are.same({}, util.feed(s, util.in_frame(s, OP.text, "ab", { fin = false })))
      held(s)
      local evs = util.feed(s, util.in_frame(s, OP.cont, "cd"))
      assert.are.same({ "message", "abcd", "text" }, { evs[1][1], evs[1][2], evs[1][3] })
      idle(s)
    end)

    it("output queued to a peer that does not read keeps it until written", function()
      local s = util.session(role)
      assert.is_true(s:send("queued"))
      local n = held(s)
      assert.is_true(s:send(string.rep("z", 1000)))
      assert.is_true(s:memory() > n, "grows with the output")
      assert.is_true(#s:output() > 1000)
      idle(s)
      -- an automatic pong is output too
      local evs = util.feed(s, util.in_frame(s, OP.ping, "p"))
      assert.are.equal("ping", evs[1][1])
      held(s)
      assert.is_true(#s:output() > 0)
      idle(s)
    end)

    it("a fragmented message being sent keeps it between fragments", function()
      local s = util.session(role)
      assert.is_true(s:send_fragment("h\195", false, "text"))
      s:output()
      held(s) -- the UTF-8 state of the message is in it
      assert.is_true(s:send_fragment("\169", true, "text"))
      s:output()
      idle(s)
    end)

    it("closed by us while held: released once the close handshake is over", function()
      local s = util.session(role)
      util.feed(s, util.in_frame(s, OP.binary, "ab", { fin = false }))
      assert.is_true(s:close(1000, "bye"))
      held(s)
      s:output()
      held(s) -- the message under way is still in it
      local evs = util.feed(s, util.in_frame(s, OP.close, util.hex("03 e8")))
      assert.are.equal("close", evs[#evs][1])
      assert.are.equal(1000, evs[#evs][2])
      idle(s)
    end)

    it("closed by the peer while held: the answer is output, then nothing is held", function()
      local s = util.session(role)
      util.feed(s, util.in_frame(s, OP.text, "half", { fin = false }))
      held(s)
      local evs = util.feed(s, util.in_frame(s, OP.close, util.hex("03 e9")))
      assert.are.equal("close", evs[#evs][1])
      assert.are.equal(1001, evs[#evs][2])
      held(s) -- the close answer waits
      assert.is_true(#s:output() > 0)
      idle(s)
    end)

    it("the input ends while held: close 1006, nothing held", function()
      local s = util.session(role)
      local wire = util.in_frame(s, OP.binary, "payload")
      util.feed(s, wire:sub(1, 4))
      held(s)
      s:eof()
      local evs = util.events(s)
      assert.are.equal("close", evs[#evs][1])
      assert.are.equal(1006, evs[#evs][2])
      idle(s)
    end)

    it("a protocol error while held: the part holds the close frame until written", function()
      local s = util.session(role)
      util.feed(s, util.in_frame(s, OP.text, "a", { fin = false }))
      local evs = util.feed(s, util.in_frame(s, OP.text, "b"))
      assert.are.equal("error", evs[1][1])
      assert.are.equal("close", evs[#evs][1])
      assert.is_true(#s:output() > 0)
      idle(s)
    end)
  end)
end

describe("session part, handshake", function()
  it("is held from the start of a handshake until the 101 is written", function()
    local s = util.core.session { role = "server" }
    held(s)
    local req = util.core.client_handshake("ws://example.com/", { key = "dGhlIHNhbXBsZSBub25jZQ==" })
    s:feed(req)
    local kind = s:next_event()
    assert.are.equal("request", kind)
    assert.is_true(s:accept())
    assert.are.equal("open", (s:next_event()))
    assert.is_nil(s:next_event())
    held(s)
    assert.matches("^HTTP/1.1 101", s:output())
    idle(s)
  end)
end)

-- Every allocation of a scenario that takes and gives back the part many
-- ways fails in turn: each step works, fails with "out of memory", or
-- finds the session closed by an earlier failure; the script always
-- reaches its end.
local SWEEP = [[
local core = require "ws.core"
local function step(name, f)
  local ok, err = pcall(f)
  print("STEP " .. name .. " " .. (ok and "ok" or ("error " .. tostring(err))))
end
local MASK = "abcd"
local function frame(op, p, fin)
  return core.build_frame { opcode = op, payload = p, fin = fin ~= false, mask = MASK }
end
local s
step("session", function() s = core.session { role = "server", handshake = false } end)
if not s then print("DONE") return end
local function drain() repeat local k = s:next_event() until k == nil end
step("half", function() s:feed(frame(2, string.rep("x", 40)):sub(1, 9)); drain() end)
step("rest", function() s:feed(frame(2, string.rep("x", 40)):sub(10)); drain() end)
step("send", function() assert(s:send("out")); s:output() end)
step("fragments", function()
  assert(s:send_fragment("a", false, "text")); s:output()
  assert(s:send_fragment("b", true, "text")); s:output()
end)
step("received fragments", function()
  s:feed(frame(1, "a", false)); drain()
  s:feed(frame(0, "b")); drain()
end)
step("ping", function() s:feed(frame(9, "p")); drain(); s:output() end)
step("close", function() s:close(1000); s:output(); s:feed(frame(8, "\3\232")); drain() end)
print("DONE")
]]

describe("session part, allocation failure", function()
  it("when the part is taken ends in a clean error, and the session goes on", function()
    local preload = os.getenv("LD_PRELOAD") or ""
    if preload:find("asan", 1, true) or preload:find("vgpreload", 1, true) then
      pending("the sanitizer's allocator replaces the preloaded one")
      return
    end
    local dir = net.tmpdir()
    local shim = dir .. "/failalloc.so"
    local out, code = net.run_status("cc -shared -fPIC -O1 -o " .. net.quote(shim) .. " spec/helpers/failalloc.c -ldl")
    assert.are.equal(0, code, out)
    local script = dir .. "/part_sweep.lua"
    net.write_file(script, string.format("package.path = %q\npackage.cpath = %q\n", package.path, package.cpath)
      .. SWEEP)
    local function run(n)
      return net.run_status(string.format("WS_FAIL_ALLOC=%d LD_PRELOAD=%s timeout 30 %s %s", n, net.quote(shim),
        net.quote(net.lua_interpreter()), net.quote(script)))
    end
    out, code = run(1000000)
    assert.are.equal(0, code, out)
    assert.is_nil(out:find("STEP %S+ error"), out)
    local total = tonumber(out:match("failalloc: (%d+) allocations, failed: no"))
    if not total or total == 0 then pending("the preloaded allocator is not in use here") return end
    local oom = 0
    for n = 1, total do
      out, code = run(n)
      local what = "allocation " .. n .. " of " .. total .. ":\n" .. out
      assert.are.equal(0, code, what)
      assert.matches("\nDONE\n", "\n" .. out, nil, true)
      for raised in out:gmatch("STEP %S+ error ([^\n]*)") do
        -- the failure itself, or a step after it finding the session closed
        local clean = raised:find("out of memory", 1, true) or raised:find("is not open", 1, true)
        assert.is_truthy(clean, what)
        if raised:find("out of memory", 1, true) then oom = oom + 1 end
      end
    end
    assert.is_true(oom >= 1, "no step saw the failure")
  end)
end)
