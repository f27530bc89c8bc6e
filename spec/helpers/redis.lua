-- A real redis-server for the backplane specs, on a free port of 127.0.0.1
-- with its own directory, no persistence (--save "" --appendonly no), and
-- optionally a password (requirepass) and ACL users.
--
--   local redis = require "spec.helpers.redis"
--   local r = redis.start{ password = "pw", users = { "alice on >secret ~* &* +@all" } }
--   r:cli("PUBSUB", "CHANNELS", "ws:*")   -- redis-cli's output
--   r:channels("ws:*")                      -- sorted list
--   r:kill()  r:restart()                   -- SIGKILL, then the same port again
--   r:pause()  r:resume()                   -- SIGSTOP / SIGCONT
--   r.port, r.unix                          -- its TCP port and Unix socket path
--   redis.stop_all()                        -- from after_each
--
-- Lua 5.1 compatible.
local net = require "spec.helpers.net_util"

local quote = net.quote
local M = {}
local servers = {}

local Redis = {}
Redis.__index = Redis

local free_port = net.free_port

local function alive(pid)
  local st = net.proc_state(pid)
  return st ~= nil and st ~= "Z" and st ~= "X"
end

function Redis:cli(...)
  local words = {}
  for i = 1, select("#", ...) do words[i] = quote(tostring(select(i, ...))) end
  local auth = self.password and ("-a " .. quote(self.password) .. " --no-auth-warning ") or ""
  local p = assert(io.popen(("LD_PRELOAD= redis-cli -p %d %s%s 2>&1"):format(self.port, auth,
    table.concat(words, " "))))
  local out = p:read("*a")
  p:close()
  return out
end

-- The channels matching pattern, sorted.
function Redis:channels(pattern)
  local list = {}
  for line in self:cli("PUBSUB", "CHANNELS", pattern or "*"):gmatch("[^\n]+") do
    list[#list + 1] = line
  end
  table.sort(list)
  return list
end

-- How many connections are subscribed to channel.
function Redis:numsub(channel)
  local out = self:cli("PUBSUB", "NUMSUB", channel)
  return tonumber(out:match("\n(%d+)")) or 0
end

function Redis:alive() return self.pid ~= nil and alive(self.pid) end

function Redis:launch()
  local cmd = ("cd %s && (LD_PRELOAD= exec redis-server %s >%s 2>&1 </dev/null) & echo $!"):format(
    quote(self.dir), quote(self.conf), quote(self.dir .. "/log"))
  local p = assert(io.popen(cmd))
  self.pid = tonumber(p:read("*l"))
  p:close()
  assert(self.pid, "could not start redis-server")
  local up = net.wait_until(function()
    return self:cli("PING"):match("PONG") ~= nil or not alive(self.pid)
  end, 10)
  if not up or not alive(self.pid) then
    error("redis-server did not start:\n" .. (net.read_file(self.dir .. "/log") or ""), 2)
  end
end

-- SIGKILL: no goodbye to its clients.
function Redis:kill()
  if self:alive() then
    os.execute("kill -KILL " .. self.pid)
    net.wait_until(function() return not alive(self.pid) end, 5)
  end
end

-- SIGSTOP / SIGCONT: a Redis that hangs (its sockets stay open).
function Redis:pause() os.execute("kill -STOP " .. self.pid) end
function Redis:resume() os.execute("kill -CONT " .. self.pid) end

-- Start it again on the same port (after kill).
function Redis:restart()
  self:kill()
  self:launch()
end

function M.start(opts)
  opts = opts or {}
  local dir = net.next_name("redis")
  assert(os.execute("mkdir -p " .. quote(dir)))
  local r = setmetatable({ dir = dir, conf = dir .. "/redis.conf", port = opts.port or free_port(),
    password = opts.password, unix = dir .. "/redis.sock" }, Redis)
  local conf = {
    "port " .. r.port, "bind 127.0.0.1", 'save ""', "appendonly no", "dir " .. dir,
    "daemonize no", "loglevel warning", "unixsocket " .. dir .. "/redis.sock", "unixsocketperm 700",
  }
  if opts.password then conf[#conf + 1] = "requirepass " .. opts.password end
  for _, u in ipairs(opts.users or {}) do conf[#conf + 1] = "user " .. u end
  net.write_file(r.conf, table.concat(conf, "\n") .. "\n")
  r:launch()
  servers[#servers + 1] = r
  return r
end

function M.stop_all()
  for _, r in ipairs(servers) do r:kill() end
  servers = {}
end

-- Whether redis-server is installed (scripts/deps.sh installs it).
function M.available()
  return os.execute("command -v redis-server >/dev/null 2>&1") == true
    or os.execute("command -v redis-server >/dev/null 2>&1") == 0
end

return M
