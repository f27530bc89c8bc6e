--- lua-ws: WebSocket (RFC 6455) for Lua.
-- The protocol engine lives in the C module ws.core; this module is the
-- public entry point and grows the networked API on top of it.
local core = require "ws.core"

local ws = {
  core = core,
  version = core.version,
}

--- A sans-I/O session: feed it received bytes, pull events, send what
-- `output()` returns.  See README.md for the options.
function ws.session(opts)
  if type(opts) ~= "table" then
    error("bad argument #1 to 'session' (table expected, got " .. type(opts) .. ")", 2)
  end
  return core.session(opts)
end

return ws
