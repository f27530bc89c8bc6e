-- A real HTTP CONNECT proxy for the proxy specs: Debian's tinyproxy
-- (package tinyproxy-bin, installed by scripts/deps.sh), started in the
-- foreground on a free port with a configuration written at test time.
--
--   local tinyproxy = require "spec.helpers.tinyproxy"
--   local p = tinyproxy.start{ user = "u", password = "p", connect_ports = {443} }
--   p.url                  -- "http://127.0.0.1:PORT"
--   p:log()                -- what tinyproxy logged so far
--   p:tunnels()            -- how many CONNECT tunnels it opened
--   p:kill()               -- SIGKILL: every tunnel dies with it
--   tinyproxy.stop_all()   -- from after_each
--   tinyproxy.start_tls{ cert = ..., key = ... }   -- an https:// proxy (below)
--
-- Lua 5.1 compatible.
local net = require "spec.helpers.net_util"
local proc = require "spec.helpers.proc"

local M = {}

function M.available()
  return net.sh("command -v tinyproxy || true"):match("tinyproxy") ~= nil
end

local Proxy = {}
Proxy.__index = Proxy

function Proxy:log() return net.read_file(self.logfile) or "" end
-- How many tunnels tinyproxy has opened so far.
function Proxy:tunnels()
  local n = 0
  for _ in self:log():gmatch("Established connection to host") do n = n + 1 end
  return n
end
function Proxy:kill()
  os.execute("kill -KILL " .. self.proc.pid .. " 2>/dev/null")
  self.proc:wait_exit(3)
end

local free_port = net.free_port

-- opts: user, password (Basic auth), connect_ports (a list: only those
-- CONNECT targets are allowed).
function M.start(opts)
  opts = opts or {}
  for _ = 1, 5 do
    local port = free_port()
    local base = net.next_name("tinyproxy")
    local lines = {
      "Port " .. port, "Listen 127.0.0.1", "Timeout 30", "MaxClients 50",
      "Allow 127.0.0.1", "LogLevel Info", "LogFile \"" .. base .. ".log\"",
    }
    if opts.user then lines[#lines + 1] = ("BasicAuth %s %s"):format(opts.user, opts.password) end
    for _, p in ipairs(opts.connect_ports or {}) do lines[#lines + 1] = "ConnectPort " .. p end
    net.write_file(base .. ".conf", table.concat(lines, "\n") .. "\n")
    local p = proc.start("tinyproxy", { "tinyproxy", "-d", "-c", base .. ".conf" })
    local self = setmetatable({ proc = p, port = port, logfile = base .. ".log",
      url = "http://127.0.0.1:" .. port }, Proxy)
    local ok = net.wait_until(function()
      return self:log():find("Accepting connections", 1, true) or not p:alive()
    end, 10)
    if ok and p:alive() then return self end
    p:kill()
  end
  error("tinyproxy did not start")
end

-- An https:// proxy: tinyproxy (started with opts) behind a TLS terminator
-- (spec/helpers/tls_terminator.py, Python's ssl) using opts.cert / opts.key.
-- Returns the tinyproxy object with:
--   p.tls_port        the terminator's port
--   p.url             "https://127.0.0.1:TLS_PORT" (opts.host replaces 127.0.0.1)
--   p:terminator_log() what the terminator printed ("sni NAME" per handshake)
--   p:kill()          SIGKILL to the terminator: every tunnel dies with it
function M.start_tls(opts)
  local p = M.start(opts)
  local t = proc.start("tls_terminator", { "python3", "spec/helpers/tls_terminator.py",
    opts.cert, opts.key, p.port })
  local port = tonumber((t:wait_for("listening (%d+)")))
  p.terminator, p.tls_port = t, port
  p.url = ("https://%s:%d"):format(opts.host or "127.0.0.1", port)
  function p.terminator_log() return t:output() end
  function p.kill()
    os.execute("kill -KILL " .. t.pid .. " 2>/dev/null")
    t:wait_exit(3)
  end
  return p
end

function M.stop_all() proc.stop_all() end

return M
