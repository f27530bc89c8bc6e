-- Interoperability with Chromium's WebSocket (Debian `chromium`, headless,
-- driven by playwright-core from build/node): the browser is a client of the
-- lua-ws server.  The peer program is spec/interop/peers/chromium_peer.js;
-- wss:// is trusted through an SPKI allow-list of the test certificate.
local harness = require "spec.interop.harness"

harness.define({
  name = "chromium", deps = "chromium", deflate = true,
  check_opts = {
    ping = { peer_pings = false }, -- the page cannot send pings
    deflate_window_bits_10 = { server_window = false }, -- the browser offers no server_max_window_bits
  },
  client = function(st, names)
    local argv = { "env", "-u", "LD_PRELOAD", "INTEROP_SERVER_CERT=" .. st.server_cert, "node",
      "spec/interop/peers/chromium_peer.js", "client", st.base, st.wss, st.cafile }
    for _, n in ipairs(names) do argv[#argv + 1] = n end
    return argv
  end,
}, { describe = describe, it = it, pending = pending, teardown = teardown })
