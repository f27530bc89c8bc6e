-- HTTP CONNECT proxies that misbehave (spec/helpers/bad_proxy.py), plain
-- and over TLS (https:// proxies): closing or resetting without an answer,
-- answering something that is not HTTP, a head too large, half a status
-- line, a status that is not 2xx, and a 200 in pieces followed by a close
-- (under a ws:// origin and under a wss:// one, whose TLS then runs inside
-- the proxy's).
-- Every connect fails with an error naming the proxy and what it did; none
-- hangs, none raises.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"
local proc = require "spec.helpers.proc"
local certs = require("spec.helpers.certs").get()

-- One proxy process per kind (plain, TLS) for the whole file: the mode is
-- the first label of the CONNECT target's host.
local proxies = {}
local function bad_proxy(tls)
  if not proxies[tls] then
    local argv = { "python3", "spec/helpers/bad_proxy.py" }
    if tls then
      argv[3], argv[4] = certs.server_cert, certs.server_key
    end
    local p = proc.start("bad_proxy", argv)
    local port = tonumber(p:wait_for("listening (%d+)\n", 30))
    proxies[tls] = (tls and "https" or "http") .. "://127.0.0.1:" .. port
  end
  return proxies[tls]
end

local function connect(mode, tls)
  return net.connect("ws://" .. mode .. ".invalid:9/", { proxy = bad_proxy(tls), timeout = 10,
    proxy_tls = tls and { cafile = certs.ca } or nil })
end

local CASES = {
  { "close", "closed the connection before answering CONNECT" },
  { "reset", "closed the connection before answering CONNECT" },
  { "garbage", "sent an invalid answer to CONNECT" },
  { "huge", "sent an invalid answer to CONNECT" },
  { "partial", "closed the connection before answering CONNECT" },
  { "status", "proxy answered 100 Continue" },
}

describe("misbehaving CONNECT proxies", function()
  after_each(function()
    net.cleanup()
  end)
  lazy_teardown(function()
    proc.stop_all()
  end)

  for _, tls in ipairs { false, true } do
    local kind = tls and "https://" or "http://"
    for _, case in ipairs(CASES) do
      local mode, want = case[1], case[2]
      it(kind .. " proxy, " .. mode .. ": the connect fails with '" .. want .. "'", function()
        local c, err = connect(mode, tls)
        assert.is_nil(c)
        assert.matches(want, err, nil, true)
        if mode ~= "status" then
          assert.matches("proxy 127.0.0.1 port %d+", err)
        end
      end)
    end

    it(kind .. " proxy answering 200 in pieces: the tunnel opens, then the origin's close is the error", function()
      local c, err = connect("split", tls)
      assert.is_nil(c)
      -- past the proxy: the WebSocket handshake is what failed
      assert.is_nil(err:find("CONNECT", 1, true), err)
      assert.matches("closed", err, nil, true)
    end)

    it(kind .. " proxy answering 200 then closing under a wss:// origin: the origin's TLS handshake fails", function()
      local c, err = net.connect("wss://split.invalid:9/", { proxy = bad_proxy(tls), timeout = 10,
        proxy_tls = tls and { cafile = certs.ca } or nil, tls = { cafile = certs.ca } })
      assert.is_nil(c)
      assert.are.equal("TLS handshake failed: connection closed by peer", err)
    end)
  end
end)
