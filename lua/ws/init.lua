--- lua-ws: WebSocket (RFC 6455) client and server for Lua.
-- The protocol engine, the event loop and the sockets live in the C module
-- ws.core; this module adds the default loop, the straight-line style
-- (connect that waits, receive) and coroutines (spawn, sleep).
-- @module ws
local core = require "ws.core"

local ws = {
  --- The C module `ws.core` (sessions, the loop, handshake helpers and codecs).
  core = core,
  --- The version of lua-ws, `"0.1.0"`.
  version = core.version,
}

-- The straight-line receive queue's bound: at this many messages or bytes
-- the connection stops reading; it reads again at half of both.
local MAX_QUEUE, MAX_QUEUE_BYTES = 64, 16 * 1024 * 1024

-- The queue's own hold on a connection, apart from c:pause()/c:resume().
local hold_queue = core.hold_queue

local default_loop

--- The loop, tasks and timers.
-- @section loop

--- The loop every connection, server, timer and task of this module runs on,
-- made on first use.
-- @treturn Loop the default loop
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

--- Run `fn(...)` in a task (a coroutine) now. Inside it `ws.connect` without
-- callbacks, `c:receive`, `rc:receive`, `rc:wait_open` and `ws.sleep` yield
-- to the loop instead of blocking it. An error raised in the task comes out
-- of `ws.run()`/`ws.step()` with its traceback.
-- @tparam function fn the task
-- @param ... arguments for `fn`
-- @treturn thread the coroutine
-- @raise when `fn` is not a function
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

--- Pause for `seconds`. Inside a task the task yields and the loop runs other
-- work meanwhile; outside a task the loop runs here for that long.
-- @tparam number seconds how long, 0 or more
-- @raise when `seconds` is not a non-negative number
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

--- A one-shot timer on the default loop: `fn(timer)` runs once after
-- `seconds`. A timer keeps `ws.run()` going while it is armed.
-- @tparam number seconds delay
-- @tparam function fn callback, gets the timer
-- @treturn Timer the timer (`t:cancel()` stops it)
function ws.timer(seconds, fn) return ws.loop():timer(seconds, fn) end

--- A repeating timer on the default loop: `fn(timer)` runs every `seconds`
-- until `t:cancel()`.
-- @tparam number seconds interval
-- @tparam function fn callback, gets the timer
-- @treturn Timer the timer
function ws.every(seconds, fn) return ws.loop():every(seconds, fn) end

--- Run the default loop until nothing is left to do: no connection, server,
-- armed timer or waiting task. An error raised in a callback comes out of
-- `ws.run()` with its traceback; calling it again continues.
function ws.run() return ws.loop():run() end

--- One turn of the default loop: wait at most `timeout` seconds for something
-- to happen, then run what is ready.
-- @tparam[opt] number timeout seconds to wait (nil: until something happens; 0: do not wait)
-- @treturn integer how many callbacks ran
function ws.step(timeout) return ws.loop():step(timeout) end

--- Keep freed large blocks of this Lua state for reuse, or say what is kept.
-- Up to `bytes` of freed blocks of at least `min` bytes (at most 16 blocks)
-- are held back from the allocator and reused for the next large string or
-- table that fits. With LuaJIT, whose allocator maps and unmaps every block
-- of 128 KiB or more, each large message otherwise arrives in fresh pages
-- (~256 page faults per MiB); allow a few times the largest message size, as
-- the garbage collector frees strings in batches (PUC Lua's `malloc` trims and
-- regrows its heap under large messages, with the same faults). lua-ws turns an
-- automatic cache on by itself at the first message of 128 KiB or more (up
-- to 128 MiB, given back after one to two seconds without a large message;
-- see the README); an explicit `bytes` replaces it. `false` or 0 gives the
-- kept blocks back and keeps the cache off, automatic one included. With no
-- argument nothing changes.
-- @function keep_large_blocks
-- @tparam[opt] integer|false bytes how much freed memory may be kept (none: only report)
-- @tparam[opt=131072] integer min the smallest block kept (at least 4096)
-- @treturn integer the bytes of freed blocks held now
-- @treturn string the mode: "auto" (turned on by lua-ws), "on" (`bytes` given), "off"
-- (`false` or 0 given), "none" (not in use: no large message yet)
-- @treturn integer the bytes that may be held now
-- @treturn integer how many message strings were made where their payload arrived (in place), so far
ws.keep_large_blocks = core.keep_large_blocks

--- Advise transparent huge pages for the largest blocks of the large-block
-- cache (Linux): while the cache is on, a block of a huge page or more (the
-- kernel's `hpage_pmd_size`, 2 MiB on x86-64) that Lua takes fresh from its
-- allocator is advised (`madvise(MADV_HUGEPAGE)`) over the whole huge pages
-- within it, so a multi-MiB message faults in a few huge pages instead of
-- hundreds of small ones.  Off by default; one switch for the whole
-- process, best set before serving.  With no argument nothing changes.
-- @function advise_huge_pages
-- @tparam[opt] bool on `true` to advise, `false` to stop
-- @treturn bool whether blocks are advised now
ws.advise_huge_pages = core.advise_huge_pages

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
  local bytes = st.bytes + #data
  st.bytes = bytes
  if not st.held and ((n - st.first + 1) / 2 >= st.max_queue or bytes >= st.max_bytes) then
    st.held = true
    hold_queue(c, true)
  end
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

-- Queue bounds of a server's connections (set by ws.listen).
local server_limits = setmetatable({}, { __mode = "k" })

local function check_limit(opts, name, def, fname)
  local v = opts and opts[name]
  if v == nil then return def end
  if type(v) ~= "number" or v < 1 or v ~= math.floor(v) then
    error("bad argument #2 to '" .. fname .. "' (option '" .. name .. "' must be a positive integer)", 3)
  end
  return v
end

local function state_of(c, limits)
  local st = c.__ws
  if st then return st end
  if not limits then
    local srv = c.server
    limits = c.__ws_limits or (srv and server_limits[srv])
  end
  st = { first = 1, last = 0, bytes = 0, waiting = {},
    max_queue = limits and limits[1] or MAX_QUEUE, max_bytes = limits and limits[2] or MAX_QUEUE_BYTES }
  st.ready = function() return st.first <= st.last or st.closed ~= nil end
  c.__ws = st
  core.conn_receiving(c)
  return st
end
-- The callbacks the connection's own on_* see first; receive() hears open,
-- close and error too, and gets the messages no on_message callback takes.
core.set_receive_hooks { on_open = note_open, on_message = queue_message, on_close = note_close,
  on_error = note_error }

--- A WebSocket connection: from `ws.connect`, or accepted by a server. One that is
-- not CLOSED stays alive even when the script drops every reference to it; in
-- Lua 5.4 `local c <close> = ...` closes it at the end of the scope.
-- @type Connection

--- Wait for the next message (straight-line style). From the first call on
-- (or from `ws.connect` when it waits) messages wait in order until
-- received; the connection's own callbacks stay: `on_open`, `on_close` and
-- `on_error` still fire, and messages go to `receive` only while neither the
-- connection nor its server has an `on_message` callback.
-- Inside a `ws.spawn` task it yields; outside it runs the loop.
-- @function Connection:receive
-- @tparam[opt] number timeout seconds to wait (nil: no limit)
-- @treturn string data, and `"text"` or `"binary"`
-- @return `nil, "timeout"` when nothing came in time, or `nil, "closed", code, reason` once
--  the connection is closed and the queue is empty
-- @raise when `timeout` is not a non-negative number, or while an `on_message` callback is set
local function receive(c, timeout)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
    error("bad argument #1 to 'receive' (non-negative number expected)", 2)
  end
  local srv = c.server
  if c.on_message or (srv and srv.on_message) then
    if not current_task() then check_not_in_callback(ws.loop(), "receive", 2) end
    error("c:receive(): this connection's messages go to its on_message callback; "
      .. "remove the callback (c.on_message = nil) to receive them here", 2)
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
    local bytes = st.bytes - #data
    st.bytes = bytes
    if st.held and (st.last - st.first + 1) / 2 <= st.max_queue / 2 and bytes <= st.max_bytes / 2 then
      st.held = false
      hold_queue(c, false)
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

-- Loops that a host drives (ws.luv, ws.cqueues, ws.copas attach them):
-- host code must not run them itself, so close() does not wait there.
local hosted = setmetatable({}, { __mode = "k" })
core.hosted = hosted

-- Until the connection is CLOSED: a task yields, a script runs the loop;
-- inside a callback, or from host code when a host drives the loop, it
-- returns at once (the handshake completes as the loop runs).  The
-- connection's close timer bounds the wait.
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
  if loop:running() or hosted[loop] then return end
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

--- Clients, servers and sessions.
-- @section net

--- Options of `ws.connect` (also accepted by `ws.reconnecting`).
-- @table connect_options
-- @tfield[opt] {string,...} protocols subprotocols offered (`Sec-WebSocket-Protocol`)
-- @tfield[opt] table headers extra request headers, `{name = value}` or `{{name, value}, ...}`
-- @tfield[opt] string origin the `Origin` header
-- @tfield[opt] string extensions `Sec-WebSocket-Extensions` offer written by hand
-- @tfield[opt] bool wait `ws.connect` only: `true` waits for OPEN, `false` returns at once
--  (see `ws.connect`)
-- @tfield[opt=30] number timeout seconds from the start to OPEN (resolve, connect, TLS,
--  handshake)
-- @tfield[opt=5] number close_timeout seconds to wait for the peer's close, then 1006
-- @tfield[opt] number ping_interval send a ping this often (keepalive); off by default
-- @tfield[opt] number ping_timeout no byte from the peer this long after a ping:
--  `on_error("keepalive timeout ...")` and close 1006 (default `ping_interval`)
-- @tfield[opt] number idle_timeout no message either way this long: close 1001; off by default
-- @tfield[opt=16777216] integer max_message larger incoming messages close with 1009
-- @tfield[opt=16777216] integer max_frame larger incoming frames close with 1009
-- @tfield[opt=16777216] integer max_buffered unsent output limit: `send` returns `nil, "send
--  buffer full"` while this much is queued; a message of any size goes into an empty queue
-- @tfield[opt=0] integer low_water_mark `on_drain` fires when the unsent output falls to this
--  many bytes after having been above it
-- @tfield[opt=64] integer max_queue messages the `receive` queue holds before the connection
--  stops reading the socket (it reads again at half)
-- @tfield[opt=16777216] integer max_queue_bytes bytes the `receive` queue holds before the
--  connection stops reading the socket (it reads again at half)
-- @tfield[opt] bool|table compress `true` or a `compress_options` table: offer
--  permessage-deflate
-- @tfield[opt] string unix_socket connect to this Unix socket path instead of the URL's host
-- @tfield[opt] string|bool proxy `"http://[user:password@]host[:port]"` to tunnel through an
--  HTTP proxy with CONNECT (`"https://..."`: TLS to the proxy itself, the tunnel inside it;
--  port 443 when absent); `false`: never; nil: `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`
--  unless `NO_PROXY` lists the host
-- @tfield[opt] table proxy_tls `tls_options` for the TLS to an `https://` proxy (from the
--  option or the environment), checked against the proxy's name; `tls` is for the origin
--  only and never applies to the proxy (nor this one to the origin). Default: the system
--  trust store, verification on
-- @tfield[opt] bool|integer follow_redirects follow 301/302/303/307/308 answers to the
--  upgrade request up to this many hops (`true`: 10) on the same connection object; a hop to
--  another origin drops `Authorization` and `Cookie`
-- @tfield[opt=false] bool redirect_insecure allow a redirect from `wss://` to `ws://`
-- @tfield[opt] table tls `tls_options`; verification is on unless `verify = false`
-- @tfield[opt] function on_open see `callbacks`
-- @tfield[opt] function on_message see `callbacks`
-- @tfield[opt] function on_close see `callbacks`
-- @tfield[opt] function on_error see `callbacks`
-- @tfield[opt] function on_drain see `callbacks`
-- @tfield[opt] function on_ping see `callbacks`
-- @tfield[opt] function on_pong see `callbacks`

--- Callbacks of connections, given as options of `ws.connect`/`ws.listen`
-- (on a server they are shared by every client) or set as fields
-- (`c.on_message = fn`). They run from the loop (`ws.run`, `ws.step`); an
-- error raised in one comes out of that call with its traceback.
-- @table callbacks
-- @tfield function on_open `(c)`: the connection is OPEN
-- @tfield function on_message `(c, data, is_binary)`: a whole message
-- @tfield function on_close `(c, code, reason, was_clean)`: exactly once per connection
-- @tfield function on_error `(c, err)`: a network, TLS or protocol failure, before `on_close`
-- @tfield function on_drain `(c)`: the unsent output fell to `low_water_mark` (default 0)
--  after having been above it
-- @tfield function on_ping `(c, payload)`: a ping arrived (the pong is already queued)
-- @tfield function on_pong `(c, payload)`: a pong arrived

--- TLS settings: the `tls` option of `ws.connect` and `ws.listen`.
-- Connects with the same settings share one OpenSSL context, rebuilt after
-- 10 minutes so changed files are picked up.
-- @table tls_options
-- @tfield[opt=true] bool verify client: check the server's certificate and name; server:
--  require client certificates
-- @tfield[opt] string cafile trusted CA certificates (PEM); default: the system store
-- @tfield[opt] string capath directory of trusted CA certificates
-- @tfield[opt] string cert certificate chain file (server: required; client: client
--  certificate)
-- @tfield[opt] string key private key file of `cert`
-- @tfield[opt] string ciphers OpenSSL cipher list for TLS 1.2 (TLS 1.3 keeps its suites),
--  e.g. `"ECDHE-ECDSA-AES128-GCM-SHA256"`
-- @tfield[opt] string alpn comma-separated ALPN protocols, e.g. `"http/1.1"`: a client
--  offers them in this order, a server selects its first one the client offers (none
--  matching: no ALPN, the handshake goes on)

--- permessage-deflate settings (RFC 7692): the `compress` option of
-- `ws.connect`, `ws.listen` and `ws.session`. See README.md, Compression, for
-- the negotiation rules and memory use.
-- @table compress_options
-- @tfield[opt=64] integer threshold messages shorter than this are sent uncompressed
-- @tfield[opt=-1] integer level zlib level 0..9 (-1: zlib's default, 6)
-- @tfield[opt=8] integer mem_level zlib memLevel 1..9
-- @tfield[opt=15] integer window_bits 9..15, ceiling of our own compression window
-- @tfield[opt=false] bool no_context_takeover our own side resets its compressor after each
--  message
-- @tfield[opt=false] bool server_no_context_takeover client: asked of the server; server:
--  always answered
-- @tfield[opt=false] bool client_no_context_takeover client: promised; server: asked of the
--  client
-- @tfield[opt] integer server_max_window_bits client: asks the server for at most 8..15;
--  server: our window, 9..15
-- @tfield[opt] bool|integer client_max_window_bits client: `true` (default) offers it without
--  a value, 9..15 promises that window; server: limits a client that offered it (8..15)

-- Errors of the ws.core functions below are argument errors of the public
-- function that called them: report them at the line that called it.
local HERE = debug.getinfo(1, "S").short_src
local function call_core(name, f, ...)
  local ok, a, b = pcall(f, ...)
  if ok then return a, b end
  if type(a) ~= "string" then error(a, 0) end
  if a:sub(1, #HERE + 1) == HERE .. ":" then a = a:gsub("^[^\n]-:%d+: ", "", 1) end
  a = a:gsub("^bad argument #(%d+) to '[^']*'", "bad argument #%1 to '" .. name .. "'", 1)
  error(a, 3)
end

-- Whether ws.connect returns at once: the `wait` option says so; without
-- it, on_open or on_message (the callbacks a callback-style program learns
-- of its connection through) mean "return at once", as they always did.
local function returns_at_once(opts)
  if opts == nil then return false end
  if opts.wait ~= nil then
    if type(opts.wait) ~= "boolean" then
      error("bad argument #2 to 'connect' ('wait' must be a boolean, got " .. type(opts.wait) .. ")", 3)
    end
    return not opts.wait
  end
  return opts.on_open ~= nil or opts.on_message ~= nil
end

local function check_connect_args(name, url, opts)
  if type(url) ~= "string" then
    error("bad argument #1 to '" .. name .. "' (string expected, got " .. type(url) .. ")", 3)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to '" .. name .. "' (table expected, got " .. type(opts) .. ")", 3)
  end
end

--- Open a client connection to a `ws://`, `wss://` or `ws+unix://` URL and
-- wait (yielding inside `ws.spawn`) until it is OPEN. `wait = false` returns
-- the connection at once instead (`ready_state` `"CONNECTING"`, callbacks fire
-- from `ws.run()`), like `ws.open`; without `wait`, an `on_open` or
-- `on_message` callback in `opts` also returns at once (compatibility); other
-- callbacks never change the form.
-- @tparam string url `ws://host[:port]/path?query`, `wss://...`, `[IPv6]` literals,
--  `user:password@` (sent as Basic authorization), `ws+unix:///socket/path:/request/path`
-- @tparam[opt] table opts `connect_options`, plus `wait` (bool)
-- @treturn Connection the connection
-- @return `nil, err[, info]` (when waiting) when it failed; `info = {status, headers,
--  body}` when the server answered with an HTTP status other than 101
-- @raise on a bad URL or an unknown or bad option (the message names it), at the caller's line
function ws.connect(url, opts)
  check_connect_args("connect", url, opts)
  refuse_in_nginx("ws.connect")
  local at_once = returns_at_once(opts)
  if not at_once and not current_task() then check_not_in_callback(ws.loop(), "ws.connect", 2) end
  local limits = { check_limit(opts, "max_queue", MAX_QUEUE, "connect"),
    check_limit(opts, "max_queue_bytes", MAX_QUEUE_BYTES, "connect") }
  local c = call_core("connect", core.connect, url, opts, ws.loop())
  if at_once then
    -- kept only when asked for: receive() may be called later
    if opts and (opts.max_queue or opts.max_queue_bytes) then c.__ws_limits = limits end
    return c
  end
  local st = state_of(c, limits)
  wait(function() return c.ready_state ~= "CONNECTING" end, nil, st.waiting, "ws.connect")
  -- Opened counts even if the server already closed: what it sent first
  -- waits in the queue for receive().
  if st.opened then return c end
  local info
  if c.status then info = { status = c.status, headers = c.headers, body = c.body } end
  return nil, c.error or "connection closed during the handshake", info
end

--- Open a client connection in the callback form, like the browser's
-- `new WebSocket(url)`: it returns at once (`ready_state` `"CONNECTING"`)
-- and events reach the `on_*` callbacks from `ws.run()`.
-- @tparam string url as for `ws.connect`
-- @tparam[opt] table opts `connect_options`
-- @treturn Connection the connection
-- @raise on a bad URL or an unknown or bad option, at the caller's line
function ws.open(url, opts)
  check_connect_args("open", url, opts)
  if opts and opts.wait ~= nil then
    error("bad argument #2 to 'open' ('wait' is not an option of ws.open; use ws.connect)", 2)
  end
  refuse_in_nginx("ws.open")
  return (call_core("open", core.connect, url, opts, ws.loop()))
end

--- Options of `ws.listen`. The per-connection settings `close_timeout`,
-- `ping_interval`, `ping_timeout`, `idle_timeout`, `max_message`,
-- `max_frame`, `max_buffered`, `low_water_mark`, `max_queue`, `max_queue_bytes`
-- and the `callbacks` are as for clients.
-- @table listen_options
-- @tfield[opt="127.0.0.1"] string host address to listen on; `"*"` for every address
-- @tfield[opt=0] integer port port; 0 picks a free one (`srv.port`)
-- @tfield[opt] string unix listen on a Unix socket at this path instead of host/port
-- @tfield[opt] string|integer mode permission bits of the Unix socket file (`"660"` or a
--  number)
-- @tfield[opt=false] bool reuseport set `SO_REUSEPORT`
-- @tfield[opt=511] integer backlog listen backlog
-- @tfield[opt=false] bool keep_request keep every connection's `c.request` after `on_open`
-- @tfield[opt] table tls `tls_options` (`cert` and `key` required): serve `wss://`
-- @tfield[opt] {string,...} protocols supported subprotocols; the first of the client's
--  offers that is supported is chosen
-- @tfield[opt] bool|table compress accept permessage-deflate offers (`compress_options`)
-- @tfield[opt=10] number handshake_timeout a client that has not finished its handshake by
--  then is cut
-- @tfield[opt="error"] string buffer_policy over `max_buffered`: `"error"` (send returns nil,
--  err) or `"close"` (the client is closed with 1013)
-- @tfield[opt] function on_upgrade `(req)`: inspect an `upgrade_request` before accepting.
--  Return nothing or `true` to accept, a string to pick that subprotocol, `{protocol=,
--  headers=}`, or `false[, status[, reason[, headers]]]` to reject (403 by default)
-- @tfield[opt] function on_request `(req, res)`: plain HTTP on the same port; fill the
--  `http_response` (without it: 426)
-- @tfield[opt] Backplane backplane attach this backplane (`ws.redis`), as `srv:attach(bp)`
-- @tfield[opt] function on_accept_error `(srv, err)`: accepting failed for want of file
--  descriptors or memory; called once per shortage while the server pauses accepting (50 ms,
--  doubling up to 1 s) and keeps serving its connections

--- The request `on_upgrade(req)` and `on_request(req, res)` get, and
-- `c.request`.
-- @table upgrade_request
-- @tfield string method `"GET"`
-- @tfield string path the request path without the query
-- @tfield string query the query string, or nil
-- @tfield table headers request headers
-- @tfield string origin the `Origin` header, or nil
-- @tfield {string,...} protocols subprotocols the client offered
-- @tfield string extensions the client's `Sec-WebSocket-Extensions`, or nil
-- @tfield string peer_address the client's address
-- @tfield integer peer_port the client's port
-- @tfield string server_name the TLS SNI name, or nil

--- The answer `on_request(req, res)` fills in; it closes the connection.
-- @table http_response
-- @tfield[opt=200] integer status 200..599 (the standard reason phrase is added)
-- @tfield[opt] table headers response headers
-- @tfield[opt] string body response body (none with 204 and 304)

--- Listen for WebSocket connections (and plain HTTP through `on_request`) on
-- the default loop.
-- @tparam table opts `listen_options`
-- @treturn Server the server
-- @raise on a bad option, or when the address cannot be bound
function ws.listen(opts)
  if type(opts) ~= "table" then
    error("bad argument #1 to 'listen' (table expected, got " .. type(opts) .. ")", 2)
  end
  refuse_in_nginx("ws.listen")
  local limits = { check_limit(opts, "max_queue", MAX_QUEUE, "listen"),
    check_limit(opts, "max_queue_bytes", MAX_QUEUE_BYTES, "listen") }
  local srv = call_core("listen", core.listen, opts, ws.loop())
  server_limits[srv] = limits
  return srv
end

--- Options of `ws.redis`.
-- @table redis_options
-- @tfield[opt="127.0.0.1"] string host Redis host (a name is resolved, blocking, at each
--  connect: prefer an address)
-- @tfield[opt=6379] integer port Redis port
-- @tfield[opt] string unix a Unix socket path instead of host/port
-- @tfield[opt] string password sent with `AUTH`
-- @tfield[opt] string username ACL user (Redis 6+): `AUTH username password`
-- @tfield[opt="ws:"] string prefix channel of topic T is prefix .. T (1 to 255 bytes); the
--  channel named by the prefix alone is the backplane's own
-- @tfield[opt=5] number connect_timeout seconds for connect, AUTH and PING
-- @tfield[opt=5] number ping_interval seconds between the publisher's PINGs; a PING
--  unanswered by the next one makes it reconnect both connections
-- @tfield[opt=16777216] integer max_pending bytes of PUBLISHes Redis has not answered yet;
--  beyond it `srv:publish` reports failure instead of piling up
-- @tfield[opt] table backoff `{initial = 0.1, max = 5}`: seconds before reconnecting,
--  doubling up to max
-- @tfield[opt] function on_error `(bp, err)`: a connect, AUTH or PUBLISH failed, or a
--  connection dropped (it reconnects by itself)

--- A Redis backplane on the default loop: `srv:attach(bp)` (or the `backplane` option of
-- `ws.listen`) joins a server's topics to those of every other node attached to the same
-- Redis. It connects at once (two connections: one SUBSCRIBEs, one PUBLISHes) and
-- reconnects by itself; see README.md, Redis backplane.
-- @tparam table opts `redis_options`
-- @treturn Backplane the backplane
-- @raise on a bad option
function ws.redis(opts)
  if type(opts) ~= "table" then
    error("bad argument #1 to 'redis' (table expected, got " .. type(opts) .. ")", 2)
  end
  refuse_in_nginx("ws.redis")
  return (call_core("redis", core.redis, opts, ws.loop()))
end

--- Options of `ws.session`.
-- @table session_options
-- @tfield string role `"client"` or `"server"` (required)
-- @tfield[opt=true] bool handshake `false` starts OPEN, for hosts that did the HTTP upgrade
--  themselves
-- @tfield[opt] string url client with handshake: the `ws://` or `wss://` URL of the request
-- @tfield[opt] {string,...} protocols client: offered; server: supported
-- @tfield[opt] string origin client: the `Origin` header
-- @tfield[opt] string extensions client: `Sec-WebSocket-Extensions` offer
-- @tfield[opt] table headers client: extra request headers
-- @tfield[opt=16777216] integer max_message largest message received; over it: close 1009
-- @tfield[opt] integer max_frame largest frame received (default `max_message`)
-- @tfield[opt=8192] integer max_head largest handshake head (server answers 431 above it)
-- @tfield[opt=64] integer max_headers most handshake headers
-- @tfield[opt=false] bool stream deliver each data frame as a `fragment` event
-- @tfield[opt] bool|table compress permessage-deflate (`compress_options`)
-- @tfield[opt] string key fixed `Sec-WebSocket-Key`, for tests only
-- @tfield[opt] string mask_key fixed 4-byte masking key, for tests only

--- A sans-I/O session: one WebSocket connection's protocol state for either
-- role, for hosts that own the socket. Feed it what was received, pull
-- events, write what `output()` returns.
-- @tparam table opts `session_options`
-- @treturn Session the session
-- @raise on a bad option (the message names it)
function ws.session(opts)
  if type(opts) ~= "table" then
    error("bad argument #1 to 'session' (table expected, got " .. type(opts) .. ")", 2)
  end
  return (call_core("session", core.session, opts))
end

--- Worker processes.
-- @section workers

-- ws.workers' view of the default loop: "busy" asks whether it is in use
-- (connections not CLOSED, servers listening: sockets the fork would share;
-- its timers and tasks simply do not exist in a worker),
-- nil drops it (in a new worker), true closes it (a worker's end).
local function fresh_loop(what)
  if what == "busy" then
    return default_loop ~= nil and not default_loop:closed()
      and (default_loop:members() > 0 or default_loop:running())
  elseif what == true then
    if default_loop and not default_loop:closed() then default_loop:close() end
  else
    default_loop = nil
  end
end

--- Run a server as `n` processes: the calling process becomes a supervisor
-- that forks `n` workers, each running `fn(worker_id)` on its own default
-- loop (listen there with `reuseport = true` so the kernel spreads the
-- connections over the workers). A worker that dies is restarted (with a
-- backoff); SIGTERM/SIGINT to the supervisor reach every worker, whose
-- servers stop accepting and whose clients get close 1001 after their
-- queued output; `ws.run()` returns there and the worker exits when `fn`
-- returns. Call it while the default loop has no open connection or server
-- (its timers and tasks stay in the supervisor, where they do not run).
-- See `ws.workers.options`.
-- @tparam integer n how many workers (1 to 1024)
-- @tparam function fn `fn(worker_id)`, ids 1 to `n` (a restarted worker keeps its id)
-- @tparam[opt] table opts `ws.workers.options`
-- @return in the supervisor: `true, why` once every worker ended cleanly (`why`: the stop
--  signal `"TERM"`/`"INT"`, or `"done"`), or `nil, err` (a worker that died, or could
--  not be forked, without restart); never returns in a worker
-- @raise on a bad argument, or when the default loop is already in use
-- @usage
-- local ok, err = ws.workers(4, function(id)
--   ws.listen { port = 8080, reuseport = true, on_message = function(c, m) c:send(m) end }
--   ws.run()
-- end)
-- os.exit(ok and 0 or 1)
function ws.workers(n, fn, opts)
  return require("ws.workers").run(n, fn, opts, fresh_loop)
end

--- In a worker of `ws.workers`: the signal that asked it to stop (`"TERM"`
-- or `"INT"`), or false (always false outside workers). For work that does
-- not end with `ws.run()`.
-- @treturn string|bool
function ws.stopping() return core.stop_requested() end

--- A client that reconnects after drops, with the methods of a connection
-- and the same callbacks plus `on_reconnect(rc, attempt, delay)` and
-- `on_give_up(rc, err)`.
-- @function reconnecting
-- @tparam string url as for `ws.connect`
-- @tparam[opt] table opts `ws.reconnect.options` plus any `connect_options`
-- @treturn ws.reconnect.Reconnecting the client
ws.reconnecting = function(url, opts) return (require("ws.reconnect").new(ws, url, opts, wait, resume)) end

return ws
