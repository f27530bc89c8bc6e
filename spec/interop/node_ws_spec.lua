-- Interoperability with Node's `ws` (npm, in build/interop-node), both
-- directions; the peer program is spec/interop/peers/node_ws_peer.js.
local harness = require "spec.interop.harness"

local PEER = "spec/interop/peers/node_ws_peer.js"

harness.define({
  name = "node-ws", deps = "node-ws", deflate = true,
  server = function(certs)
    return { "env", "-u", "LD_PRELOAD", "node", PEER, "server", certs.server_cert, certs.server_key }
  end,
  client = function(st, names)
    local argv = { "env", "-u", "LD_PRELOAD", "node", PEER, "client", st.base, st.wss, st.cafile }
    for _, n in ipairs(names) do argv[#argv + 1] = n end
    return argv
  end,
}, { describe = describe, it = it, pending = pending, teardown = teardown })
