-- Connections waiting for their deferred flush wait in one per-loop list
-- (a connection carries two pointers for it, bench/PROFILE.md, idle
-- memory); their watchers name the loop's callback by an index.  Edges:
-- several connections queued outside a step, an error raised by one
-- flush's callback (the rest keep their order and run on the next step),
-- a connection reset by its peer while it is queued (it leaves the list,
-- which then keeps nothing queued), the loop closed and the script ending
-- with connections queued, and every kind of watcher on one loop.  Also
-- run on the poll() loop (scripts/test.sh --poll).
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"
local exit = require "spec.helpers.exit_util"
local ws = net.ws
local core = ws.core
local testing = require "ws.testing"

local function step_until(loop, cond, timeout)
  local deadline = net.now() + (timeout or 5)
  while not cond() and net.now() < deadline do loop:step(0.01) end
  return cond()
end

-- A server on its own loop and n clients on it, all open.
local function pairs_on(loop, n, server_opts)
  local opts = { host = "127.0.0.1", port = 0 }
  for k, v in pairs(server_opts or {}) do opts[k] = v end
  local srv = core.listen(opts, loop)
  local clients, opened = {}, 0
  for i = 1, n do
    clients[i] = core.connect("ws://127.0.0.1:" .. srv.port .. "/", {
      on_open = function() opened = opened + 1 end,
    }, loop)
  end
  assert.is_truthy(step_until(loop, function() return opened == n end))
  return srv, clients
end

describe("the loop's list of connections to flush", function()
  after_each(function()
    net.cleanup()
    exit.cleanup()
  end)

  it("sends queued outside a step by several connections all go out in one step, in queueing order", function()
    local loop = core.loop()
    local got = {}
    local srv, clients = pairs_on(loop, 4, {
      on_message = function(_, d) got[#got + 1] = d end,
    })
    for i = 4, 1, -1 do clients[i]:send("m" .. i) end
    -- The flushes run at the end of the first step; the server reads what
    -- they wrote in the I/O phase of a later one.
    assert.is_truthy(step_until(loop, function() return #got == 4 end))
    table.sort(got)
    assert.are.same({ "m1", "m2", "m3", "m4" }, got)
    srv:close()
    loop:close()
  end)

  it("an error raised by one queued connection's callback: the next ones run on the next step, in order", function()
    local loop = core.loop()
    local order = {}
    local function dial(name, raise)
      return core.connect("ws://localhost/", {
        unix_socket = net.tmpdir() .. "/absent-" .. name .. ".sock",
        on_close = function()
          order[#order + 1] = name
          if raise then error("boom in " .. name) end
        end,
      }, loop)
    end
    -- A client dials on its first flush: a missing Unix socket fails
    -- inside that flush and runs on_close there.
    dial("a", true)
    dial("b", false)
    dial("c", true)
    dial("d", false)
    local ok, err = pcall(loop.step, loop, 0)
    assert.is_false(ok)
    assert.matches("boom in a", tostring(err))
    assert.are.same({ "a" }, order)
    ok, err = pcall(loop.step, loop, 0)
    assert.is_false(ok)
    assert.matches("boom in c", tostring(err))
    assert.are.same({ "a", "b", "c" }, order)
    assert.is_true(loop:step(0) >= 1)
    assert.are.same({ "a", "b", "c", "d" }, order)
    assert.is_false(loop:alive())
    loop:close()
  end)

  it("a connection reset by its peer while queued leaves the list: nothing stays queued", function()
    local loop = core.loop()
    local server_side, closed
    local srv = core.listen({ host = "127.0.0.1", port = 0,
      on_open = function(c) server_side = c end,
      on_close = function() closed = true end }, loop)
    local fd = assert(testing.tcp_connect("127.0.0.1", srv.port))
    testing.tcp_send(fd, net.upgrade_request(srv.port))
    assert.is_truthy(step_until(loop, function() return server_side ~= nil end))
    assert.is_nil(loop:timeout()) -- nothing queued, no timer
    -- A watcher made ready after the reset runs after the connection's
    -- I/O callback in the same I/O phase, before the deferred phase.
    local r, w = testing.pipe()
    local seen
    local watcher
    watcher = loop:watch(r, "r", function()
      seen = { closed = closed, timeout = loop:timeout() }
      watcher:stop()
    end)
    server_side:send(string.rep("x", 100)) -- queued outside a step
    assert.are.equal(0, loop:timeout())
    testing.tcp_close(fd, true)
    testing.write_fd(w, "x")
    assert.is_truthy(step_until(loop, function() return seen ~= nil end))
    assert.is_true(seen.closed)
    assert.is_nil(seen.timeout) -- it left the list as it closed
    assert.is_nil(loop:timeout())
    srv:close()
    loop:close()
    testing.close_fd(r)
    testing.close_fd(w)
  end)

  it("a connection closed from outside a step while queued, and one closed from inside a callback", function()
    local loop = core.loop()
    local got, closes = {}, {}
    local srv, clients = pairs_on(loop, 3, {
      on_message = function(c, d)
        got[#got + 1] = d
        if d == "close me" then c:close(4000, "inside") end
      end,
      on_close = function(_, code) closes[#closes + 1] = code end,
    })
    clients[1]:send("one")
    clients[2]:send("close me")
    clients[3]:send("three")
    clients[1]:close(4001, "outside") -- queued already: its message goes first
    assert.is_truthy(step_until(loop, function() return #closes == 2 end))
    table.sort(got)
    table.sort(closes)
    assert.are.same({ "close me", "one", "three" }, got)
    assert.are.same({ 4000, 4001 }, closes)
    assert.are.equal("OPEN", clients[3].ready_state)
    srv:close()
    loop:close()
  end)

  it("the loop closed with connections queued: their messages and then 1001 reach the peers", function()
    local child = exit.spawn([[
      local core = require "ws.core"
      local loop = core.loop()
      local got, codes = {}, {}
      local srv = core.listen({ host = "127.0.0.1", port = 0,
        on_message = function(_, d) got[#got + 1] = d end,
        on_close = function(_, code) codes[#codes + 1] = code end }, loop)
      local peers = core.loop()
      local cs, opened = {}, 0
      for i = 1, 3 do
        cs[i] = core.connect("ws://127.0.0.1:" .. srv.port .. "/", {
          on_open = function() opened = opened + 1 end }, peers)
      end
      while opened < 3 do loop:step(0.01); peers:step(0.01) end
      for i = 1, 3 do cs[i]:send("last " .. i) end
      peers:close() -- queued flushes: messages, then 1001
      while #codes < 3 do loop:step(0.01) end
      table.sort(got); table.sort(codes)
      print(table.concat(got, ",") .. " " .. table.concat(codes, ","))
    ]])
    assert.are.equal(0, child:wait(), child:describe())
    assert.are.equal("last 1,last 2,last 3 1001,1001,1001\n", child:output())
    assert.are.equal("", child:errors())
  end)

  it("the script ends with connections queued: the peer gets every message, then 1001", function()
    local peer_got, codes = {}, {}
    local srv = net.listen({
      on_message = function(_, d) peer_got[#peer_got + 1] = d end,
      on_close = function(_, code) codes[#codes + 1] = code end,
    })
    local child = exit.spawn([[
      local core = require "ws.core"
      local loop = core.loop()
      local cs, opened = {}, 0
      for i = 1, 2 do
        cs[i] = core.connect("ws://127.0.0.1:]] .. srv.port .. [[/", {
          on_open = function() opened = opened + 1 end }, loop)
      end
      while opened < 2 do loop:step(0.01) end
      cs[1]:send("bye 1")
      cs[2]:send("bye 2")
      -- no step: both are queued as the script ends
    ]])
    assert.are.equal(0, child:wait(), child:describe())
    assert.is_truthy(net.wait_until(function() return #codes == 2 end))
    table.sort(peer_got)
    assert.are.same({ "bye 1", "bye 2" }, peer_got)
    assert.are.same({ 1001, 1001 }, codes)
  end)

  it("every kind of watcher on one loop, each stopping itself inside its own callback", function()
    local loop = core.loop()
    -- The listener and connection watchers, plus a resolver's (a name to
    -- resolve) and fd watchers made from Lua: six callbacks in one table.
    local srv = core.listen({ host = "127.0.0.1", port = 0,
      on_message = function(c, d) c:send(d) end }, loop)
    local echoed
    local c = core.connect("ws://localhost:" .. srv.port .. "/", {
      on_open = function(self) self:send("hi") end,
      on_message = function(_, d) echoed = d end,
    }, loop)
    local r1, w1 = testing.pipe()
    local r2, w2 = testing.pipe()
    local fired = {}
    local wa, wb
    wa = loop:watch(r1, "r", function() fired[#fired + 1] = "a"; wa:stop() end)
    wb = loop:watch(r2, "r", function() fired[#fired + 1] = "b"; wb:stop() end)
    testing.write_fd(w1, "x")
    testing.write_fd(w2, "y")
    assert.is_truthy(step_until(loop, function() return echoed ~= nil and #fired == 2 end))
    assert.are.equal("hi", echoed)
    table.sort(fired)
    assert.are.same({ "a", "b" }, fired)
    assert.is_false(wa:active())
    -- Stopped inside their callbacks: still readable, never called again.
    loop:step(0)
    assert.are.equal(2, #fired)
    c:close()
    srv:close()
    loop:close()
    for _, fd in ipairs({ r1, w1, r2, w2 }) do testing.close_fd(fd) end
  end)
end)
