-- Close and exit lose nothing: outside callbacks c:close() completes the
-- close handshake (a task yields meanwhile, a callback does not wait), and
-- a script that ends (normally, with an error, or leaving a Lua 5.4
-- `<close>` scope) flushes what it queued and closes its connections and
-- servers cleanly before the Lua state goes.  The scripts run as child
-- processes; the peer is a server or a client of this process.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"
local exit = require "spec.helpers.exit_util"
local ws = net.ws

-- The child's connect, then its own lines.
local function client_script(body)
  return [[
local ws = require "ws"
local url = arg[1]
]] .. body
end

local function messages(events)
  local out = {}
  for _, e in ipairs(net.select(events, "message")) do out[#out + 1] = e[3] end
  return out
end

-- Wait for the child to end and for the server to see its close; returns
-- the server's close event {code, reason, was_clean}.
local function closed_by_child(child, events)
  assert.are.equal(0, child:wait(), child:describe())
  assert.is_truthy(net.wait_until(function() return #net.select(events, "close") > 0 end, 10),
    "the server saw no close\n" .. child:describe())
  local e = net.select(events, "close")[1]
  return { e[3], e[4], e[5] }
end

local BIG = 250000

-- Every message the child sends: four large ones (so output is still
-- queued when the script reaches its end) and a small one.
local SEND_ALL = [[
for i = 1, 4 do assert(c:send(string.rep(string.char(96 + i), ]] .. BIG .. [[))) end
assert(c:send("last"))
]]

local function assert_all_received(events)
  local got = messages(events)
  assert.are.equal(5, #got)
  for i = 1, 4 do assert.is_true(net.same(got[i], string.rep(string.char(96 + i), BIG))) end
  assert.are.equal("last", got[5])
end

-- A server that does not echo (the child never reads).
local function sink_server()
  local events = {}
  local srv = net.listen {
    on_message = function(c, data) events[#events + 1] = { "message", c, data } end,
    on_close = function(c, code, reason, was_clean) events[#events + 1] = { "close", c, code, reason, was_clean } end,
  }
  return srv, events
end

describe("close and exit lose nothing", function()
  after_each(function()
    net.cleanup()
    exit.cleanup()
  end)

  describe("a script that ends", function()
    it("after c:close(1000, reason): the peer gets every message, then 1000 with the reason", function()
      local srv, events = sink_server()
      local child = exit.spawn(client_script([[
local c = assert(ws.connect(url))
]] .. SEND_ALL .. [[
print(c:close(1000, "bye"), c.ready_state, c.close_code, c.was_clean)
]]), net.url(srv))
      assert.are.same({ 1000, "bye", true }, closed_by_child(child, events))
      assert_all_received(events)
      -- close() returned once the handshake was complete
      assert.are.equal("true\tCLOSED\t1000\ttrue\n", child:output())
    end)

    it("with output queued and no close: the peer gets every message, then 1001", function()
      local srv, events = sink_server()
      local child = exit.spawn(client_script([[
local c = assert(ws.connect(url))
]] .. SEND_ALL), net.url(srv))
      assert.are.same({ 1001, "going away", true }, closed_by_child(child, events))
      assert_all_received(events)
    end)

    it("with an error: the peer gets every message, then 1001", function()
      local srv, events = sink_server()
      local child = exit.spawn(client_script([[
local c = assert(ws.connect(url))
]] .. SEND_ALL .. [[
error("the script fails")
]]), net.url(srv))
      assert.are.equal(1, child:wait(), child:describe())
      assert.matches("the script fails", child:errors())
      assert.is_truthy(net.wait_until(function() return #net.select(events, "close") > 0 end, 10))
      local e = net.select(events, "close")[1]
      assert.are.same({ 1001, "going away", true }, { e[3], e[4], e[5] })
      assert_all_received(events)
    end)

    it("leaving a Lua 5.4 <close> scope: the peer gets every message, then 1000", function()
      if not exit.lua54 then
        pending("to-be-closed variables are Lua 5.4")
        return
      end
      local srv, events = sink_server()
      local child = exit.spawn(client_script([[
do
  local c <close> = assert(ws.connect(url))
]] .. SEND_ALL .. [[
end
print("AFTER")
]]), net.url(srv))
      assert.are.same({ 1000, "", true }, closed_by_child(child, events))
      assert_all_received(events)
    end)

    it("inside a task whose connection is still open: the peer gets 1001", function()
      local srv, events = sink_server()
      local child = exit.spawn(client_script([[
ws.spawn(function()
  local c = assert(ws.connect(url))
  c:send("from a task")
  c:receive() -- never answered: the script ends while the task waits
end)
ws.sleep(0.3)
]]), net.url(srv))
      assert.are.same({ 1001, "going away", true }, closed_by_child(child, events))
      assert.are.same({ "from a task" }, messages(events))
    end)

    it("with a server open: its clients get 1001 and a clean close", function()
      local child = exit.spawn([[
local ws = require "ws"
local srv = ws.listen{ host = "127.0.0.1", port = 0, on_message = function(c, d) c:send(d) end }
print("PORT " .. srv.port)
local deadline = ws.loop():now() + 10
while not io.open(arg[1]) and ws.loop():now() < deadline do ws.step(0.02) end
]], net.tmpdir() .. "/exit-now")
      local port = tonumber(child:wait_output("PORT (%d+)"))
      local closes, echoes = {}, 0
      for _ = 1, 2 do
        net.connect("ws://127.0.0.1:" .. port .. "/", {
          on_open = function(c) c:send("hi") end,
          on_message = function() echoes = echoes + 1 end,
          on_close = function(_, code, reason, was_clean) closes[#closes + 1] = { code, reason, was_clean } end,
        })
      end
      assert.is_truthy(net.wait_until(function() return echoes == 2 end))
      net.write_file(net.tmpdir() .. "/exit-now", "")
      assert.are.equal(0, child:wait(), child:describe())
      assert.is_truthy(net.wait_until(function() return #closes == 2 end))
      os.remove(net.tmpdir() .. "/exit-now")
      for i = 1, 2 do assert.are.same({ 1001, "server shutting down", true }, closes[i]) end
    end)

    it("whose peer does not answer the close: exit waits close_timeout, no longer", function()
      -- A raw TCP peer that accepts the handshake and then says nothing.
      local child
      local accepted
      local listener = net.listen { on_upgrade = function() accepted = true end }
      local raw_port = listener.port
      child = exit.spawn(client_script([[
local c = assert(ws.connect(url, { close_timeout = 0.5 }))
local t0 = ws.loop():now()
c:close(1000, "bye")
print(string.format("WAITED %.2f %s", ws.loop():now() - t0, c.ready_state))
]]), "ws://127.0.0.1:" .. raw_port .. "/")
      -- Keep the server from answering the close: stop its loop from
      -- reading by not stepping it until the child has waited.
      assert.is_truthy(net.wait_until(function() return accepted end))
      local t0 = net.now()
      while not child:status() and net.now() - t0 < 10 do net.sleep(0.05) end
      assert.are.equal(0, child:status(), child:describe())
      local waited, state = child:output():match("WAITED ([%d.]+) (%u+)")
      assert.are.equal("CLOSED", state)
      assert.is_true(tonumber(waited) >= 0.4 and tonumber(waited) < 3, child:output())
    end)
  end)

  describe("c:close() in this process", function()
    it("outside callbacks returns once the close handshake is done", function()
      local srv, events = net.echo_server()
      local c = assert(net.connect(net.url(srv)))
      assert(c:send("one"))
      assert.is_true(c:close(4000, "done"))
      assert.are.equal("CLOSED", c.ready_state)
      assert.is_true(c.was_clean)
      assert.are.equal(4000, c.close_code)
      -- The server ran meanwhile (same loop): it has the message and the close.
      assert.are.equal("one", messages(events)[1])
      local e = net.select(events, "close")[1]
      assert.are.same({ 4000, "done", true }, { e[3], e[4], e[5] })
    end)

    it("inside a task yields until the handshake is done", function()
      local srv, events = net.echo_server()
      local c = assert(net.connect(net.url(srv)))
      local after
      ws.spawn(function()
        c:close(4001, "task")
        after = c.ready_state
      end)
      -- The task is waiting: the close frame is on its way.
      assert.is_nil(after)
      assert.are.equal("CLOSING", c.ready_state)
      assert.is_truthy(net.wait_until(function() return after end))
      assert.are.equal("CLOSED", after)
      assert.is_truthy(net.wait_until(function() return #net.select(events, "close") == 1 end))
    end)

    it("inside a task on a callback connection yields too", function()
      local srv = net.echo_server()
      local opened, after
      local c = net.connect(net.url(srv), { on_open = function() opened = true end })
      assert.is_truthy(net.wait_until(function() return opened end))
      ws.spawn(function()
        c:close()
        after = c.ready_state
      end)
      assert.is_nil(after)
      assert.is_truthy(net.wait_until(function() return after end))
      assert.are.equal("CLOSED", after)
    end)

    it("inside a callback returns at once", function()
      local srv = net.echo_server()
      local state_in_cb, ret
      local c = net.connect(net.url(srv), {
        on_open = function(c) c:send("x") end,
        on_message = function(c)
          ret = c:close(1000, "from callback")
          state_in_cb = c.ready_state
        end,
      })
      assert.is_truthy(net.wait_until(function() return c.ready_state == "CLOSED" end))
      assert.is_true(ret)
      assert.are.equal("CLOSING", state_in_cb)
    end)

    it("<close> in a task yields (Lua 5.4)", function()
      if not exit.lua54 then
        pending("to-be-closed variables are Lua 5.4")
        return
      end
      local srv, events = net.echo_server()
      local url = net.url(srv)
      local done
      local fn = assert((loadstring or load)([[
        local ws, url, finish = ...
        return function()
          do
            local c <close> = assert(ws.connect(url))
            c:send("tbc")
          end
          finish()
        end
      ]]))(ws, url, function() done = true end)
      ws.spawn(fn)
      assert.is_truthy(net.wait_until(function() return done end))
      local e = net.select(events, "close")[1]
      assert.is_truthy(e)
      assert.are.same({ 1000, true }, { e[3], e[5] })
      assert.are.equal("tbc", messages(events)[1])
    end)
  end)
end)
