-- Interoperability with libwebsockets (Debian libwebsockets-dev), both
-- directions; the peer program is spec/interop/peers/lws_peer.c, built by
-- scripts/interop_deps.sh into build/interop-lws/lws_peer.
local harness = require "spec.interop.harness"

local PEER = "build/interop-lws/lws_peer"

harness.define({
  name = "libwebsockets", deps = "lws",
  server = function(certs)
    return { "env", "-u", "LD_PRELOAD", PEER, "server", certs.server_cert, certs.server_key }
  end,
  client = function(st, names)
    local argv = { "env", "-u", "LD_PRELOAD", PEER, "client", st.base, st.wss, st.cafile }
    for _, n in ipairs(names) do argv[#argv + 1] = n end
    return argv
  end,
}, { describe = describe, it = it, pending = pending, teardown = teardown })
