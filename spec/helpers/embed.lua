-- Shared by the specs that run lua-ws inside another event loop (cqueues,
-- luv, Copas): the host's module, or a pending test saying it is missing;
-- driving the host until a condition holds.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"

local M = {}

-- require(module), or nil after declaring a pending test "needs <package>"
-- that says where the package comes from (call inside describe).
function M.needs(module, package, where)
  local ok, mod = pcall(require, module)
  if ok then return mod end
  -- a pending test of the describe block being run
  require("busted").pending("needs " .. package .. ": not installed for " .. _VERSION .. " (" .. where .. ")")
  return nil
end

-- step() until done() is true or `limit` seconds (10) passed; true when
-- done() became true.
function M.drive(done, step, limit)
  local deadline = net.now() + (limit or 10)
  while not done() do
    if net.now() > deadline then return false end
    step()
  end
  return true
end

return M
