--- lua-ws inside OpenResty / lua-nginx-module: WebSocket endpoints in
-- content_by_lua over the raw request socket, and clients over
-- ngx.socket.tcp, both driving the sans-I/O session (ws.core.session):
-- nginx owns the sockets, lua-ws the protocol (handshake validation,
-- subprotocols, permessage-deflate, UTF-8, limits, close handshake).
--
--   location /chat { content_by_lua_block {
--     require("ws.resty").serve{ on_message = function(c, data, kind) c:send(data, kind) end }
--   } }
--
-- A connection is read by one light thread at a time (serve's loop, or
-- whoever calls c:receive); c:send/ping/close work from any light thread:
-- they queue bytes in the session and a writer thread sends them, so two
-- writers never share the socket.
-- @module ws.resty
local core = require "ws.core"

local ngx = ngx -- luacheck: ignore 113 (read-only global of OpenResty)

local M = {}

--- A connection of ws.resty (server or client).
-- @table Conn
-- @field protocol the negotiated subprotocol or nil
-- @field extensions the negotiated extensions or nil
-- @field ready_state "OPEN", "CLOSING" or "CLOSED"
-- @field closed once CLOSED: {code, reason, was_clean}
-- @field error what failed (keepalive timeout, protocol error) or nil
local Conn = {}
Conn.__index = Conn

local READ_SIZE = 65536

local SERVER_KEYS = {
  protocols = true, compress = true, max_message = true, max_frame = true, max_head = true,
  max_headers = true, ping_interval = true, ping_timeout = true, close_timeout = true,
  timeout = true, on_upgrade = true, on_open = true, on_message = true, on_close = true,
  on_error = true, on_ping = true, on_pong = true,
}
local CLIENT_KEYS = {
  protocols = true, compress = true, max_message = true, max_frame = true, max_head = true,
  max_headers = true, ping_interval = true, ping_timeout = true, close_timeout = true,
  timeout = true, origin = true, headers = true, ssl_verify = true, server_name = true,
}
local SESSION_KEYS = { protocols = true, compress = true, max_message = true, max_frame = true,
  max_head = true, max_headers = true, origin = true, headers = true }

local function check_opts(opts, valid, fname, argn)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(("bad argument #%d to '%s' (table expected, got %s)"):format(argn, fname, type(opts)), 3)
  end
  for k in pairs(opts) do
    if not valid[k] then
      error(("bad argument #%d to '%s' (unknown option '%s')"):format(argn, fname, tostring(k)), 3)
    end
  end
  for _, k in ipairs { "ping_interval", "ping_timeout", "close_timeout", "timeout" } do
    local v = opts[k]
    if v ~= nil and (type(v) ~= "number" or v <= 0) then
      error(("bad argument #%d to '%s' (%s must be a positive number of seconds)"):format(argn, fname, k), 3)
    end
  end
  return opts
end

local function in_nginx(what)
  if type(ngx) ~= "table" or type(ngx.get_phase) ~= "function" then
    error(what .. ": needs OpenResty / lua-nginx-module (no ngx here); outside nginx use ws.connect / ws.listen", 3)
  end
end

local function session_opts(opts, role, extra)
  local so = { role = role }
  for k in pairs(SESSION_KEYS) do so[k] = opts[k] end
  for k, v in pairs(extra or {}) do so[k] = v end
  return so
end

-- ---- the connection ------------------------------------------------------

local function new_conn(sock, s, opts, role)
  local c = setmetatable({
    sock = sock, s = s, role = role,
    first = 1, last = 0,     -- received messages: data, kind in pairs
    ready_state = "OPEN",
    ping_interval = opts.ping_interval,
    ping_timeout = opts.ping_timeout or opts.ping_interval,
    close_timeout = opts.close_timeout or 5,
    last_rx = ngx.now(),
    wake = (require "ngx.semaphore").new(0),
    opts = opts,
  }, Conn)
  c.protocol = s:protocol()
  c.extensions = s:extensions()
  return c
end

-- The writer light thread: sends what the session has queued, woken by
-- the semaphore; ends once the session is CLOSED and flushed.
local function writer(c)
  while true do
    local out = c.s:output()
    if #out > 0 then
      local ok, err = c.sock:send(out)
      if not ok then
        c.write_error = err
        c.s:abort()
        c:_events()
        return
      end
    end
    if c.s:state() == "CLOSED" then return end
    c.wake:wait(60)
  end
end

function Conn:_flush()
  if self.wake:count() < 1 then self.wake:post(1) end
end

-- Pulls the session's events: messages are queued for receive, the rest
-- updates the state.  Returns true when something arrived.
function Conn:_events()
  local any = false
  for kind, a, b, c in self.s:events() do
    any = true
    if kind == "message" then
      local n = self.last + 2
      self[n - 1], self[n] = a, b
      self.last = n
    elseif kind == "ping" then
      if self.opts.on_ping then self.opts.on_ping(self, a) end
    elseif kind == "pong" then
      self.ping_sent = nil
      if self.opts.on_pong then self.opts.on_pong(self, a) end
    elseif kind == "error" then
      self.error = a
    elseif kind == "close" then
      self.closed = { a, b, c }
      self.ready_state = "CLOSED"
    end
  end
  if self.s:state() == "CLOSING" and self.ready_state == "OPEN" then
    self.ready_state = "CLOSING"
    self.closing_since = self.closing_since or ngx.now()
  end
  self:_flush()
  return any
end

-- Keepalive and close timeout; returns seconds until the next check.
function Conn:_tick()
  local now = ngx.now()
  local next_check = 3600
  if self.closing_since then
    local left = self.closing_since + self.close_timeout - now
    if left <= 0 then
      self.s:abort() -- 1006: the peer never answered our close
      self:_events()
      return 0
    end
    next_check = left
  elseif self.ping_interval then
    if self.ping_sent then
      local left = self.ping_sent + self.ping_timeout - now
      if left <= 0 then
        self.error = ("keepalive timeout: no answer within %g s"):format(self.ping_timeout)
        self.s:abort()
        self:_events()
        return 0
      end
      next_check = left
    else
      local left = self.last_rx + self.ping_interval - now
      if left <= 0 then
        self.s:ping("")
        self.ping_sent = now
        self:_flush()
        left = self.ping_timeout
      end
      next_check = left
    end
  end
  return next_check
end

-- Reads once (at most `limit` seconds); false when the transport ended.
function Conn:_read(limit)
  self.sock:settimeout(math.max(1, math.floor(limit * 1000)))
  local data, err = self.sock:receiveany(READ_SIZE)
  if data then
    self.last_rx = ngx.now()
    self.ping_sent = nil
    self.s:feed(data)
    self:_events()
    return true
  end
  if err == "timeout" then return true end
  self.read_error = err
  self.s:eof()
  self:_events()
  return false
end

--- c:receive([timeout]) -> data, "text"|"binary" | nil, "timeout" |
-- nil, "closed", code, reason.  One light thread reads at a time.
function Conn:receive(timeout)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
    error("bad argument #1 to 'receive' (non-negative number expected)", 2)
  end
  if self.reading then error("ws.resty: receive: another light thread is reading this connection", 2) end
  local deadline = timeout and ngx.now() + timeout
  self.reading = true
  while self.first > self.last and not self.closed do
    local wait = self:_tick()
    if deadline then
      local left = deadline - ngx.now()
      if left <= 0 then break end
      if left < wait then wait = left end
    end
    if wait > 0 and not self.closed and not self:_read(wait) then break end
  end
  self.reading = false
  local i = self.first
  if i <= self.last then
    local data, kind = self[i], self[i + 1]
    self[i], self[i + 1] = nil, nil
    if i + 1 == self.last then self.first, self.last = 1, 0 else self.first = i + 2 end
    return data, kind
  end
  if self.closed then return nil, "closed", self.closed[1], self.closed[2] end
  return nil, "timeout"
end

--- c:send(data[, "text"|"binary"]) -> true | nil, err.  Any light thread.
function Conn:send(data, kind)
  local ok, err = self.s:send(data, kind)
  if not ok then return nil, err end
  self:_flush()
  return true
end

--- c:send_fragment(data, fin[, kind]): stream a message in parts (kind on
-- the first part); any light thread, one message at a time.
function Conn:send_fragment(data, fin, kind)
  local ok, err = self.s:send_fragment(data, fin, kind)
  if not ok then return nil, err end
  self:_flush()
  return true
end

function Conn:ping(payload)
  local ok, err = self.s:ping(payload or "")
  if ok == nil and err then return nil, err end
  self:_flush()
  return true
end

--- c:close([code[, reason]]): starts the close handshake.  When no other
-- light thread is reading, it waits for the peer's answer (at most
-- close_timeout) and then ends the connection; otherwise the reader does.
function Conn:close(code, reason)
  if self.ready_state == "OPEN" then
    self.s:close(code or 1000, reason or "")
    self.closing_since = ngx.now()
    self:_events()
  end
  if not self.reading then
    while not self.closed do self:receive() end
    self:_finish()
  end
  return true
end

-- After CLOSED: let the writer flush, then end the transport.
function Conn:_finish()
  if self.finished then return end
  self.finished = true
  self:_flush()
  if self.writer then ngx.thread.wait(self.writer) end
  if self.role == "client" then self.sock:close() end
end

function Conn:buffered_amount() return #self.s:output() end

-- ---- server -------------------------------------------------------------

-- The answer of a failed upgrade, written on the raw socket.
local function reject(sock, s, status, reason)
  s:reject(status, reason)
  sock:send(s:output())
end

--- ws.resty.accept(opts) -> conn | nil, err.  Validates the request of the
-- current content handler, asks opts.on_upgrade(req) (return false,
-- status, reason to refuse; or a table {protocol=, headers=} for accept),
-- answers 101, and starts the writer thread.
function M.accept(opts)
  in_nginx("ws.resty.accept")
  opts = check_opts(opts, SERVER_KEYS, "accept", 1)
  local head = ngx.req.raw_header()
  local sock, err = ngx.req.socket(true)
  if not sock then return nil, "ws.resty.accept: " .. tostring(err) end
  local s = core.session(session_opts(opts, "server"))
  s:feed(head)
  for kind, a in s:events() do
    if kind == "request" then
      local verdict, status, why = true, nil, nil
      if opts.on_upgrade then verdict, status, why = opts.on_upgrade(a) end
      if verdict == false or verdict == nil and status then
        reject(sock, s, status or 403, why or "Forbidden")
        return nil, "rejected: " .. tostring(status or 403) .. " " .. tostring(why or "Forbidden")
      end
      s:accept(type(verdict) == "table" and verdict or nil)
      break
    elseif kind == "error" then
      sock:send(s:output()) -- the session's own 400/426 answer
      return nil, "bad upgrade request: " .. tostring(a)
    end
  end
  if s:state() ~= "OPEN" then
    sock:send(s:output())
    return nil, "bad upgrade request"
  end
  local ok, werr = sock:send(s:output())
  if not ok then return nil, "ws.resty.accept: " .. tostring(werr) end
  local c = new_conn(sock, s, opts, "server")
  c.writer = ngx.thread.spawn(writer, c)
  return c
end

--- ws.resty.serve(opts): accept, then run on_open / on_message / on_close
-- until the connection is closed.  Returns true, or nil, err when the
-- upgrade failed (the client got its error answer).
function M.serve(opts)
  in_nginx("ws.resty.serve")
  local c, err = M.accept(opts)
  if not c then
    if opts and opts.on_error then opts.on_error(nil, err) end
    return nil, err
  end
  if opts.on_open then opts.on_open(c) end
  while true do
    local data, kind, code, reason = c:receive()
    if data then
      if opts.on_message then opts.on_message(c, data, kind == "binary") end
    elseif kind == "closed" then
      c:_finish()
      if c.error and opts.on_error then opts.on_error(c, c.error) end
      if opts.on_close then opts.on_close(c, code, reason, c.closed[3]) end
      return true
    end
  end
end

-- ---- client ---------------------------------------------------------------

--- ws.resty.connect(url, opts) -> conn | nil, err[, info].  Over
-- ngx.socket.tcp: host names through nginx's `resolver`; wss with
-- certificate and host-name verification against lua_ssl_trusted_certificate
-- (ssl_verify = false turns it off).
function M.connect(url, opts)
  in_nginx("ws.resty.connect")
  if type(url) ~= "string" then
    error("bad argument #1 to 'connect' (string expected, got " .. type(url) .. ")", 2)
  end
  opts = check_opts(opts, CLIENT_KEYS, "connect", 2)
  local u, uerr = core.parse_url(url)
  if not u then return nil, "ws.resty.connect: " .. tostring(uerr) end
  local sock = ngx.socket.tcp()
  sock:settimeout(math.floor((opts.timeout or 30) * 1000))
  local ok, err = sock:connect(u.host, u.port)
  if not ok then return nil, ("ws.resty.connect: connect to %s:%s: %s"):format(u.host, u.port, err) end
  if u.secure then
    local verify = opts.ssl_verify ~= false
    -- When the handshake completes at once but verification failed, some
    -- lua-nginx-module / lua-resty-core versions return success without a
    -- session (reused_session = false) or raise an assertion (the session
    -- path): the session path under pcall turns both into a failure.
    local done, sess, serr = pcall(sock.sslhandshake, sock, nil, opts.server_name or u.host, verify)
    if not done then
      sess, serr = nil, "certificate verify failed or host mismatch"
    end
    if not sess then
      sock:close()
      return nil, ("ws.resty.connect: TLS handshake with %s: %s"):format(u.host, serr)
    end
  end
  local s = core.session(session_opts(opts, "client", { url = url }))
  ok, err = sock:send(s:output())
  if not ok then
    sock:close()
    return nil, "ws.resty.connect: send: " .. tostring(err)
  end
  local info
  while s:state() == "CONNECTING" do
    local data, rerr = sock:receiveany(READ_SIZE)
    if not data then
      sock:close()
      return nil, "ws.resty.connect: handshake: " .. tostring(rerr)
    end
    s:feed(data)
    for kind, a, b, c3 in s:events() do
      if kind == "open" then break end -- what follows is for receive
      if kind == "error" then
        info = { status = b, headers = c3 }
        err = a
      end
    end
  end
  if s:state() ~= "OPEN" then
    sock:close()
    return nil, "ws.resty.connect: " .. tostring(err or "handshake failed"), info
  end
  local c = new_conn(sock, s, opts, "client")
  c.writer = ngx.thread.spawn(writer, c)
  -- Messages that came with the 101 are already in the session.
  c:_events()
  return c
end

return M
