-- A loop outlives everything on it: connections and servers keep their
-- loop alive; closing the loop (or closing the Lua state) closes them
-- first, and later calls on them say "connection is closed" / "server is
-- closed" instead of touching freed memory.  Every order of close, garbage
-- collection and script exit.  Run under ASan (make sanitize) and valgrind
-- (make valgrind) like every spec.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"
local exit = require "spec.helpers.exit_util"
local ws = net.ws
local core = ws.core

-- LuaJIT's compiled traces hold the closures they were recorded with (and
-- what those capture, a loop among them) as constants: flush them first.
local function full_gc()
  if rawget(_G, "jit") then jit.flush() end
  collectgarbage()
  collectgarbage()
end

-- A weak reference: ref() is the object while something else holds it.
local function weak(obj)
  local t = setmetatable({ obj }, { __mode = "v" })
  return function() return t[1] end
end

local function step_until(loop, cond, timeout)
  local deadline = net.now() + (timeout or 5)
  while not cond() and net.now() < deadline do loop:step(0.01) end
  return cond()
end

describe("loop lifetime", function()
  after_each(function()
    net.cleanup()
    exit.cleanup()
  end)

  it("a dropped ws.core.loop() stays alive while a server and a connection are on it; exit then closes them", function()
    local child = exit.spawn([[
      local core = require "ws.core"
      local loop = core.loop()
      local srv = core.listen({ host = "127.0.0.1", port = 0, on_message = function(c, d) c:send(d) end }, loop)
      local got
      local c = core.connect("ws://127.0.0.1:" .. srv.port .. "/", {
        on_open = function(c) c:send("ping") end,
        on_message = function(_, d) got = d end,
      }, loop)
      while not got do loop:step(0.05) end
      local ref = setmetatable({ loop }, { __mode = "v" })
      loop = nil
      collectgarbage(); collectgarbage()
      print("ALIVE " .. tostring(ref[1] ~= nil) .. " " .. c.ready_state .. " " .. tostring(srv.listening))
    ]])
    assert.are.equal(0, child:wait(), child:describe())
    assert.are.equal("ALIVE true OPEN true\n", child:output())
    assert.are.equal("", child:errors())
  end)

  it("ws.loop():close() closes its connections after their queued messages (1001); later calls say closed", function()
    local peer, port = net.spawn_echo_server()
    local c = assert(ws.connect("ws://127.0.0.1:" .. port .. "/"))
    local big = net.payload(300000, "binary")
    for _ = 1, 3 do assert(c:send(big, "binary")) end
    local old = ws.loop()
    old:close()
    assert.is_true(old:closed())
    assert.are.equal("CLOSED", c.ready_state)
    assert.are.same({ nil, "connection is closed" }, { c:send("x") })
    assert.are.same({ nil, "connection is closed" }, { c:ping() })
    assert.are.same({ nil, "connection is closed" }, { c:close() })
    assert.are.same({ nil, "connection is closed" }, { c:send_fragment("x", true) })
    assert.are.equal(0, c:buffered_amount())
    -- The module goes on with a new loop.
    assert.are_not.equal(old, ws.loop())
    assert.is_false(ws.loop():closed())
    peer:wait_output("CLOSE 1001 true going away")
    local _, n = peer:output():gsub("MESSAGE binary 300000", "")
    assert.are.equal(3, n)
  end)

  it("a reconnecting client whose loop was closed: rc:close() afterwards is clean", function()
    local peer, port = net.spawn_echo_server()
    local closes = {}
    local rc = ws.reconnecting("ws://127.0.0.1:" .. port .. "/", {
      on_close = function(_, code) closes[#closes + 1] = code end,
    })
    assert.is_true(rc:wait_open(5))
    ws.loop():close()
    assert.are.same({ 1001 }, closes)
    assert.is_true(rc:close())
    assert.are.same({ nil, "closed" }, { rc:send("x") })
    peer:wait_output("CLOSE 1001 true going away")
  end)

  it("loop:close() runs the on_close callbacks of what it closes", function()
    local loop = core.loop()
    local closes = {}
    local srv = core.listen({ host = "127.0.0.1", port = 0,
      on_close = function(_, code, reason) closes[#closes + 1] = "server " .. code .. " " .. reason end }, loop)
    local opened
    local c = core.connect("ws://127.0.0.1:" .. srv.port .. "/", {
      on_open = function() opened = true end,
      on_close = function(_, code, reason, clean)
        closes[#closes + 1] = "client " .. code .. " " .. reason .. " " .. tostring(clean)
      end,
    }, loop)
    assert.is_truthy(step_until(loop, function() return opened end))
    loop:close()
    table.sort(closes)
    -- Both ends close on the same loop: each starts with 1001, and one of
    -- the two close frames crosses the other's.
    assert.are.equal(2, #closes)
    assert.matches("^client 1001 ", closes[1])
    assert.matches("^server 1001 ", closes[2])
    assert.are.equal("CLOSED", c.ready_state)
    assert.is_false(srv.listening)
  end)

  it("an error raised by a callback while loop:close() runs comes out of close, after the loop is closed", function()
    local loop = core.loop()
    local srv = core.listen({ host = "127.0.0.1", port = 0 }, loop)
    local opened
    core.connect("ws://127.0.0.1:" .. srv.port .. "/", {
      on_open = function() opened = true end,
      on_close = function() error("boom in on_close") end,
    }, loop)
    assert.is_truthy(step_until(loop, function() return opened end))
    local ok, err = pcall(loop.close, loop)
    assert.is_false(ok)
    assert.matches("boom in on_close", tostring(err))
    assert.is_true(loop:closed())
  end)

  it("a server on a closed loop: broadcast says closed, close does nothing, the port is free", function()
    local loop = core.loop()
    local srv = core.listen({ host = "127.0.0.1", port = 0 }, loop)
    local port = srv.port
    loop:close()
    assert.is_false(srv.listening)
    assert.are.same({ nil, "server is closed" }, { srv:broadcast("x") })
    srv:close()
    assert.are.same({}, srv:clients())
    assert.is_nil(net.raw_connect(port))
  end)

  it("srv:close() after its loop was dropped and collected (the server kept it alive)", function()
    local loop = core.loop()
    local srv = core.listen({ host = "127.0.0.1", port = 0 }, loop)
    local ref = weak(loop)
    loop = nil -- luacheck: ignore 311
    full_gc()
    assert.is_not_nil(ref())
    srv:close()
    assert.is_false(srv.listening)
    srv = nil -- luacheck: ignore 311
    full_gc()
    assert.is_nil(ref())
  end)

  it("a connection collected after it closed, then its loop closed", function()
    local loop = core.loop()
    local srv = core.listen({ host = "127.0.0.1", port = 0 }, loop)
    local opened
    local c = core.connect("ws://127.0.0.1:" .. srv.port .. "/", { on_open = function() opened = true end }, loop)
    assert.is_truthy(step_until(loop, function() return opened end))
    c:close()
    assert.is_truthy(step_until(loop, function() return c.ready_state == "CLOSED" end))
    local cref = weak(c)
    c = nil -- luacheck: ignore 311
    step_until(loop, function() return #srv:clients() == 0 end)
    loop:step(0.05)
    full_gc()
    assert.is_nil(cref())
    loop:close()
    assert.is_true(loop:closed())
  end)

  it("a loop closed first, then its connection and server collected, then the loop collected", function()
    local loop = core.loop()
    local srv = core.listen({ host = "127.0.0.1", port = 0 }, loop)
    local opened
    local c = core.connect("ws://127.0.0.1:" .. srv.port .. "/", { on_open = function() opened = true end }, loop)
    assert.is_truthy(step_until(loop, function() return opened end))
    loop:close()
    local cref, sref, lref = weak(c), weak(srv), weak(loop)
    c, srv, loop = nil, nil, nil -- luacheck: ignore 311
    full_gc()
    assert.is_nil(cref())
    assert.is_nil(sref())
    assert.is_nil(lref())
  end)

  it("a loop with nothing on it is collected as before", function()
    local ref = weak(core.loop())
    full_gc()
    assert.is_nil(ref())
  end)

  it("loop:close() from one of its callbacks raises and changes nothing", function()
    local loop = core.loop()
    local err
    loop:timer(0, function() err = select(2, pcall(loop.close, loop)) end)
    loop:step(0.1)
    assert.matches("called from a callback of the same loop", err)
    assert.is_false(loop:closed())
    loop:close()
  end)

  it("no new connection or server on a loop while it closes", function()
    local loop = core.loop()
    local srv = core.listen({ host = "127.0.0.1", port = 0 }, loop)
    local opened, err
    core.connect("ws://127.0.0.1:" .. srv.port .. "/", {
      on_open = function() opened = true end,
      on_close = function()
        err = select(2, pcall(core.connect, "ws://127.0.0.1:" .. srv.port .. "/", { on_open = print }, loop))
      end,
    }, loop)
    assert.is_truthy(step_until(loop, function() return opened end))
    loop:close()
    assert.matches("loop is closing", err)
  end)

  it("exit with a server and connections open on a core loop that was never closed: the peer gets 1001", function()
    local peer, port = net.spawn_echo_server()
    local child = exit.spawn([[
      local core = require "ws.core"
      local loop = core.loop()
      local srv = core.listen({ host = "127.0.0.1", port = 0 }, loop)
      local n = 0
      core.connect("ws://127.0.0.1:" .. arg[1] .. "/", { on_open = function(c) c:send("hello") end,
        on_message = function() n = n + 1 end }, loop)
      while n == 0 do loop:step(0.05) end
      print("SRV " .. srv.port)
    ]], port)
    assert.are.equal(0, child:wait(), child:describe())
    peer:wait_output("CLOSE 1001 true going away")
    assert.matches("MESSAGE text 5", peer:output())
  end)

  it("the state closed from inside a callback (os.exit(0, true)): the peer still gets a close frame", function()
    if not exit.exit_closes_state then
      pending("os.exit(code, true) does not close the state on Lua 5.1")
      return
    end
    local child = exit.spawn([[
      local ws = require "ws"
      local srv = ws.listen{ host = "127.0.0.1", port = 0,
        on_message = function(c, d) if d == "exit" then os.exit(0, true) end c:send(d) end }
      print("PORT " .. srv.port)
      ws.run()
    ]])
    local port = tonumber(child:wait_output("PORT (%d+)"))
    local closed
    local c = net.connect("ws://127.0.0.1:" .. port .. "/", {
      on_open = function(c) c:send("exit") end,
      on_close = function(_, code, reason) closed = { code, reason } end,
    })
    assert.is_truthy(c)
    assert.is_truthy(net.wait_until(function() return closed end, 10))
    assert.are.same({ 1001, "server shutting down" }, closed)
    assert.are.equal(0, child:wait(), child:describe())
  end)

  it("plain os.exit() after ws.loop():close(): the peer gets every message and 1001", function()
    local peer, port = net.spawn_echo_server()
    local child = exit.spawn([[
      local ws = require "ws"
      local c = assert(ws.connect("ws://127.0.0.1:" .. arg[1] .. "/"))
      for _ = 1, 4 do c:send(string.rep("z", 200000)) end
      ws.loop():close()
      os.exit(3)
    ]], port)
    assert.are.equal(3, child:wait(), child:describe())
    peer:wait_output("CLOSE 1001 true going away")
    local _, n = peer:output():gsub("MESSAGE text 200000", "")
    assert.are.equal(4, n)
  end)
end)

-- A server's connections are no loop members of their own: the server's
-- membership stands for them while they run, and one list per loop holds
-- the rest (clients, and server connections once closed).
describe("a server's connections on its loop", function()
  after_each(function()
    net.cleanup()
    exit.cleanup()
  end)

  -- A server on loop whose accepted connections land in accepted[path];
  -- n clients at paths[i], all OPEN on both sides when it returns.
  local function server_and_clients(loop, paths, opts)
    local accepted = {}
    opts = opts or {}
    opts.host, opts.port = "127.0.0.1", 0
    local on_open = opts.on_open
    opts.on_open = function(c)
      accepted[c.path] = c
      if on_open then on_open(c) end
    end
    local srv = core.listen(opts, loop)
    local clients = {}
    for i, p in ipairs(paths) do clients[i] = core.connect("ws://127.0.0.1:" .. srv.port .. p, {}, loop) end
    assert.is_truthy(step_until(loop, function()
      for i, p in ipairs(paths) do
        if not accepted[p] or clients[i].ready_state ~= "OPEN" then return false end
      end
      return true
    end))
    return srv, clients, accepted
  end

  it("loop:members() counts the server and every unfinished connection; a closed one keeps its fields", function()
    local loop = core.loop()
    local srv, clients, acc = server_and_clients(loop, { "/one", "/two", "/" })
    assert.are.equal(7, loop:members()) -- listening + 3 accepted + 3 clients
    clients[1]:close(4000, "from the client")
    assert.is_truthy(step_until(loop, function()
      return acc["/one"].ready_state == "CLOSED" and clients[1].ready_state == "CLOSED"
    end))
    -- (a CLOSED connection counts until its transport is done)
    assert.is_truthy(step_until(loop, function() return loop:members() == 5 end))
    acc["/two"]:close(4001, "from the server")
    assert.is_truthy(step_until(loop, function()
      return acc["/two"].ready_state == "CLOSED" and clients[2].ready_state == "CLOSED"
    end))
    assert.is_truthy(step_until(loop, function() return loop:members() == 3 end))
    assert.are.equal(1, #srv:clients())
    -- closed server connections: off the server, their fields still there
    assert.are.equal(4000, acc["/one"].close_code)
    assert.are.equal("/one", acc["/one"].path)
    assert.is_nil(acc["/one"].server)
    assert.are.equal(srv, acc["/"].server)
    assert.are.same({ nil, "connection is not open" }, { acc["/two"]:send("x") })
    srv:close()
    assert.is_truthy(step_until(loop, function() return loop:members() == 0 end))
    assert.are.equal("CLOSED", acc["/"].ready_state)
    loop:close()
  end)

  it("a server the script dropped lives while it listens; its connections run on, close, then it is collected",
    function()
      local loop = core.loop()
      local srv, clients, acc = server_and_clients(loop, { "/a", "/b" },
        { on_message = function(c, d) c:send(d) end })
      local sref = weak(srv)
      srv = nil -- luacheck: ignore 311
      full_gc()
      assert.is_not_nil(sref())
      local got
      clients[1]:close()
      local c = clients[2]
      core.connect("ws://127.0.0.1:" .. sref().port .. "/c", {}, loop):close()
      assert.is_truthy(step_until(loop, function() return acc["/a"].ready_state == "CLOSED" end))
      assert.is_true(c:send("still here"))
      local echo = core.connect("ws://127.0.0.1:" .. sref().port .. "/d", {
        on_open = function(e) e:send("echo me") end,
        on_message = function(_, d) got = d end,
      }, loop)
      assert.is_truthy(step_until(loop, function() return got end))
      assert.are.equal("echo me", got)
      -- no longer listening: its open connections keep it (and their callbacks) alive
      sref():close(1000, "bye")
      full_gc()
      assert.is_not_nil(sref())
      assert.is_truthy(step_until(loop, function()
        return c.ready_state == "CLOSED" and echo.ready_state == "CLOSED" and loop:members() == 0
      end))
      assert.are.equal(1000, c.close_code)
      full_gc()
      assert.is_nil(sref())
      assert.are.equal("/b", acc["/b"].path) -- the server went before them
      assert.are.equal(1000, acc["/b"].close_code)
      assert.is_nil(acc["/b"].server)
      loop:close()
    end)

  it("loop:close() releases open, closing and closed server connections, with a path and topics", function()
    local loop = core.loop()
    local srv, clients, acc = server_and_clients(loop, { "/room/42/long-enough-path", "/", "/gone" }, {
      on_open = function(c) if c.path ~= "/gone" then c:subscribe("t1"); c:subscribe("t2") end end,
    })
    clients[3]:close()
    assert.is_truthy(step_until(loop, function() return acc["/gone"].ready_state == "CLOSED" end))
    local long = acc["/room/42/long-enough-path"]
    local topics = long:topics()
    table.sort(topics)
    assert.are.same({ "t1", "t2" }, topics)
    assert.are.equal(2, srv:subscribers("t1"))
    assert.are.equal("/", acc["/"].path)
    acc["/"]:close() -- closing while the loop closes
    local refs = {}
    for p, c in pairs(acc) do refs[p] = weak(c) end
    loop:close()
    for _, c in pairs(acc) do
      assert.are.equal("CLOSED", c.ready_state)
      assert.are.same({}, c:topics())
      assert.are.same({ nil, "connection is closed" }, { c:send("x") })
    end
    assert.are.equal("/room/42/long-enough-path", long.path)
    assert.are.equal(0, srv:subscribers("t1"))
    acc, long, srv, clients = nil, nil, nil, nil -- luacheck: ignore 311
    full_gc()
    for p, ref in pairs(refs) do assert.is_nil(ref(), p) end
  end)

  it("closed server connections collected one by one leave the loop free to go once the server has gone",
    function()
      -- (in functions of their own: a register of this one would keep
      -- what it passed on alive)
      local function setup()
        local loop = core.loop()
        local srv, clients, acc = server_and_clients(loop, { "/1", "/2", "/3" })
        for _, c in ipairs(clients) do c:close() end
        assert.is_truthy(step_until(loop, function()
          for i = 1, 3 do
            if acc["/" .. i].ready_state ~= "CLOSED" or clients[i].ready_state ~= "CLOSED" then return false end
          end
          return loop:members() == 1 -- their transports are done too
        end))
        acc["/2"] = nil -- the middle one of the loop's list first
        full_gc()
        return weak(loop), weak(srv)
      end
      local lref, sref = setup()
      full_gc()
      assert.is_not_nil(lref()) -- the server still listens on it
      local function stop() sref():close() end
      stop()
      full_gc()
      assert.is_nil(sref())
      assert.is_nil(lref())
    end)

  it("exit with server connections open, closing and closed: each peer gets its close", function()
    local child = exit.spawn([[
      local core = require "ws.core"
      local loop = core.loop()
      local seen = {}
      local srv = core.listen({ host = "127.0.0.1", port = 0,
        on_open = function(c) seen[#seen + 1] = c; c:subscribe("t") end }, loop)
      local codes = {}
      for i = 1, 3 do
        core.connect("ws://127.0.0.1:" .. srv.port .. "/p" .. i, {
          on_close = function(_, code) codes[#codes + 1] = code end }, loop)
      end
      while #seen < 3 do loop:step(0.05) end
      seen[1]:close(4001)
      while #codes < 1 do loop:step(0.05) end
      seen[2]:close(4002)
      print("CODES " .. table.concat(codes, " "))
    ]])
    assert.are.equal(0, child:wait(), child:describe())
    assert.are.equal("CODES 4001\n", child:output())
    assert.are.equal("", child:errors())
  end)
end)
