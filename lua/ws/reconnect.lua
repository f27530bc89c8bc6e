--- ws.reconnecting: a client connection that comes back by itself.
--
-- Pure Lua on top of ws.connect (callback style).  It reconnects with
-- exponential backoff and full jitter after drops, failed connects, 5xx
-- handshake answers and keepalive timeouts; it can queue what is sent while
-- disconnected and deliver it, in order and at most once, after the next open.
--
-- Reconnect rules (see README.md, "Reconnecting clients"):
--   * never after rc:close() (the user's own close) or after giving up;
--   * a connect that failed before OPEN: retry after network failures
--     (refused, timeout, DNS, TLS, bad handshake answer) and HTTP 5xx, 408
--     and 429; not after other 4xx (unless opts.retry_on_4xx) nor other
--     statuses (1xx/2xx/3xx: retrying would get the same answer);
--   * a connection that was OPEN and closed, by close code:
--       1001 1006 1011 1012 1013 1014 1015, 3000-4999 ... retry
--       1000 and 1005 (a normal close the server chose) ... retry only with
--                                                   opts.reconnect_on_normal_close
--       1002 1003 1007 1008 1009 1010 .................. give up (protocol or
--                                   policy problems: a retry would fail the same way)
--   * opts.should_reconnect(rc, info) overrides all of the above (except
--     rc:close()): return true to retry, false to give up.
--
-- Lua 5.1 compatible; no require cycles: ws is passed in by ws.reconnecting.
-- @module ws.reconnect

local M = {}

local CALLBACKS = { "on_open", "on_message", "on_close", "on_error", "on_drain", "on_ping", "on_pong",
  "on_reconnect", "on_give_up" }
-- Options of ws.reconnecting that ws.connect does not get.
local OWN = { backoff = true, queue = true, retry_on_4xx = true, reconnect_on_normal_close = true,
  should_reconnect = true }
for i = 1, #CALLBACKS do OWN[CALLBACKS[i]] = true end

--- Options and rules.
-- @section options

--- Close codes after which the client reconnects by default (1001, 1006,
-- 1011-1015; 3000-4999 are retried too).
-- @table RETRY_CODES
local RETRY_CODES = { [1001] = true, [1006] = true, [1011] = true, [1012] = true, [1013] = true,
  [1014] = true, [1015] = true }
local NORMAL_CODES = { [1000] = true, [1005] = true }

--- Options of `ws.reconnecting` (besides any `ws.connect` option, which
-- passes through to each connection).
-- @table options
-- @tfield[opt] table backoff `{initial = 0.5, max = 30, factor = 2, max_retries = nil,
--  reset_after = 5, random = math.random}`: full jitter, delay = random() * min(max, initial
--  * factor^(attempt-1)); `max_retries` retries after the first attempt (nil: forever); a
--  connection open for `reset_after` seconds resets the count
-- @tfield[opt] number initial `backoff.initial`: first delay ceiling, seconds
-- @tfield[opt] number max `backoff.max`: largest delay ceiling, seconds
-- @tfield[opt] number factor `backoff.factor`: growth per attempt
-- @tfield[opt] integer max_retries `backoff.max_retries`: then `on_give_up`
-- @tfield[opt] number reset_after `backoff.reset_after`: seconds
-- @tfield[opt] function random `backoff.random`: source of jitter in [0, 1)
-- @tfield[opt] table queue `{max_messages = 1000, max_bytes = 1048576, flush =
--  "before_open"}`: keep messages sent while not OPEN and deliver them in order after the
--  next open (`flush = "after_open"`: after `on_open`); nil: sending while down returns `nil,
--  "not connected"`
-- @tfield[opt=false] bool retry_on_4xx retry after 4xx handshake answers too
-- @tfield[opt=false] bool reconnect_on_normal_close retry after a 1000/1005 close by the
--  server
-- @tfield[opt] function should_reconnect `(rc, info)` -> bool: overrides the rules; `info =
--  {code, reason, was_clean, error, status, opened}`
-- @tfield[opt] function on_reconnect `(rc, attempt, delay)`: a retry is scheduled
-- @tfield[opt] function on_give_up `(rc, err)`: no more retries
local DEFAULT_BACKOFF = { initial = 0.5, max = 30, factor = 2, reset_after = 5 }
local DEFAULT_QUEUE = { max_messages = 1000, max_bytes = 1024 * 1024 }

local RC = {}   -- methods
local priv = setmetatable({}, { __mode = "k" }) -- rc -> private state

local function fail(msg, level)
  error("ws.reconnecting: " .. msg, level + 1)
end

local function check_number(t, name, prefix, min, allow_nil, level, integer)
  local v = t[name]
  if v == nil and allow_nil then return nil end
  if type(v) ~= "number" or v ~= v or v < min or v == math.huge and integer
      or (integer and v ~= math.floor(v)) then
    fail(string.format("option '%s%s' must be %s %s >= %s", prefix, name,
      integer and "an" or "a", integer and "integer" or "number", tostring(min)), level + 1)
  end
  return v
end

local function validate(core, url, opts, level)
  if type(url) ~= "string" then
    fail("bad argument #1 (string expected, got " .. type(url) .. ")", level + 1)
  end
  local url_ok, url_err = pcall(core.parse_url, url)
  if not url_ok then
    fail("bad argument #1 (" .. (tostring(url_err):match("%((.*)%)$") or tostring(url_err)) .. ")", level + 1)
  end
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    fail("bad argument #2 (table expected, got " .. type(opts) .. ")", level + 1)
  end
  local unknown = core.check_options("reconnecting", opts)
  if unknown then fail(unknown, level + 1) end
  for i = 1, #CALLBACKS do
    local v = opts[CALLBACKS[i]]
    if v ~= nil and type(v) ~= "function" then
      fail("option '" .. CALLBACKS[i] .. "' must be a function", level + 1)
    end
  end
  if opts.should_reconnect ~= nil and type(opts.should_reconnect) ~= "function" then
    fail("option 'should_reconnect' must be a function", level + 1)
  end
  local b = opts.backoff
  if b ~= nil and type(b) ~= "table" then fail("option 'backoff' must be a table", level + 1) end
  b = b or {}
  unknown = core.check_options("backoff", b, "backoff.")
  if unknown then fail(unknown, level + 1) end
  local backoff = {}
  for k, v in pairs(DEFAULT_BACKOFF) do backoff[k] = v end
  for k, v in pairs(b) do backoff[k] = v end
  check_number(backoff, "initial", "backoff.", 0, false, level + 1)
  if backoff.initial <= 0 then fail("option 'backoff.initial' must be a number > 0", level + 1) end
  check_number(backoff, "max", "backoff.", 0, false, level + 1)
  if backoff.max <= 0 then fail("option 'backoff.max' must be a number > 0", level + 1) end
  check_number(backoff, "factor", "backoff.", 1, false, level + 1)
  check_number(backoff, "reset_after", "backoff.", 0, false, level + 1)
  check_number(backoff, "max_retries", "backoff.", 0, true, level + 1, true)
  if backoff.random ~= nil and type(backoff.random) ~= "function" then
    fail("option 'backoff.random' must be a function returning a number in [0, 1]", level + 1)
  end
  local queue
  if opts.queue ~= nil and opts.queue ~= false then
    local q = opts.queue
    if q == true then q = {} end
    if type(q) ~= "table" then fail("option 'queue' must be a table, true or nil", level + 1) end
    unknown = core.check_options("queue", q, "queue.")
    if unknown then fail(unknown, level + 1) end
    queue = { max_messages = DEFAULT_QUEUE.max_messages, max_bytes = DEFAULT_QUEUE.max_bytes, flush = "before_open" }
    for k, v in pairs(q) do queue[k] = v end
    check_number(queue, "max_messages", "queue.", 1, false, level + 1, true)
    check_number(queue, "max_bytes", "queue.", 1, false, level + 1, true)
    if queue.flush ~= "before_open" and queue.flush ~= "after_open" then
      fail("option 'queue.flush' must be \"before_open\" or \"after_open\"", level + 1)
    end
  end
  return opts, backoff, queue
end

-- The HTTP status of a failed handshake decides; no status: a network failure.
local function retry_after_failed_connect(st, status)
  if not status then return true end
  if status >= 500 and status <= 599 then return true end
  if status == 408 or status == 429 then return true end
  if status >= 400 and status <= 499 then return st.opts.retry_on_4xx == true end
  return false
end

local function retry_after_close(st, code)
  if RETRY_CODES[code] then return true end
  if code and code >= 3000 and code <= 4999 then return true end
  if NORMAL_CODES[code] then return st.opts.reconnect_on_normal_close == true end
  return false
end

local function call(rc, name, ...)
  local fn = rc[name]
  if fn then return fn(rc, ...) end
end

local function wake(st)
  local list = {}
  for co in pairs(st.waiting) do list[#list + 1] = co end
  for i = 1, #list do
    if st.waiting[list[i]] then st.resume(list[i]) end
  end
end

local function now(st) return st.ws.loop():now() end

local function live(c)
  if not c then return false end
  local s = c.ready_state
  return s == "CONNECTING" or s == "OPEN"
end

-- Hand queued messages to the OPEN connection in order; stops (keeping the
-- rest) when a send fails (buffer full: on_drain continues; dropped: the
-- next open continues).
local function flush(st, c)
  local q = st.queue
  while q.first <= q.last do
    if c.ready_state ~= "OPEN" then return end
    local m = q[q.first]
    local ok = c:send(m[1], m[2])
    if not ok then return end
    q[q.first] = nil
    q.first = q.first + 1
    q.bytes = q.bytes - #m[1]
  end
end

local function queue_empty(st)
  return not st.queue or st.queue.first > st.queue.last
end

local connect_now -- forward

local function give_up(rc, st, err)
  st.stopped = true
  st.final = st.final or { st.last_code or 1006, st.last_reason or "" }
  wake(st)
  call(rc, "on_give_up", err)
end

-- A connection ended (info: code, reason, was_clean, error, status, opened).
local function ended(rc, st, info)
  if info.opened and now(st) - (st.opened_at or 0) >= st.backoff.reset_after then
    rc.attempt = 0
  end
  st.last_code, st.last_reason = info.code, info.reason
  local last_err = info.error or string.format("connection closed with code %d%s", info.code or 1006,
    (info.reason and info.reason ~= "") and (": " .. info.reason) or "")
  st.last_error = last_err
  local retry, why
  if st.stopped then
    retry = false
  else
    if st.opts.should_reconnect then
      retry = st.opts.should_reconnect(rc, info) and true or false
    elseif info.opened then
      retry = retry_after_close(st, info.code)
    else
      retry = retry_after_failed_connect(st, info.status)
    end
    local b = st.backoff
    if retry and b.max_retries and rc.attempt + 1 > b.max_retries then
      retry, why = false, "gave up after " .. b.max_retries .. " retries: " .. last_err
    end
  end
  local delay
  if retry then
    rc.attempt = rc.attempt + 1
    local b = st.backoff
    local r = b.random()
    if type(r) ~= "number" or r < 0 or r > 1 then
      error("ws.reconnecting: option 'backoff.random' returned " .. tostring(r)
        .. " (a number in [0, 1] expected)", 0)
    end
    delay = r * math.min(b.max, b.initial * b.factor ^ (rc.attempt - 1))
    st.waiting_retry = true
    st.retry_timer = st.ws.timer(delay, function()
      st.retry_timer = nil
      st.waiting_retry = false
      if not st.stopped then connect_now(rc, st) end
    end)
  elseif not st.stopped then
    st.stopped = true
    st.give_up_error = why or last_err
  end
  if st.stopped then
    st.final = st.final or { info.code or 1006, info.reason or "" }
    wake(st)
  end
  call(rc, "on_close", info.code, info.reason, info.was_clean)
  if retry then
    if not st.stopped then call(rc, "on_reconnect", rc.attempt, delay) end
  elseif st.give_up_error then
    local err = st.give_up_error
    st.give_up_error = nil
    give_up(rc, st, err)
  end
end

connect_now = function(rc, st)
  st.gen = st.gen + 1
  local gen = st.gen
  local attempt = { opened = false }
  local function current(c)
    if gen ~= st.gen then return false end
    rc.connection = c
    return true
  end
  local copts = {}
  for k, v in pairs(st.conn_opts) do copts[k] = v end
  copts.wait = false
  copts.on_open = function(c)
    if not current(c) then return end
    attempt.opened = true
    st.opened_at = now(st)
    if st.queue and st.queue.flush == "before_open" then flush(st, c) end
    wake(st)
    st.in_open = true
    local ok, err = xpcall(function() return call(rc, "on_open") end, debug.traceback)
    st.in_open = false
    if st.queue and st.queue.flush == "after_open" and c.ready_state == "OPEN" then flush(st, c) end
    if not ok then error(err, 0) end
  end
  copts.on_message = function(c, data, is_binary)
    if not current(c) then return end
    if rc.on_message then
      rc.on_message(rc, data, is_binary)
    else
      local inbox = st.inbox
      inbox.last = inbox.last + 1
      inbox[inbox.last] = { data, is_binary and "binary" or "text" }
      inbox.bytes = inbox.bytes + #data
      -- bounded like a connection's receive queue: stop reading when full
      local full = inbox.last - inbox.first + 1 >= st.max_queue or inbox.bytes >= st.max_queue_bytes
      if full and inbox.held ~= c then
        inbox.held = c
        c:pause()
      end
      wake(st)
    end
  end
  copts.on_error = function(c, err)
    if not current(c) then return end
    attempt.error = err
    call(rc, "on_error", err)
  end
  copts.on_close = function(c, code, reason, was_clean)
    if not current(c) then return end
    ended(rc, st, { code = code, reason = reason, was_clean = was_clean, error = attempt.error,
      status = (not attempt.opened) and c.status or nil, opened = attempt.opened })
  end
  copts.on_drain = function(c)
    if not current(c) then return end
    if st.queue then flush(st, c) end
    if queue_empty(st) then call(rc, "on_drain") end
  end
  copts.on_ping = function(c, payload)
    if current(c) then call(rc, "on_ping", payload) end
  end
  copts.on_pong = function(c, payload)
    if current(c) then call(rc, "on_pong", payload) end
  end
  local ok, c = pcall(st.ws.connect, rc.url, copts)
  if not ok then
    if gen == 1 then error(c, 0) end
    -- cannot happen with options that worked once; treat it as a failed connect
    ended(rc, st, { code = 1006, reason = "", was_clean = false, error = tostring(c), opened = false })
    return
  end
  if gen == st.gen then rc.connection = c end
end

--- A reconnecting client from `ws.reconnecting`: the methods, fields and
-- callbacks of a connection, across reconnects.
-- @type Reconnecting

--- Send a message. While not OPEN it is queued when `queue` is set.
-- @function Reconnecting:send
-- @tparam string data the message
-- @tparam[opt="text"] string kind `"text"` or `"binary"`
-- @return `true`, or `nil, err` (`"not connected"`, `"reconnect queue full"`, a send error)
function RC:send(data, kind)
  local st = priv[self]
  if type(data) == "number" then data = tostring(data) end
  if type(data) ~= "string" then
    error("bad argument #1 to 'send' (string expected, got " .. type(data) .. ")", 2)
  end
  if kind ~= nil and kind ~= "text" and kind ~= "binary" then
    error("bad argument #2 to 'send' (\"text\" or \"binary\" expected)", 2)
  end
  kind = kind or "text"
  if kind == "text" and not st.ws.core.utf8_valid(data) then
    error("bad argument #1 to 'send' (text is not valid UTF-8)", 2)
  end
  if st.stopped then return nil, "closed" end
  local c = self.connection
  local open = c and c.ready_state == "OPEN"
  if open and (queue_empty(st) or (st.in_open and st.queue.flush == "after_open")) then
    return c:send(data, kind)
  end
  local q = st.queue
  if not q then return nil, "not connected" end
  -- max_bytes limits what accumulates: one message of any size goes into an
  -- empty queue, as into a connection's empty output (max_buffered)
  local count = q.last - q.first + 1
  if count >= q.max_messages or (count > 0 and q.bytes + #data > q.max_bytes) then
    return nil, "reconnect queue full"
  end
  q.last = q.last + 1
  q[q.last] = { data, kind }
  q.bytes = q.bytes + #data
  if open then flush(st, c) end
  return true
end

--- Ping the current connection.
-- @function Reconnecting:ping
-- @tparam[opt] string payload at most 125 bytes
-- @return `true`, or `nil, "not connected"`
function RC:ping(payload)
  if payload ~= nil and type(payload) ~= "string" then
    error("bad argument #1 to 'ping' (string expected, got " .. type(payload) .. ")", 2)
  end
  if payload and #payload > 125 then
    error("bad argument #1 to 'ping' (payload longer than 125 bytes)", 2)
  end
  local c = self.connection
  if priv[self].stopped or not c or c.ready_state ~= "OPEN" then return nil, "not connected" end
  return c:ping(payload)
end

--- Close for good: no reconnect after this.
-- @function Reconnecting:close
-- @tparam[opt=1000] integer code close code
-- @tparam[opt] string reason close reason
function RC:close(code, reason)
  local st = priv[self]
  if st.stopped then return true end
  st.stopped = true
  if st.retry_timer then
    -- (not active once its loop was closed: cancel would raise then)
    if st.retry_timer:active() then st.retry_timer:cancel() end
    st.retry_timer = nil
  end
  local c = self.connection
  if live(c) then
    -- a connect in progress just fails (1006): the end is the user's close
    if c.ready_state == "CONNECTING" then st.final = { code or 1000, reason or "" } end
    -- its on_close reports the end (and wakes receivers)
    return c:close(code, reason)
  end
  st.final = { code or 1000, reason or "" }
  wake(st)
  return true
end

local function wait_for(st, ready, timeout)
  return st.wait(ready, timeout, st.waiting)
end

--- Wait for the next message, across reconnects.
-- @function Reconnecting:receive
-- @tparam[opt] number timeout seconds
-- @return `data, kind`; `nil, "timeout"`; or `nil, "closed", code, reason` only after close
--  or give-up
function RC:receive(timeout)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
    error("bad argument #1 to 'receive' (non-negative number expected)", 2)
  end
  local st = priv[self]
  local inbox = st.inbox
  wait_for(st, function() return inbox.first <= inbox.last or st.final ~= nil end, timeout)
  if inbox.first <= inbox.last then
    local m = inbox[inbox.first]
    inbox[inbox.first] = nil
    inbox.first = inbox.first + 1
    inbox.bytes = inbox.bytes - #m[1]
    local held = inbox.held
    local count = inbox.last - inbox.first + 1
    if held and count <= st.max_queue / 2 and inbox.bytes <= st.max_queue_bytes / 2 then
      inbox.held = nil
      if held.ready_state ~= "CLOSED" then held:resume() end
    end
    return m[1], m[2]
  end
  if st.final then return nil, "closed", st.final[1], st.final[2] end
  return nil, "timeout"
end

--- Wait until the client is OPEN.
-- @function Reconnecting:wait_open
-- @tparam[opt] number timeout seconds
-- @return `true`, or `nil, err` (`"timeout"`, or why it gave up)
function RC:wait_open(timeout)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
    error("bad argument #1 to 'wait_open' (non-negative number expected)", 2)
  end
  local st = priv[self]
  local function ready()
    local c = self.connection
    return st.stopped or (c and c.ready_state == "OPEN")
  end
  wait_for(st, ready, timeout)
  local c = self.connection
  if c and c.ready_state == "OPEN" and not st.stopped then return true end
  if st.stopped then return nil, "closed" end
  return nil, "timeout"
end

--- How much waits in the queue.
-- @function Reconnecting:queued
-- @treturn integer messages
-- @treturn integer bytes
function RC:queued()
  local q = priv[self].queue
  if not q then return 0, 0 end
  return q.last - q.first + 1, q.bytes
end

--- What was still queued after a close or give-up.
-- @function Reconnecting:unsent
-- @treturn {{data,kind},...} the messages, in order
function RC:unsent()
  local q = priv[self].queue
  local out = {}
  if not q then return out end
  for i = q.first, q.last do
    out[#out + 1] = q[i]
    q[i] = nil
  end
  q.first, q.last, q.bytes = 1, 0, 0
  return out
end

--- Bytes not yet written: the current connection's plus the queue's.
-- @function Reconnecting:buffered_amount
-- @treturn integer bytes
function RC:buffered_amount()
  local c = self.connection
  return c and c:buffered_amount() or 0
end

--- Fields of a reconnecting client (read-only unless noted; any other field
-- can be set and read).
-- @table fields
-- @tfield string ready_state `"CONNECTING"` (also while waiting to retry), `"OPEN"`,
--  `"CLOSING"`, `"CLOSED"`
-- @tfield string protocol negotiated subprotocol of the current connection
-- @tfield string extensions negotiated extensions of the current connection
-- @tfield string url the URL
-- @tfield Connection connection the current connection, or nil
-- @tfield integer attempt attempts since the last reset
local PROPS = {
  ready_state = function(self, st)
    if st.stopped then
      local c = self.connection
      if c and c.ready_state ~= "CLOSED" then return "CLOSING" end
      return "CLOSED"
    end
    local c = self.connection
    if c and c.ready_state ~= "CLOSED" then return c.ready_state end
    return "CONNECTING"
  end,
  protocol = function(self)
    local c = self.connection
    return c and c.ready_state == "OPEN" and c.protocol or nil
  end,
  extensions = function(self)
    local c = self.connection
    return c and c.ready_state == "OPEN" and c.extensions or nil
  end,
}

local MT = {
  __index = function(self, k)
    local m = RC[k]
    if m then return m end
    local p = PROPS[k]
    if p then return p(self, priv[self]) end
    return nil
  end,
  __newindex = function(self, k, v)
    if PROPS[k] then error("reconnecting connection field '" .. k .. "' is read-only", 2) end
    if type(k) == "string" and k:sub(1, 3) == "on_" and v ~= nil and type(v) ~= "function" then
      error("reconnecting connection field '" .. k .. "' must be a function", 2)
    end
    rawset(self, k, v)
  end,
  __tostring = function(self)
    return "ws.reconnecting (" .. self.ready_state .. ") " .. self.url
  end,
  __close = function(self) self:close() end,
}

-- M.new(ws, url, opts, wait, resume): the object behind ws.reconnecting;
-- wait/resume are ws's task helpers (init.lua passes them).
function M.new(ws, url, opts, wait, resume)
  local backoff, queue
  opts, backoff, queue = validate(ws.core, url, opts, 3)
  backoff.random = backoff.random or math.random
  local conn_opts = {}
  for k, v in pairs(opts) do
    if not OWN[k] then conn_opts[k] = v end
  end
  local rc = setmetatable({}, MT)
  local st = {
    ws = ws, opts = opts, conn_opts = conn_opts, backoff = backoff, gen = 0,
    inbox = { first = 1, last = 0, bytes = 0 }, waiting = {}, wait = wait, resume = resume,
    max_queue = opts.max_queue or 64, max_queue_bytes = opts.max_queue_bytes or 16 * 1024 * 1024,
  }
  if queue then
    st.queue = { first = 1, last = 0, bytes = 0, max_messages = queue.max_messages,
      max_bytes = queue.max_bytes, flush = queue.flush }
  end
  priv[rc] = st
  rawset(rc, "url", url)
  rawset(rc, "attempt", 0)
  for i = 1, #CALLBACKS do rawset(rc, CALLBACKS[i], opts[CALLBACKS[i]]) end
  local ok, err = pcall(connect_now, rc, st)
  if not ok then
    priv[rc] = nil
    fail((tostring(err):gsub("^[^:\n]*:%d+: ", "")), 3)
  end
  return rc
end

M.RETRY_CODES = RETRY_CODES
return M
