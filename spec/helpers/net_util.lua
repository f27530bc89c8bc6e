-- Helpers for the networked specs (spec/net_*_spec.lua):
--
--   * a clock, sleeping, and wait_until(cond, timeout) that steps the ws loop
--   * child Lua processes running a script (same interpreter, same paths),
--     whose stdout goes to a file the parent polls without blocking its loop
--   * fd counting (/proc/<pid>/fd) and RSS (/proc/<pid>/status)
--   * a raw TCP client for hostile input: LuaSocket when it is installed
--     (in-process, non-blocking), else a child `bash` using /dev/tcp with a
--     FIFO for what we send and a file for what we receive
--     (WS_SPEC_RAW=bash forces the bash one)
--   * the upgrade request, masked client frames and a parser for the
--     server's frames, for the raw client
--   * tracking of servers, connections, raw clients, children and timers,
--     and cleanup() for after_each so one test never leaks into the next
--
-- Lua 5.1 compatible.

local ws = require "ws"
local core = require "ws.core"
local certs = require "spec.helpers.certs"

local M = {}
M.ws = ws

local quote, sh = certs.quote, certs.sh
M.quote, M.sh = quote, sh

-- Run a shell command; returns what it printed (stdout and stderr) and its
-- exit status.
function M.run_status(cmd)
  local p = assert(io.popen("(" .. cmd .. ") 2>&1; echo \"__exit:$?\""))
  local out = p:read("*a")
  p:close()
  local body, code = out:match("^(.-)__exit:(%d+)%s*$")
  return body or out, tonumber(code)
end

local socket
do
  local ok, mod = pcall(require, "socket")
  if ok then socket = mod end
end

-- The raw TCP client's backend: the library's own test helpers
-- (ws.testing, built next to ws.core) when present, else LuaSocket, else
-- bash's /dev/tcp.
-- WS_SPEC_RAW=core|luasocket|bash picks one.
local testing
do
  local ok, mod = pcall(require, "ws.testing")
  if ok then testing = mod end
end
M.testing = testing
do
  local want = os.getenv("WS_SPEC_RAW")
  if want == "core" and testing then
    M.raw_backend = "core"
  elseif want == "luasocket" and socket then
    M.raw_backend = "luasocket"
  elseif want == "bash" then
    M.raw_backend = "bash"
  else
    M.raw_backend = testing and "core" or socket and "luasocket" or "bash"
  end
end

---------------------------------------------------------------------------
-- Clock and waiting

-- Seconds on a monotonic-enough clock: LuaSocket's, else a private core
-- loop that is never run (its now() reads the monotonic clock).  The loop
-- is made here, at load time, so its fds are part of every fd baseline.
if socket and socket.gettime then
  M.now = socket.gettime
else
  local clock_loop = core.loop()
  function M.now() return clock_loop:now() end
end

-- Sleep without running the ws loop.
function M.sleep(s)
  if socket and socket.sleep then
    socket.sleep(s)
  else
    os.execute("sleep " .. string.format("%.3f", s))
  end
end

-- Step the ws loop until cond() returns a true value or `timeout` seconds
-- (default 5) have passed; returns cond()'s last value.
function M.wait_until(cond, timeout, interval)
  local deadline = M.now() + (timeout or 5)
  local v = cond()
  while not v and M.now() < deadline do
    ws.step(interval or 0.01)
    v = cond()
  end
  return v
end

-- Step the ws loop for `seconds`.
function M.run_for(seconds)
  local deadline = M.now() + seconds
  while M.now() < deadline do ws.step(0.01) end
end

---------------------------------------------------------------------------
-- Processes, fds, memory

local own_pid
function M.pid()
  if not own_pid then
    local f = assert(io.open("/proc/self/stat", "rb"))
    own_pid = tonumber(f:read("*a"):match("^(%d+)"))
    f:close()
  end
  return own_pid
end

-- The interpreter running this process: $LUA, else arg[-1] (busted runs as
-- `lua5.x /usr/bin/busted`), else /proc/<pid>/exe.
local interp
function M.lua_interpreter()
  if interp then return interp end
  local env = os.getenv("LUA")
  if env and env ~= "" then interp = env; return interp end
  local a = rawget(_G, "arg")
  if type(a) == "table" and type(a[-1]) == "string" and a[-1] ~= "" then
    local i = -1
    while type(a[i - 1]) == "string" do i = i - 1 end -- the first word: the interpreter
    local found = sh("command -v " .. quote(a[i]) .. " || true"):match("[^\n]+")
    if found then interp = found; return interp end
  end
  local p = io.popen("readlink /proc/" .. M.pid() .. "/exe")
  interp = p:read("*l")
  p:close()
  return interp
end
M.ws_lua_interpreter = M.lua_interpreter

-- Open file descriptors of this process (the pipe of the ls itself included,
-- so the count is the same each time).
function M.fd_count()
  local p = assert(io.popen("ls /proc/" .. M.pid() .. "/fd"))
  local n = 0
  for _ in p:lines() do n = n + 1 end
  p:close()
  return n
end

-- The fd count once it has stopped changing (connections from earlier
-- tests may still be closing): three equal reads 30 ms apart, stepping the
-- loop in between (at most `limit` seconds, default 2).
function M.settled_fd_count(limit)
  local deadline = M.now() + (limit or 2)
  local last, same = M.fd_count(), 0
  while same < 2 and M.now() < deadline do
    M.run_for(0.03)
    local n = M.fd_count()
    if n == last then same = same + 1 else same, last = 0, n end
  end
  return last
end

-- VmRSS of a process in KiB (default: this one).
function M.rss_kb(pid)
  local f = io.open("/proc/" .. tostring(pid or "self") .. "/status", "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

local tmp
function M.tmpdir()
  tmp = tmp or certs.tmpdir("net")
  return tmp
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end
M.read_file = read_file

local function write_file(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end
M.write_file = write_file

local seq = 0
local function next_name(prefix)
  seq = seq + 1
  return M.tmpdir() .. "/" .. prefix .. seq
end
M.next_name = next_name

-- State letter of a process (R, S, T, Z, ...) or nil when it is gone.
function M.proc_state(pid)
  local s = read_file("/proc/" .. pid .. "/stat")
  if not s then return nil end
  return s:match("^%d+ %b() (%a)")
end

local tracked = { servers = {}, conns = {}, raws = {}, children = {}, timers = {} }

local Child = {}
Child.__index = Child

function Child:output() return read_file(self.out) or "" end
function Child:errors() return read_file(self.err) or "" end

-- Wait (stepping the ws loop) for the child's stdout to match pattern;
-- returns the captures, or raises with the child's stderr.
function Child:wait_output(pattern, timeout)
  local caps
  M.wait_until(function()
    caps = { self:output():match(pattern) }
    return caps[1] ~= nil or not self:alive()
  end, timeout or 10)
  if caps[1] == nil then caps = { self:output():match(pattern) } end
  if caps[1] == nil then
    error("child " .. self.pid .. " did not print " .. pattern .. "\nstdout: " .. self:output()
      .. "\nstderr: " .. self:errors(), 2)
  end
  return (table.unpack or unpack)(caps) -- luacheck: ignore 113
end

function Child:signal(sig)
  os.execute("kill -" .. sig .. " " .. self.pid .. " 2>/dev/null")
end
function Child:stop() self:signal("STOP") end
function Child:cont() self:signal("CONT") end

function Child:alive()
  local st = M.proc_state(self.pid)
  return st ~= nil and st ~= "Z" and st ~= "X"
end

function Child:wait_exit(timeout)
  return M.wait_until(function() return not self:alive() end, timeout or 5)
end

function Child:kill()
  if self:alive() then
    self:signal("KILL")
    self:signal("CONT")
    self:wait_exit(3)
  end
end

function Child:rss_kb() return M.rss_kb(self.pid) end

-- Start `interp script args...` in the background.  `source` is the Lua
-- text of the script (package.path/cpath of this process are set first, and
-- stdout is unbuffered).  Returns a Child {pid, out, err, script}.
local spawn_prefix = ""
function M.spawn_lua(source, ...)
  local base = next_name("child")
  local script, out, err = base .. ".lua", base .. ".out", base .. ".err"
  write_file(script, string.format("package.path = %q\npackage.cpath = %q\nio.stdout:setvbuf('no')\n",
    package.path, package.cpath) .. source)
  local args = {}
  for i = 1, select("#", ...) do args[#args + 1] = quote(tostring(select(i, ...))) end
  local cmd = string.format("(%sexec %s %s %s >%s 2>%s </dev/null) & echo $!", spawn_prefix,
    quote(M.lua_interpreter()), quote(script), table.concat(args, " "), quote(out), quote(err))
  local p = assert(io.popen(cmd))
  local pid = tonumber(p:read("*l"))
  p:close()
  assert(pid, "could not start a child process")
  local child = setmetatable({ pid = pid, out = out, err = err, script = script }, Child)
  tracked.children[#tracked.children + 1] = child
  return child
end

-- spawn_lua with at most `nofile` open file descriptors (ulimit -n).
function M.spawn_lua_limited(nofile, source, ...)
  spawn_prefix = "ulimit -n " .. math.floor(nofile) .. " && "
  local ok, child = pcall(M.spawn_lua, source, ...)
  spawn_prefix = ""
  if not ok then error(child, 2) end
  return child
end

-- A child process running an echo server on 127.0.0.1 (port 0).  It prints
-- "PORT <n>" once listening and one line per event:
--   OPEN <path>, MESSAGE <kind> <length>, CLOSE <code> <clean> <reason>
-- The message "close:<code>:<reason>" makes it close that connection.
M.ECHO_SERVER = [==[
local ws = require "ws"
local opts = {
  host = "127.0.0.1", port = 0,
  on_open = function(c) print("OPEN " .. tostring(c.path)) end,
  on_message = function(c, data, is_binary)
    print("MESSAGE " .. (is_binary and "binary" or "text") .. " " .. #data)
    local code, reason = data:match("^close:(%d+):(.*)$")
    if code then c:close(tonumber(code), reason) return end
    c:send(data, is_binary and "binary" or "text")
  end,
  on_close = function(_, code, reason, was_clean)
    print("CLOSE " .. tostring(code) .. " " .. tostring(was_clean) .. " " .. tostring(reason))
  end,
}
if arg[1] == "tls" then opts.tls = { cert = arg[2], key = arg[3] } end
local srv = ws.listen(opts)
print("PORT " .. srv.port)
ws.run()
]==]

-- A client child that sends "go" to ws://127.0.0.1:<arg[1]>/, prints
-- "SENT" and never reads (a reader that stops reading).
M.STALLED_CLIENT = [==[
local ws = require "ws"
ws.connect("ws://127.0.0.1:" .. arg[1] .. "/", { max_message = 16 * 1024 * 1024,
  on_open = function(c) c:send("go"); c:pause(); print("SENT") end })
ws.run()
]==]

-- Start the echo server child; returns child, port.
function M.spawn_echo_server(...)
  local child = M.spawn_lua(M.ECHO_SERVER, ...)
  local port = tonumber(child:wait_output("PORT (%d+)", 15))
  return child, port
end

---------------------------------------------------------------------------
-- Tracking and cleanup

function M.track_server(srv) tracked.servers[#tracked.servers + 1] = srv; return srv end
function M.track_conn(c) if c then tracked.conns[#tracked.conns + 1] = c end; return c end
function M.track_timer(t) if t then tracked.timers[#tracked.timers + 1] = t end; return t end

-- A port on 127.0.0.1 nothing listens on right now (bound by the kernel,
-- then freed), for servers in other processes.
function M.free_port()
  local srv = ws.listen { host = "127.0.0.1", port = 0 }
  local port = srv.port
  srv:close()
  return port
end

-- ws.listen with tracking; host defaults to 127.0.0.1 and port to 0.
function M.listen(opts)
  opts = opts or {}
  if opts.host == nil then opts.host = "127.0.0.1" end
  if opts.port == nil then opts.port = 0 end
  return M.track_server(ws.listen(opts))
end

-- ws.connect with tracking; returns what ws.connect returns.
function M.connect(url, opts)
  local c, err, extra = ws.connect(url, opts)
  M.track_conn(c)
  return c, err, extra
end

-- An echo server (text stays text, binary stays binary) that records what
-- happens in srv_events: {"open", c} / {"message", c, data, is_binary} /
-- {"close", c, code, reason, was_clean} / {"error", c, err}.  Extra options
-- are merged in.  Returns srv, events.
function M.echo_server(extra)
  local events = {}
  local opts = {
    on_open = function(c) events[#events + 1] = { "open", c } end,
    on_message = function(c, data, is_binary)
      events[#events + 1] = { "message", c, data, is_binary }
      c:send(data, is_binary and "binary" or "text")
    end,
    on_close = function(c, code, reason, was_clean)
      events[#events + 1] = { "close", c, code, reason, was_clean }
    end,
    on_error = function(c, err) events[#events + 1] = { "error", c, err } end,
  }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return M.listen(opts), events
end

-- Events of one kind from such a list.
function M.select(events, kind)
  local out = {}
  for _, e in ipairs(events) do
    if e[1] == kind then out[#out + 1] = e end
  end
  return out
end

function M.url(srv, path, scheme, host)
  return (scheme or "ws") .. "://" .. (host or "127.0.0.1") .. ":" .. srv.port .. (path or "/")
end

-- Compare two (possibly huge) strings; returns true or false plus a short
-- description of the first difference (luassert would print both whole).
function M.same(a, b)
  if a == b then return true end
  if type(a) ~= "string" or type(b) ~= "string" then
    return false, "types " .. type(a) .. " / " .. type(b)
  end
  local n = math.min(#a, #b)
  local lo, hi = 1, n
  -- binary search for the first differing prefix
  while lo <= hi do
    local mid = math.floor((lo + hi) / 2)
    if a:sub(1, mid) == b:sub(1, mid) then lo = mid + 1 else hi = mid - 1 end
  end
  return false, string.format("lengths %d / %d, first difference at byte %d", #a, #b, lo)
end

-- Deterministic payload of n bytes: every byte value for binary, printable
-- ASCII for text.
function M.payload(n, kind)
  local unit
  if kind == "text" then
    local t = {}
    for i = 0, 93 do t[#t + 1] = string.char(33 + i) end
    unit = table.concat(t)
  else
    local t = {}
    for i = 0, 255 do t[#t + 1] = string.char((i * 7 + 3) % 256) end
    unit = table.concat(t)
  end
  local s = string.rep(unit, math.floor(n / #unit) + 1)
  return s:sub(1, n)
end

---------------------------------------------------------------------------
-- Raw TCP client

local Raw = {}
Raw.__index = Raw

-- Connect to host:port (default 127.0.0.1).  opts.no_read: do not read
-- from the socket until raw:start_reading() (for backpressure tests).
-- Received bytes are kept as a string (buf, from index pos) plus chunks
-- not yet joined; `len` counts the unconsumed bytes.
function M.raw_connect(port, opts)
  opts = opts or {}
  local host = opts.host or "127.0.0.1"
  local self = setmetatable({ buf = "", pos = 1, chunks = {}, len = 0, eof = false,
    reading = not opts.no_read, backend = M.raw_backend }, Raw)
  if self.backend == "core" then
    local fd, err = testing.tcp_connect(host, port)
    if not fd then return nil, err end
    self.fd = fd
  elseif self.backend == "luasocket" then
    local s = assert(socket.tcp())
    s:settimeout(5)
    local ok, err = s:connect(host, port)
    if not ok then s:close(); return nil, err end
    s:settimeout(0)
    self.sock = s
  else
    local base = next_name("raw")
    self.fifo, self.outf, self.eoff, self.gof = base .. ".in", base .. ".out", base .. ".eof", base .. ".go"
    self.statf = base .. ".status"
    self.file_pos = 0
    sh("mkfifo " .. quote(self.fifo))
    if self.reading then write_file(self.gof, "") end
    -- fd 4 (the FIFO) stays open in bash until it exits, so a write of ours
    -- never meets a FIFO without a reader (SIGPIPE would kill busted).
    local script = [[
exec 4<"$3"
exec 3<>"/dev/tcp/$1/$2" || { echo failed > "$7"; exec cat <&4 >/dev/null; }
echo ok > "$7"
{ while [ ! -e "$6" ]; do sleep 0.02; done; cat <&3 > "$4"; echo eof > "$5"; } &
cat <&4 >&3
exec cat <&4 >/dev/null
]]
    local cmd = string.format("setsid bash -c %s raw %s %d %s %s %s %s %s >/dev/null 2>&1 & echo $!",
      quote(script), quote(host), port, quote(self.fifo), quote(self.outf), quote(self.eoff), quote(self.gof),
      quote(self.statf))
    local p = assert(io.popen(cmd))
    self.pid = tonumber(p:read("*l"))
    p:close()
    -- Blocks until bash opens the FIFO.
    self.fifo_w = assert(io.open(self.fifo, "wb"))
    self.fifo_w:setvbuf("no")
    local deadline = M.now() + 5
    local st = read_file(self.statf)
    while (st == nil or st == "") and M.now() < deadline do
      M.sleep(0.01)
      st = read_file(self.statf)
    end
    if st ~= "ok\n" then
      self:close()
      return nil, "connection refused"
    end
  end
  tracked.raws[#tracked.raws + 1] = self
  return self
end

-- Send all of s (stepping the ws loop while the socket is full).
function Raw:send(s)
  assert(not self.closed, "raw client is closed")
  local deadline = M.now() + 10
  if self.fd then
    local i = 1
    while i <= #s do
      local n, err = testing.tcp_send(self.fd, i == 1 and s or s:sub(i))
      if not n then return nil, err end
      i = i + n
      if n == 0 then
        ws.step(0.005)
        if M.now() > deadline then error("raw send timed out") end
      end
    end
    return true
  elseif self.sock then
    local i = 1
    while i <= #s do
      local last, err, partial = self.sock:send(s, i)
      if last then
        i = last + 1
      elseif err == "timeout" then
        i = partial + 1
        ws.step(0.005)
        if M.now() > deadline then error("raw send timed out") end
      else
        return nil, err
      end
    end
    return true
  end
  self.fifo_w:write(s)
  self.fifo_w:flush()
  return true
end

function Raw:add(chunk)
  if #chunk > 0 then
    self.chunks[#self.chunks + 1] = chunk
    self.len = self.len + #chunk
  end
end

-- Read what is available (non-blocking).
function Raw:poll()
  if not self.reading or self.closed or self.eof then return end
  if self.fd then
    while true do
      local data, err = testing.tcp_recv(self.fd, 65536)
      if data == "" then
        self.eof = true
        break
      elseif data then
        self:add(data)
      elseif err == "again" then
        break
      else
        self.eof, self.error = true, err -- reset
        break
      end
    end
  elseif self.sock then
    while true do
      local data, err, partial = self.sock:receive(65536)
      self:add(data or partial or "")
      if err == "closed" or (err and err ~= "timeout") then
        self.eof = true -- closed, or reset ("connection reset by peer")
        self.error = err
        break
      elseif not data then
        break
      end
    end
  else
    local eof = read_file(self.eoff) ~= nil -- before reading: then the file is complete
    local f = io.open(self.outf, "rb")
    if f then
      f:seek("set", self.file_pos)
      local more = f:read("*a") or ""
      f:close()
      self.file_pos = self.file_pos + #more
      self:add(more)
    end
    self.eof = eof
  end
end

function Raw:start_reading()
  self.reading = true
  if self.gof then write_file(self.gof, "") end
end

-- Number of unconsumed bytes received so far.
function Raw:available()
  self:poll()
  return self.len
end

-- Everything received and not yet consumed.
function Raw:data()
  self:poll()
  if #self.chunks > 0 then
    self.buf = self.buf:sub(self.pos) .. table.concat(self.chunks)
    self.pos = 1
    self.chunks = {}
  end
  return self.pos == 1 and self.buf or self.buf:sub(self.pos)
end

-- Wait until pred(unconsumed data, eof) is true, stepping the ws loop.
function Raw:wait(pred, timeout)
  return M.wait_until(function()
    return pred(self:data(), self.eof)
  end, timeout or 5)
end

-- Wait until at least n unconsumed bytes arrived.
function Raw:wait_bytes(n, timeout)
  return M.wait_until(function() return self:available() >= n or self.eof end, timeout or 5)
    and self.len >= n
end

-- Wait for the peer to close (EOF); true when it did.
function Raw:wait_eof(timeout)
  return M.wait_until(function()
    self:poll()
    return self.eof
  end, timeout or 5)
end

function Raw:consume(n)
  self:data()
  self.pos = self.pos + n
  self.len = self.len - n
end

-- Close without a close frame (the peer sees FIN, or RST when we had
-- unread data).
function Raw:close(reset)
  if self.closed then return end
  self.closed = true
  if self.fd then
    testing.tcp_close(self.fd, reset)
  elseif self.sock then
    if reset then pcall(self.sock.setoption, self.sock, "linger", { on = true, timeout = 0 }) end
    self.sock:close()
  else
    if self.fifo_w then self.fifo_w:close(); self.fifo_w = nil end
    if self.pid then os.execute("kill -KILL -" .. self.pid .. " 2>/dev/null") end
  end
end

-- Abort with RST (SO_LINGER 0) where the backend allows it.
function Raw:reset()
  self:close(true)
end

M.KEY = "dGhlIHNhbXBsZSBub25jZQ=="
M.ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

-- An upgrade request (RFC 6455's example key) with extra header lines.
function M.upgrade_request(port, path, extra)
  return "GET " .. (path or "/") .. " HTTP/1.1\r\n"
    .. "Host: 127.0.0.1:" .. port .. "\r\n"
    .. "Upgrade: websocket\r\n"
    .. "Connection: Upgrade\r\n"
    .. "Sec-WebSocket-Key: " .. M.KEY .. "\r\n"
    .. "Sec-WebSocket-Version: 13\r\n"
    .. (extra or "") .. "\r\n"
end

-- Parse an HTTP response head (+ body): {status, reason, headers (lower
-- case names), body, head}.
function M.parse_http(text)
  local head, body = text:match("^(.-\r\n)\r\n(.*)$")
  if not head then return nil end
  local status, reason = head:match("^HTTP/1%.[01] (%d%d%d) ?([^\r\n]*)\r\n")
  local headers = {}
  for name, value in head:gmatch("\r\n([^:\r\n]+):[ \t]*([^\r\n]*)") do
    headers[name:lower()] = value
  end
  return { status = tonumber(status), reason = reason, headers = headers, body = body, head = head }
end

-- Wait for a response head; returns it parsed (and consumed: the bytes
-- after it stay in the buffer), or nil, why.
function Raw:read_head(timeout)
  local ok = self:wait(function(d, eof) return d:find("\r\n\r\n", 1, true) or eof end, timeout or 5)
  local d = self:data()
  local e = d:find("\r\n\r\n", 1, true)
  if not ok or not e then return nil, "no response head: " .. d end
  local resp = M.parse_http(d:sub(1, e + 3))
  self:consume(e + 3)
  return resp
end

-- Send the upgrade request and wait for the response head; returns the
-- parsed head (the bytes after it stay in the buffer).
function Raw:handshake(port, path, extra, timeout)
  self:send(M.upgrade_request(port, path, extra))
  return self:read_head(timeout)
end

local MASK = string.char(0x12, 0x34, 0x56, 0x78)

-- A masked client frame.
function M.client_frame(opcode, payload, fin)
  return core.build_frame { opcode = opcode, payload = payload or "", fin = fin ~= false, mask = MASK }
end

function M.close_payload(code, reason)
  return string.char(math.floor(code / 256), code % 256) .. (reason or "")
end

function Raw:send_frame(opcode, payload, fin)
  return self:send(M.client_frame(opcode, payload, fin))
end

function Raw:send_close(code, reason)
  return self:send_frame(8, code and M.close_payload(code, reason) or "")
end

-- Parse one frame at the start of s: frame {fin, opcode, masked, payload,
-- code, reason (close frames)} and its size, or nil when incomplete.
function M.parse_frame(s)
  local h = core.parse_frame_header(s)
  if not h then return nil end
  local size = h.header_len + h.length
  if #s < size then return nil end
  local payload = s:sub(h.header_len + 1, size)
  if h.masked then payload = core.mask(payload, h.mask) end
  local f = { fin = h.fin, opcode = h.opcode, masked = h.masked, payload = payload }
  if h.opcode == 8 and #payload >= 2 then
    f.code = payload:byte(1) * 256 + payload:byte(2)
    f.reason = payload:sub(3)
  end
  return f, size
end

-- Wait for the next complete frame; returns it (consumed) or nil.
function Raw:next_frame(timeout)
  local f, size
  self:wait(function(d, eof)
    f, size = M.parse_frame(d)
    return f or eof
  end, timeout or 5)
  if f then self:consume(size) end
  return f
end

-- Every complete frame received so far (consumed).
function Raw:frames()
  local out = {}
  while true do
    local f, size = M.parse_frame(self:data())
    if not f then break end
    self:consume(size)
    out[#out + 1] = f
  end
  return out
end

-- One whole plain HTTP exchange: send `request`, read until the server
-- closes; returns the parsed response (nil when none) and the raw text.
function M.http_exchange(port, request, timeout)
  local raw = assert(M.raw_connect(port))
  raw:send(request)
  local eof = raw:wait_eof(timeout or 5)
  local text = raw:data()
  raw:close()
  return M.parse_http(text), text, eof
end

---------------------------------------------------------------------------
-- Cleanup

-- Close everything the helpers started, and give the loop time to finish
-- the close handshakes.  Call it from after_each.
function M.cleanup()
  for _, t in ipairs(tracked.timers) do pcall(t.cancel, t) end
  for _, r in ipairs(tracked.raws) do pcall(r.close, r) end
  for _, c in ipairs(tracked.conns) do
    local ok, st = pcall(function() return c.ready_state end)
    if ok and st == "OPEN" then pcall(c.close, c) end
  end
  for _, s in ipairs(tracked.servers) do pcall(s.close, s) end
  local conns = tracked.conns
  pcall(M.wait_until, function()
    for _, c in ipairs(conns) do
      local ok, st = pcall(function() return c.ready_state end)
      if ok and st ~= "CLOSED" then return false end
    end
    return true
  end, 3)
  for _, ch in ipairs(tracked.children) do pcall(ch.kill, ch) end
  tracked = { servers = {}, conns = {}, raws = {}, children = {}, timers = {} }
  pcall(M.run_for, 0.02)
end

return M
