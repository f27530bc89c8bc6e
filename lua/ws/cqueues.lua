--- Run lua-ws inside a cqueues controller.
--
--   local cq = cqueues.new()
--   require("ws.cqueues").attach(cq)     -- lua-ws's loop becomes a task of cq
--   ... ws.connect / ws.listen with callbacks, or ws.spawn tasks ...
--   assert(cq:loop())
--
-- The loop object is itself a cqueues pollable (pollfd/events/timeout), so
-- the task is just `cqueues.poll(loop); loop:step(0)`.  An error raised in a
-- lua-ws callback ends the task and comes out of cq:loop() / cq:step().
-- @module ws.cqueues
local cqueues = require "cqueues"
local ws = require "ws"
local core = require "ws.core"

local M = {}

local VALID = { loop = true, forever = true }

--- Run the lua-ws loop as a task of a cqueues controller
-- (`cqueues.poll(loop); loop:step(0)` until the loop is idle).
-- @tparam cqueues cq the controller
-- @tparam[opt] table opts `loop` (default `ws.loop()`); `forever`, keep the task while lua-ws
--  is idle
-- @treturn table a handle; `handle:detach()` ends the task
function M.attach(cq, opts)
  if type(cq) ~= "userdata" and type(cq) ~= "table" or type(cq.wrap) ~= "function" then
    error("bad argument #1 to 'attach' (cqueues controller expected, got " .. type(cq) .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'attach' (table expected, got " .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  for k in pairs(opts) do
    if not VALID[k] then error("bad argument #2 to 'attach' (unknown option '" .. tostring(k) .. "')", 2) end
  end
  local loop = opts.loop or ws.loop()
  if not loop:fd() then
    error("ws.cqueues: the " .. loop:backend() .. " backend has no pollable fd", 2)
  end
  local forever = opts.forever and true or false
  local handle = { detached = false }
  core.hosted[loop] = true -- c:close() from host code must not run the loop
  function handle.detach()
    handle.detached = true
    core.hosted[loop] = nil
    loop:defer(function() end) -- wakes the task up to see it
  end
  cq:wrap(function()
    while not handle.detached and (forever or loop:alive()) do
      cqueues.poll(loop)
      if handle.detached then break end
      loop:step(0)
    end
  end)
  return handle
end

return M
