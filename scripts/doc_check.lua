-- Every public name of lua-ws has an entry in the LDoc reference.
--   lua5.4 scripts/doc_check.lua NAMES README.md UNDOCUMENTED
-- NAMES is what `ldoc --filter doc_names.list .` printed.  Public names are
-- found at run time (the keys of ws and ws.core, the methods of each
-- object's metatable, the methods of ws.reconnect's objects) and in the
-- first column of README.md's reference tables (options, fields, events).
-- Names listed in UNDOCUMENTED are reported but do not fail the check.
local names_file, readme_file, todo_file = arg[1], arg[2], arg[3]

local documented = {} -- "ws.connect", "Connection:send", and bare names
local function doc(name) documented[name] = true end
for line in io.lines(names_file) do
  local kind, mod, item, field = line:match("^(%a)\t([^\t]+)\t([^\t]+)\t?([^\t]*)$")
  if kind == "I" then
    doc(item)
    doc(mod .. "." .. item)
    doc(item:match("[%w_]+$"))
  elseif kind == "P" then
    doc(field:match("[%w_]+$") or field)
  end
end

local required = {} -- list of {name, where}
local seen = {}
local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    if type(k) == "string" then keys[#keys + 1] = k end
  end
  table.sort(keys)
  return keys
end
local function need(name, where)
  if not seen[name] then
    seen[name] = true
    required[#required + 1] = { name, where }
  end
end

-- Run time: modules and the metatables of every kind of object.
local ws = require "ws"
local core = require "ws.core"
local testing = require "ws.testing" -- a pipe for a watcher
-- Plumbing between ws (init.lua) and ws.core, not for users.
local INTERNAL = {
  ["ws.core.conn_methods"] = "how ws adds Connection:receive",
  ["ws.core.conn_meta"] = "how ws sets the connections' __close",
  ["ws.core.conn_close"] = "the C close that ws's close wraps",
  ["ws.core.conn_loop"] = "a connection's loop, for ws's close",
  ["ws.core.notify_close"] = "marks a connection whose close a task waits for",
  ["ws.core.set_hook"] = "ws's close and upgrade hooks",
  ["ws.core.hosted"] = "loops a host adapter drives, where close() does not wait",
  ["ws.core.upgrade_answer"] = "how ws answers an on_upgrade task",
  ["ws.core.hold_queue"] = "how ws bounds the queue of Connection:receive",
  ["ws.reconnect.new"] = "called by ws.reconnecting",
  ["ws.core.set_receive_hooks"] = "how ws hears events for Connection:receive",
  ["ws.core.conn_receiving"] = "how ws hears events for Connection:receive",
}
local function exports(prefix, t, where)
  for _, k in ipairs(sorted_keys(t)) do
    if not INTERNAL[prefix .. k] then need(prefix .. k, where) end
  end
end
exports("ws.", ws, "require 'ws'")
exports("ws.core.", core, "require 'ws.core'")
-- Every other module of lua/ws: its exports, or (when a library it needs
-- is missing here) the functions its source puts in the table it returns.
for file in io.popen("ls lua/ws/*.lua"):lines() do
  local name = "ws." .. file:match("([%w_]+)%.lua$")
  if name ~= "ws.init" then
    local ok, m = pcall(require, name)
    if ok and type(m) == "table" then
      exports(name .. ".", m, "require '" .. name .. "'")
    else
      local src = assert(io.open(file)):read("a")
      local t = src:match("\nreturn%s+([%a_][%w_]*)%s*$")
      for k in src:gmatch("\nfunction " .. (t or "%0") .. "%.([%w_]+)") do
        if not INTERNAL[name .. "." .. k] then need(name .. "." .. k, file) end
      end
    end
  end
end
local function methods(class, t)
  for _, k in ipairs(sorted_keys(t)) do
    if not k:match("^__") then need(class .. ":" .. k, class .. " methods") end
  end
end
local function index_of(obj)
  local mt = getmetatable(obj)
  return type(mt.__index) == "table" and mt.__index or mt.methods
end
local srv = ws.listen { port = 0 }
local loop = ws.loop()
local t = loop:timer(60, function() end)
local d = loop:defer(function() end)
local r, w = testing.pipe()
local watcher = loop:watch(r, "r", function() end)
methods("Connection", core.conn_methods)
methods("Server", index_of(srv))
methods("Session", index_of(ws.session { role = "client", handshake = false }))
methods("Loop", index_of(loop))
methods("Timer", index_of(t))
methods("Deferred", index_of(d))
methods("Watcher", index_of(watcher))
methods("Validator", index_of(core.utf8_validator()))
watcher:stop()
testing.close_fd(r)
testing.close_fd(w)
t:cancel()
d:cancel()
srv:close()
-- Reconnecting objects are plain tables behind a function __index.
local rc_src = assert(io.open("lua/ws/reconnect.lua")):read("a")
for name in rc_src:gmatch("\nfunction RC:([%w_]+)") do need("Reconnecting:" .. name, "ws.reconnect") end

-- README reference tables: the backticked names of their first column.
local HEADS = { option = true, member = true, ["function"] = true, method = true, event = true,
  ["`compress.` field"] = true }
local in_table, heading = false, nil
for line in io.lines(readme_file) do
  if line:match("^#") then heading = line:gsub("^#+%s*", "") end
  if line:match("^|") then
    local first = line:match("^|%s*(.-)%s*|")
    if not in_table then
      in_table = HEADS[first] or false
    elseif in_table and not first:match("^%-%-%-") then
      for code in first:gmatch("`([^`]+)`") do
        -- `c:send(data[, kind])` -> send; `backoff.initial` -> initial
        local name = code:gsub("%b()", ""):gsub("%[.*", ""):match("([%a_][%w_]*)%s*$")
        if name and not tonumber(name) then need(name, "README: " .. heading) end
      end
    end
  else
    in_table = false
  end
end

local todo = {}
for line in io.lines(todo_file) do
  local name = line:match("^%s*([^#%s]+)")
  if name then todo[name] = true end
end

local missing, pending = {}, {}
for _, req in ipairs(required) do
  local name, where = req[1], req[2]
  if not documented[name] then
    if todo[name] then pending[#pending + 1] = name
    else missing[#missing + 1] = string.format("  %-32s (%s)", name, where) end
  end
end
if #pending > 0 then
  print(("docs: %d public names are not documented yet (listed in %s):"):format(#pending, todo_file))
  print("  " .. table.concat(pending, " "))
end
if #missing > 0 then
  print("docs: public names without an entry in the LDoc reference:")
  print(table.concat(missing, "\n"))
  print("docs: add a doc comment (--- in Lua, /*** in C, above the function) for each;"
    .. " options, fields and events go in the @table of their function or class; see config.ld")
  os.exit(1)
end
print(("docs: %d public names documented%s"):format(#required - #pending,
  #pending > 0 and (", " .. #pending .. " listed as not yet") or ""))
