-- Large messages a server sends: written from the message's string while
-- nothing is queued, with what the socket does not take queued in output
-- storage the loop keeps for the next large message.  The bytes arrive
-- intact and in order behind a slow reader, and a connection, its loop or
-- the script may end with such a message still queued.  Lua 5.1 compatible.

local net = require "spec.helpers.net_util"

local MiB = 1024 * 1024

-- A message of n bytes that starts with its number.
local function numbered(i, n)
  local head = ("#%d:"):format(i)
  return head .. net.payload(n - #head, "binary")
end

describe("large messages queued by a server", function()
  after_each(function()
    net.cleanup()
    collectgarbage()
    collectgarbage()
  end)

  it("a reader that does not read gets several queued large messages intact and in order", function()
    local queued
    local srv = net.listen {
      max_message = 16 * MiB,
      on_message = function(c, data)
        if data ~= "go" then return c:send(data, "text") end
        for i = 1, 4 do assert(c:send(numbered(i, 3 * MiB + i), "binary")) end
        queued = c:buffered_amount()
      end,
    }
    local c = assert(net.connect(net.url(srv), { max_message = 16 * MiB }))
    assert.is_true(c:send("go"))
    assert.is_true(net.wait_until(function() return queued ~= nil end, 10))
    assert.is_true(queued > 3 * MiB, "queued behind the reader: " .. queued)
    for i = 1, 4 do
      local data, kind = c:receive(30)
      assert.are.equal("binary", kind)
      assert.is_true(net.same(data, numbered(i, 3 * MiB + i)), "message " .. i .. " differs")
    end
    -- a small message after the large ones: its own storage, then the pool's
    for i = 1, 3 do
      assert.is_true(c:send("small " .. i))
      assert.are.equal("small " .. i, (c:receive(10)))
    end
    -- and large ones again
    assert.is_true(c:send("go"))
    for i = 1, 4 do
      assert.is_true(net.same((c:receive(30)), numbered(i, 3 * MiB + i)), "again, message " .. i .. " differs")
    end
    c:close()
  end)

  it("an echo of large messages of growing then shrinking sizes stays intact", function()
    local srv = net.echo_server { max_message = 16 * MiB }
    local c = assert(net.connect(net.url(srv), { max_message = 16 * MiB }))
    for i, n in ipairs { 1 * MiB, 5 * MiB, 64 * 1024, 6 * MiB, 20 * 1024, 2 * MiB } do
      local msg = numbered(i, n)
      assert.is_true(c:send(msg, "binary"))
      assert.is_true(net.same((c:receive(30)), msg), "echo " .. i .. " (" .. n .. " bytes) differs")
    end
    c:close()
  end)

  it("the server closes with a large message queued: the message, then the close", function()
    local big = numbered(1, 6 * MiB)
    local srv = net.listen {
      max_message = 16 * MiB,
      on_message = function(c)
        assert(c:send(big, "binary"))
        assert.is_true(c:buffered_amount() > 0)
        c:close(4001, "after the big one")
      end,
    }
    local closed
    local c = assert(net.connect(net.url(srv), {
      max_message = 16 * MiB,
      on_close = function(_, code, reason) closed = { code, reason } end,
    }))
    assert.is_true(c:send("go"))
    assert.is_true(net.same((c:receive(30)), big))
    assert.is_nil((c:receive(10)))
    assert.is_true(net.wait_until(function() return closed ~= nil end, 10))
    assert.are.same({ 4001, "after the big one" }, closed)
  end)

  -- The child: a server that answers "go" with an 8 MiB message and a
  -- client on the same loop (or, for "peer_gone", in another process) that
  -- sends "go" and stops reading; once the message is queued, the ending
  -- named by arg[1] comes.
  local CHILD = [==[
local ws = require "ws"
local how = arg[1]
local big = string.rep("q", 8 * 1024 * 1024)
local srv_conn
local srv = ws.listen { host = "127.0.0.1", port = 0, max_message = 16 * 1024 * 1024, close_timeout = 0.5,
  on_message = function(c) assert(c:send(big, "binary")); srv_conn = c end,
  on_close = function(_, code) print("SERVER_CLOSE " .. tostring(code)) end }
print("PORT " .. srv.port)
if how ~= "peer_gone" then
  ws.connect("ws://127.0.0.1:" .. srv.port .. "/", { max_message = 16 * 1024 * 1024, close_timeout = 0.5,
    on_open = function(c) c:send("go"); c:pause() end })
end
while not (srv_conn and srv_conn:buffered_amount() > 0) do ws.step(0.05) end
print("QUEUED " .. srv_conn:buffered_amount())
if how == "peer_gone" then
  while srv_conn.ready_state ~= "CLOSED" do ws.step(0.05) end
  print("BUFFERED " .. srv_conn:buffered_amount() .. " " .. tostring(srv_conn.ready_state))
elseif how == "loop_close" then
  ws.loop():close()
  print("LOOP_CLOSED " .. tostring(srv_conn.ready_state))
  collectgarbage()
elseif how == "os_exit" then
  print("EXITING")
  os.exit(0, true)
end
print("END")
]==]


  local function run_child(how)
    local child = net.spawn_lua(CHILD, how)
    local port = child:wait_output("PORT (%d+)", 10)
    assert.is_truthy(port, child:errors())
    local peer
    if how == "peer_gone" then peer = net.spawn_lua(net.STALLED_CLIENT, port) end
    assert.is_truthy(child:wait_output("QUEUED (%d+)", 30), child:errors())
    if peer then
      assert.is_truthy(peer:wait_output("SENT", 10))
      peer:kill() -- the reader goes away without reading
    end
    assert.is_true(child:wait_exit(30), "child still running: " .. child:output())
    return child:output(), child:errors()
  end

  it("the reader goes away with a large message queued: the server's connection ends (1006)", function()
    local out, err = run_child("peer_gone")
    assert.is_truthy(out:find("SERVER_CLOSE 1006", 1, true), out .. err)
    assert.is_truthy(out:find("BUFFERED %d+ CLOSED"), out .. err)
    assert.is_truthy(out:find("END", 1, true), out .. err)
  end)

  it("the loop is closed with a large message queued", function()
    local out, err = run_child("loop_close")
    assert.is_truthy(out:find("LOOP_CLOSED CLOSED", 1, true), out .. err)
    assert.is_truthy(out:find("END", 1, true), out .. err)
    assert.are.equal("", err)
  end)

  it("the script ends with a large message queued (the Lua state closes)", function()
    local out, err = run_child("script_end")
    assert.is_truthy(out:find("END", 1, true), out .. err)
    assert.are.equal("", err)
  end)

  it("the script calls os.exit(0, true) with a large message queued", function()
    local out, err = run_child("os_exit")
    assert.is_truthy(out:find("EXITING", 1, true), out .. err)
    assert.is_falsy(out:find("END", 1, true), out)
    assert.are.equal("", err)
  end)
end)
