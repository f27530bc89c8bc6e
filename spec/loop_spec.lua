-- The event loop (csrc/io/loop.c) through its minimal binding ws.core.loop:
-- timers (heap order, repeat, cancel, again), deferred callbacks, pipe
-- watchers, the pollable loop fd, errors raised in callbacks, alive(),
-- a 10 000-timer heap stress and garbage collection.
--
-- Timing is kept tolerant (a shared 2-core machine): only lower bounds on
-- elapsed time are asserted, with upper bounds no tighter than ~1 s.
-- Lua 5.1 compatible.

local core = require "ws.core"
local testing = require "ws.testing"

local function ok_backend(loop) return loop:backend() == "epoll" or loop:backend() == "poll" end

-- Step until cond() holds or `limit` seconds passed; returns cond().
local function step_until(loop, cond, limit)
  local stop_at = loop:now() + (limit or 1)
  while not cond() and loop:now() < stop_at do
    loop:step(0.01)
  end
  return cond()
end

local function shuffle(t)
  for i = #t, 2, -1 do
    local j = math.random(i)
    t[i], t[j] = t[j], t[i]
  end
  return t
end

-- Open epoll fds and timerfds of this process (what a loop owns), or nil
-- without /proc.
local function count_loop_fds()
  local p = io.popen("ls -l /proc/$PPID/fd 2>/dev/null")
  if not p then return nil end
  local n, any = 0, false
  for line in p:lines() do
    any = any or line:match("%->") ~= nil
    if line:match("anon_inode:%[?eventpoll") or line:match("anon_inode:%[?timerfd") then n = n + 1 end
  end
  p:close()
  return any and n or nil
end

local function full_gc()
  collectgarbage()
  collectgarbage()
end

describe("ws.core.loop", function()
  local loop
  before_each(function()
    math.randomseed(42)
    loop = core.loop()
  end)
  after_each(function()
    loop:close()
    loop = nil
  end)

  it("is a loop object with a backend", function()
    assert.is_true(ok_backend(loop))
    assert.matches("^ws.core.loop", tostring(loop))
    assert.is_false(loop:alive())
    assert.are.equal(0, loop:step(0))
  end)

  describe("timers", function()
    it("fire in deadline order, whatever the start order", function()
      local order, deadlines = {}, {}
      for i = 1, 50 do deadlines[i] = i end
      shuffle(deadlines)
      -- Started in one callback, the timers share the turn's time exactly.
      loop:defer(function()
        for _, d in ipairs(deadlines) do
          loop:timer(d * 0.0002, function() order[#order + 1] = d end)
        end
      end)
      loop:run()
      assert.are.equal(50, #order)
      for i = 1, 50 do assert.are.equal(i, order[i]) end
    end)

    it("fire in start order when deadlines are equal", function()
      local order = {}
      loop:defer(function()
        for i = 1, 20 do loop:timer(0.001, function() order[#order + 1] = i end) end
      end)
      loop:run()
      for i = 1, 20 do assert.are.equal(i, order[i]) end
    end)

    it("pass the timer to the callback and do not fire early", function()
      local t0 = loop:now()
      local got, fired_at
      local t
      t = loop:timer(0.03, function(arg)
        got = arg
        fired_at = loop:now()
      end)
      assert.is_true(t:active())
      loop:run()
      assert.are.equal(t, got)
      assert.is_true(fired_at - t0 >= 0.029, "fired after " .. (fired_at - t0))
      assert.is_false(t:active())
    end)

    it("repeat with every() until cancelled", function()
      local n = 0
      local t = loop:every(0.002, function(self)
        n = n + 1
        if n == 3 then self:cancel() end
      end)
      loop:run()
      assert.are.equal(3, n)
      assert.is_false(t:active())
      assert.is_false(loop:alive())
      loop:step(0.01)
      assert.are.equal(3, n)
    end)

    it("a timer cancelled by another one due in the same turn does not fire", function()
      local fired = {}
      loop:defer(function()
        local b
        loop:timer(0.001, function()
          fired[#fired + 1] = "a"
          b:cancel()
          b = nil
          full_gc() -- b's userdata may be freed right away
        end)
        b = loop:timer(0.001, function() fired[#fired + 1] = "b" end)
        loop:timer(0.001, function() fired[#fired + 1] = "c" end)
      end)
      loop:run()
      assert.are.same({ "a", "c" }, fired)
    end)

    it("a timer may cancel, restart or drop itself in its callback", function()
      local n = 0
      loop:every(0.001, function(self)
        n = n + 1
        self:cancel()
        self:again(0.001)
        if n == 3 then self:cancel() end
      end)
      loop:run()
      assert.are.equal(3, n)
    end)

    it("a zero-delay timer restarted in its callback runs once per turn", function()
      local n = 0
      loop:timer(0, function(self)
        n = n + 1
        if n < 5 then self:again() end
      end)
      for i = 1, 5 do
        assert.are.equal(1, loop:step(0))
        assert.are.equal(i, n)
      end
      assert.are.equal(0, loop:step(0))
    end)

    it("again() postpones an armed timer", function()
      local fired_at
      local t = loop:timer(0.05, function() fired_at = loop:now() end)
      loop:step(0.02)
      assert.is_nil(fired_at)
      local again_at = loop:now()
      assert.are.equal(t, t:again())
      loop:run()
      assert.is_true(fired_at - again_at >= 0.049, "fired " .. (fired_at - again_at) .. " s after again()")
    end)

    it("again(seconds) changes the delay and re-arms a fired or cancelled timer", function()
      local n = 0
      local t = loop:timer(10, function() n = n + 1 end)
      t:again(0.001)
      loop:run()
      assert.are.equal(1, n)
      t:again()
      assert.is_true(t:active())
      loop:run()
      assert.are.equal(2, n)
      t:again(5)
      t:cancel()
      assert.is_false(loop:alive())
      t:again(0)
      loop:run()
      assert.are.equal(3, n)
    end)

    it("again(seconds) on a repeating timer changes its interval", function()
      local stamps = {}
      local t
      t = loop:every(10, function()
        stamps[#stamps + 1] = loop:now()
        if #stamps == 3 then t:cancel() end
      end)
      t:again(0.01)
      loop:run()
      assert.are.equal(3, #stamps)
      assert.is_true(stamps[3] - stamps[2] >= 0.0099)
    end)

    it("a dropped timer still fires (the loop anchors it)", function()
      local fired = false
      loop:timer(0.001, function() fired = true end)
      full_gc()
      loop:run()
      assert.is_true(fired)
    end)

    it("now() is monotonic seconds", function()
      local a = loop:now()
      loop:step(0.02)
      local b = loop:now()
      assert.is_number(a)
      assert.is_true(b - a >= 0.015, "advanced " .. (b - a))
    end)

    it("several loops are independent", function()
      local other = core.loop()
      local mine, theirs = 0, 0
      loop:timer(0, function() mine = mine + 1 end)
      other:timer(0, function() theirs = theirs + 1 end)
      loop:step(0)
      assert.are.equal(1, mine)
      assert.are.equal(0, theirs)
      other:step(0)
      assert.are.equal(1, theirs)
      other:close()
    end)

    it("rejects bad arguments naming them", function()
      local f = function() end
      assert.has_error(function() loop:timer(-1, f) end)
      assert.matches("seconds must be >= 0", select(2, pcall(loop.timer, loop, -1, f)))
      assert.matches("bad argument #1 to 'every'", select(2, pcall(function() loop:every(0, f) end)))
      assert.matches("seconds must be > 0", select(2, pcall(loop.every, loop, 0, f)))
      assert.matches("function expected", select(2, pcall(loop.timer, loop, 1, "x")))
      assert.matches("number expected", select(2, pcall(loop.timer, loop, "x", f)))
      assert.matches("not NaN", select(2, pcall(loop.step, loop, 0 / 0)))
      assert.are.equal(0, loop:step(-1)) -- a deadline already past: no wait
      assert.is_false(loop:alive())
    end)
  end)

  describe("deferred callbacks", function()
    it("run at the end of the turn, after I/O and timers, once per turn", function()
      local r, w = testing.pipe()
      local seq = {}
      local d
      d = loop:defer(function() seq[#seq + 1] = "defer" end)
      d:again() -- already queued: still once
      loop:timer(0, function() seq[#seq + 1] = "timer" end)
      local watcher = loop:watch(r, "r", function()
        seq[#seq + 1] = "io"
        assert(testing.read_fd(r, 100))
        d:again()
        d:again()
      end)
      testing.write_fd(w, "x")
      assert.are.equal(3, loop:step(0))
      assert.are.same({ "io", "timer", "defer" }, seq)
      watcher:stop()
      testing.close_fd(r)
      testing.close_fd(w)
    end)

    it("a callback queued while deferred ones run waits for the next turn", function()
      local n = 0
      local function again(self)
        n = n + 1
        if n < 3 then self:again() end
      end
      loop:defer(again)
      assert.are.equal(1, loop:step(0))
      assert.are.equal(1, loop:step(0))
      assert.are.equal(1, loop:step(0))
      assert.are.equal(0, loop:step(0))
      assert.are.equal(3, n)
    end)

    it("can be cancelled, also by an earlier deferred callback of the same turn", function()
      local ran = {}
      local b
      loop:defer(function() ran[#ran + 1] = "a"; b:cancel() end)
      b = loop:defer(function() ran[#ran + 1] = "b" end)
      local c = loop:defer(function() ran[#ran + 1] = "c" end)
      assert.is_true(c:queued())
      c:cancel()
      assert.is_false(c:queued())
      loop:run()
      assert.are.same({ "a" }, ran)
      assert.is_false(loop:alive())
    end)

    it("keep the loop alive and make step() not wait", function()
      loop:defer(function() end)
      assert.is_true(loop:alive())
      assert.are.equal(1, loop:step()) -- no timeout: would block without it
      assert.is_false(loop:alive())
    end)
  end)

  describe("watchers", function()
    local r, w
    before_each(function() r, w = testing.pipe() end)
    after_each(function()
      testing.close_fd(r)
      if w then testing.close_fd(w) end
    end)

    it("fire when the pipe has data and not otherwise (level-triggered)", function()
      local events = {}
      local watcher = loop:watch(r, "r", function(self, ev)
        assert.are.equal(r, self:fd())
        events[#events + 1] = ev
      end)
      assert.are.equal("r", watcher:mode())
      assert.are.equal(0, loop:step(0))
      assert.are.equal(0, #events)
      assert.are.equal(5, testing.write_fd(w, "hello"))
      assert.are.equal(1, loop:step(0))
      assert.are.same({ "r" }, events)
      assert.are.equal(1, loop:step(0)) -- still readable
      assert.are.equal("hello", testing.read_fd(r, 100))
      assert.are.equal(0, loop:step(0))
      assert.are.equal(2, #events)
      watcher:stop()
    end)

    it("wake a waiting step", function()
      local got
      local watcher = loop:watch(r, "r", function() got = testing.read_fd(r, 10) end)
      loop:timer(0.02, function() testing.write_fd(w, "late") end)
      assert.is_true(step_until(loop, function() return got ~= nil end))
      assert.are.equal("late", got)
      watcher:stop()
    end)

    it("modify() changes the interest and stop()/start() unregister and register", function()
      local events = {}
      local watcher = loop:watch(w, "w", function(_, ev) events[#events + 1] = ev end)
      assert.are.equal(1, loop:step(0)) -- an empty pipe is writable
      assert.are.same({ "w" }, events)
      assert.is_true(watcher:modify("r"))
      assert.are.equal(0, loop:step(0)) -- the write end never reads
      assert.is_true(watcher:modify("rw"))
      assert.are.equal(1, loop:step(0))
      assert.are.equal("w", events[2])
      watcher:stop()
      assert.is_false(watcher:active())
      assert.is_false(loop:alive())
      assert.are.equal(0, loop:step(0))
      assert.is_true(watcher:start("w"))
      assert.is_true(watcher:active())
      assert.are.equal(1, loop:step(0))
      watcher:stop()
      watcher:stop() -- idempotent
    end)

    it("report a hang-up as readable (EOF)", function()
      local ev, data
      local watcher = loop:watch(r, "r", function(self, e)
        ev, data = e, testing.read_fd(r, 10)
        self:stop()
      end)
      testing.close_fd(w)
      w = nil
      assert.are.equal(1, loop:step(0))
      assert.matches("^r", ev)
      assert.are.equal("", data)
      assert.is_false(watcher:active())
    end)

    it("a watcher stopped by an earlier callback of the same turn does not fire", function()
      local r2, w2 = testing.pipe()
      local fired = 0
      local a, b
      local function cb(self)
        fired = fired + 1
        local other = self == a and b or a
        other:stop()
        a, b = nil, nil
        full_gc() -- the other watcher's userdata may be freed right away
      end
      a = loop:watch(r, "r", cb)
      b = loop:watch(r2, "r", cb)
      testing.write_fd(w, "x")
      testing.write_fd(w2, "y")
      assert.are.equal(1, loop:step(0))
      assert.are.equal(1, fired)
      testing.close_fd(r2)
      testing.close_fd(w2)
    end)

    it("a watcher may stop itself and close its fd in its callback", function()
      local r2, w2 = testing.pipe()
      local n = 0
      loop:watch(r2, "r", function(self)
        n = n + 1
        self:stop()
        testing.close_fd(r2)
      end)
      testing.write_fd(w2, "x")
      loop:run()
      assert.are.equal(1, n)
      testing.close_fd(w2)
    end)

    it("reject bad arguments and report a failing registration", function()
      local f = function() end
      assert.matches("mode must be", select(2, pcall(loop.watch, loop, r, "x", f)))
      assert.matches("bad argument #2 to 'watch'", select(2, pcall(function() loop:watch(r, "x", f) end)))
      assert.matches("fd must be", select(2, pcall(loop.watch, loop, -1, "r", f)))
      assert.matches("function expected", select(2, pcall(loop.watch, loop, r, "r", 1)))
      local watcher = loop:watch(r, "r", f)
      local none, err = loop:watch(r, "r", f) -- one watcher per fd
      assert.is_nil(none)
      assert.matches("loop:watch: ", err)
      watcher:stop()
      local r2, w2 = testing.pipe()
      testing.close_fd(r2)
      testing.close_fd(w2)
      none, err = loop:watch(r2, "r", f) -- closed fd
      assert.is_nil(none)
      assert.is_string(err)
      assert.is_false(loop:alive())
    end)
  end)

  describe("loop:fd()", function()
    local function fd_or_pending()
      local fd = loop:fd()
      if not fd then
        assert.are.equal("poll", loop:backend())
        pending("the poll backend has no pollable fd")
      end
      return fd
    end

    it("becomes readable when a timer is due", function()
      local fd = fd_or_pending()
      if not fd then return end
      local fired = false
      loop:timer(0.03, function() fired = true end)
      assert.are.equal(0, loop:step(0))
      assert.is_false(testing.poll_fd(fd, 0))
      assert.is_true(testing.poll_fd(fd, 1)) -- woken by the timerfd
      assert.are.equal(1, loop:step(0))
      assert.is_true(fired)
      assert.is_false(testing.poll_fd(fd, 0)) -- no timer left: disarmed
    end)

    it("is armed for a timer started outside a step", function()
      local fd = fd_or_pending()
      if not fd then return end
      loop:step(0)
      loop:timer(0.01, function() end)
      assert.is_true(testing.poll_fd(fd, 1))
      assert.are.equal(1, loop:step(0))
    end)

    it("becomes readable when a watched fd is", function()
      local fd = fd_or_pending()
      if not fd then return end
      local r, w = testing.pipe()
      local watcher = loop:watch(r, "r", function() testing.read_fd(r, 10) end)
      assert.is_false(testing.poll_fd(fd, 0))
      testing.write_fd(w, "x")
      assert.is_true(testing.poll_fd(fd, 1))
      assert.are.equal(1, loop:step(0))
      assert.is_false(testing.poll_fd(fd, 0))
      watcher:stop()
      testing.close_fd(r)
      testing.close_fd(w)
    end)

    it("nests the loop in another loop", function()
      local fd = fd_or_pending()
      if not fd then return end
      local outer = core.loop()
      local fired = 0
      loop:every(0.005, function(self)
        fired = fired + 1
        if fired == 3 then self:cancel() end
      end)
      local watcher = outer:watch(fd, "r", function(self)
        loop:step(0)
        if not loop:alive() then self:stop() end
      end)
      outer:run()
      assert.are.equal(3, fired)
      assert.is_false(watcher:active())
      outer:close()
    end)
  end)

  describe("errors in callbacks", function()
    it("propagate out of step() with a traceback, and the loop keeps working", function()
      loop:timer(0, function() error("boom in a timer") end)
      local ok, err = pcall(loop.step, loop, 0)
      assert.is_false(ok)
      assert.matches("boom in a timer", err)
      assert.matches("stack traceback", err)
      local fired = false
      loop:timer(0, function() fired = true end)
      assert.are.equal(1, loop:step(0))
      assert.is_true(fired)
    end)

    it("stop the turn: callbacks not yet run still run on the next step, in order", function()
      local ran = {}
      loop:defer(function()
        for i = 1, 3 do
          loop:timer(0, function()
            ran[#ran + 1] = i
            if i == 2 then error("second") end
          end)
        end
        for i = 4, 6 do
          loop:defer(function()
            ran[#ran + 1] = i
            if i == 5 then error("fifth") end
          end)
        end
      end)
      loop:step(0) -- starts them
      local ok, err = pcall(loop.run, loop)
      assert.is_false(ok)
      assert.matches("second", err)
      assert.are.same({ 1, 2 }, ran)
      ok, err = pcall(loop.run, loop)
      assert.is_false(ok)
      assert.matches("fifth", err)
      assert.are.same({ 1, 2, 3, 4, 5 }, ran)
      loop:run()
      assert.are.same({ 1, 2, 3, 4, 5, 6 }, ran)
    end)

    it("keep error objects that are not strings", function()
      local obj = {}
      loop:defer(function() error(obj) end)
      local ok, err = pcall(loop.run, loop)
      assert.is_false(ok)
      assert.are.equal(obj, err)
    end)

    it("propagate from watchers and leave them registered", function()
      local r, w = testing.pipe()
      local n = 0
      local watcher = loop:watch(r, "r", function()
        n = n + 1
        if n == 1 then error("watcher failed") end
        testing.read_fd(r, 10)
      end)
      testing.write_fd(w, "x")
      local ok, err = pcall(loop.step, loop, 0)
      assert.is_false(ok)
      assert.matches("watcher failed", err)
      assert.are.equal(1, loop:step(0))
      assert.are.equal(2, n)
      watcher:stop()
      testing.close_fd(r)
      testing.close_fd(w)
    end)

    it("step() or close() from a callback of the same loop is an error", function()
      loop:defer(function() loop:step(0) end)
      local ok, err = pcall(loop.step, loop, 0)
      assert.is_false(ok)
      assert.matches("called from a callback of the same loop", err)
      loop:defer(function() loop:close() end)
      ok, err = pcall(loop.step, loop, 0)
      assert.is_false(ok)
      assert.matches("called from a callback of the same loop", err)
      assert.are.equal(0, loop:step(0))
    end)
  end)

  describe("alive(), run() and stop()", function()
    it("alive() counts active timers, watchers and deferred callbacks", function()
      assert.is_false(loop:alive())
      local t = loop:timer(1, function() end)
      assert.is_true(loop:alive())
      t:unref()
      assert.is_false(loop:alive())
      t:ref()
      assert.is_true(loop:alive())
      t:cancel()
      assert.is_false(loop:alive())
      t:unref()
      t:again()
      assert.is_false(loop:alive())
      t:cancel()

      local r, w = testing.pipe()
      local watcher = loop:watch(r, "r", function() end)
      assert.is_true(loop:alive())
      watcher:unref()
      assert.is_false(loop:alive())
      watcher:ref()
      watcher:stop()
      assert.is_false(loop:alive())
      testing.close_fd(r)
      testing.close_fd(w)

      local d = loop:defer(function() end)
      assert.is_true(loop:alive())
      d:cancel()
      assert.is_false(loop:alive())
    end)

    it("an unref'd timer fires while something else keeps the loop running", function()
      local fired = false
      local t = loop:timer(0.001, function() fired = true end)
      t:unref()
      loop:run() -- returns at once: nothing keeps the loop alive
      assert.is_false(fired)
      loop:timer(0.02, function() end)
      loop:run()
      assert.is_true(fired)
    end)

    it("run() returns when stop() is called, with the work left in place", function()
      local n = 0
      local t = loop:every(0.001, function(self)
        n = n + 1
        if n % 3 == 0 then loop:stop() end
        assert.is_true(self:active())
      end)
      loop:run()
      assert.are.equal(3, n)
      assert.is_true(loop:alive())
      loop:run() -- a stale stop() does not stop the next run
      assert.are.equal(6, n)
      t:cancel()
    end)
  end)

  it("keeps the heap ordered through 10 000 timers, restarts and cancels", function()
    local N = 10000
    local timers, key = {}, {}
    local seq = 0
    local function arm(i, us)
      seq = seq + 1
      key[i] = { us, seq }
    end
    local fired, cancelled = {}, {}
    local nfired, ncancelled = 0, 0
    local function cancel(i)
      if timers[i]:active() then
        timers[i]:cancel()
        cancelled[i] = true
        ncancelled = ncancelled + 1
      end
    end
    loop:defer(function()
      for i = 1, N do
        local us = math.random(0, 40000)
        timers[i] = loop:timer(us / 1e6, function()
          nfired = nfired + 1
          fired[nfired] = i
          if math.random() < 0.1 then cancel(math.random(N)) end
        end)
        arm(i, us)
      end
      for _ = 1, 2000 do -- restarts move timers inside the heap
        local i = math.random(N)
        local us = math.random(0, 40000)
        timers[i]:again(us / 1e6)
        arm(i, us)
      end
      for _ = 1, 2000 do cancel(math.random(N)) end
    end)
    loop:run()
    assert.are.equal(N, nfired + ncancelled)
    local seen = {}
    for n = 1, nfired do
      local i = fired[n]
      assert(not seen[i] and not cancelled[i], "timer fired twice or after cancel")
      seen[i] = true
      if n > 1 then
        local a, b = key[fired[n - 1]], key[i]
        assert(a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]), "out of order at " .. n)
      end
    end
  end)

  describe("garbage collection", function()
    it("a dropped loop is collected and closes its fds, handles and all", function()
      local before = count_loop_fds()
      local weak = setmetatable({}, { __mode = "v" })
      do
        local l = core.loop()
        weak[1] = l
        local r, w = testing.pipe()
        l:timer(10, function() return l end) -- a cycle through the callback
        l:every(1, function() end)
        l:watch(r, "r", function() end)
        l:defer(function() end)
        testing.close_fd(r)
        testing.close_fd(w)
        if before and l:backend() == "epoll" then
          assert.are.equal(before + 2, count_loop_fds()) -- epoll fd + timerfd
        end
        weak[2] = l:fd()
      end
      full_gc()
      assert.is_nil(weak[1])
      if before then assert.are.equal(before, count_loop_fds()) end
    end)

    it("a cancelled, dropped timer is collected", function()
      local weak = setmetatable({}, { __mode = "v" })
      local t = loop:timer(1, function() end)
      weak[1] = t
      t:cancel()
      t = nil -- luacheck: ignore 311
      full_gc()
      assert.is_nil(weak[1])
    end)

    it("handles of a closed or collected loop raise 'loop is closed'", function()
      local l = core.loop()
      local t = l:timer(1, function() end)
      local d = l:defer(function() end)
      local r, w = testing.pipe()
      local watcher = l:watch(r, "r", function() end)
      l:close()
      l:close() -- idempotent
      assert.matches("loop is closed", select(2, pcall(t.cancel, t)))
      assert.matches("loop is closed", select(2, pcall(t.again, t)))
      assert.matches("loop is closed", select(2, pcall(d.cancel, d)))
      assert.matches("loop is closed", select(2, pcall(watcher.stop, watcher)))
      assert.matches("loop is closed", select(2, pcall(l.step, l)))
      assert.is_false(t:active())
      assert.is_false(watcher:active())

      local l2 = core.loop()
      local t2 = l2:every(1, function() end)
      l2 = nil -- luacheck: ignore 311
      full_gc()
      assert.matches("loop is closed", select(2, pcall(t2.again, t2, 1)))
      t, d, watcher, t2 = nil, nil, nil, nil -- luacheck: ignore 311
      full_gc()
      testing.close_fd(r)
      testing.close_fd(w)
    end)
  end)

  describe("an injected clock", function()
    it("times timers in loop time: not before the deadline, at the first step after it", function()
      local lp = core.loop()
      local clock = testing.fake_clock(lp)
      local fired = 0
      lp:timer(0.05, function() fired = fired + 1 end)
      clock:advance(0.049)
      lp:step(0)
      assert.are.equal(0, fired)
      clock:advance(0.001)
      lp:step(0)
      assert.are.equal(1, fired)
      assert.are.equal(clock:now(), lp:now())
      clock:restore()
      lp:close()
      clock:restore() -- the lp is gone: nothing to restore
    end)
  end)

  describe("test helpers", function()
    it("pipe, write_fd, read_fd, poll_fd and close_fd", function()
      local r, w = testing.pipe()
      assert.is_false(testing.poll_fd(r, 0))
      assert.is_true(testing.poll_fd(w, 0, "w"))
      assert.are.equal(3, testing.write_fd(w, "abc"))
      assert.is_true(testing.poll_fd(r, 0))
      assert.are.equal("ab", testing.read_fd(r, 2))
      assert.are.equal("c", testing.read_fd(r, 10))
      local none, err = testing.read_fd(r, 10)
      assert.is_nil(none)
      assert.is_string(err)
      assert.is_true(testing.close_fd(w))
      assert.are.equal("", testing.read_fd(r, 10))
      assert.is_true(testing.close_fd(r))
      assert.are.same({ nil, "invalid fd" }, { testing.poll_fd(r, 0) })
    end)

    it("live in ws.testing, not in the production module", function()
      for _, name in ipairs { "pipe", "write_fd", "read_fd", "close_fd", "poll_fd", "testing" } do
        assert.is_nil(core[name], name)
      end
      for _, name in ipairs { "tcp_connect", "tcp_send", "tcp_recv", "tcp_shutdown", "tcp_close",
                              "tls_client_contexts" } do
        assert.is_function(testing[name], name)
      end
    end)
  end)
end)
