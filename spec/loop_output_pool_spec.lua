-- The output buffer a loop keeps for the next large message (what the
-- socket did not take of the last one) is given back once large messages
-- stop: after two seconds of loop time in which none used it, even when
-- the loop has nothing else to do, and without keeping the loop alive.
-- Loop time comes from an injected clock (ws.testing.fake_clock).
-- Lua 5.1 compatible.

local ws = require "ws"
local testing = require "ws.testing"
local net = require "spec.helpers.net_util"

local MiB = 1024 * 1024

local function large_held(lp)
  local _, large = testing.loop_output_pool(lp)
  return large
end

describe("the loop's pooled large output buffer", function()
  local clock
  after_each(function()
    if clock then clock:restore() end
    clock = nil
    net.cleanup()
  end)

  -- A client's large message (masked: always copied into its output) echoed
  -- back; returns the client.
  local function echo_large(c, n)
    local m = net.payload(n, "binary")
    assert.is_true(c:send(m, "binary"))
    assert.is_true(net.same((c:receive(30)), m))
  end

  local function step_a_little()
    for _ = 1, 5 do ws.step(0) end
  end

  it("is kept while large messages come and given back two seconds after the last", function()
    local lp = ws.loop()
    local srv = net.echo_server { max_message = 16 * MiB }
    local c = assert(net.connect(net.url(srv), { max_message = 16 * MiB }))
    clock = testing.fake_clock(lp)
    echo_large(c, 6 * MiB)
    step_a_little()
    assert.is_true(large_held(lp) >= 6 * MiB, "held: " .. large_held(lp))

    clock:advance(1.5)
    step_a_little()
    assert.is_true(large_held(lp) > 0, "given back too early")
    echo_large(c, 5 * MiB) -- used again before the two seconds are over
    clock:advance(1)
    step_a_little()
    assert.is_true(large_held(lp) > 0, "given back although just used")

    clock:advance(2.5)
    step_a_little()
    assert.are.equal(0, large_held(lp))

    -- small messages meanwhile do not bring it back; a large one does
    assert.is_true(c:send("small"))
    assert.are.equal("small", (c:receive(10)))
    assert.are.equal(0, large_held(lp))
    echo_large(c, 3 * MiB)
    step_a_little()
    assert.is_true(large_held(lp) > 0)
    c:close()
  end)

  it("an otherwise idle loop gives it back while waiting, and the wait does not keep it alive", function()
    -- in a process of its own: its loop's clock is the real one throughout
    local child = net.spawn_lua([==[
local ws = require "ws"
local testing = require "ws.testing"
local lp = ws.loop()
local function large_held() local _, large = testing.loop_output_pool(lp); return large end
local srv = ws.listen { host = "127.0.0.1", port = 0, max_message = 16 * 1024 * 1024,
  on_message = function(c, d) c:send(d, "binary") end }
local c = assert(ws.connect("ws://127.0.0.1:" .. srv.port .. "/", { max_message = 16 * 1024 * 1024 }))
local m = string.rep("x", 6 * 1024 * 1024)
assert(c:send(m, "binary"))
assert(c:receive(30) == m)
for _ = 1, 5 do ws.step(0) end
print("HELD " .. large_held())
-- nothing happens for a while: the steps wait; the buffer goes about two
-- seconds after its last use
local t0 = lp:now()
while large_held() > 0 and lp:now() - t0 < 10 do ws.step(0.5) end
print(("WAITED %.2f %d"):format(lp:now() - t0, large_held()))
-- a large buffer held (its timer armed) keeps nothing running
assert(c:send(m, "binary"))
assert(c:receive(30) == m)
for _ = 1, 5 do ws.step(0) end
print("HELD_AGAIN " .. large_held())
c:close()
srv:close()
ws.run() -- returns: nothing else keeps the loop alive
print("ALIVE " .. tostring(lp:alive()))
]==])
    assert.is_true(child:wait_exit(60), child:output() .. child:errors())
    local out = child:output() .. child:errors()
    assert.is_true(tonumber(out:match("HELD (%d+)")) >= 6 * MiB, out)
    local waited, left = out:match("WAITED (%S+) (%d+)")
    assert.are.equal("0", left, out)
    assert.is_true(tonumber(waited) >= 1 and tonumber(waited) < 4.5, out)
    assert.is_true(tonumber(out:match("HELD_AGAIN (%d+)")) > 0, out)
    assert.is_truthy(out:find("ALIVE false", 1, true), out)
  end)

  it("a loop closed with a large buffer held frees it (no leak under valgrind or ASan)", function()
    local child = net.spawn_lua([==[
local ws = require "ws"
local testing = require "ws.testing"
local lp = ws.loop()
local srv = ws.listen { host = "127.0.0.1", port = 0, max_message = 16 * 1024 * 1024,
  on_message = function(c, d) c:send(d, "binary") end }
local c = assert(ws.connect("ws://127.0.0.1:" .. srv.port .. "/", { max_message = 16 * 1024 * 1024 }))
local m = string.rep("x", 6 * 1024 * 1024)
assert(c:send(m, "binary"))
assert(c:receive(30) == m)
for _ = 1, 5 do ws.step(0) end
local _, large = testing.loop_output_pool(lp)
print("HELD " .. large)
lp:close()
print("CLOSED")
]==])
    assert.is_true(child:wait_exit(60), child:output() .. child:errors())
    local out = child:output()
    assert.is_true(tonumber(out:match("HELD (%d+)")) > 0, out .. child:errors())
    assert.is_truthy(out:find("CLOSED", 1, true), out)
    assert.are.equal("", child:errors())
  end)
end)
