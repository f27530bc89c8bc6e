-- Child Lua processes whose exit status is known, for the specs about what
-- happens when a script ends (spec/net_exit_spec.lua,
-- spec/loop_lifetime_spec.lua).  The parent keeps stepping its ws loop
-- while it waits, so the child can talk to servers of the parent.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"

local M = {}

local Child = {}
Child.__index = Child

function Child:output() return net.read_file(self.out) or "" end
function Child:errors() return net.read_file(self.err) or "" end

-- The exit status once the child has ended (a number; 128 + n after
-- signal n), else nil.
function Child:status()
  local s = net.read_file(self.statusf)
  return s and tonumber(s:match("%d+"))
end

-- Wait (stepping the ws loop) for the child to end; returns its status.
function Child:wait(timeout)
  net.wait_until(function() return self:status() ~= nil end, timeout or 15)
  return self:status()
end

-- What went wrong, for assertion messages.
function Child:describe()
  return "status " .. tostring(self:status()) .. "\nstdout: " .. self:output() .. "\nstderr: " .. self:errors()
end

-- Wait for the child's stdout to match pattern; returns the captures.
function Child:wait_output(pattern, timeout)
  local caps
  net.wait_until(function()
    caps = { self:output():match(pattern) }
    return caps[1] ~= nil or self:status() ~= nil
  end, timeout or 10)
  caps = { self:output():match(pattern) }
  assert(caps[1] ~= nil, "child did not print " .. pattern .. "\n" .. self:describe())
  return (table.unpack or unpack)(caps) -- luacheck: ignore 113
end

local running = {}

-- Run `source` (Lua text; package paths of this process, unbuffered
-- stdout) with the interpreter of this process, in the background.
function M.spawn(source, ...)
  local base = net.next_name("exit")
  local self = setmetatable({ script = base .. ".lua", out = base .. ".out", err = base .. ".err",
    statusf = base .. ".status" }, Child)
  net.write_file(self.script, string.format("package.path = %q\npackage.cpath = %q\nio.stdout:setvbuf('no')\n",
    package.path, package.cpath) .. source)
  local args = {}
  for i = 1, select("#", ...) do args[#args + 1] = net.quote(tostring(select(i, ...))) end
  local cmd = string.format("( %s %s %s >%s 2>%s </dev/null; echo $? >%s ) >/dev/null 2>&1 & echo $!",
    net.quote(net.lua_interpreter()), net.quote(self.script), table.concat(args, " "), net.quote(self.out),
    net.quote(self.err), net.quote(self.statusf))
  local p = assert(io.popen(cmd))
  self.pid = tonumber(p:read("*l"))
  p:close()
  running[#running + 1] = self
  return self
end

-- Kill children still running (after_each).
function M.cleanup()
  for _, c in ipairs(running) do
    if not c:status() then os.execute("pkill -KILL -P " .. c.pid .. " 2>/dev/null") end
  end
  running = {}
end

M.lua54 = _VERSION == "Lua 5.4"
-- os.exit(code, true) closes the state (Lua 5.2+ and LuaJIT 2.1).
M.exit_closes_state = _VERSION ~= "Lua 5.1" or type(rawget(_G, "jit")) == "table"

return M
