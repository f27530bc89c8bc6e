-- lua-ws inside cqueues (Debian lua-cqueues: Lua 5.1, 5.2, 5.3, 5.4 and
-- LuaJIT): the loop object is a cqueues pollable, so cqueues.poll(loop)
-- waits for it, and ws.cqueues.attach(cq) runs it as a task of a
-- controller next to other cqueues tasks.  A client and a server inside the
-- controller, each against a lua-ws peer in a child process; errors raised
-- in callbacks come out of the controller; detach ends the task.
-- Lua 5.1 compatible.

local ws = require "ws"
local core = require "ws.core"
local net = require "spec.helpers.net_util"
local embed = require "spec.helpers.embed"

-- Steps cq until it is empty or `limit` seconds passed; raises errors of
-- its tasks.  Returns true when it emptied.
local function drive(cq, limit)
  return embed.drive(function() return cq:empty() end, function()
    local ok, err = cq:step(0.1)
    if not ok then error(err, 0) end
  end, limit)
end

describe("ws inside cqueues", function()
  local cqueues = embed.needs("cqueues", "lua-cqueues", "scripts/embed_deps.sh")
  if not cqueues then return end
  local cqa = require "ws.cqueues"

  after_each(function() net.cleanup() end)

  it("cqueues.poll(loop) wakes a task for work queued by another task", function()
    local loop = core.loop()
    local cq = cqueues.new()
    local order = {}
    cq:wrap(function()
      order[#order + 1] = "wait"
      local ready = cqueues.poll(loop, 5)
      order[#order + 1] = ready == loop and "ready" or "timed out"
      loop:step(0)
    end)
    cq:wrap(function()
      cqueues.sleep(0.02)
      loop:defer(function() order[#order + 1] = "deferred ran" end)
    end)
    assert.is_true(drive(cq, 5))
    assert.are.same({ "wait", "ready", "deferred ran" }, order)
    loop:close()
  end)

  it("cqueues.poll(loop) honours loop:timeout() for a timer", function()
    local loop = core.loop()
    local cq = cqueues.new()
    local fired = false
    loop:timer(0.05, function() fired = true end)
    cq:wrap(function()
      while not fired do
        cqueues.poll(loop)
        loop:step(0)
      end
    end)
    local t0 = net.now()
    assert.is_true(drive(cq, 5))
    assert.is_true(fired)
    assert.is_true(net.now() - t0 >= 0.04)
    loop:close()
  end)

  describe("ws.cqueues.attach", function()
    it("runs a client with callbacks next to other cqueues tasks", function()
      local child, port = net.spawn_echo_server()
      local cq = cqueues.new()
      local ticks, got, closed = 0, {}, nil
      local c = net.track_conn(ws.connect("ws://127.0.0.1:" .. port .. "/cq", {
        on_open = function(conn) conn:send("one") end,
        on_message = function(conn, data)
          got[#got + 1] = data
          if #got == 1 then
            conn:send("two")
          else
            conn:close(1000, "done")
          end
        end,
        on_close = function(_, code) closed = code end,
      }))
      cqa.attach(cq)
      cq:wrap(function()
        while not closed do
          ticks = ticks + 1
          cqueues.sleep(0.005)
        end
      end)
      assert.is_true(drive(cq, 10), "the controller did not finish")
      assert.are.same({ "one", "two" }, got)
      assert.are.equal(1000, closed)
      assert.are.equal("CLOSED", c.ready_state)
      assert.is_true(ticks > 0, "the other task never ran")
      child:kill()
    end)

    it("runs a server that a lua-ws client in another process talks to", function()
      local cq = cqueues.new()
      local got, srv = {}, nil
      srv = net.listen {
        on_message = function(c, data)
          got[#got + 1] = data
          c:send("re: " .. data)
        end,
        on_close = function() srv:close() end,
      }
      cqa.attach(cq)
      local child = net.spawn_lua([[
        local ws = require "ws"
        local c = assert(ws.connect("ws://127.0.0.1:" .. arg[1] .. "/"))
        c:send("hello from the child")
        print("REPLY " .. tostring(c:receive(5)))
        c:close(1000)
      ]], srv.port)
      assert.is_true(drive(cq, 10), "the controller did not finish")
      assert.are.same({ "hello from the child" }, got)
      child:wait_exit(5)
      assert.matches("REPLY re: hello from the child", child:output())
    end)

    it("c:close() from host code returns at once; the handshake completes in the controller", function()
      local child, port = net.spawn_echo_server()
      local cq = cqueues.new()
      local closed, clean
      local c = net.track_conn(ws.connect("ws://127.0.0.1:" .. port .. "/cq", {
        on_close = function(_, code, _, was_clean) closed, clean = code, was_clean end,
      }))
      local handle = cqa.attach(cq)
      local state_after_close
      cq:wrap(function()
        while c.ready_state ~= "OPEN" do cqueues.sleep(0.005) end
        -- host code (a cqueues task, not a lua-ws callback or ws.spawn task)
        assert(c:close(1000, "host"))
        state_after_close = c.ready_state
      end)
      assert.is_true(drive(cq, 10), "the controller did not finish")
      assert.are.equal("CLOSING", state_after_close)
      assert.are.equal(1000, closed)
      assert.is_true(clean)
      handle.detach()
      child:kill()
    end)

    it("a coroutine of ws.spawn waits inside the controller without blocking it", function()
      local child, port = net.spawn_echo_server()
      local cq = cqueues.new()
      local reply, ticks = nil, 0
      ws.spawn(function()
        local c = net.track_conn(assert(ws.connect("ws://127.0.0.1:" .. port .. "/task")))
        c:send("straight")
        reply = c:receive(5)
        c:close()
      end)
      cqa.attach(cq)
      cq:wrap(function()
        while reply == nil do
          ticks = ticks + 1
          cqueues.sleep(0.005)
        end
      end)
      assert.is_true(drive(cq, 10))
      assert.are.equal("straight", reply)
      assert.is_true(ticks > 0)
      child:kill()
    end)

    it("an error in a callback comes out of the controller; the loop stays usable", function()
      local cq = cqueues.new()
      ws.timer(0.01, function() error("boom in a callback") end)
      cqa.attach(cq)
      local ok, err = pcall(drive, cq, 5)
      assert.is_false(ok)
      assert.matches("boom in a callback", tostring(err))
      local fired = false
      ws.timer(0, function() fired = true end)
      cq = cqueues.new()
      cqa.attach(cq)
      assert.is_true(drive(cq, 5))
      assert.is_true(fired)
    end)

    it("detach() ends the task even while lua-ws has work; forever keeps it while idle", function()
      local cq = cqueues.new()
      local h = cqa.attach(cq, { forever = true })
      local t = net.track_timer(ws.timer(30, function() end))
      cq:wrap(function()
        cqueues.sleep(0.02)
        h:detach()
      end)
      assert.is_true(drive(cq, 5), "detach did not end the task")
      t:cancel()
      -- forever: the task outlives an idle loop until detached.
      cq = cqueues.new()
      h = cqa.attach(cq, { forever = true })
      local fired = false
      cq:wrap(function()
        cqueues.sleep(0.05)
        ws.timer(0.01, function()
          fired = true
          h:detach()
        end)
      end)
      assert.is_true(drive(cq, 5))
      assert.is_true(fired, "a timer started while idle did not run")
    end)

    it("rejects bad arguments", function()
      assert.matches("cqueues controller expected", select(2, pcall(cqa.attach, 42)))
      assert.matches("unknown option 'nope'", select(2, pcall(cqa.attach, cqueues.new(), { nope = 1 })))
    end)
  end)
end)
