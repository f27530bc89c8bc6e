-- Interoperability with Python's `websockets` (Debian python3-websockets,
-- run with /usr/bin/python3), both directions; the peer program is
-- spec/interop/peers/python_websockets_peer.py.
local harness = require "spec.interop.harness"

local PEER = "spec/interop/peers/python_websockets_peer.py"

harness.define({
  name = "python-websockets", deps = "python", deflate = true,
  server = function(certs)
    return { "/usr/bin/python3", "-u", PEER, "server", certs.server_cert, certs.server_key }
  end,
  client = function(st, names)
    local argv = { "/usr/bin/python3", "-u", PEER, "client", st.base, st.wss, st.cafile }
    for _, n in ipairs(names) do argv[#argv + 1] = n end
    return argv
  end,
}, { describe = describe, it = it, pending = pending, teardown = teardown })
