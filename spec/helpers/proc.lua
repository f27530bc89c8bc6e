-- Child processes for the example specs (spec/examples_more_spec.lua,
-- spec/chat_browser_spec.lua): a command started in the background with its
-- stdout and stderr in files the spec polls while it steps the ws loop, and
-- stopped (TERM, then KILL) by stop_all() from after_each.
--
--   local proc = require "spec.helpers.proc"
--   local p = proc.lua("examples/echo_server.lua", "0")   -- same Lua, same paths
--   local port = p:wait_for("listening on ws://[%d.]+:(%d+)/")
--   local out, status = proc.run_lua("examples/echo_client.lua", "'ws://...' hi")
--   proc.stop_all()
--
-- Lua 5.1 compatible.
local net = require "spec.helpers.net_util"

local quote = net.quote
local M = {}

local procs = {}

local Proc = {}
Proc.__index = Proc

function Proc:output() return net.read_file(self.out) or "" end
function Proc:errors() return net.read_file(self.err) or "" end

function Proc:alive()
  local st = net.proc_state(self.pid)
  return st ~= nil and st ~= "Z" and st ~= "X"
end

-- Wait (stepping the ws loop) until the output matches pattern; returns the
-- captures, or raises with what the child printed.
function Proc:wait_for(pattern, timeout)
  local caps
  net.wait_until(function()
    caps = { self:output():match(pattern) }
    return caps[1] ~= nil or not self:alive()
  end, timeout or 10)
  if caps[1] == nil then caps = { self:output():match(pattern) } end
  if caps[1] == nil then
    error(("%s did not print %q\nstdout:\n%s\nstderr:\n%s"):format(self.name, pattern, self:output(),
      self:errors()), 2)
  end
  return (table.unpack or unpack)(caps) -- luacheck: ignore 113
end

function Proc:wait_exit(timeout)
  return net.wait_until(function() return not self:alive() end, timeout or 5)
end

-- TERM, and KILL when it is still there after `grace` seconds (default 3).
function Proc:kill(grace)
  if self:alive() then
    os.execute("kill -TERM " .. self.pid .. " 2>/dev/null")
    if not self:wait_exit(grace or 3) then
      os.execute("kill -KILL " .. self.pid .. " 2>/dev/null")
      self:wait_exit(2)
    end
  end
end

local function env_prefix()
  return ("LUA_PATH=%s LUA_CPATH=%s"):format(quote(package.path), quote(package.cpath))
end

-- Start `argv...` (each quoted here) in the background.
function M.start(name, argv)
  local base = net.next_name("proc")
  local words = {}
  for i = 1, #argv do words[i] = quote(tostring(argv[i])) end
  -- Only our own Lua children may inherit a sanitizer preload (they load the
  -- sanitized module); peers and browsers must not.
  local prefix = env_prefix()
  if argv[1] ~= net.lua_interpreter() then prefix = prefix .. " LD_PRELOAD=" end
  local cmd = ("(%s exec %s >%s 2>%s </dev/null) & echo $!"):format(prefix, table.concat(words, " "),
    quote(base .. ".out"), quote(base .. ".err"))
  local p = assert(io.popen(cmd))
  local pid = tonumber(p:read("*l"))
  p:close()
  assert(pid, "could not start " .. name)
  local proc = setmetatable({ pid = pid, name = name, out = base .. ".out", err = base .. ".err" }, Proc)
  procs[#procs + 1] = proc
  return proc
end

-- Start `lua <path> <args...>` with this process's interpreter and module
-- paths, as a user runs an example.
function M.lua(path, ...)
  local argv = { net.lua_interpreter(), path }
  for i = 1, select("#", ...) do argv[#argv + 1] = select(i, ...) end
  return M.start(path, argv)
end

-- Run a shell command to the end (at most `limit` seconds, default 20);
-- returns its output (stdout and stderr) and its exit status.
function M.sh(cmd, limit)
  local p = assert(io.popen(("timeout %d sh -c %s 2>&1; echo \"__exit:$?\""):format(limit or 20, quote(cmd))))
  local out = p:read("*a")
  p:close()
  local body, code = out:match("^(.-)__exit:(%d+)%s*$")
  return body or out, tonumber(code)
end

-- Run `lua <path> <args>` to the end (args: a shell word list, already
-- quoted; stdin: text for its standard input).
function M.run_lua(path, args, stdin)
  local cmd = ("%s %s %s %s 2>&1"):format(env_prefix(), quote(net.lua_interpreter()), quote(path), args or "")
  if stdin then cmd = "printf %s " .. quote(stdin) .. " | " .. cmd end
  return M.sh(cmd)
end

-- Stop every child started here.
function M.stop_all()
  for _, p in ipairs(procs) do p:kill() end
  procs = {}
end

return M
