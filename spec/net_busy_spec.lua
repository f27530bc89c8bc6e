-- No busy loops: a connection whose peer stops reading, and a server out
-- of file descriptors, cost (almost) no CPU until the situation changes;
-- then everything queued goes out and the server accepts again.
-- The stalled side runs in a child process whose CPU time is read from
-- /proc/<pid>/stat over a few seconds of the stall.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"

local MiB = 1024 * 1024

-- Most CPU a stalled process may use over the measured window (seconds):
-- a spinning loop uses the whole window.
local CPU_BOUND = 0.25
local WINDOW = 3

local ticks_per_second
local function cpu_seconds(pid)
  if not ticks_per_second then
    ticks_per_second = tonumber(net.sh("getconf CLK_TCK"):match("%d+")) or 100
  end
  local stat = assert(net.read_file("/proc/" .. pid .. "/stat"), "no process " .. pid)
  -- fields after the command name: state is field 3, utime 14, stime 15
  local rest = stat:match("^%d+ %b() (.*)$")
  local fields = {}
  for f in rest:gmatch("%S+") do fields[#fields + 1] = f end
  return (tonumber(fields[12]) + tonumber(fields[13])) / ticks_per_second
end

-- CPU the process uses over `seconds` while this process steps its loop.
local function cpu_over(pid, seconds)
  local before = cpu_seconds(pid)
  net.run_for(seconds)
  return cpu_seconds(pid) - before
end

local BLOCKED_CLIENT = [==[
local ws = require "ws"
local port, server_pid = tonumber(arg[1]), arg[2]
local c = assert(ws.connect("ws://127.0.0.1:" .. port .. "/"))
os.execute("kill -STOP " .. server_pid)
local msg = string.rep("x", 1024 * 1024)
for _ = 1, 12 do assert(c:send(msg, "binary")) end
ws.sleep(0.3)
print("STALLED " .. c:buffered_amount())
ws.sleep(tonumber(arg[3]))
print("RESUMING " .. c:buffered_amount())
os.execute("kill -CONT " .. server_pid)
local n = 0
for _ = 1, 12 do
  local data = c:receive(30)
  if data ~= msg then break end
  n = n + 1
end
print("ECHOED " .. n)
c:close()
]==]

local BLOCKED_SERVER = [==[
local ws = require "ws"
local srv = ws.listen { port = 0,
  on_open = function(c)
    local msg = string.rep("y", 1024 * 1024)
    for _ = 1, 12 do assert(c:send(msg, "binary")) end
    ws.timer(0.3, function() print("STALLED " .. c:buffered_amount()) end)
  end,
  on_close = function(_, code) print("CLOSE " .. code) end,
}
print("PORT " .. srv.port)
ws.run()
]==]

local FD_STARVED_SERVER = [==[
local ws = require "ws"
local srv = ws.listen { port = 0, handshake_timeout = 120,
  on_accept_error = function(s, err)
    assert(s.port)
    print("ACCEPT_ERROR " .. err)
  end,
  on_message = function(c, data) c:send(data) end,
}
print("PORT " .. srv.port)
ws.run()
]==]

describe("no busy loop", function()
  after_each(function()
    net.cleanup()
  end)

  it("a client with 12 MB queued for a peer that stopped reading uses no CPU until it reads again", function()
    local server, port = net.spawn_echo_server()
    local client = net.spawn_lua(BLOCKED_CLIENT, port, server.pid, WINDOW + 1)
    local queued = tonumber(client:wait_output("STALLED (%d+)", 15))
    assert.is_true(queued > MiB, "only " .. queued .. " bytes left queued: the peer did not stall")
    local used = cpu_over(client.pid, WINDOW)
    assert.is_true(used < CPU_BOUND, string.format("the stalled client used %.2f s of CPU in %d s", used, WINDOW))
    -- outside callbacks, after the stall: every message reaches the server and comes back
    local echoed = tonumber(client:wait_output("ECHOED (%d+)", 40))
    assert.are.equal(12, echoed, client:errors())
    server:cont()
  end)

  it("a server whose client stopped reading uses no CPU until it reads again; nothing is lost", function()
    local server = net.spawn_lua(BLOCKED_SERVER)
    local port = tonumber(server:wait_output("PORT (%d+)"))
    local raw = assert(net.raw_connect(port, { no_read = true }))
    raw:send(net.upgrade_request(port, "/"))
    local queued = tonumber(server:wait_output("STALLED (%d+)", 10))
    assert.is_true(queued > MiB, "only " .. queued .. " bytes left queued: the client did not stall")
    local used = cpu_over(server.pid, WINDOW)
    assert.is_true(used < CPU_BOUND, string.format("the server used %.2f s of CPU in %d s", used, WINDOW))
    -- the client reads again: the 101 answer, then all 12 messages intact
    raw:start_reading()
    local resp = assert(raw:read_head(10))
    assert.are.equal(101, resp.status)
    assert.is_true(raw:wait_bytes(12 * (MiB + 10), 30), "received " .. raw:available() .. " bytes")
    local frames = raw:frames()
    assert.are.equal(12, #frames)
    for i = 1, 12 do assert.are.equal(MiB, #frames[i].payload) end
    -- close from the client's side completes normally
    raw:send_close(1000, "done")
    server:wait_output("CLOSE (%d+)", 10)
    assert.truthy(server:output():find("CLOSE 1000", 1, true))
  end)

  it("a server out of file descriptors backs off, reports once, keeps serving and recovers", function()
    local server = net.spawn_lua_limited(64, FD_STARVED_SERVER)
    local port = tonumber(server:wait_output("PORT (%d+)"))
    local url = "ws://127.0.0.1:" .. port .. "/"
    local early = assert(net.connect(url))
    -- 100 clients that connect and say nothing: the server runs out of fds
    local raws = {}
    for i = 1, 100 do raws[i] = assert(net.raw_connect(port)) end
    server:wait_output("ACCEPT_ERROR ([^\n]+)", 10)
    assert.truthy(server:output():find("Too many open files", 1, true), server:output())
    local used = cpu_over(server.pid, WINDOW)
    assert.is_true(used < CPU_BOUND, string.format("the fd-starved server used %.2f s of CPU in %d s", used, WINDOW))
    local _, reports = server:output():gsub("ACCEPT_ERROR", "")
    assert.are.equal(1, reports)
    -- the connection it had is still served
    assert.is_true(early:send("still here"))
    assert.are.equal("still here", (early:receive(5)))
    -- descriptors free up: the waiting clients are accepted, and new ones work
    for i = 1, 100 do raws[i]:close() end
    local late = assert(net.connect(url, { timeout = 10 }))
    assert.is_true(late:send("back"))
    assert.are.equal("back", (late:receive(5)))
    late:close()
    early:close()
    assert.is_true(net.wait_until(function() return late.ready_state == "CLOSED" and early.ready_state == "CLOSED" end))
    assert.are.equal(1000, late.close_code)
    assert.are.equal(1000, early.close_code)
  end)
end)
