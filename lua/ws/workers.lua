--- Worker processes sharing one port: the supervisor behind `ws.workers`.
-- The supervisor forks `n` workers, restarts one that dies (with a backoff,
-- so a crash loop does not spin), forwards SIGTERM/SIGINT to the workers,
-- waits for them and returns. Each worker runs `fn(worker_id)` on a fresh
-- default loop; SIGTERM/SIGINT make its loop close every server and
-- connection as `Loop:close` does (servers stop accepting, clients get
-- 1001 after their queued output), `ws.run()` returns, and the worker exits
-- once `fn` returns.
-- @module ws.workers
local core = require "ws.core"

local M = {}

--- Options of `ws.workers`.
-- @table options
-- @tfield[opt=true] bool restart restart a worker that dies (error, non-zero exit or
--  signal) or could not be forked; one whose function returns, or that exits with
--  status 0, is done
-- @tfield[opt=0.1] number restart_delay seconds before the first restart of a worker
-- @tfield[opt=10] number restart_max_delay the delay doubles on each quick death up to this
-- @tfield[opt=10] number stable_after a worker that lived this long restarts after
--  `restart_delay` again
-- @tfield[opt=30] number grace seconds the workers get to stop after the signal is
--  forwarded; then they are killed (SIGKILL); a second signal kills them at once
-- @tfield[opt] function on_start `(worker_id, pid)` in the supervisor, after each fork
-- @tfield[opt] function on_exit `(worker_id, pid, how, code)` in the supervisor: `how` is
--  `"exit"` (code: the status) or `"signal"` (code: its name, `"KILL"`); without it the
--  supervisor writes abnormal ends to stderr

local function check_opts(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("bad argument #3 to 'workers' (table expected, got " .. type(opts) .. ")", 4)
  end
  local err = core.check_options("workers", opts)
  if err then error("bad argument #3 to 'workers' (" .. err .. ")", 4) end
  local function num(name, def, min)
    local v = opts[name]
    if v == nil then return def end
    if type(v) ~= "number" or v ~= v or v < min or v == math.huge then
      error("bad argument #3 to 'workers' (" .. name .. " must be a number >= " .. min .. ")", 5)
    end
    return v
  end
  for _, name in ipairs { "on_start", "on_exit" } do
    if opts[name] ~= nil and type(opts[name]) ~= "function" then
      error("bad argument #3 to 'workers' (" .. name .. " must be a function)", 4)
    end
  end
  if opts.restart ~= nil and type(opts.restart) ~= "boolean" then
    error("bad argument #3 to 'workers' (restart must be a boolean)", 4)
  end
  return {
    restart = opts.restart ~= false,
    restart_delay = num("restart_delay", 0.1, 0),
    restart_max_delay = num("restart_max_delay", 10, 0),
    stable_after = num("stable_after", 10, 0),
    grace = num("grace", 30, 0),
    on_start = opts.on_start,
    on_exit = opts.on_exit,
  }
end

-- The worker's side: never returns.
local function run_worker(id, fn, fresh_loop)
  fresh_loop()
  local ok, err = xpcall(function() return fn(id) end, debug.traceback) -- 5.1: no extra args
  local code = 0
  if not ok then
    io.stderr:write("ws.workers: worker ", id, ": ", tostring(err), "\n")
    code = 1
  end
  -- What fn left open closes gracefully (1001 after the queued output).
  local closed, cerr = pcall(fresh_loop, true)
  if not closed then
    io.stderr:write("ws.workers: worker ", id, ": ", tostring(cerr), "\n")
    code = 1
  end
  io.stdout:flush()
  io.stderr:flush()
  -- Not closing the state: objects inherited from the supervisor (its
  -- loops, connections) must not be finalized in this process.
  os.exit(code)
end

local function describe(how, code)
  if how == "exit" then return "exited with status " .. code end
  return "was killed by SIG" .. code
end

--- Run `fn(worker_id)` in `n` worker processes under this one (see the module).
-- @tparam integer n how many workers (1 to 1024)
-- @tparam function fn `fn(worker_id)`, `worker_id` from 1 to `n` (a restarted worker keeps
--  its id)
-- @tparam[opt] table opts `options`
-- @param fresh_loop internal: drops (or, given true, closes) the default loop
-- @return in the supervisor: `true, why` when every worker ended cleanly (`why`: the stop
--  signal `"TERM"`/`"INT"`, or `"done"` when every worker's function returned), else
--  `nil, err`; workers never return from it
function M.run(n, fn, opts, fresh_loop)
  if math.type and math.type(n) == "float" and n == math.floor(n) then n = math.floor(n) end
  if type(n) ~= "number" or n ~= math.floor(n) or n < 1 or n > 1024 then
    error("bad argument #1 to 'workers' (integer from 1 to 1024 expected, got " .. tostring(n) .. ")", 3)
  end
  if type(fn) ~= "function" then
    error("bad argument #2 to 'workers' (function expected, got " .. type(fn) .. ")", 3)
  end
  local o = check_opts(opts)
  if core.stop_requested() ~= false or fresh_loop("busy") then
    error("ws.workers: the default loop has open connections or servers (make them in the worker "
      .. "function), or ws.workers was called from a callback or a worker", 3)
  end
  local clock = core.loop() -- only for its monotonic clock
  local ok, err = core.supervise_begin()
  if not ok then clock:close(); error(err, 3) end

  local slots, by_pid, live = {}, {}, 0
  local stopping, deadline, killed, failure = nil, nil, false, nil

  local function start(id)
    local slot = slots[id]
    local pid, ferr = core.fork()
    if pid == 0 then
      clock = nil
      run_worker(id, fn, fresh_loop)
    end
    slot.restart_at = nil
    if not pid then
      -- fork failed (EAGAIN at the process limit, ENOMEM): as a worker
      -- that died at once, it is tried again under the restart policy.
      slot.fork_err = "worker " .. id .. " could not be started: " .. ferr:gsub("^ws%.workers: ", "")
      io.stderr:write("ws.workers: ", slot.fork_err, "\n")
      if o.restart then
        slot.delay = math.min(math.max(slot.delay * 2, o.restart_delay), o.restart_max_delay)
        slot.restart_at = clock:now() + slot.delay
      else
        failure = failure or slot.fork_err
      end
      return
    end
    slot.fork_err = nil
    slot.pid, slot.started = pid, clock:now()
    by_pid[pid] = slot
    live = live + 1
    if o.on_start then o.on_start(id, pid) end
  end

  for id = 1, n do slots[id] = { id = id, delay = 0 } end
  local function body()
    for id = 1, n do start(id) end
    while true do
      local now, wake = clock:now(), nil
      local pending = false
      if not stopping then
        for _, slot in ipairs(slots) do
          if slot.restart_at then
            pending = true
            -- a fork that fails again sets a new restart_at: wait for it too
            if slot.restart_at <= now then start(slot.id) end
            if slot.restart_at and (not wake or slot.restart_at < wake) then wake = slot.restart_at end
          end
        end
      end
      if live == 0 and not (pending and not stopping) then break end
      if stopping and not killed then
        if now >= deadline then
          for pid in pairs(by_pid) do core.kill(pid, "KILL") end
          killed = true
        elseif not wake or deadline < wake then
          wake = deadline
        end
      end
      local sig, ended = core.supervise_wait(wake and math.max(wake - clock:now(), 0))
      if sig == nil then error(ended, 0) end
      if sig and stopping then
        for pid in pairs(by_pid) do core.kill(pid, "KILL") end
        killed = true
      elseif sig then
        stopping, deadline = sig, clock:now() + o.grace
        for pid in pairs(by_pid) do core.kill(pid, sig) end
      end
      for _, e in ipairs(ended) do
        local slot = by_pid[e.pid]
        if slot then
          by_pid[e.pid], slot.pid = nil, nil
          live = live - 1
          local clean = e.how == "exit" and e.code == 0
          if o.on_exit then
            o.on_exit(slot.id, e.pid, e.how, e.code)
          elseif not clean then
            io.stderr:write("ws.workers: worker ", slot.id, " (pid ", e.pid, ") ",
              describe(e.how, e.code), "\n")
          end
          if not clean then
            if not stopping and o.restart then
              local lived = clock:now() - slot.started
              slot.delay = lived >= o.stable_after and o.restart_delay
                or math.min(math.max(slot.delay * 2, o.restart_delay), o.restart_max_delay)
              slot.restart_at = clock:now() + slot.delay
            else
              failure = failure or ("worker " .. slot.id .. " " .. describe(e.how, e.code))
            end
          end
        end
      end
    end
  end
  local bok, berr = pcall(body)
  -- Stopped while a worker waited for its fork to be tried again.
  for _, slot in ipairs(slots) do
    if slot.restart_at and slot.fork_err then failure = failure or slot.fork_err end
  end
  -- An error (a callback's) must not leave workers behind.
  if not bok then for pid in pairs(by_pid) do core.kill(pid, "KILL") end end
  while not bok and next(by_pid) do
    local _, ended = core.supervise_wait(1)
    for _, e in ipairs(ended or {}) do by_pid[e.pid] = nil end
  end
  core.supervise_end()
  clock:close()
  if not bok then error(berr, 0) end
  if failure then return nil, "ws.workers: " .. failure end
  return true, stopping or "done"
end

return M
