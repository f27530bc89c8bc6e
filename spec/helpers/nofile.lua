-- Running out of file descriptors, in a child process limited by
-- `ulimit -n` (net.spawn_lua_limited): use_up() opens /dev/null until open
-- fails and returns what it holds; release(held) closes it all.  The
-- children find this module on the package.path of the specs.
-- Lua 5.1 compatible.

local M = {}

function M.use_up()
  local held = {}
  while true do
    local f = io.open("/dev/null", "rb")
    if not f then break end
    held[#held + 1] = f
  end
  return held
end

function M.release(held)
  for _, f in ipairs(held) do f:close() end
end

return M
