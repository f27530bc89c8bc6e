-- Topics: c:subscribe / c:unsubscribe / c:topics on a server's connections,
-- srv:publish / srv:subscribers.  A publish reaches exactly the subscribers,
-- in order, from inside a callback or outside; a connection leaves its
-- topics as it closes (either side, server close, script exit); a reader
-- that stops does not hold up the others; cycles leave nothing behind.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"

local topic_util = require "spec.helpers.topics"
local topic_server, server_side, drain = topic_util.server, topic_util.side, topic_util.drain

local function client(srv, path, opts)
  local c = assert(net.connect(net.url(srv, path), opts))
  return c
end

describe("topics", function()
  after_each(function()
    net.cleanup()
    collectgarbage()
    collectgarbage()
  end)

  it("a publish reaches exactly the subscribers of its topic, in order", function()
    local srv, by_path = topic_server()
    local a, b, c = client(srv, "/a"), client(srv, "/b"), client(srv, "/c")
    local sa, sb, sc = server_side(by_path, "/a"), server_side(by_path, "/b"), server_side(by_path, "/c")
    assert.is_true(sa:subscribe("news"))
    assert.is_false(sa:subscribe("news")) -- already
    assert.is_true(sb:subscribe("news"))
    assert.is_true(sb:subscribe("sport"))
    assert.is_true(sc:subscribe("sport"))
    local topics = sb:topics()
    table.sort(topics)
    assert.are.same({ "news", "sport" }, topics)
    assert.are.equal(2, srv:subscribers("news"))
    assert.are.equal(2, srv:subscribers("sport"))
    assert.are.equal(0, srv:subscribers("weather"))
    for i = 1, 50 do
      assert.are.equal(2, srv:publish("news", "n" .. i))
      assert.are.equal(2, srv:publish("sport", "s" .. i, "binary"))
    end
    assert.are.equal(0, srv:publish("weather", "nobody"))
    local ga, gb, gc = drain(a, sa), drain(b, sb), drain(c, sc)
    local news, sport, both = {}, {}, {}
    for i = 1, 50 do
      news[i], sport[i] = "n" .. i, "s" .. i
      both[#both + 1] = "n" .. i
      both[#both + 1] = "s" .. i
    end
    assert.are.same(news, ga)
    assert.are.same(both, gb)
    assert.are.same(sport, gc)
  end)

  it("publish works from inside a callback; topic names are any bytes", function()
    local srv, by_path = topic_server()
    local a, b = client(srv, "/a"), client(srv, "/b")
    a:send("sub:room\0one")
    assert.are.equal("true", a:receive(5))
    b:send("sub:room\0one")
    assert.are.equal("true", b:receive(5))
    a:send("topics")
    assert.are.equal("room\0one", a:receive(5))
    b:send("pub:room\0one:hello") -- the pattern stops at the first ':'
    assert.are.equal("hello", (b:receive(5)))
    assert.are.equal("count:2", (b:receive(5)))
    assert.are.equal("hello", (a:receive(5)))
    assert.are.same({}, drain(a, server_side(by_path, "/a")))
  end)

  it("unsubscribe stops delivery; the last one out removes the topic", function()
    local srv, by_path = topic_server()
    local a, b = client(srv, "/a"), client(srv, "/b")
    local sa, sb = server_side(by_path, "/a"), server_side(by_path, "/b")
    sa:subscribe("t")
    sb:subscribe("t")
    sb:subscribe("u")
    assert.is_true(sa:unsubscribe("t"))
    assert.is_false(sa:unsubscribe("t"))
    assert.is_false(sa:unsubscribe("never"))
    assert.are.same({}, sa:topics())
    assert.are.equal(1, srv:publish("t", "only b"))
    assert.are.same({}, drain(a, sa))
    assert.are.same({ "only b" }, drain(b, sb))
    assert.is_true(sb:unsubscribe("t"))
    assert.are.same({ "u" }, sb:topics())
    assert.are.equal(0, srv:subscribers("t"))
    assert.are.equal(0, srv:publish("t", "nobody"))
    assert.are.equal(1, srv:publish("u", "still"))
    assert.are.same({ "still" }, drain(b, sb))
  end)

  it("a connection's topic list goes from one topic to many, to none and back", function()
    -- the first topic is kept inline, more move to an array, and an empty
    -- list starts inline again
    local srv, by_path = topic_server()
    client(srv, "/grow")
    local sc = server_side(by_path, "/grow")
    local function sorted_topics()
      local got = sc:topics()
      table.sort(got)
      return got
    end
    for round = 1, 2 do
      assert.is_true(sc:subscribe("a"))
      assert.are.same({ "a" }, sorted_topics())
      for _, t in ipairs { "b", "c", "d", "e" } do assert.is_true(sc:subscribe(t)) end
      assert.are.same({ "a", "b", "c", "d", "e" }, sorted_topics())
      -- the inline entry's topic leaves first: the others stay reachable
      assert.is_true(sc:unsubscribe("a"))
      assert.are.equal(0, srv:publish("a", "x"))
      assert.are.equal(1, srv:publish("e", "x" .. round))
      for _, t in ipairs { "b", "c", "d", "e" } do assert.is_true(sc:unsubscribe(t)) end
      assert.are.same({}, sorted_topics())
      assert.are.equal(0, srv:subscribers("b"))
    end
    assert.is_true(sc:subscribe("z"))
    assert.are.equal(1, srv:publish("z", "last"))
  end)

  it("any mix of subscribe and unsubscribe matches a model of who is where", function()
    local srv, by_path = topic_server()
    local conns, model = {}, {}
    for i = 1, 4 do
      client(srv, "/m" .. i)
      conns[i] = server_side(by_path, "/m" .. i)
      model[i] = {}
    end
    math.randomseed(17)
    local function count(topic)
      local n = 0
      for i = 1, #conns do if model[i][topic] then n = n + 1 end end
      return n
    end
    for _ = 1, 4000 do
      local i, topic = math.random(#conns), "t" .. math.random(25)
      if math.random(2) == 1 then
        assert.are.equal(not model[i][topic], conns[i]:subscribe(topic))
        model[i][topic] = true
      else
        assert.are.equal(model[i][topic] == true, conns[i]:unsubscribe(topic))
        model[i][topic] = nil
      end
      assert.are.equal(count(topic), srv:subscribers(topic))
    end
    for i = 1, #conns do
      local want = {}
      for topic in pairs(model[i]) do want[#want + 1] = topic end
      table.sort(want)
      local got = conns[i]:topics()
      table.sort(got)
      assert.are.same(want, got)
    end
    for t = 1, 25 do assert.are.equal(count("t" .. t), srv:publish("t" .. t, "m")) end
  end)

  it("a connection leaves its topics when either side closes it, and on srv:close", function()
    local srv, by_path, closed = topic_server()
    local a, b = client(srv, "/a"), client(srv, "/b")
    client(srv, "/c")
    local sa, sb, sc = server_side(by_path, "/a"), server_side(by_path, "/b"), server_side(by_path, "/c")
    for _, s in ipairs { sa, sb, sc } do
      s:subscribe("all")
      s:subscribe("x")
    end
    assert.are.equal(3, srv:subscribers("all"))
    -- the client closes
    a:close()
    assert.is_true(net.wait_until(function() return #closed == 1 end))
    assert.are.equal(2, srv:subscribers("all"))
    assert.are.same({}, sa:topics())
    local ok, err = sa:subscribe("all")
    assert.is_nil(ok)
    assert.are.equal("connection is closed", err)
    assert.is_false(sa:unsubscribe("all"))
    -- the server closes one: it leaves at once, while CLOSING
    sb:close()
    assert.are.equal(1, srv:subscribers("all"))
    ok, err = sb:subscribe("y")
    assert.is_nil(ok)
    assert.are.equal("connection is closed", err)
    assert.are.equal(1, srv:publish("all", "to c"))
    assert.is_true(net.wait_until(function() return b.ready_state == "CLOSED" end))
    -- the server closes
    srv:close()
    assert.is_true(net.wait_until(function() return #closed == 3 end))
    assert.are.equal(0, srv:subscribers("all"))
    assert.are.equal(0, srv:subscribers("x"))
    assert.are.equal(0, srv:publish("all", "gone"))
  end)

  it("a peer that vanishes (no close frame) leaves its topics", function()
    local srv, by_path, closed = topic_server()
    local raw = assert(net.raw_connect(srv.port))
    raw:send(net.upgrade_request(srv.port, "/raw"))
    local s = server_side(by_path, "/raw")
    s:subscribe("t")
    assert.are.equal(1, srv:subscribers("t"))
    raw:close()
    assert.is_true(net.wait_until(function() return #closed == 1 end))
    assert.are.equal(0, srv:subscribers("t"))
  end)

  it("a subscriber that stops reading does not hold up the others", function()
    local srv, by_path = topic_server { max_buffered = 256 * 1024 }
    local _, fast, slow_s = topic_util.slow_and_fast(srv, by_path, "feed")
    local msg = net.payload(64 * 1024, "binary")
    local n, to_both, received = 200, 0, 0
    for i = 1, n do
      local count = srv:publish("feed", msg, "binary")
      if count == 2 then to_both = to_both + 1 end
      assert.are.equal(i <= 2 and 2 or count, count) -- the first fit everywhere
      assert.is_true(count >= 1, "publish " .. i .. " reached " .. count)
      -- the fast one reads everything before the next publish
      assert(net.wait_until(function()
        while fast:receive(0) do received = received + 1 end
        return received == i
      end, 10), "fast subscriber got " .. received .. " of " .. i)
    end
    assert.is_true(to_both < n, "the slow reader took every message")
    assert.are.equal("OPEN", slow_s.ready_state)
    assert.is_true(slow_s:buffered_amount() <= 256 * 1024 + #msg + 16)
    assert.are.equal(n, received)
  end)

  it("buffer_policy 'close' closes a slow subscriber (1013); the others go on", function()
    local srv, by_path, closed =
      topic_server { max_buffered = 128 * 1024, buffer_policy = "close", close_timeout = 0.3 }
    local _, fast, slow_s = topic_util.slow_and_fast(srv, by_path, "feed")
    local msg = net.payload(64 * 1024, "binary")
    local received = 0
    for i = 1, 100 do
      srv:publish("feed", msg, "binary")
      assert(net.wait_until(function()
        while fast:receive(0) do received = received + 1 end
        return received == i
      end, 10), "fast subscriber got " .. received .. " of " .. i)
    end
    assert.are_not.equal("OPEN", slow_s.ready_state)
    -- it never answers the close (1013): CLOSED at close_timeout, out of the topic
    assert.is_true(net.wait_until(function() return #closed == 1 end, 10))
    assert.are.equal(slow_s, closed[1])
    assert.are.equal(1, srv:subscribers("feed"))
    assert.are.equal(1, srv:publish("feed", "after"))
  end)

  it("with permessage-deflate subscribers get the publish", function()
    local srv, by_path = topic_server { compress = true }
    local a = client(srv, "/z", { compress = true })
    local b = client(srv, "/p")
    assert.truthy(a.extensions and a.extensions:match("permessage%-deflate"))
    local sa, sb = server_side(by_path, "/z"), server_side(by_path, "/p")
    sa:subscribe("t")
    sb:subscribe("t")
    local text = string.rep("compressible ", 100)
    assert.are.equal(2, srv:publish("t", text))
    assert.are.same({ text }, drain(a, sa))
    assert.are.same({ text }, drain(b, sb))
  end)

  it("bad arguments raise naming the topic; a client connection has no topics", function()
    local srv, by_path = topic_server()
    local c = client(srv, "/a")
    local s = server_side(by_path, "/a")
    for _, bad in ipairs { "", 42, false, string.rep("x", 1025) } do
      local ok, err = pcall(function() return s:subscribe(bad) end)
      assert.is_false(ok)
      -- LuaJIT names neither the method nor its argument number here
      assert.matches("bad argument #%d to '[%w?]+' %(topic must be a non%-empty string", err)
      ok, err = pcall(function() return s:unsubscribe(bad) end)
      assert.is_false(ok)
      assert.matches("bad argument #%d to '[%w?]+' %(topic must be", err)
      ok, err = pcall(srv.publish, srv, bad, "x")
      assert.is_false(ok)
      assert.matches("topic must be", err)
      ok, err = pcall(srv.subscribers, srv, bad)
      assert.is_false(ok)
      assert.matches("topic must be", err)
    end
    assert.is_true(s:subscribe(string.rep("x", 1024)))
    local ok, err = pcall(srv.publish, srv, "t", "\255", "text")
    assert.is_false(ok)
    assert.matches("UTF%-8", err)
    ok, err = pcall(function() return srv:publish("t", "x", "blob") end)
    assert.is_false(ok)
    assert.matches("bad argument #%d to '[%w?]+'", err)
    ok, err = pcall(c.subscribe, c, "t")
    assert.is_false(ok)
    assert.matches("server's connections", err)
  end)

  it("subscribe/close and subscribe/unsubscribe cycles leave nothing behind", function()
    local srv, by_path, closed = topic_server()
    local function cycle(i)
      local path = "/cycle" .. i
      local c = client(srv, path)
      local s = server_side(by_path, path)
      for j = 1, 20 do s:subscribe("topic-" .. (i % 7) .. "-" .. j) end
      by_path[path] = nil
      if i % 2 == 0 then c:close() else s:close() end
      assert(net.wait_until(function() return #closed >= i end), "cycle " .. i .. " did not close")
    end
    local keep = client(srv, "/keep")
    local ks = server_side(by_path, "/keep")
    local function churn(from, to)
      for i = from, to do
        assert(ks:subscribe("churn-" .. i))
        if i % 3 == 0 then assert(ks:unsubscribe("churn-" .. i)) end
      end
      for i = from, to do ks:unsubscribe("churn-" .. i) end
    end
    -- warm up to the same peak first: freed memory is reused, not returned
    for i = 1, 40 do cycle(i) end
    churn(1, 20000)
    for i = 41, 240 do cycle(i) end
    -- every closed connection left its topics
    for i = 0, 6 do
      for j = 1, 20 do assert.are.equal(0, srv:subscribers("topic-" .. i .. "-" .. j)) end
    end
    assert.are.same({}, ks:topics())
    keep:close()
  end)

  it("a million subscribe/unsubscribe calls bring memory back to its level", function()
    -- Measured in a fresh process: in the spec process the heap layout left
    -- by earlier specs decides how much of the churn's peak the allocator
    -- hands back, which says nothing about lua-ws.
    local child = net.spawn_lua([[
local ws = require "ws"
local side
local srv = ws.listen { port = 0, on_open = function(c) side = c end }
local c = assert(ws.connect("ws://127.0.0.1:" .. srv.port .. "/"))
while not side do ws.step(0.01) end
local function rss()
  local f = assert(io.open("/proc/self/status", "rb"))
  local s = f:read("*a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end
local function churn(from, to)
  for i = from, to do
    assert(side:subscribe("churn-" .. i))
    if i % 3 == 0 then assert(side:unsubscribe("churn-" .. i)) end
  end
  for i = from, to do side:unsubscribe("churn-" .. i) end
end
churn(1, 20000) -- warm up to the same peak: freed memory is reused, not returned
churn(1, 20000)
for _ = 1, 3 do collectgarbage() end
local kb0, rss0 = collectgarbage("count"), rss()
for b = 1, 50 do churn(b * 20000 + 1, (b + 1) * 20000) end
for _ = 1, 3 do collectgarbage() end
print("TOPICS " .. #side:topics() .. " SUBSCRIBERS " .. srv:subscribers("churn-5"))
print(string.format("HEAP %d RSS %d", math.floor(collectgarbage("count") - kb0), rss() - rss0))
c:close()
]])
    assert.is_true(child:wait_exit(120), "the churn child did not finish")
    assert.are.equal("", child:errors())
    assert.are.equal("0", child:wait_output("TOPICS (%d+)"))
    assert.are.equal("0", child:wait_output("SUBSCRIBERS (%d+)"))
    local heap, rss = child:wait_output("HEAP (%-?%d+) RSS (%-?%d+)")
    heap, rss = tonumber(heap), tonumber(rss)
    assert.is_true(heap < 512, "Lua heap grew by " .. heap .. " KiB")
    -- ASan's quarantine and valgrind keep freed memory: there their own
    -- leak checks stand in for the RSS bound.
    local preload = os.getenv("LD_PRELOAD") or ""
    if not (preload:find("asan") or preload:find("vgpreload")) then
      -- 20 000 subscriptions cost about 2.5 MiB while held; a leak of each
      -- of the million would be well over 30 MiB
      assert.is_true(rss < 4096, "RSS grew by " .. rss .. " KiB")
    end
  end)

  it("a script that exits with subscriptions open ends cleanly", function()
    local child = net.spawn_lua([[
local ws = require "ws"
local srv = ws.listen { port = 0, on_open = function(c) c:subscribe("t"); c:subscribe("u") end }
local c = assert(ws.connect("ws://127.0.0.1:" .. srv.port .. "/"))
while srv:subscribers("u") == 0 do ws.step(0.01) end
print("SENT " .. srv:publish("t", "bye"))
print("GOT " .. tostring(c:receive(5)))
]])
    assert.are.equal("1", child:wait_output("SENT (%d+)"))
    assert.are.equal("bye", child:wait_output("GOT (%a+)"))
    assert.is_true(child:wait_exit(10))
    assert.are.equal("", child:errors())
  end)
end)
