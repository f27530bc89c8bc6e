-- NO_PROXY entries that must not match (an entry longer than the host, a
-- suffix that is not at a label boundary) and ones that must (a host with
-- its port), with HTTP_PROXY pointing at a closed port: a matching entry
-- connects directly, a non-matching one tries the proxy and fails.  In
-- child processes (the environment is read at connect).
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"
local proc = require "spec.helpers.proc"

local function child(env, url)
  local script = net.next_name("no_proxy_child") .. ".lua"
  net.write_file(script, ([[
local ws = require "ws"
local c, err = ws.connect(%q, { timeout = 5 })
if not c then print("ERR " .. err) return end
c:send("np")
print("GOT " .. tostring(c:receive(3)))
c:close()
]]):format(url))
  return proc.sh(("HTTP_PROXY=http://127.0.0.1:1 %s LUA_PATH=%s LUA_CPATH=%s %s %s"):format(env,
    net.quote(package.path), net.quote(package.cpath), net.quote(net.lua_interpreter()), net.quote(script)), 15)
end

describe("NO_PROXY matching", function()
  after_each(function() net.cleanup() end)

  it("matches whole labels and ports only", function()
    local _, port = net.spawn_echo_server()
    local url = "ws://localhost:" .. port .. "/"
    local direct = "GOT np"
    local proxied = "ERR cannot connect to proxy 127.0.0.1 port 1"
    assert.matches(direct, child("NO_PROXY=localhost:" .. port, url), 1, true)
    assert.matches(direct, child("NO_PROXY=localhost", url), 1, true)
    assert.matches(proxied, child("NO_PROXY=longer.than.localhost", url), 1, true)
    assert.matches(proxied, child("NO_PROXY=host", url), 1, true)
    assert.matches(proxied, child("NO_PROXY=localhost:1", url), 1, true)
  end)
end)
