-- The embedding contract of the loop: loop:fd() becomes readable for every
-- kind of work (I/O, due timers, work queued from outside a turn: connect,
-- send, close, defer), and loop:timeout() says how long a host may sleep.
-- A "poll host" here drives lua-ws with nothing but poll(loop:fd(),
-- loop:timeout()) and loop:step(0), the way luv, cqueues or a C program
-- embeds it; the peer is an echo server in a child process, so nothing else
-- makes the fd readable.
-- Lua 5.1 compatible.

local ws = require "ws"
local core = require "ws.core"
local testing = require "ws.testing"
local net = require "spec.helpers.net_util"

-- Drive `loop` the way a poll-based host does until cond() or `limit` s.
local function poll_host(loop, cond, limit)
  local deadline = net.now() + (limit or 5)
  while not cond() do
    local left = deadline - net.now()
    if left <= 0 then return false end
    local t = loop:timeout()
    if t == nil or t > left then t = left end
    testing.poll_fd(loop:fd(), t)
    loop:step(0)
  end
  return true
end

local function fd_or_skip(loop)
  local fd = loop:fd()
  if not fd then pending("the poll backend has no pollable fd (" .. loop:backend() .. ")") end
  return fd
end

describe("embedding contract", function()
  local loop
  before_each(function() loop = core.loop() end)
  after_each(function()
    loop:close()
    net.cleanup()
  end)

  describe("loop:fd()", function()
    it("becomes readable for a deferred callback queued outside a step, and step drains it", function()
      local fd = fd_or_skip(loop)
      if not fd then return end
      assert.is_false(testing.poll_fd(fd, 0))
      local ran = false
      loop:defer(function() ran = true end)
      assert.is_true(testing.poll_fd(fd, 0), "queued work does not wake a poll host")
      assert.are.equal(1, loop:step(0))
      assert.is_true(ran)
      assert.is_false(testing.poll_fd(fd, 0), "the wake-up was not drained")
    end)

    it("stays readable when a turn leaves work for the next turn", function()
      local fd = fd_or_skip(loop)
      if not fd then return end
      local second = false
      loop:defer(function()
        loop:defer(function() second = true end) -- runs next turn
      end)
      assert.are.equal(1, loop:step(0))
      assert.is_false(second)
      assert.is_true(testing.poll_fd(fd, 0), "work left for the next turn does not show")
      assert.are.equal(1, loop:step(0))
      assert.is_true(second)
      assert.is_false(testing.poll_fd(fd, 0))
    end)

    it("stays readable after an error stops a turn with work queued", function()
      local fd = fd_or_skip(loop)
      if not fd then return end
      local later = false
      loop:defer(function() error("boom") end)
      loop:defer(function() later = true end)
      assert.is_false(pcall(loop.step, loop, 0))
      assert.is_false(later)
      assert.is_true(testing.poll_fd(fd, 0))
      loop:step(0)
      assert.is_true(later)
    end)

    it("its wake-up fd goes with the loop: close, or collection with work still queued", function()
      collectgarbage() -- what earlier tests left for the collector goes first
      collectgarbage()
      local before = net.settled_fd_count()
      for _ = 1, 20 do
        local l = core.loop()
        l:defer(function() end) -- a pending wake-up
        l:close()
      end
      for _ = 1, 20 do
        local l = core.loop()
        l:defer(function() end)
        l = nil -- luacheck: ignore 311
      end
      collectgarbage()
      collectgarbage()
      -- At most as many as before: 40 loops leaking their epoll and wake-up
      -- fds would add up to 80; an fd of an earlier spec closing meanwhile
      -- may only lower the count.
      local after = net.settled_fd_count()
      assert.is_true(after <= before, ("fds: %d before, %d after"):format(before, after))
    end)

    it("a cancelled deferred callback costs at most one spurious wake-up", function()
      local fd = fd_or_skip(loop)
      if not fd then return end
      local d = loop:defer(function() error("cancelled: must not run") end)
      d:cancel()
      assert.are.equal(0, loop:step(0))
      assert.is_false(testing.poll_fd(fd, 0))
    end)
  end)

  describe("loop:timeout()", function()
    it("is nil with nothing scheduled, the delay of the next timer, 0 when work is due", function()
      assert.is_nil(loop:timeout())
      local t = loop:timer(0.5, function() end)
      local s = loop:timeout()
      assert.is_true(s > 0.3 and s <= 0.5, "timeout " .. tostring(s))
      loop:timer(0.1, function() end)
      assert.is_true(loop:timeout() <= 0.1)
      local d = loop:defer(function() end)
      assert.are.equal(0, loop:timeout())
      d:cancel()
      loop:timer(0, function() end)
      assert.are.equal(0, loop:timeout())
      loop:step(0)
      t:cancel()
      assert.is_true(loop:timeout() <= 0.1)
    end)

    it("is the protocol of cqueues' pollables with pollfd() and events()", function()
      local fd = fd_or_skip(loop)
      if not fd then return end
      assert.are.equal(fd, loop:pollfd())
      assert.are.equal("r", loop:events())
      loop:close()
      assert.matches("loop is closed", select(2, pcall(loop.timeout, loop)))
      assert.matches("loop is closed", select(2, pcall(loop.pollfd, loop)))
      loop = core.loop()
    end)
  end)

  describe("a poll host (only poll(loop:fd(), loop:timeout()) and step(0))", function()
    local child, port
    before_each(function() child, port = net.spawn_echo_server() end)
    after_each(function() child:kill() end)

    it("wakes up for connect, send and close queued from outside a turn", function()
      local wl = ws.loop()
      local fd = fd_or_skip(wl)
      if not fd then return end
      poll_host(wl, function() return wl:timeout() == nil and not testing.poll_fd(fd, 0) end, 2)
      local got, closed = {}, nil
      local c = net.track_conn(ws.connect("ws://127.0.0.1:" .. port .. "/host", {
        on_message = function(_, data) got[#got + 1] = data end,
        on_close = function(_, code) closed = code end,
      }))
      assert.is_true(testing.poll_fd(fd, 0), "connect queued from outside does not wake the host")
      assert.is_true(poll_host(wl, function() return c.ready_state == "OPEN" end))
      -- Idle: nothing to do, nothing readable.
      assert.is_false(testing.poll_fd(fd, 0.05))
      c:send("from outside")
      assert.is_true(testing.poll_fd(fd, 0), "send queued from outside does not wake the host")
      assert.is_true(poll_host(wl, function() return #got == 1 end))
      assert.are.equal("from outside", got[1])
      -- Outside a task close() would run the loop itself until the
      -- handshake is done; in a task it queues the close and yields.
      ws.spawn(function() c:close(1000, "bye") end)
      assert.is_true(testing.poll_fd(fd, 0), "close queued from outside does not wake the host")
      assert.is_true(poll_host(wl, function() return closed ~= nil end))
      assert.are.equal(1000, closed)
    end)

    it("runs a coroutine spawned from outside and its timers", function()
      local wl = ws.loop()
      local fd = fd_or_skip(wl)
      if not fd then return end
      local reply
      ws.spawn(function()
        local c = assert(ws.connect("ws://127.0.0.1:" .. port .. "/spawned"))
        net.track_conn(c)
        ws.sleep(0.02)
        c:send("in a task")
        reply = c:receive(5)
        c:close()
      end)
      assert.is_true(poll_host(wl, function() return reply ~= nil end))
      assert.are.equal("in a task", reply)
    end)
  end)
end)
