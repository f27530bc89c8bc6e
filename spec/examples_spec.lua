-- The examples run as a user would run them, and do what they say.
local net = require "spec.helpers.net_util"

local function run_example(path, args)
  local cmd = string.format("WS_DEMO_PORT=0 %s %s %s 2>&1", net.lua_interpreter(), path, args or "")
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return out
end

describe("examples", function()
  it("demo.lua serves the page, echoes through a real client and exits when asked", function()
    local out = run_example("examples/demo.lua", "--seconds 1")
    assert.matches("open http://127%.0%.0%.1:%d+/ in a browser", out)
    assert.matches("client: connected, protocol echo%.v1", out)
    assert.matches("client: echoed 5 bytes: hello\n", out)
    assert.matches("client: echoed 13 bytes: héllo wörld\n", out)
    assert.matches("client: echoed 70000 bytes\n", out)
    assert.matches("server: client left %(1000 bye%)", out)
    assert.matches("client: closed 1000", out)
  end)

  it("session_demo.lua does the handshake and a clean close in memory", function()
    local out = run_example("examples/session_demo.lua")
    assert.matches("client open", out)
    assert.matches('client message%s+"echo: hello, world" "text"', out)
    assert.matches('client pong +"are you there%?"', out)
    assert.matches("states:%s+CLOSED%s+CLOSED", out)
  end)
end)
