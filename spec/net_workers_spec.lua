-- ws.workers: one server as several processes sharing a port
-- (SO_REUSEPORT) under a supervisor that restarts dead workers, forwards
-- SIGTERM/SIGINT and returns once they are gone.  Real processes: the
-- supervisor is a child of this process, its workers are its children, the
-- clients are this process.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"
local exit = require "spec.helpers.exit_util"
local ws = net.ws

local free_port = net.free_port

-- The supervisor: arg[1] port, arg[2] workers, arg[3] extra Lua run in the
-- worker before ws.run() (may be empty), arg[4] options (Lua table text).
-- Prints SUP <pid>, then LISTEN/STOPPED per worker, EXIT per worker end,
-- RESULT at the end; exits 0 when ws.workers returned true, else 3.
local SUPERVISOR = [[
local ws = require "ws"
local port, n, extra = tonumber(arg[1]), tonumber(arg[2]), arg[3] or ""
local opts = assert(loadstring or load)("return " .. (arg[4] ~= "" and arg[4] or "{}"))()
opts.on_exit = function(id, pid, how, code) print("EXIT " .. id .. " " .. pid .. " " .. how .. " " .. code) end
print("SUP " .. ws.core.pid())
local ok, why = ws.workers(n, function(id)
  ws.listen { host = "127.0.0.1", port = port, reuseport = true,
    on_open = function(c) c:send("worker " .. id .. " " .. ws.core.pid()) end,
    on_message = function(c, m)
      if m == "flood" then
        for i = 1, 200 do c:send(string.format("%05d", i) .. string.rep("x", 10000)) end
      end
    end }
  print("LISTEN " .. id .. " " .. ws.core.pid())
  assert((loadstring or load)(extra))(id)
  ws.run()
  print("STOPPED " .. id .. " " .. tostring(ws.stopping()))
end, opts)
print("RESULT " .. tostring(ok) .. " " .. tostring(why))
os.exit(ok and 0 or 3)
]]

local started = {}

local function supervise(n, extra, opts)
  local port = free_port()
  local sup = exit.spawn(SUPERVISOR, port, n, extra or "", opts or "")
  sup.port = port
  sup.sup_pid = tonumber(sup:wait_output("SUP (%d+)"))
  started[#started + 1] = sup
  return sup
end

-- The pids of the workers that printed LISTEN, by worker id (the latest).
local function listening(sup)
  local by_id = {}
  for id, pid in sup:output():gmatch("LISTEN (%d+) (%d+)") do by_id[tonumber(id)] = tonumber(pid) end
  return by_id
end

local function count(t)
  local k = 0
  for _ in pairs(t) do k = k + 1 end
  return k
end

local function wait_listening(sup, n)
  assert.is_truthy(net.wait_until(function() return count(listening(sup)) >= n end, 15), sup:describe())
  return listening(sup)
end

local function alive(pid) return net.proc_state(pid) ~= nil and net.proc_state(pid) ~= "Z" end

local function signal(pid, sig) os.execute("kill -" .. sig .. " " .. pid .. " 2>/dev/null") end

-- Connect k clients; returns them and the worker id -> pid each one met.
local function connect_many(sup, k)
  local clients, met = {}, {}
  for i = 1, k do
    local c = assert(net.connect("ws://127.0.0.1:" .. sup.port .. "/"))
    local msg = assert(c:receive(5))
    local id, pid = msg:match("^worker (%d+) (%d+)$")
    assert.is_truthy(id, msg)
    met[tonumber(id)] = tonumber(pid)
    clients[i] = c
  end
  return clients, met
end

-- Two workers with two clients each; then `sig` to the supervisor: every
-- client gets close 1001.  Returns the supervisor and the workers' pids.
local function signal_two_workers(sig)
  local sup = supervise(2)
  local pids = wait_listening(sup, 2)
  local clients = connect_many(sup, 4)
  signal(sup.sup_pid, sig)
  for _, c in ipairs(clients) do
    local _, err, code = c:receive(10)
    assert.are.equal("closed", err)
    assert.are.equal(1001, code)
  end
  return sup, pids
end

describe("ws.workers", function()
  after_each(function()
    for _, sup in ipairs(started) do
      if not sup:status() then
        signal(sup.sup_pid, "KILL")
        for _, pid in pairs(listening(sup)) do signal(pid, "KILL") end
      end
    end
    started = {}
    net.cleanup()
    exit.cleanup()
  end)

  it("N workers accept on one port: connections spread over all of them", function()
    local sup = supervise(3)
    local pids = wait_listening(sup, 3)
    local _, met = connect_many(sup, 30)
    -- 30 connections hashed over 3 listeners: each gets some (all miss one
    -- with probability 3 * (2/3)^30, about 2e-5)
    assert.are.same(pids, met)
  end)

  it("a worker killed with SIGKILL is restarted with its id; new connections succeed", function()
    local sup = supervise(3, "", "{ restart_delay = 0.05 }")
    local pids = wait_listening(sup, 3)
    signal(pids[2], "KILL")
    local exited = "EXIT 2 " .. pids[2] .. " signal KILL"
    assert.is_truthy(net.wait_until(function() return sup:output():find(exited, 1, true) end, 10),
      sup:describe())
    assert.is_truthy(net.wait_until(function() return listening(sup)[2] ~= pids[2] end, 10), sup:describe())
    local now = listening(sup)
    assert.are.equal(pids[1], now[1])
    assert.are.equal(pids[3], now[3])
    assert.is_true(alive(now[2]))
    local clients, met = connect_many(sup, 30)
    assert.are.equal(30, #clients)
    assert.are.same(now, met)
  end)

  it("SIGTERM to the supervisor: every client gets its queued messages, then 1001; exit 0", function()
    local sup = supervise(2)
    local pids = wait_listening(sup, 2)
    local clients = connect_many(sup, 8)
    for _, c in ipairs(clients) do assert(c:send("flood")) end
    -- the flood is queued in every worker before the signal
    local first = {}
    for i, c in ipairs(clients) do first[i] = assert(c:receive(5)) end
    signal(sup.sup_pid, "TERM")
    for i, c in ipairs(clients) do
      assert.are.equal("00001", first[i]:sub(1, 5))
      for k = 2, 200 do
        local m, err = c:receive(10)
        assert.is_truthy(m, "client " .. i .. " message " .. k .. ": " .. tostring(err))
        assert.are.equal(string.format("%05d", k), m:sub(1, 5))
        assert.are.equal(10005, #m)
      end
      local m, err, code = c:receive(10)
      assert.is_nil(m)
      assert.are.equal("closed", err)
      assert.are.equal(1001, code)
      assert.is_true(c.was_clean)
    end
    assert.are.equal(0, sup:wait(15), sup:describe())
    local out = sup:output()
    assert.is_truthy(out:find("RESULT true TERM", 1, true), out)
    for id, pid in pairs(pids) do
      assert.is_truthy(out:find("STOPPED " .. id .. " TERM", 1, true), out)
      assert.is_truthy(out:find("EXIT " .. id .. " " .. pid .. " exit 0", 1, true), out)
    end
  end)

  it("SIGINT is forwarded the same way", function()
    local sup = signal_two_workers("INT")
    assert.are.equal(0, sup:wait(15), sup:describe())
    assert.is_truthy(sup:output():find("RESULT true INT", 1, true), sup:describe())
  end)

  it("a worker that ignores the stop is killed after the grace period; the result says so", function()
    -- the worker's function keeps sleeping after ws.run() returned
    local src = [[
local ws = require "ws"
print("SUP " .. ws.core.pid())
local ok, err = ws.workers(1, function()
  print("LISTEN 1 " .. ws.core.pid())
  while true do ws.sleep(0.05) end
end, { grace = 0.5 })
print("RESULT " .. tostring(ok) .. " " .. tostring(err))
os.exit(ok and 0 or 3)
]]
    local sup = exit.spawn(src)
    sup.sup_pid = tonumber(sup:wait_output("SUP (%d+)"))
    started[#started + 1] = sup
    wait_listening(sup, 1)
    signal(sup.sup_pid, "TERM")
    assert.are.equal(3, sup:wait(15), sup:describe())
    assert.is_truthy(sup:output():find("RESULT nil ws.workers: worker 1 was killed by SIGKILL", 1, true),
      sup:describe())
  end)

  it("workers' masking keys and handshake keys differ (the generator is reseeded in each)", function()
    local src = [[
local ws = require "ws"
local function draw()
  local s = ws.session { role = "client", handshake = false }
  s:send("x")
  local mask = s:output():sub(3, 6):gsub(".", function(c) return string.format("%02x", c:byte()) end)
  local key = ws.session { role = "client", url = "ws://h/" }:output():match("Sec%-WebSocket%-Key: (%S+)")
  return mask .. " " .. key
end
draw() -- the generator is in use before the fork
-- one write per line: the workers share the pipe, and print's separate
-- writes of text and newline could interleave between them
local ok = ws.workers(3, function(id) io.stdout:write("KEYS " .. id .. " " .. draw() .. "\n") end)
io.stdout:write("PARENT " .. draw() .. "\n")
os.exit(ok and 0 or 3)
]]
    local sup = exit.spawn(src)
    assert.are.equal(0, sup:wait(15), sup:describe())
    local seen, k = {}, 0
    for _, mask, key in sup:output():gmatch("KEYS (%d) (%x+) (%S+)") do
      assert.is_nil(seen[mask], "masking key repeated: " .. mask)
      assert.is_nil(seen[key], "handshake key repeated: " .. key)
      seen[mask], seen[key] = true, true
      k = k + 1
    end
    assert.are.equal(3, k, sup:describe())
    local mask, key = sup:output():match("PARENT (%x+) (%S+)")
    assert.is_nil(seen[mask])
    assert.is_nil(seen[key])
  end)

  it("TLS: workers serve wss:// on one port; a client TLS context made before the fork works in each", function()
    local certs = require("spec.helpers.certs").get()
    local echo = net.echo_server { tls = { cert = certs.server_cert, key = certs.server_key } }
    local port = free_port()
    local sup = exit.spawn([[
local ws = require "ws"
local port, cert, key, ca, echo_url = tonumber(arg[1]), arg[2], arg[3], arg[4], arg[5]
-- a client TLS context made and used before the fork
local c0 = assert(ws.connect(echo_url, { tls = { cafile = ca } }))
c0:close()
ws.run() -- until the server has closed the TCP connection too
print("SUP " .. ws.core.pid())
local ok, why = ws.workers(2, function(id)
  local c = assert(ws.connect(echo_url, { tls = { cafile = ca } }))
  assert(c:send("from " .. id))
  print("ECHO " .. id .. " " .. tostring(c:receive(5)))
  c:close()
  ws.listen { host = "127.0.0.1", port = port, reuseport = true, tls = { cert = cert, key = key },
    on_open = function(s) s:send("worker " .. id .. " " .. ws.core.pid()) end }
  print("LISTEN " .. id .. " " .. ws.core.pid())
  ws.run()
end)
print("RESULT " .. tostring(ok) .. " " .. tostring(why))
os.exit(ok and 0 or 3)
]], port, certs.server_cert, certs.server_key, certs.ca, net.url(echo, "/", "wss", "localhost"))
    sup.sup_pid = tonumber(sup:wait_output("SUP (%d+)"))
    sup.port = port
    started[#started + 1] = sup
    local pids = wait_listening(sup, 2)
    local out = sup:output()
    assert.is_truthy(out:find("ECHO 1 from 1", 1, true), sup:describe())
    assert.is_truthy(out:find("ECHO 2 from 2", 1, true), sup:describe())
    local met = {}
    for _ = 1, 20 do
      local c = assert(net.connect("wss://localhost:" .. port .. "/", { tls = { cafile = certs.ca } }))
      local id, pid = assert(c:receive(5)):match("^worker (%d+) (%d+)$")
      met[tonumber(id)] = tonumber(pid)
      c:close()
    end
    assert.are.same(pids, met)
    signal(sup.sup_pid, "TERM")
    assert.are.equal(0, sup:wait(15), sup:describe())
  end)

  describe("lifecycle", function()
    it("worker functions that return end their workers; ws.workers returns true, 'done'", function()
      local sup = exit.spawn([[
local ws = require "ws"
local ok, why = ws.workers(2, function(id) print("RAN " .. id) end)
print("RESULT " .. tostring(ok) .. " " .. tostring(why))
]])
      assert.are.equal(0, sup:wait(15), sup:describe())
      local out = sup:output()
      assert.is_truthy(out:find("RAN 1", 1, true) and out:find("RAN 2", 1, true), out)
      assert.is_truthy(out:find("RESULT true done", 1, true), out)
      -- nothing restarted: each ran once
      local _, runs = out:gsub("RAN ", "")
      assert.are.equal(2, runs)
    end)

    it("an error in the worker function is reported by the supervisor and the worker restarted", function()
      local sup = exit.spawn([[
local ws = require "ws"
local runs = 0
local ok, err = ws.workers(1, function(id)
  local f = io.open(arg[1], "a"); f:write("run\n"); f:close()
  local n = 0
  for _ in io.lines(arg[1]) do n = n + 1 end
  if n < 3 then error("boom " .. n) end
end, { restart_delay = 0.01 })
print("RESULT " .. tostring(ok) .. " " .. tostring(err))
]], net.next_name("runs"))
      assert.are.equal(0, sup:wait(15), sup:describe())
      local errs = sup:errors()
      -- the worker's traceback, then the supervisor's report, for each failure
      assert.is_truthy(errs:find("ws.workers: worker 1: [^\n]*boom 1"), errs)
      assert.is_truthy(errs:find("boom 2", 1, true), errs)
      assert.is_truthy(errs:find("stack traceback", 1, true), errs)
      local _, reports = errs:gsub("ws%.workers: worker 1 %(pid %d+%) exited with status 1", "")
      assert.are.equal(2, reports)
      assert.is_truthy(sup:output():find("RESULT true done", 1, true), sup:describe())
    end)

    it("without restart, a failed worker makes ws.workers return nil and the reason", function()
      local sup = exit.spawn([[
local ws = require "ws"
local ok, err = ws.workers(2, function(id) if id == 2 then error("bad worker") end end, { restart = false })
print("RESULT " .. tostring(ok) .. " " .. tostring(err))
]])
      assert.are.equal(0, sup:wait(15), sup:describe())
      assert.is_truthy(sup:output():find("RESULT nil ws.workers: worker 2 exited with status 1", 1, true),
        sup:describe())
    end)

    it("os.exit(code) inside a worker is an exit with that status; restarts back off", function()
      local sup = exit.spawn([[
local ws = require "ws"
local starts = 0
local t0
local ok = ws.workers(1, function() os.exit(7) end, {
  restart_delay = 0.1, restart_max_delay = 0.4,
  on_start = function() starts = starts + 1; t0 = t0 or os.time() end,
  on_exit = function(id, pid, how, code)
    print("EXIT " .. id .. " " .. how .. " " .. code)
    if starts == 5 then require("ws.core").kill(require("ws.core").pid(), "TERM") end
  end })
print("RESULT " .. tostring(ok) .. " " .. starts)
]])
      local t0 = net.now()
      assert.are.equal(0, sup:wait(15), sup:describe())
      local elapsed = net.now() - t0
      local out = sup:output()
      local _, exits = out:gsub("EXIT 1 exit 7", "")
      assert.are.equal(5, exits, out)
      assert.is_truthy(out:find("RESULT true 5", 1, true), out)
      -- delays 0.1 + 0.2 + 0.4 + 0.4 between the five starts: no spinning
      assert.is_true(elapsed >= 1.0, "five starts in " .. elapsed .. " s")
    end)

    it("ws.workers inside a worker raises", function()
      local sup = exit.spawn([[
local ws = require "ws"
local ok = ws.workers(1, function()
  local ok2, err = pcall(ws.workers, 2, function() end)
  print("NESTED " .. tostring(ok2) .. " " .. tostring(err))
end)
print("RESULT " .. tostring(ok))
]])
      assert.are.equal(0, sup:wait(15), sup:describe())
      assert.is_truthy(sup:output():find("NESTED false [^\n]*ws%.workers: called in a worker"), sup:describe())
      assert.is_truthy(sup:output():find("RESULT true", 1, true), sup:describe())
    end)

    it("a loop made before the fork cannot be used in a worker: clear error", function()
      local sup = exit.spawn([[
local ws = require "ws"
local before = ws.core.loop()
local ok = ws.workers(1, function()
  local ok2, err = pcall(before.step, before, 0)
  print("STEP " .. tostring(ok2) .. " " .. tostring(err))
  ws.timer(0.01, function() print("FRESH LOOP RUNS") end)
  ws.run()
end)
print("RESULT " .. tostring(ok))
]])
      assert.are.equal(0, sup:wait(15), sup:describe())
      local out = sup:output()
      assert.is_truthy(out:find("STEP false [^\n]*this loop was made in another process"), out)
      assert.is_truthy(out:find("FRESH LOOP RUNS", 1, true), out)
      assert.is_truthy(out:find("RESULT true", 1, true), out)
    end)

    it("a loop made before a fork the script makes itself (not ws.workers) cannot be used in the child", function()
      local sup = exit.spawn([[
local ws = require "ws"
local testing = require "ws.testing"
local before = ws.core.loop()
local ticks = 0
before:every(0.001, function() ticks = ticks + 1 end)
local pid = assert(testing.fork())
if pid == 0 then
  local ok, err = pcall(before.step, before, 0)
  print("CHILD STEP " .. tostring(ok) .. " " .. tostring(err))
  local fresh = ws.core.loop()
  fresh:timer(0.01, function() print("CHILD FRESH LOOP RUNS") end)
  fresh:run()
  os.exit(0)
end
print("CHILD EXIT " .. tostring(testing.wait_pid(pid)))
while ticks < 3 do before:step(1) end
print("PARENT TICKS " .. ticks)
]])
      assert.are.equal(0, sup:wait(15), sup:describe())
      local out = sup:output()
      assert.is_truthy(out:find("CHILD STEP false [^\n]*this loop was made in another process"), out)
      assert.is_truthy(out:find("CHILD FRESH LOOP RUNS", 1, true), out)
      assert.is_truthy(out:find("CHILD EXIT 0", 1, true), out)
      -- the fork changes nothing for the process that made the loop
      assert.is_truthy(out:find("PARENT TICKS %d+"), out)
    end)

    it("workers stop when the supervisor dies (SIGKILL)", function()
      local _, pids = signal_two_workers("KILL")
      assert.is_truthy(net.wait_until(function() return not alive(pids[1]) and not alive(pids[2]) end, 10))
    end)
  end)

  -- fork() made to fail by spec/helpers/failfork.c (preloaded into the
  -- supervisor's interpreter; root ignores RLIMIT_NPROC).
  describe("fork failures", function()
    local FORK_FAILS = [[
io.stdout:setvbuf("no")
local ws = require "ws"
local n, restart = tonumber(arg[1]), arg[2] == "true"
local sup = ws.core.pid()
local ok, err = ws.workers(n, function(id)
  print("RAN " .. id)
  if arg[3] == "term" then
    -- the workers that did start keep running until the supervisor is stopped
    if id == 1 then ws.timer(0.5, function() ws.core.kill(sup, "TERM") end) end
    ws.every(10, function() end)
    ws.run()
    print("STOPPED " .. id)
  end
end, { restart = restart, restart_delay = 0.05, restart_max_delay = 0.2 })
print("RESULT " .. tostring(ok) .. " " .. tostring(err))
os.exit(ok and 0 or 3)
]]
    local shim, script

    local function run(fail, n, restart, term)
      if not shim then
        local dir = net.tmpdir()
        shim = dir .. "/failfork.so"
        local out, code = net.run_status("cc -shared -fPIC -O1 -o " .. net.quote(shim)
          .. " spec/helpers/failfork.c -ldl")
        assert.are.equal(0, code, out)
        script = dir .. "/fork_fails.lua"
        net.write_file(script, string.format("package.path = %q\npackage.cpath = %q\n", package.path,
          package.cpath) .. FORK_FAILS)
      end
      -- after a sanitizer's runtime, which must come first
      local preload = (os.getenv("LD_PRELOAD") or "") .. " " .. shim
      return net.run_status(string.format("timeout 60 env WS_FAIL_FORK=%s LD_PRELOAD=%s %s %s %d %s %s", fail,
        net.quote(preload), net.quote(net.lua_interpreter()), net.quote(script), n, tostring(restart), term or ""))
    end

    local UNSTARTED = "ws%.workers: worker 2 could not be started: fork: Resource temporarily unavailable"

    it("restart = false: the other workers run, then nil, err names the worker and the failure", function()
      local out, code = run("2", 2, false)
      assert.are.equal(3, code, out)
      assert.is_truthy(out:find("RAN 1", 1, true), out)
      assert.is_falsy(out:find("RAN 2", 1, true), out)
      assert.is_truthy(out:find("RESULT nil " .. UNSTARTED), out)
      -- said on stderr at once too
      assert.is_truthy(out:find("\n" .. UNSTARTED) or out:find("^" .. UNSTARTED), out)
    end)

    it("every fork fails with restart = false: nil, err at once, no worker ran", function()
      local out, code = run("1-", 2, false)
      assert.are.equal(3, code, out)
      assert.is_falsy(out:find("RAN", 1, true), out)
      assert.is_truthy(out:find("RESULT nil ws%.workers: worker 1 could not be started: fork: "), out)
    end)

    it("a failed fork is tried again under the restart policy: the worker then runs", function()
      local out, code = run("2-3", 2, true)
      assert.are.equal(0, code, out)
      local _, tries = out:gsub(UNSTARTED, "")
      assert.are.equal(2, tries, out)
      assert.is_truthy(out:find("RAN 1", 1, true), out)
      assert.is_truthy(out:find("RAN 2", 1, true), out)
      assert.is_truthy(out:find("RESULT true done", 1, true), out)
    end)

    it("forks that keep failing are retried with a backoff until a stop; then nil, err", function()
      local out, code = run("2-", 2, true, "term")
      assert.are.equal(3, code, out)
      assert.is_truthy(out:find("STOPPED 1", 1, true), out)
      assert.is_falsy(out:find("RAN 2", 1, true), out)
      assert.is_truthy(out:find("RESULT nil " .. UNSTARTED), out)
      -- 0.05, 0.1, 0.2, 0.2 ... s apart over the 0.5 s before the stop: no spinning
      local _, tries = out:gsub("\n" .. UNSTARTED, "")
      assert.is_true(tries >= 2 and tries <= 8, out)
    end)
  end)

  describe("arguments", function()
    it("are checked, options by name", function()
      local fn = function() end
      assert.has_error(function() ws.workers(0, fn) end,
        "bad argument #1 to 'workers' (integer from 1 to 1024 expected, got 0)")
      assert.has_error(function() ws.workers(1.5, fn) end,
        "bad argument #1 to 'workers' (integer from 1 to 1024 expected, got 1.5)")
      assert.has_error(function() ws.workers(2, "fn") end,
        "bad argument #2 to 'workers' (function expected, got string)")
      assert.has_error(function() ws.workers(2, fn, 5) end,
        "bad argument #3 to 'workers' (table expected, got number)")
      assert.has_error(function() ws.workers(2, fn, { restart_dely = 1 }) end,
        "bad argument #3 to 'workers' (unknown option 'restart_dely' (did you mean 'restart_delay'?))")
      assert.has_error(function() ws.workers(2, fn, { grace = -1 }) end,
        "bad argument #3 to 'workers' (grace must be a number >= 0)")
      assert.has_error(function() ws.workers(2, fn, { on_exit = 1 }) end,
        "bad argument #3 to 'workers' (on_exit must be a function)")
      assert.has_error(function() ws.workers(2, fn, { restart = "yes" }) end,
        "bad argument #3 to 'workers' (restart must be a boolean)")
    end)

    it("refuse a default loop already in use", function()
      local srv = net.listen {}
      local ok, err = pcall(ws.workers, 2, function() end)
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("the default loop has open connections or servers", 1, true), err)
      assert.are.equal(1, ws.loop():members())
      srv:close()
      assert.are.equal(0, ws.loop():members())
      -- from a callback of the default loop
      local inside
      ws.timer(0, function() inside = { pcall(ws.workers, 2, function() end) } end)
      assert.is_truthy(net.wait_until(function() return inside end))
      assert.is_false(inside[1])
      assert.is_truthy(tostring(inside[2]):find("called from a callback", 1, true), inside[2])
    end)

    it("reuseport lets two servers of one process share a port", function()
      local a = net.listen { reuseport = true }
      local b = net.listen { port = a.port, reuseport = true }
      assert.are.equal(a.port, b.port)
      assert.has_error(function() net.listen { port = a.port } end)
    end)
  end)
end)
