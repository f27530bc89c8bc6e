--- Run lua-ws inside a libuv loop: luv (`require "luv"`) or Neovim
-- (`vim.uv`, `vim.loop`).
--
--   require("ws.luv").attach(uv)   -- then ws.connect/ws.listen with callbacks
--   uv.run()
--
-- A uv poll handle watches loop:fd(), which is readable whenever lua-ws has
-- work, timers included (a timerfd inside it), so no uv timer is needed:
-- each wake-up runs one loop:step(0).  The poll handle keeps uv.run()
-- going only while lua-ws has something to do (connections, servers,
-- timers), like ws.run().  In Neovim, uv callbacks run in a "fast event"
-- context where most of vim.api is off limits: there each turn goes
-- through vim.schedule, so lua-ws callbacks may call vim.api.
-- @module ws.luv
local ws = require "ws"
local core = require "ws.core"

local M = {}

local VALID = { loop = true, schedule = true, on_error = true, forever = true }

local function default_uv()
  local vim = rawget(_G, "vim")
  if type(vim) == "table" then return vim.uv or vim.loop end
  local ok, luv = pcall(require, "luv")
  return ok and luv or nil
end

--- Run lua-ws inside a libuv loop: a uv poll handle on `loop:fd()` runs
-- `loop:step(0)` on each wake-up; `uv.run()` keeps going only while lua-ws
-- has work.
-- @tparam[opt] table uv the luv module (default: `vim.uv`/`vim.loop` inside Neovim, else
--  `require "luv"`)
-- @tparam[opt] table opts `loop` (default `ws.loop()`); `schedule`, a `function(fn)` running
--  `fn` later on the host's main loop (default `vim.schedule` inside Neovim); `on_error`, a
--  `function(err)` for errors raised in lua-ws callbacks; `forever`, keep `uv.run()` going
--  while lua-ws is idle
-- @treturn table a handle; `handle:detach()` stops watching (before closing the loop)
function M.attach(uv, opts)
  if type(uv) == "table" and opts == nil and type(uv.new_poll) ~= "function" then
    uv, opts = nil, uv -- attach(opts)
  end
  if uv == nil then uv = default_uv() end
  if type(uv) ~= "table" or type(uv.new_poll) ~= "function" then
    error("bad argument #1 to 'attach' (luv module expected, got " .. type(uv) .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'attach' (table expected, got " .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  for k in pairs(opts) do
    if not VALID[k] then error("bad argument #2 to 'attach' (unknown option '" .. tostring(k) .. "')", 2) end
  end
  for _, k in ipairs { "schedule", "on_error" } do
    if opts[k] ~= nil and type(opts[k]) ~= "function" then
      error("bad argument #2 to 'attach' (" .. k .. " must be a function)", 2)
    end
  end
  local loop = opts.loop or ws.loop()
  local fd = loop:fd()
  if not fd then error("ws.luv: the " .. loop:backend() .. " backend has no pollable fd", 2) end
  local schedule = opts.schedule
  local vim = rawget(_G, "vim")
  if schedule == nil and type(vim) == "table" then schedule = vim.schedule end
  local on_error, forever = opts.on_error, opts.forever
  local poll = uv.new_poll(fd)
  local handle = { detached = false }

  local function turn()
    local ok, err = pcall(loop.step, loop, 0)
    if not handle.detached then
      if forever or loop:alive() then poll:ref() else poll:unref() end
    end
    if not ok then
      if on_error then on_error(err) else error(err, 0) end
    end
  end

  local on_readable
  if schedule then
    -- Level-triggered: stop watching until the scheduled turn has run, or
    -- the fast-event side would spin.
    on_readable = function()
      poll:stop()
      schedule(function()
        if handle.detached then return end
        poll:start("r", on_readable)
        turn()
      end)
    end
  else
    on_readable = function() turn() end
  end

  core.hosted[loop] = true -- c:close() from host code must not run the loop
  function handle.detach()
    if handle.detached then return end
    handle.detached = true
    core.hosted[loop] = nil
    poll:stop()
    if not poll:is_closing() then poll:close() end
  end

  poll:start("r", on_readable)
  -- One first turn, so the ref state matches what lua-ws has to do even if
  -- nothing was queued before attach.
  loop:defer(function() end)
  return handle
end

return M
