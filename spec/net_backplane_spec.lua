-- The Redis backplane (ws.redis, srv:attach, the backplane option of
-- ws.listen) against a real redis-server (spec/helpers/redis.lua) and
-- lua-ws server processes: a publish on any node reaches the subscribers
-- of every node once, in order per publisher, text and binary kept; a node
-- SUBSCRIBEs to a channel only while it has local subscribers; Redis killed
-- and restarted mid-run (local delivery goes on, cross-node publishes
-- report failure, every live topic is subscribed again); AUTH with a
-- password and with an ACL user, AUTH refused; bp:close(), srv:detach(),
-- server close, loop close and script exit with a backplane attached.
-- Lua 5.1 compatible.
local net = require "spec.helpers.net_util"
local redis = require "spec.helpers.redis"
local ws = require "ws"

-- A lua-ws node in its own process: arg redis port, password, username,
-- prefix ("" for none).  Prints "PORT <n>", then CONNECTED / DISCONNECTED
-- as its backplane goes up and down, and "ERROR <err>" per on_error.
-- Its clients send "sub:T" (answer "subscribed") and "pub:T:kind:data"
-- (answer "published <count> <ok> <err>").
local NODE = [==[
local ws = require "ws"
local function opt(s) if s and s ~= "" then return s end end
local bp = ws.redis { port = tonumber(arg[1]), password = opt(arg[2]), username = opt(arg[3]),
  prefix = opt(arg[4]), backoff = { initial = 0.05, max = 0.2 },
  on_error = function(_, err) print("ERROR " .. err) end }
local srv
srv = ws.listen { host = "127.0.0.1", port = 0, backplane = bp,
  on_message = function(c, data)
    local t = data:match("^sub:(.*)$")
    if t then c:subscribe(t) c:send("subscribed") return end
    local topic, kind, msg = data:match("^pub:([^:]*):(%a+):(.*)$")
    if topic then
      local n, ok, err = srv:publish(topic, msg, kind)
      c:send(("published %d %s %s"):format(n, tostring(ok), tostring(err)))
    end
  end }
print("PORT " .. srv.port)
local was = false
ws.every(0.02, function()
  if bp.connected ~= was then
    was = bp.connected
    print(was and "CONNECTED" or "DISCONNECTED")
  end
end)
ws.run()
]==]

local function node(r, password, username, prefix)
  local child = net.spawn_lua(NODE, r.port, password or "", username or "", prefix or "")
  local port = tonumber(child:wait_output("PORT (%d+)", 15))
  child:wait_output("CONNECTED", 15)
  return child, port
end

local function connect(port, path)
  return assert(net.connect("ws://127.0.0.1:" .. port .. (path or "/")))
end

-- The next message that is not a command's answer.
local function next_message(c, timeout)
  while true do
    local data, kind, code = c:receive(timeout or 5)
    if not data then return nil, kind, code end
    if not data:match("^subscribed$") and not data:match("^published ") then return data, kind end
  end
end

local function subscribe(c, topic)
  assert(c:send("sub:" .. topic))
  assert.are.equal("subscribed", c:receive(5))
end

local function contains(list, x)
  for _, v in ipairs(list) do if v == x then return true end end
  return false
end

local function fast_backoff(opts)
  opts.backoff = { initial = 0.05, max = 0.2 }
  return opts
end

describe("redis backplane", function()
  if not redis.available() then
    it("needs redis-server (scripts/deps.sh installs it)", function()
      error("redis-server is not installed")
    end)
    return
  end

  local backplanes = {}
  local function backplane(opts)
    local bp = ws.redis(fast_backoff(opts))
    backplanes[#backplanes + 1] = bp
    return bp
  end

  -- A server on a backplane to r (opts: those of ws.redis; port r.port
  -- unless unix is given) whose clients subscribe to topic, and one client,
  -- once the node has subscribed in Redis: bp, srv, c.
  local function subscribed_node(r, topic, opts)
    if opts.unix == nil and opts.port == nil then opts.port = r.port end
    local bp = backplane(opts)
    local srv = net.listen { backplane = bp, on_open = function(c) c:subscribe(topic) end }
    local c = connect(srv.port)
    assert.is_truthy(net.wait_until(function() return bp.connected and r:numsub("ws:" .. topic) == 1 end, 10))
    return bp, srv, c
  end

  after_each(function()
    for _, bp in ipairs(backplanes) do bp:close() end
    backplanes = {}
    net.cleanup()
    redis.stop_all()
    collectgarbage()
    collectgarbage()
  end)

  it("clients on different nodes see every publish once, in order per publisher, kinds kept", function()
    local r = redis.start()
    local _, pa = node(r)
    local _, pb = node(r)
    local _, pc = node(r)
    local a1, b1, b2, c1 = connect(pa), connect(pb), connect(pb), connect(pc)
    for _, c in ipairs { a1, b1, b2, c1 } do subscribe(c, "room") end
    -- Three nodes, each subscribed once however many local subscribers.
    assert.is_truthy(net.wait_until(function() return r:numsub("ws:room") == 3 end, 10))
    local N = 30
    for i = 1, N do
      assert(a1:send("pub:room:text:A" .. i .. " é"))
      assert(c1:send("pub:room:binary:C" .. i .. "\0\255", "binary"))
    end
    for _, c in ipairs { a1, b1, b2, c1 } do
      local from_a, from_c = {}, {}
      for _ = 1, 2 * N do
        local data, kind = next_message(c, 5)
        assert(data, "missing messages: " .. tostring(kind))
        if data:sub(1, 1) == "A" then
          assert.are.equal("text", kind)
          from_a[#from_a + 1] = data
        else
          assert.are.equal("binary", kind)
          from_c[#from_c + 1] = data
        end
      end
      for i = 1, N do
        assert.are.equal("A" .. i .. " é", from_a[i])
        assert.are.equal("C" .. i .. "\0\255", from_c[i])
      end
      -- Nothing twice: a node does not deliver the echo of its own publish.
      assert.are.same({ nil, "timeout" }, { next_message(c, 0.3) })
    end
    -- A topic nobody else has: the publisher's node delivers it alone.
    subscribe(b1, "solo")
    assert(b1:send("pub:solo:text:only"))
    assert.are.equal("only", next_message(b1, 5))
  end)

  it("joins the workers of ws.workers: a publish in one worker reaches the clients of every worker", function()
    local r = redis.start()
    local probe = net.listen {}
    local port = probe.port
    probe:close()
    -- Each worker makes its own backplane (a backplane made before the
    -- fork would make ws.workers raise: it is a member of the loop).
    local sup = net.spawn_lua([[
      local ws = require "ws"
      local rport, port = tonumber(arg[1]), tonumber(arg[2])
      local bp0 = ws.redis { port = rport }
      assert(not pcall(ws.workers, 2, function() end), "ws.workers took a loop with a backplane")
      bp0:close()
      ws.run()
      print("SUPERVISOR")
      local ok, err = ws.workers(2, function(id)
        local bp = ws.redis { port = rport, backoff = { initial = 0.05, max = 0.2 } }
        local srv
        srv = ws.listen { host = "127.0.0.1", port = port, reuseport = true, backplane = bp,
          on_message = function(c, data)
            if data == "who" then c:send("worker " .. id) return end
            local t = data:match("^sub:(.*)$")
            if t then c:subscribe(t) c:send("subscribed") return end
            srv:publish("room", data)
          end }
        ws.run()
      end)
      print("END", ok, err)
    ]], r.port, port)
    sup:wait_output("SUPERVISOR", 10)
    -- Connect until both workers have a client (the kernel picks).
    local by_worker = {}
    local n = 0
    assert.is_truthy(net.wait_until(function()
      local ok, c = pcall(connect, port)
      if ok then
        n = n + 1
        assert(c:send("who"))
        local id = assert(c:receive(5))
        by_worker[id] = by_worker[id] or {}
        table.insert(by_worker[id], c)
        subscribe(c, "room")
      end
      return by_worker["worker 1"] and by_worker["worker 2"] or n > 40
    end, 20))
    assert(by_worker["worker 1"] and by_worker["worker 2"], "one worker got every connection")
    assert.is_truthy(net.wait_until(function() return r:numsub("ws:room") == 2 end, 10))
    local a, b = by_worker["worker 1"][1], by_worker["worker 2"][1]
    assert(a:send("from worker 1"))
    assert(b:send("from worker 2"))
    for _, list in pairs(by_worker) do
      for _, c in ipairs(list) do
        local got = {}
        for _ = 1, 2 do got[#got + 1] = next_message(c, 5) end
        table.sort(got)
        assert.are.same({ "from worker 1", "from worker 2" }, got)
      end
    end
    -- SIGTERM: the workers close their clients with 1001 and end cleanly.
    sup:signal("TERM")
    for _, list in pairs(by_worker) do
      for _, c in ipairs(list) do
        local data, err, code = next_message(c, 10)
        assert.are.same({ nil, "closed", 1001 }, { data, err, code })
      end
    end
    sup:wait_output("END\ttrue\tTERM", 15)
  end)

  it("subscribes a channel only while the node has local subscribers of its topic", function()
    local r = redis.start()
    local bp = backplane { port = r.port }
    local by_path = {}
    local srv = net.listen { backplane = bp, on_open = function(c) by_path[c.path] = c end }
    assert.are.equal(srv, bp.server)
    -- The prefix's own channel keeps the connection in subscriber mode.
    assert.is_truthy(net.wait_until(function() return bp.connected and #r:channels("ws:*") == 1 end, 10))
    assert.are.same({ "ws:" }, r:channels("ws:*"))
    local ca, cb = connect(srv.port, "/a"), connect(srv.port, "/b")
    assert(net.wait_until(function() return by_path["/a"] and by_path["/b"] end))
    local sa, sb = by_path["/a"], by_path["/b"]
    assert.is_true(sa:subscribe("x"))
    assert.is_truthy(net.wait_until(function() return contains(r:channels("ws:*"), "ws:x") end, 5))
    assert.is_true(sb:subscribe("x"))
    assert.is_true(sa:unsubscribe("x"))
    -- Commands reach Redis in order: once "sync" is there, an
    -- UNSUBSCRIBE of x sent before it would have been applied.
    assert.is_true(sa:subscribe("sync"))
    assert.is_truthy(net.wait_until(function() return contains(r:channels("ws:*"), "ws:sync") end, 5))
    assert.are.same({ "ws:", "ws:sync", "ws:x" }, r:channels("ws:*"))
    assert.are.equal(1, r:numsub("ws:x"))
    -- The last subscriber leaves by closing.
    cb:close()
    assert.is_truthy(net.wait_until(function() return not contains(r:channels("ws:*"), "ws:x") end, 5))
    assert.are.same({ "ws:", "ws:sync" }, r:channels("ws:*"))
    -- Many topics come and go; what stays subscribed is what is live.
    for i = 1, 200 do sa:subscribe("t" .. i) end
    for i = 1, 200, 2 do sa:unsubscribe("t" .. i) end
    assert.is_true(sa:subscribe("sync2"))
    assert.is_truthy(net.wait_until(function() return contains(r:channels("ws:*"), "ws:sync2") end, 5))
    assert.are.equal(2 + 100 + 1, #r:channels("ws:*"))
    assert.are.equal(0, r:numsub("ws:t1"))
    assert.are.equal(1, r:numsub("ws:t2"))
    -- Detached: every topic channel goes; the prefix channel stays while bp is open.
    assert.is_true(srv:detach())
    assert.is_false(srv:detach())
    assert.is_nil(bp.server)
    assert.is_truthy(net.wait_until(function() return #r:channels("ws:*") == 1 end, 5))
    local n, ok = srv:publish("sync", "local only")
    assert.are.equal(1, n)
    assert.is_nil(ok)
    -- Attached again: the live topics are subscribed again.
    assert.is_true(srv:attach(bp))
    assert.is_truthy(net.wait_until(function() return #r:channels("ws:*") == 103 end, 5))
    bp:close()
    assert.is_true(bp.closed)
    assert.is_false(bp.connected)
    assert.is_nil(bp.server)
    assert.is_truthy(net.wait_until(function() return #r:channels("ws:*") == 0 end, 5))
    assert.are.equal(1, select("#", srv:publish("sync", "x")))
    ca:close()
  end)

  it("puts topics under a configurable prefix", function()
    local r = redis.start()
    local bp = backplane { port = r.port, prefix = "app1:" }
    local srv = net.listen { on_open = function(c) c:subscribe("news") end }
    srv:attach(bp)
    connect(srv.port)
    assert.is_truthy(net.wait_until(function() return #r:channels("app1:*") == 2 end, 10))
    assert.are.same({ "app1:", "app1:news" }, r:channels("app1:*"))
    assert.are.same({}, r:channels("ws:*"))
  end)

  it("reaches Redis over a Unix socket", function()
    local r = redis.start()
    local _, _, c = subscribed_node(r, "news", { unix = r.unix })
    assert.matches("1", r:cli("PUBLISH", "ws:news", "b" .. ("\1"):rep(8) .. "over unix"))
    assert.are.same({ "over unix", "binary" }, { c:receive(5) })
  end)

  it("keeps local delivery through a Redis restart, reports failures, resubscribes", function()
    local r = redis.start()
    local errors = {}
    local bp
    bp = backplane { port = r.port, on_error = function(b, err)
      assert.are.equal(bp, b)
      errors[#errors + 1] = err
    end }
    local srv = net.listen { backplane = bp, on_open = function(c) c:subscribe("room") end }
    local child, pb = node(r)
    local x = connect(srv.port)
    local y = connect(pb)
    subscribe(y, "room")
    assert.is_truthy(net.wait_until(function() return bp.connected and r:numsub("ws:room") == 2 end, 10))
    assert(y:send("pub:room:text:before"))
    assert.are.equal("before", x:receive(5))
    assert.are.equal("before", next_message(y, 5))

    r:kill()
    assert.is_truthy(net.wait_until(function() return not bp.connected end, 5))
    assert.is_truthy(net.wait_until(function() return #errors > 0 end, 5))
    assert.matches("redis %a+: connection lost", errors[1])
    assert.are.equal(errors[#errors], bp.last_error)
    -- Local delivery goes on; the cross-node part reports the failure.
    local n, ok, err = srv:publish("room", "during")
    assert.are.equal(1, n)
    assert.is_false(ok)
    assert.matches("not connected", err)
    assert.are.equal("during", x:receive(5))
    assert.is_true(bp:stats().failed >= 1)
    net.run_for(0.5) -- a few reconnect attempts fail meanwhile
    assert.is_false(bp.connected)

    r:restart()
    assert.is_truthy(net.wait_until(function() return bp.connected and r:numsub("ws:room") == 2 end, 10))
    child:wait_output("DISCONNECTED.*CONNECTED", 10)
    assert.is_true(bp:stats().reconnects >= 1)
    n, ok = srv:publish("room", "after")
    assert.are.same({ 1, true }, { n, ok })
    assert.are.equal("after", next_message(y, 5))
    assert.are.equal("after", x:receive(5))
    assert(y:send("pub:room:text:after2"))
    assert.are.equal("after2", x:receive(5))
    assert.are.equal("after2", next_message(y, 5))
    -- Nothing of the outage arrives late, nothing twice.
    assert.are.same({ nil, "timeout" }, { x:receive(0.3) })
    assert.are.same({ nil, "timeout" }, { next_message(y, 0.3) })
  end)

  it("a node that stops reading is cut by Redis and comes back subscribed", function()
    local r = redis.start()
    assert.matches("OK", r:cli("CONFIG", "SET", "client-output-buffer-limit", "pubsub 65536 32768 1"))
    local bp = backplane { port = r.port }
    local srv = net.listen { backplane = bp }
    local child, pb = node(r)
    local y = connect(pb)
    subscribe(y, "room")
    assert.is_truthy(net.wait_until(function() return bp.connected and r:numsub("ws:room") == 1 end, 10))
    child:stop()
    -- More than the kernel's socket buffers hold, so Redis's own output grows.
    local chunk = ("z"):rep(4096)
    for i = 1, 5000 do
      local n, ok = srv:publish("room", chunk)
      assert.are.same({ 0, true }, { n, ok }, "publish " .. i)
      if i % 50 == 0 then net.run_for(0.01) end
    end
    -- Redis drops the subscriber whose output it cannot get rid of.
    assert.is_truthy(net.wait_until(function() return r:numsub("ws:room") == 0 end, 10))
    child:cont()
    child:wait_output("ERROR redis subscriber: connection lost", 10)
    assert.is_truthy(net.wait_until(function() return r:numsub("ws:room") == 1 end, 10))
    assert.are.same({ 0, true }, { srv:publish("room", "after") })
    local seen = 0
    while true do
      local data = assert(next_message(y, 5))
      if data == "after" then break end
      assert.are.equal(chunk, data) -- what node B had read before the cut
      seen = seen + 1
    end
    assert.is_true(seen < 5000)
    assert.are.same({ nil, "timeout" }, { next_message(y, 0.3) })
  end)

  it("notices a Redis that hangs (PING unanswered), bounds what piles up meanwhile, and comes back", function()
    local r = redis.start()
    local errors = {}
    local bp, srv, c = subscribed_node(r, "t", { ping_interval = 0.5, max_pending = 2048,
      on_error = function(_, err) errors[#errors + 1] = err end })
    r:pause()
    -- Unanswered PUBLISHes count against max_pending: past it, publishes fail at once.
    local sent, refused, reason = 0, 0, nil
    for i = 1, 50 do
      local n, ok, err = srv:publish("t", ("%03d"):format(i) .. ("x"):rep(97))
      assert.are.equal(1, n) -- local delivery goes on
      if ok then sent = sent + 1 else refused, reason = refused + 1, err end
    end
    assert.are.equal(18, sent) -- 18 * 109 bytes fit in 2048
    assert.are.equal(32, refused)
    assert.matches("not keeping up", reason)
    for _ = 1, 50 do assert(c:receive(5)) end
    assert.is_truthy(net.wait_until(function() return not bp.connected end, 5))
    assert.is_truthy(net.wait_until(function() return #errors > 0 end, 5))
    assert.matches("redis publisher: no answer to PING in 0.5 s", errors[1])
    r:resume()
    assert.is_truthy(net.wait_until(function() return bp.connected and r:numsub("ws:t") == 1 end, 10))
    assert.are.same({ 1, true }, { srv:publish("t", "again") })
    assert.are.equal("again", c:receive(5))
    assert.matches("1", r:cli("PUBLISH", "ws:t", "t" .. ("\1"):rep(8) .. "from outside"))
    assert.are.equal("from outside", c:receive(5))
    -- The PUBLISHes Redis had taken before it stopped are not delivered twice.
    assert.are.same({ nil, "timeout" }, { c:receive(0.3) })
  end)

  it("out of file descriptors: reports, retries, and connects once descriptors free up", function()
    local r = redis.start()
    local child = net.spawn_lua_limited(64, [[
      local ws = require "ws"
      local srv = ws.listen { port = 0 }
      local nofile = require "spec.helpers.nofile"
      local hold = nofile.use_up()
      local bp = ws.redis { port = tonumber(arg[1]), backoff = { initial = 0.05, max = 0.1 },
        on_error = function(_, err) print("ERROR " .. err) end }
      srv:attach(bp)
      ws.timer(0.5, function()
        print("FREEING")
        nofile.release(hold)
        hold = {}
      end)
      local poll
      poll = ws.every(0.02, function()
        if bp.connected then
          print("CONNECTED " .. bp:stats().reconnects)
          poll:cancel()
          bp:close()
          srv:close()
        end
      end)
      ws.run()
      print("END")
    ]], r.port)
    child:wait_output("END", 15)
    local out = child:output()
    assert.matches("ERROR redis %a+: cannot connect: [^\n]*[Tt]oo many open files", out)
    assert.matches("FREEING.*CONNECTED %d+", out)
    assert.are.equal("", child:errors())
  end)

  it("authenticates with a password and with an ACL user; a refused AUTH is reported and retried", function()
    local r = redis.start { password = "s3cret", users = { "alice on >alicepw ~* &* +@all" } }
    local errs = {}
    local function collect(tag) return function(_, err) errs[#errs + 1] = tag .. ": " .. err end end
    local wrong = backplane { port = r.port, password = "nope", on_error = collect("wrong") }
    local none = backplane { port = r.port, on_error = collect("none") }
    local srv0 = net.listen { backplane = wrong }
    assert.is_truthy(net.wait_until(function()
      local w, n = false, false
      for _, e in ipairs(errs) do
        if e:match("^wrong: redis %a+: AUTH refused") then w = true end
        if e:match("^none: redis %a+: NOAUTH") then n = true end
      end
      return w and n
    end, 10))
    assert.is_false(wrong.connected)
    assert.is_false(none.connected)
    local n, ok, err = srv0:publish("t", "x")
    assert.are.same({ 0, false }, { n, ok })
    assert.is_string(err)
    -- It keeps trying (with backoff) without crashing or piling up.
    net.run_for(0.5)
    assert.is_true(wrong:stats().reconnects >= 1)
    wrong:close()
    none:close()

    local bp1 = backplane { port = r.port, password = "s3cret" }
    local bp2 = backplane { port = r.port, username = "alice", password = "alicepw" }
    local s1 = net.listen { backplane = bp1, on_open = function(c) c:subscribe("t") end }
    local s2 = net.listen { backplane = bp2, on_open = function(c) c:subscribe("t") end }
    local c1, c2 = connect(s1.port), connect(s2.port)
    assert.is_truthy(net.wait_until(function()
      return bp1.connected and bp2.connected and r:numsub("ws:t") == 2
    end, 10))
    assert.are_not.equal(bp1.node, bp2.node)
    assert.are.same({ 1, true }, { s1:publish("t", "from 1") })
    assert.are.same({ 1, true }, { s2:publish("t", "from 2", "binary") })
    -- Each gets its own node's publish at once and the other's through Redis.
    for _, c in ipairs { c1, c2 } do
      local got = {}
      for _ = 1, 2 do
        local data, kind = c:receive(5)
        got[#got + 1] = tostring(data) .. " " .. tostring(kind)
      end
      table.sort(got)
      assert.are.same({ "from 1 text", "from 2 binary" }, got)
    end
  end)

  it("drops messages on its channels that lua-ws did not publish", function()
    local r = redis.start()
    local bp, _, c = subscribed_node(r, "t", {})
    assert.matches("1", r:cli("PUBLISH", "ws:t", "hello"))
    assert.matches("1", r:cli("PUBLISH", "ws:t", "x12345678not utf8 \255"))
    assert.matches("1", r:cli("PUBLISH", "ws:t", "t12345678fine"))
    assert.are.equal("fine", c:receive(5))
    assert.are.equal(2, bp:stats().dropped)
    assert.are.equal(1, bp:stats().received)
  end)

  it("ends cleanly: server closed, loop closed, script exit with a backplane attached", function()
    local r = redis.start()
    local bp = backplane { port = r.port }
    local srv = net.listen { backplane = bp, on_open = function(c) c:subscribe("t") end }
    local c = connect(srv.port)
    assert.is_truthy(net.wait_until(function() return r:numsub("ws:t") == 1 end, 10))
    srv:close()
    assert.is_truthy(net.wait_until(function() return c.ready_state == "CLOSED" end, 5))
    assert.is_truthy(net.wait_until(function() return r:numsub("ws:t") == 0 end, 5))
    assert.are.same({ 0, true }, { srv:publish("t", "x") })

    -- A loop of its own, closed: the backplane is closed with it.
    local core = require "ws.core"
    local loop = core.loop()
    local b2 = core.redis({ port = r.port }, loop)
    local deadline = net.now() + 10
    while not b2.connected and net.now() < deadline do loop:step(0.01) end
    assert.is_true(b2.connected)
    loop:close()
    assert.is_true(b2.closed)
    assert.is_false(b2.connected)

    -- Script exit, and os.exit inside a callback, with a backplane attached.
    for _, how in ipairs { "end", "exit" } do
      local child = net.spawn_lua([[
        local ws = require "ws"
        local bp = ws.redis { port = tonumber(arg[1]) }
        local srv = ws.listen { port = 0, backplane = bp }
        local guard = ws.timer(10, function() os.exit(3) end)
        local poll
        poll = ws.every(0.01, function()
          if bp.connected then
            srv:publish("t", "bye")
            print("DONE")
            if arg[2] == "exit" then os.exit(0, true) end
            poll:cancel()
            guard:cancel()
            srv:close() -- the backplane stays attached: the script ends with it
          end
        end)
        ws.run()
        print("RETURNED")
      ]], r.port, how)
      child:wait_output("DONE", 10)
      assert.is_truthy(child:wait_exit(10))
      assert.are.equal(how == "end", child:output():match("RETURNED") ~= nil)
      assert.are.equal("", child:errors())
    end
  end)

  it("rejects bad options and misuse with clear errors", function()
    assert.has_error(function() ws.redis() end, "bad argument #1 to 'redis' (table expected, got nil)")
    assert.error_matches(function() ws.redis { prot = 1 } end, "unknown option 'prot' %(did you mean 'port'%?%)")
    assert.error_matches(function() ws.redis { port = "x" } end, "'port' must be")
    assert.error_matches(function() ws.redis { prefix = "" } end, "'prefix' must be 1 to 255 bytes")
    assert.error_matches(function() ws.redis { username = "u" } end, "'username' needs 'password'")
    assert.error_matches(function() ws.redis { backoff = { intial = 1 } } end, "backoff%.intial")
    assert.error_matches(function() ws.redis { on_error = 1 } end, "'on_error' must be a function")
    assert.error_matches(function() ws.redis { ping_interval = 0 } end, "'ping_interval' must be")
    assert.error_matches(function() ws.redis { max_pending = 10 } end, "'max_pending' must be")
    assert.error_matches(function() net.listen { backplane = 1 } end,
      "'backplane' must be a backplane %(ws.redis%), got number")
    local bp = backplane { port = 1 } -- nothing listens there: it keeps retrying quietly
    local s1, s2 = net.listen {}, net.listen {}
    assert.error_matches(function() s1:attach("x") end, "a backplane %(ws.redis%) expected")
    assert.is_true(s1:attach(bp))
    assert.is_true(s1:attach(bp)) -- already
    assert.error_matches(function() s2:attach(bp) end, "attached to another server")
    assert.error_matches(function() net.listen { backplane = bp } end, "attached to another server")
    local other = backplane { port = 1 }
    assert.error_matches(function() s1:attach(other) end, "has a backplane already")
    other:close()
    assert.error_matches(function() s2:attach(other) end, "the backplane is closed")
    assert.error_matches(function() bp.connected = true end, "read%-only")
    assert.matches("^ws.backplane %(connecting%)", tostring(bp))
  end)
end)
