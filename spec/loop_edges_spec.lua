-- Edges of the ws.core.loop binding that loop_spec.lua leaves out: ref and
-- unref repeated on timers and watchers, a watcher restarted after its fd
-- was closed (refused) or changed (refused by epoll; poll accepts and
-- reports the fd as invalid on its next turn), a step with an infinite
-- timeout, a cancelled timer armed again, modes in either order, a
-- timeout past what the backends take, handles after the loop closed.
-- Lua 5.1 compatible.

local core = require "ws.core"
local testing = require "ws.testing"

describe("loop edges", function()
  local loop
  before_each(function() loop = core.loop() end)
  after_each(function() loop:close() end)

  it("ref and unref are idempotent on timers", function()
    local t = loop:timer(60, function() end)
    assert.is_true(loop:alive())
    t:unref()
    t:unref()
    assert.is_false(loop:alive())
    t:ref()
    t:ref()
    assert.is_true(loop:alive())
    t:unref()
    t:ref()
    t:cancel()
    assert.is_false(loop:alive())
  end)

  it("ref and unref are idempotent on watchers", function()
    local r, w = testing.pipe()
    local watcher = assert(loop:watch(r, "r", function() end))
    assert.is_true(loop:alive())
    watcher:unref()
    watcher:unref()
    assert.is_false(loop:alive())
    watcher:ref()
    watcher:ref()
    assert.is_true(loop:alive())
    watcher:stop()
    assert.is_false(loop:alive())
    testing.close_fd(r)
    testing.close_fd(w)
  end)

  it("a watcher whose fd was closed cannot be restarted, nor changed under epoll", function()
    local r, w = testing.pipe()
    local watcher = assert(loop:watch(r, "r", function() end))
    watcher:stop()
    testing.close_fd(r)
    testing.close_fd(w)
    local ok, err = watcher:start("r")
    assert.is_nil(ok)
    assert.matches("^watcher:start: ", err)
    assert.is_false(watcher:active())

    local r2, w2 = testing.pipe()
    local other = assert(loop:watch(r2, "r", function() end))
    testing.close_fd(r2)
    testing.close_fd(w2)
    ok, err = other:modify("rw")
    if loop:backend() == "epoll" then
      assert.is_nil(ok)
      assert.matches("^watcher:modify: ", err)
    else
      assert.is_true(ok)
    end
    other:stop()
  end)

  it("steps with an infinite timeout until something is ready", function()
    local fired = 0
    loop:timer(0.01, function() fired = fired + 1 end)
    assert.are.equal(1, loop:step(math.huge))
    assert.are.equal(1, fired)
  end)

  it("arms a cancelled timer again", function()
    local fired = 0
    local t = loop:timer(60, function() fired = fired + 1 end)
    t:cancel()
    assert.is_false(t:active())
    assert.are.equal(t, t:again(0.01))
    assert.is_true(t:active())
    loop:run()
    assert.are.equal(1, fired)
  end)

  it("reads modes in either order and reports them", function()
    local r, w = testing.pipe()
    local watcher = assert(loop:watch(w, "wr", function() end))
    assert.are.equal("rw", watcher:mode())
    assert.is_true(watcher:modify("w"))
    assert.are.equal("w", watcher:mode())
    assert.is_true(watcher:modify("r"))
    assert.are.equal("r", watcher:mode())
    watcher:stop()
    testing.close_fd(r)
    testing.close_fd(w)
  end)

  it("steps with a timeout beyond what poll and epoll take (clamped)", function()
    local fired = false
    loop:timer(0.01, function() fired = true end)
    assert.are.equal(1, loop:step(1e10))
    assert.is_true(fired)
  end)

  it("after close: handles are inactive and the loop refuses new ones", function()
    local r, w = testing.pipe()
    local t = loop:timer(60, function() end)
    local watcher = assert(loop:watch(r, "r", function() end))
    local d = loop:defer(function() end)
    loop:close()
    assert.is_true(loop:closed())
    assert.is_false(t:active())
    assert.is_false(watcher:active())
    assert.is_false(d:queued())
    for name, call in pairs { timer = function() return loop:timer(1, function() end) end,
      every = function() return loop:every(1, function() end) end,
      defer = function() return loop:defer(function() end) end,
      watch = function() return loop:watch(w, "w", function() end) end } do
      local ok, err = pcall(call)
      assert.is_false(ok, name)
      assert.matches("loop is closed", err, nil, true)
    end
    testing.close_fd(r)
    testing.close_fd(w)
  end)
end)
