-- Fan-out (srv:broadcast, srv:publish): one frame per message, shared by
-- every receiver's output queue (ws.testing.shared_frames counts them) and
-- freed when the last receiver wrote it or closed.  Order with the
-- connection's own sends, TLS receivers, a receiver that stops reading,
-- closing with frames queued (either side, a vanished peer, loop close,
-- script exit), publishing inside a callback and outside; with
-- permessage-deflate, receivers without context takeover share one
-- compressed frame per window size, the others compress their own.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"
local ws = net.ws
local testing = net.testing

local function stats() return testing.shared_frames() end

local topic_util = require "spec.helpers.topics"
local fan_server, side, drain = topic_util.server, topic_util.side, topic_util.drain

local stalled = topic_util.stalled

local function live_back_to(n)
  return net.wait_until(function()
    collectgarbage()
    return stats().live == n
  end, 10)
end

describe("fan-out", function()
  after_each(function()
    net.cleanup()
    collectgarbage()
    collectgarbage()
  end)

  it("permessage-deflate: every kind of receiver decodes every publish; no-context-takeover ones share", function()
    local srv, by_path = fan_server { compress = { threshold = 32 } }
    local kinds = {
      shared1 = { compress = { server_no_context_takeover = true } },
      shared2 = { compress = { server_no_context_takeover = true } },
      small_window = { compress = { server_no_context_takeover = true, server_max_window_bits = 10 } },
      own1 = { compress = true },
      own2 = { compress = { client_no_context_takeover = true } },
      plain = {},
    }
    local clients, sides = {}, {}
    for name, opts in pairs(kinds) do
      clients[name] = assert(net.connect(net.url(srv, "/" .. name), opts))
      sides[name] = side(by_path, "/" .. name)
      sides[name]:subscribe("t")
    end
    assert.truthy(sides.shared1.extensions:match("server_no_context_takeover"))
    assert.falsy(sides.own1.extensions:match("server_no_context_takeover"))
    assert.is_nil(sides.plain.extensions)
    local want = {}
    for i = 1, 30 do
      -- compressible, each different (a context kept between messages
      -- would shrink the later ones), some under the threshold
      want[i] = i % 5 == 0 and ("short " .. i) or string.rep("message " .. i .. " ", 20 + i)
    end
    local before = stats()
    for i = 1, 30 do
      assert.are.equal(6, srv:publish("t", want[i], i % 2 == 0 and "binary" or "text"))
    end
    local after = stats()
    -- per compressed publish: the plain frame (plain receiver) and one
    -- compressed frame per window (15 and 10 bits); under the threshold
    -- only the plain one
    assert.are.equal(24 * 2, after.compressed - before.compressed)
    assert.are.equal(24 * 3 + 6, after.made - before.made)
    -- the own-context receivers queue copies, not references
    assert.are.equal(24 * 4 + 6 * 6, after.queued - before.queued)
    for name in pairs(kinds) do
      assert.are.same(want, drain(clients[name], sides[name]), name)
    end
    assert.is_true(live_back_to(before.live))
  end)

  it("permessage-deflate: the shared frame is compressed on the wire, the same bytes for each receiver", function()
    local srv, by_path = fan_server { compress = true }
    local ext = "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"
    local raws = {}
    for i = 1, 2 do
      raws[i] = assert(net.raw_connect(srv.port))
      local head = raws[i]:handshake(srv.port, "/r" .. i, ext)
      assert.are.equal(101, head.status)
      assert.truthy(head.headers["sec-websocket-extensions"]:match("server_no_context_takeover"))
      side(by_path, "/r" .. i):subscribe("t")
    end
    local text = string.rep("all the same, all the same ", 40)
    assert.are.equal(2, srv:publish("t", text))
    local frames = {}
    for i = 1, 2 do
      assert.is_true(raws[i]:wait_bytes(2, 5))
      assert(raws[i]:wait(function(d)
        local h = net.ws.core.parse_frame_header(d)
        return h and #d >= h.header_len + h.length
      end, 5))
      local d = raws[i]:data()
      local h = net.ws.core.parse_frame_header(d)
      assert.is_true(h.rsv1)
      assert.are.equal(1, h.opcode)
      assert.is_true(h.length < #text / 4)
      frames[i] = d:sub(1, h.header_len + h.length)
    end
    assert.are.equal(frames[1], frames[2])
    for i = 1, 2 do raws[i]:close() end
  end)

  it("permessage-deflate: Node ws clients with and without server_no_context_takeover decode every publish", function()
    local proc = require "spec.helpers.proc"
    local ws_dir = net.sh("pwd"):match("[^\n]+") .. "/build/interop-node/node_modules/ws"
    if not net.read_file(ws_dir .. "/package.json") then
      pending("Node ws is missing (scripts/interop_deps.sh node-ws)")
      return
    end
    local srv, by_path = fan_server { compress = { threshold = 32 } }
    local script = net.next_name("node") .. ".js"
    net.write_file(script, ([[
const WS = require(%q);
const shared = process.argv[3] === "shared";
const ws = new WS(process.argv[2], { perMessageDeflate: shared ? { serverNoContextTakeover: true } : true });
ws.on("open", () => ws.send("sub:t"));
ws.on("message", (d) => {
  const s = d.toString();
  if (s === "true") console.log("SUBSCRIBED " + ws.extensions);
  else if (s === "end") { console.log("DONE"); ws.close(1000); }
  else console.log("M:" + s);
});
ws.on("error", (e) => console.log("ERROR " + e.message));
]]):format(ws_dir))
    local peers = {}
    for _, kind in ipairs { "shared", "own" } do
      peers[kind] = proc.start("node " .. kind, { "node", script, net.url(srv, "/node-" .. kind), kind })
    end
    for _, kind in ipairs { "shared", "own" } do
      assert.matches("permessage%-deflate", peers[kind]:wait_for("SUBSCRIBED ([^\n]*)"))
    end
    -- what the server agreed with each
    assert.truthy(by_path["/node-shared"].extensions:match("server_no_context_takeover"))
    assert.falsy(by_path["/node-own"].extensions:match("server_no_context_takeover"))
    local want = {}
    for i = 1, 25 do want[i] = string.rep("node message " .. i .. " ", 10 + i) end
    local before = stats().compressed
    for i = 1, 25 do assert.are.equal(2, srv:publish("t", want[i])) end
    assert.are.equal(25, stats().compressed - before) -- one per publish, for the shared one
    for _, kind in ipairs { "shared", "own" } do
      assert(by_path["/node-" .. kind]:send("end"))
      peers[kind]:wait_for("DONE")
      local got = {}
      for line in peers[kind]:output():gmatch("M:([^\n]*)") do got[#got + 1] = line end
      assert.are.same(want, got, kind)
    end
    proc.stop_all()
  end)

  it("one frame per publish and per broadcast, whatever the number of receivers", function()
    local srv, by_path = fan_server()
    local clients, sides = {}, {}
    for i = 1, 5 do
      clients[i] = assert(net.connect(net.url(srv, "/" .. i)))
      sides[i] = side(by_path, "/" .. i)
      sides[i]:subscribe("t")
    end
    local before = stats()
    for i = 1, 10 do assert.are.equal(5, srv:publish("t", "m" .. i)) end
    assert.are.equal(5, srv:broadcast("b", "binary"))
    local after = stats()
    assert.are.equal(11, after.made - before.made)
    assert.are.equal(55, after.queued - before.queued)
    for i = 1, 5 do
      local want = {}
      for k = 1, 10 do want[k] = "m" .. k end
      want[11] = "b"
      assert.are.same(want, drain(clients[i], sides[i]))
    end
    assert.is_true(live_back_to(before.live))
  end)

  it("shared frames keep their place among the connection's own messages and pings", function()
    local srv, by_path = fan_server()
    local c = assert(net.connect(net.url(srv, "/a")))
    local pongs = 0
    c.on_pong = function() pongs = pongs + 1 end
    local s = side(by_path, "/a")
    s:subscribe("t")
    for i = 1, 20 do
      assert(s:send("own" .. i))
      assert.are.equal(1, srv:publish("t", "pub" .. i))
      assert(s:ping("p"))
    end
    local got = drain(c, s)
    local want = {}
    for i = 1, 20 do
      want[#want + 1] = "own" .. i
      want[#want + 1] = "pub" .. i
    end
    assert.are.same(want, got)
  end)

  it("TLS receivers get every shared frame, large and small, in order", function()
    local certs = require("spec.helpers.certs").get()
    local srv, by_path = fan_server { tls = { cert = certs.server_cert, key = certs.server_key } }
    local url = "wss://localhost:" .. srv.port
    local a = assert(net.connect(url .. "/a", { tls = { cafile = certs.ca } }))
    local b = assert(net.connect(url .. "/b", { tls = { cafile = certs.ca } }))
    local sa, sb = side(by_path, "/a"), side(by_path, "/b")
    sa:subscribe("t")
    sb:subscribe("t")
    local want = {}
    for i = 1, 30 do
      want[i] = net.payload(i % 3 == 0 and 100000 or i * 7, "binary")
      assert.are.equal(2, srv:publish("t", want[i], "binary"))
    end
    for _, pair in ipairs { { a, sa }, { b, sb } } do
      local got = drain(pair[1], pair[2])
      assert.are.equal(#want, #got)
      for i = 1, #want do assert(net.same(want[i], got[i])) end
    end
  end)

  it("a receiver that stops reading holds only its own references; closing it frees them", function()
    local srv, by_path, closed = fan_server { max_buffered = 512 * 1024, close_timeout = 0.2 }
    local base = stats().live
    local raw, fast, slow_s = topic_util.slow_and_fast(srv, by_path, "t")
    local msg = net.payload(64 * 1024, "binary")
    local received = 0
    for i = 1, 250 do
      assert.is_true(srv:publish("t", msg, "binary") >= 1)
      assert(net.wait_until(function()
        while fast:receive(0) do received = received + 1 end
        return received == i
      end, 10), "fast receiver got " .. received .. " of " .. i)
    end
    -- what is still alive is queued for the stalled one only (its kernel
    -- buffers took some, max_buffered bounds the rest)
    local held = stats().live - base
    assert.is_true(held > 0, "nothing queued for the stalled receiver")
    assert.is_true(held * #msg <= 512 * 1024 + #msg, "held " .. held)
    assert.is_true(slow_s:buffered_amount() > 0)
    slow_s:close(1000, "bye") -- it never answers: closed at the timeout
    assert.is_true(net.wait_until(function() return #closed == 1 end, 10))
    assert.is_true(live_back_to(base))
    raw:close()
  end)

  it("a peer that vanishes with frames queued releases them", function()
    local srv, by_path, closed = fan_server()
    local base = stats().live
    local raw = stalled(srv, "/gone")
    side(by_path, "/gone"):subscribe("t")
    local msg = net.payload(256 * 1024, "binary")
    for _ = 1, 20 do srv:publish("t", msg, "binary") end
    assert.is_true(stats().live > base)
    raw:close()
    assert.is_true(net.wait_until(function() return #closed == 1 end, 10))
    assert.is_true(live_back_to(base))
  end)

  it("publish from inside a callback and outside reach the same receivers", function()
    local srv, by_path = fan_server()
    local a = assert(net.connect(net.url(srv, "/a")))
    local b = assert(net.connect(net.url(srv, "/b")))
    local sa, sb = side(by_path, "/a"), side(by_path, "/b")
    sa:subscribe("t")
    sb:subscribe("t")
    local before = stats().made
    a:send("pub:t:inside")
    assert.are.equal("inside", a:receive(5))
    assert.are.equal("count:2", a:receive(5))
    assert.are.equal(2, srv:publish("t", "outside"))
    a:send("all")
    assert.are.equal("outside", a:receive(5))
    assert.are.equal("to all", a:receive(5))
    assert.are.equal("count:2", a:receive(5))
    assert.are.same({ "inside", "outside", "to all" }, drain(b, sb))
    assert.are.equal(3, stats().made - before)
  end)

  it("srv:close() and ws.loop():close() with frames queued release them", function()
    local srv, by_path, closed = fan_server()
    local base = stats().live
    local raws = { stalled(srv, "/x"), stalled(srv, "/y") }
    side(by_path, "/x"):subscribe("t")
    side(by_path, "/y"):subscribe("t")
    local msg = net.payload(256 * 1024, "binary")
    for _ = 1, 10 do assert.are.equal(2, srv:publish("t", msg, "binary")) end
    assert.is_true(stats().live > base)
    local loop = ws.loop()
    loop:close()
    assert.are.equal(2, #closed)
    assert.is_true(live_back_to(base))
    assert.are.same({ nil, "server is closed" }, { srv:publish("t", "late") })
    for _, r in ipairs(raws) do r:close() end
  end)

  it("a script that exits with shared frames queued ends cleanly", function()
    local child = net.spawn_lua([[
local ws = require "ws"
local testing = require "ws.testing"
local opened = 0
local srv = ws.listen { port = 0, on_open = function(c) c:subscribe("t"); opened = opened + 1 end }
local fd = assert(testing.tcp_connect("127.0.0.1", srv.port))
local key = "dGhlIHNhbXBsZSBub25jZQ=="
testing.tcp_send(fd, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
  "Sec-WebSocket-Key: " .. key .. "\r\nSec-WebSocket-Version: 13\r\n\r\n")
local c = assert(ws.connect("ws://127.0.0.1:" .. srv.port .. "/"))
while opened < 2 do ws.step(0.01) end
local big = string.rep("z", 256 * 1024)
for _ = 1, 8 do srv:publish("t", big, "binary") end
print("LIVE " .. testing.shared_frames().live)
]])
    local live = tonumber(child:wait_output("LIVE (%d+)"))
    assert.is_true(live > 0, "nothing was queued")
    assert.is_true(child:wait_exit(10))
    assert.are.equal("", child:errors())
  end)
end)
