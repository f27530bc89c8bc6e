--- lua-ws: WebSocket (RFC 6455) client and server for Lua.
-- The protocol engine, the event loop and the sockets live in the C module
-- ws.core; this module adds the default loop, the straight-line style
-- (connect that waits, receive) and coroutines (spawn, sleep).
local core = require "ws.core"

local ws = {
  core = core,
  version = core.version,
}

local CALLBACKS = { "on_open", "on_message", "on_close", "on_error", "on_drain", "on_ping", "on_pong" }

local default_loop
--- The loop every connection, server and timer of this module runs on
-- (a new one once it was closed).
function ws.loop()
  if not default_loop or default_loop:closed() then default_loop = core.loop() end
  return default_loop
end

-- Coroutines started by ws.spawn: inside them waiting yields to the loop.
local spawned = setmetatable({}, { __mode = "k" })

local function current_task()
  local co, is_main = coroutine.running()
  if co and not is_main and spawned[co] then return co end
  return nil
end

-- Tasks running an on_upgrade that waited, and their connection: when
-- such a task fails, its client gets 500.
local upgrading = setmetatable({}, { __mode = "k" })

local function resume(co, ...)
  -- A task may trigger its own wake-up (closing a connection runs on_close
  -- at once): it is running then, not waiting.
  if coroutine.status(co) ~= "suspended" then return end
  local ok, err = coroutine.resume(co, ...)
  if not ok then
    local c = upgrading[co]
    if c then
      upgrading[co] = nil
      core.upgrade_answer(c, false, 500)
    end
    error(debug.traceback(co, tostring(err)), 0)
  end
end

--- Run fn(...) in a coroutine now; inside it connect, receive and sleep
-- yield to the loop instead of blocking it.
function ws.spawn(fn, ...)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'spawn' (function expected, got " .. type(fn) .. ")", 2)
  end
  local co = coroutine.create(fn)
  spawned[co] = true
  resume(co, ...)
  return co
end

-- Waiting outside a task runs the loop, which a callback of that loop
-- cannot do: say so, and what to do instead.
local function check_not_in_callback(loop, what, level)
  if loop:running() then
    error(what .. ": called from a callback of the same loop, which cannot wait;"
      .. " run the code that waits in a task: ws.spawn(function() ... end)", level + 1)
  end
end

-- Wait until ready() or the timeout (seconds, nil = none).  Inside a task
-- the task yields and `wake_list` (a table of waiting coroutines) gets it
-- until then; outside, the loop runs here.
local function wait(ready, timeout, wake_list, what)
  if ready() then return true end
  local loop = ws.loop()
  local deadline = timeout and loop:now() + timeout
  local co = current_task()
  if not co then check_not_in_callback(loop, what or "ws: wait", 3) end
  if co then
    local timer
    if timeout then timer = loop:timer(timeout, function() resume(co) end) end
    if wake_list then wake_list[co] = true end
    repeat
      coroutine.yield()
    until ready() or (deadline and loop:now() >= deadline)
    if wake_list then wake_list[co] = nil end
    if timer then timer:cancel() end
    return ready()
  end
  while not ready() do
    local remaining = deadline and deadline - loop:now()
    if remaining and remaining <= 0 then break end
    if not loop:alive() then break end
    loop:step(remaining)
  end
  return ready()
end

--- Pause: inside a task the loop runs other work meanwhile; outside, the
-- loop runs for that long.
function ws.sleep(seconds)
  if type(seconds) ~= "number" or seconds < 0 then
    error("bad argument #1 to 'sleep' (non-negative number expected)", 2)
  end
  local loop = ws.loop()
  local deadline = loop:now() + seconds
  local co = current_task()
  if co then
    local timer = loop:timer(seconds, function() resume(co) end)
    repeat coroutine.yield() until loop:now() >= deadline
    timer:cancel()
    return
  end
  check_not_in_callback(loop, "ws.sleep", 2)
  while loop:now() < deadline do
    loop:step(deadline - loop:now())
  end
end

function ws.timer(seconds, fn) return ws.loop():timer(seconds, fn) end
function ws.every(seconds, fn) return ws.loop():every(seconds, fn) end

--- Run until nothing is left to do: no connection, server, timer or task.
function ws.run() return ws.loop():run() end
function ws.step(timeout) return ws.loop():step(timeout) end

-- Straight-line state of a connection: received messages in order (data
-- and kind in consecutive slots), the close, and the tasks waiting on it.
-- The callbacks are shared by every such connection and find the state in
-- c.__ws, so receiving costs a connection one table and one closure.
local function wake(st)
  local co = next(st.waiting)
  if co == nil then return end
  if next(st.waiting, co) == nil then return resume(co) end
  local list = {}
  for w in pairs(st.waiting) do list[#list + 1] = w end
  for i = 1, #list do
    if st.waiting[list[i]] then resume(list[i]) end
  end
end

local function queue_message(c, data, is_binary)
  local st = c.__ws
  local n = st.last + 2
  st[n - 1], st[n] = data, is_binary and "binary" or "text"
  st.last = n
  wake(st)
end
local function note_close(c, code, reason)
  local st = c.__ws
  st.closed = { code, reason }
  wake(st)
end
local function note_open(c)
  local st = c.__ws
  st.opened = true
  wake(st)
end
local function note_error(c, err)
  local st = c.__ws
  st.error = err
  wake(st)
end

local function state_of(c)
  local st = c.__ws
  if st then return st end
  st = { first = 1, last = 0, waiting = {} }
  st.ready = function() return st.first <= st.last or st.closed ~= nil end
  c.__ws = st
  c.on_message, c.on_close, c.on_open, c.on_error = queue_message, note_close, note_open, note_error
  return st
end

--- Next message: data, "text"|"binary"; or nil, "timeout"; or nil,
-- "closed", code, reason.
local function receive(c, timeout)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
    error("bad argument #1 to 'receive' (non-negative number expected)", 2)
  end
  local st = state_of(c)
  wait(st.ready, timeout, st.waiting, "receive")
  local i = st.first
  if i <= st.last then
    local data, kind = st[i], st[i + 1]
    st[i], st[i + 1] = nil, nil
    if i + 1 == st.last then
      st.first, st.last = 1, 0 -- empty: start over so the slots stay small
    else
      st.first = i + 2
    end
    return data, kind
  end
  if st.closed then return nil, "closed", st.closed[1], st.closed[2] end
  return nil, "timeout"
end
core.conn_methods.receive = receive

-- Inside nginx (lua-nginx-module) lua-ws's own loop would block the
-- worker: the networked API refuses and points to the cosocket adapter.
local function refuse_in_nginx(what)
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and type(ngx.get_phase) == "function" then
    error(what .. ": not inside nginx (" .. tostring(ngx.get_phase()) .. " phase): its own event loop "
      .. "would block the worker; use require(\"ws.resty\") (cosockets) instead", 3)
  end
end

-- Tasks waiting in close(), per connection; the C side calls the "close"
-- hook after the close event of a connection marked by notify_close.
local close_waiters = setmetatable({}, { __mode = "k" })
core.set_hook("close", function(c)
  local list = close_waiters[c]
  if not list then return end
  close_waiters[c] = nil
  for co in pairs(list) do resume(co) end
end)

-- Until the connection is CLOSED: a task yields, a script runs the loop;
-- inside a callback it returns at once (the handshake completes later).
-- The connection's close timer bounds the wait.
local function wait_closed(c)
  local loop = core.conn_loop(c)
  if not loop or c.ready_state == "CLOSED" then return end
  local co = current_task()
  if co then
    local list = close_waiters[c]
    if not list then
      list = {}
      close_waiters[c] = list
    end
    list[co] = true
    core.notify_close(c)
    repeat coroutine.yield() until c.ready_state == "CLOSED"
    list[co] = nil
    return
  end
  if loop:running() then return end
  while c.ready_state ~= "CLOSED" and loop:alive() do loop:step() end
end

--- Close: send the close frame after the queued output and, outside
-- callbacks, wait for the peer's answer (up to close_timeout).
local core_close = core.conn_close
function core.conn_methods.close(c, code, reason)
  local ok, err = core_close(c, code, reason)
  if not ok then return ok, err end
  wait_closed(c)
  return true
end
-- local c <close> (Lua 5.4): the same, with the default code.
core.conn_meta.__close = function(c)
  local state = c.ready_state
  if state == "OPEN" or state == "CONNECTING" then
    c:close()
  elseif state == "CLOSING" then
    wait_closed(c)
  end
end

-- on_upgrade runs as a task, so it may wait (ws.sleep, ws.connect,
-- receive) before it decides.  The C side calls this hook with the
-- callback, the request and the connection: it returns false and what
-- on_upgrade returned when that did not wait; true when it waits, and the
-- task answers when it ends (500 when it fails, see resume).
-- handshake_timeout bounds the wait: the client then gets 503 and a late
-- decision is dropped.
core.set_hook("upgrade", function(fn, req, c)
  local waited, result = false, nil
  local co
  co = coroutine.create(function()
    local r = { fn(req) }
    if not waited then
      result = r
      return
    end
    core.upgrade_answer(c, r[1], r[2], r[3], r[4])
    upgrading[co] = nil
  end)
  spawned[co] = true
  local ok, err = coroutine.resume(co)
  if not ok then error(debug.traceback(co, tostring(err)), 0) end
  if not result then
    waited = true
    upgrading[co] = c
    return true
  end
  return false, result[1], result[2], result[3], result[4]
end)

--- Open a client connection.  With any on_* callback in opts it returns
-- at once (ready_state CONNECTING) and the callbacks fire from ws.run();
-- without, it waits and returns an OPEN connection or nil, err[, info].
function ws.connect(url, opts)
  if type(url) ~= "string" then
    error("bad argument #1 to 'connect' (string expected, got " .. type(url) .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'connect' (table expected, got " .. type(opts) .. ")", 2)
  end
  refuse_in_nginx("ws.connect")
  local callback_style = false
  for i = 1, #CALLBACKS do
    if opts and opts[CALLBACKS[i]] ~= nil then callback_style = true end
  end
  if not callback_style and not current_task() then check_not_in_callback(ws.loop(), "ws.connect", 2) end
  local c = core.connect(url, opts, ws.loop())
  if callback_style then return c end
  local st = state_of(c)
  wait(function() return c.ready_state ~= "CONNECTING" end, nil, st.waiting, "ws.connect")
  -- Opened counts even if the server already closed: what it sent first
  -- waits in the queue for receive().
  if st.opened then return c end
  local info
  if c.status then info = { status = c.status, headers = c.headers, body = c.body } end
  return nil, c.error or "connection closed during the handshake", info
end

--- Listen for WebSocket connections (and plain HTTP through on_request).
function ws.listen(opts)
  if type(opts) ~= "table" then
    error("bad argument #1 to 'listen' (table expected, got " .. type(opts) .. ")", 2)
  end
  refuse_in_nginx("ws.listen")
  return core.listen(opts, ws.loop())
end

--- A sans-I/O session: feed it received bytes, pull events, send what
-- `output()` returns.  See README.md for the options.
function ws.session(opts)
  if type(opts) ~= "table" then
    error("bad argument #1 to 'session' (table expected, got " .. type(opts) .. ")", 2)
  end
  return core.session(opts)
end

ws.reconnecting = function(url, opts) return (require("ws.reconnect").new(ws, url, opts, wait, resume)) end

return ws
