--- Run lua-ws inside Copas.
--
--   require("ws.copas").attach()   -- then ws.connect/ws.listen with callbacks
--   copas.loop()
--
-- Copas waits for LuaSocket objects with socket.select, which takes any
-- object with a getfd() method: a small stand-in for loop:fd() lets a
-- Copas thread sleep in copas.receive until lua-ws has work (timers
-- included), then run one loop:step(0).
-- @module ws.copas
local copas = require "copas"
local ws = require "ws"
local core = require "ws.core"

local M = {}

local VALID = { loop = true, on_error = true, forever = true }

--- Run lua-ws inside Copas: a Copas thread waits on `loop:fd()` and runs
-- `loop:step(0)` on each wake-up, timers included.
-- @tparam[opt] table opts `loop` (default `ws.loop()`); `on_error`, a `function(err)` for
--  errors raised in lua-ws callbacks; `forever`, keep the thread while lua-ws is idle
-- @treturn table a handle; `handle:detach()` ends the thread
function M.attach(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #1 to 'attach' (table expected, got " .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  for k in pairs(opts) do
    if not VALID[k] then error("bad argument #1 to 'attach' (unknown option '" .. tostring(k) .. "')", 2) end
  end
  if opts.on_error ~= nil and type(opts.on_error) ~= "function" then
    error("bad argument #1 to 'attach' (on_error must be a function)", 2)
  end
  local loop = opts.loop or ws.loop()
  local fd = loop:fd()
  if not fd then error("ws.copas: the " .. loop:backend() .. " backend has no pollable fd", 2) end
  local on_error, forever = opts.on_error, opts.forever
  local handle = { detached = false }

  -- What copas.receive and socket.select need: the first receive says
  -- "wait" (Copas adds it to its read set), the one after the wake-up says
  -- "ready".
  local waited = false
  local waker = {
    getfd = function() return fd end,
    dirty = function() return false end,
    settimeout = function() end,
    close = function() end, -- Copas closes the object of a finished thread
    receive = function()
      if waited then
        waited = false
        return "ready"
      end
      waited = true
      return nil, "timeout"
    end,
  }

  core.hosted[loop] = true -- c:close() from host code must not run the loop
  function handle.detach()
    handle.detached = true
    core.hosted[loop] = nil
    loop:defer(function() end) -- wakes the thread up to see it
  end

  -- The first turn runs from the Copas loop (a wake-up queued now), so
  -- attach may come before or after the connections are made.
  loop:defer(function() end)
  copas.addthread(function()
    repeat
      copas.receive(waker)
      if handle.detached then return end
      local ok, err = pcall(loop.step, loop, 0)
      if not ok then
        if on_error then on_error(err) else error(err, 0) end
      end
    until not forever and not loop:alive()
  end)
  return handle
end

return M
