-- Interoperability with lua-http (`http.websocket`, Debian lua-http), both
-- directions; its Debian dependencies exist for Lua 5.1 only, so the peer
-- program spec/interop/peers/lua_http_peer.lua runs under lua5.1.
local harness = require "spec.interop.harness"

local PEER = "spec/interop/peers/lua_http_peer.lua"

harness.define({
  name = "lua-http", deps = "lua-http",
  server = function(certs)
    return { "env", "-u", "LUA_PATH", "-u", "LUA_CPATH", "lua5.1", PEER, "server", certs.server_cert, certs.server_key }
  end,
  client = function(st, names)
    local argv = { "env", "-u", "LUA_PATH", "-u", "LUA_CPATH", "lua5.1", PEER, "client", st.base, st.wss, st.cafile }
    for _, n in ipairs(names) do argv[#argv + 1] = n end
    return argv
  end,
}, { describe = describe, it = it, pending = pending, teardown = teardown })
