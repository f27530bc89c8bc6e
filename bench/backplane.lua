-- Redis backplane: cross-node delivery latency and CPU per cross-node
-- message.  Starts its own redis-server (free port, --save "" --appendonly
-- no, a directory in /tmp) and node B in a child process (a server with a
-- backplane and one subscriber, this process's client); this process is
-- node A, publishing to a topic it has no local subscriber of.
--   lua5.4 bench/backplane.lua [messages] [size]
-- Latency: one publish at a time, A's srv:publish to the moment B's
-- subscriber (a client here) has the message: p50/p99.  CPU: a stream of
-- publishes (BATCH per loop turn); per message, node A's os.clock around
-- srv:publish, node B's process CPU (hiredis read, the frame, the write to
-- its subscriber) and redis-server's, from /proc/<pid>/stat.
-- Prints a Markdown table.
local ws = require "ws"

local N = tonumber(arg[1]) or 2000
local SIZE = tonumber(arg[2]) or 64
local BATCH = 50

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return out
end

-- utime + stime of a process, in seconds (clock ticks of 1/100 s).
local function cpu_of(pid)
  local f = io.open("/proc/" .. pid .. "/stat", "rb")
  if not f then return 0 end
  local s = f:read("*a")
  f:close()
  local fields = {}
  for w in s:gsub("^.-%) ", ""):gmatch("%S+") do fields[#fields + 1] = w end
  return (tonumber(fields[12]) + tonumber(fields[13])) / 100
end

local probe = ws.listen { port = 0 }
local rport = probe.port
probe:close()
local dir = sh("mktemp -d"):gsub("%s+$", "")
local rpid = tonumber(sh(("cd %s && (exec redis-server --port %d --bind 127.0.0.1 --save '' "
  .. "--appendonly no --dir %s >log 2>&1 </dev/null) & echo $!"):format(dir, rport, dir)))
local node_b_script = dir .. "/node_b.lua"
local f = assert(io.open(node_b_script, "wb"))
f:write(([[
package.path = %q
package.cpath = %q
local ws = require "ws"
local bp = ws.redis { port = %d }
local srv = ws.listen { port = 0, backplane = bp, on_open = function(c) c:subscribe("bench") end }
io.stdout:setvbuf("no")
print("PORT " .. srv.port)
ws.every(0.01, function() if bp.connected then print("CONNECTED") return false end end)
ws.run()
]]):format(package.path, package.cpath, rport))
f:close()
local out = dir .. "/node_b.out"
local bpid = tonumber(sh(("(exec lua5.4 %s >%s 2>&1 </dev/null) & echo $!"):format(node_b_script, out)))

local function wait_for(pattern)
  for _ = 1, 1000 do
    local g = io.open(out, "rb")
    local s = g and g:read("*a") or ""
    if g then g:close() end
    local cap = s:match(pattern)
    if cap then return cap end
    ws.sleep(0.01)
  end
  error("node B did not print " .. pattern)
end

local ok, err = pcall(function()
  local bport = tonumber(wait_for("PORT (%d+)"))
  wait_for("CONNECTED")
  local bp = ws.redis { port = rport }
  local srv = ws.listen { port = 0, backplane = bp }
  local c = assert(ws.connect("ws://127.0.0.1:" .. bport .. "/"))
  while not bp.connected do ws.sleep(0.01) end
  -- Node B subscribed once its client is there: wait for a probe.
  repeat
    srv:publish("bench", "probe")
  until c:receive(0.05) == "probe"
  while c:receive(0.05) do end

  local payload = string.rep("x", SIZE)
  local lat = {}
  for i = 1, N do
    local t0 = ws.loop():now()
    srv:publish("bench", payload)
    assert(c:receive(5) == payload, "lost message " .. i)
    lat[i] = (ws.loop():now() - t0) * 1e6
  end
  table.sort(lat)

  local a_cpu, b0, r0 = 0, cpu_of(bpid), cpu_of(rpid)
  local got = 0
  local t0 = ws.loop():now()
  for _ = 1, N / BATCH do
    local c0 = os.clock()
    for _ = 1, BATCH do srv:publish("bench", payload) end
    a_cpu = a_cpu + os.clock() - c0
    ws.step(0)
    while c:receive(0) do got = got + 1 end
  end
  while got < N do
    assert(c:receive(5), "lost messages")
    got = got + 1
  end
  local wall = ws.loop():now() - t0
  local b_cpu, r_cpu = cpu_of(bpid) - b0, cpu_of(rpid) - r0

  print(("| %d messages of %d bytes, node A -> Redis -> node B -> 1 subscriber | value |"):format(N, SIZE))
  print("| --- | --- |")
  print(("| latency p50 (one at a time) | %.0f µs |"):format(lat[math.floor(N * 0.5)]))
  print(("| latency p99 | %.0f µs |"):format(lat[math.floor(N * 0.99)]))
  print(("| stream: messages per second end to end | %.0f |"):format(N / wall))
  print(("| node A CPU per srv:publish (local fan-out + PUBLISH) | %.1f µs |"):format(a_cpu / N * 1e6))
  print(("| node B CPU per message (process, 10 ms ticks) | %.1f µs |"):format(b_cpu / N * 1e6))
  print(("| redis-server CPU per message (10 ms ticks) | %.1f µs |"):format(r_cpu / N * 1e6))
  c:close()
  srv:close()
  bp:close()
end)
os.execute("kill " .. bpid .. " " .. rpid .. " 2>/dev/null")
os.execute("rm -rf " .. dir)
if not ok then error(err, 0) end
