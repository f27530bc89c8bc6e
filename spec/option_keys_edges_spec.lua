-- ws.core.check_options at its edges: a key too long to suggest a near
-- name for (the list of valid keys instead), keys that are not strings,
-- an options table kind that does not exist, and the tls keys ciphers and
-- alpn.
-- Lua 5.1 compatible.

local core = require "ws.core"

describe("option key checks", function()
  it("list the valid keys for a key too long to suggest one", function()
    local msg = core.check_options("connect", { [string.rep("x", 100)] = 1 })
    assert.matches("^unknown option 'x+' %(valid: close_timeout, ", msg)
    assert.is_nil(msg:find("did you mean", 1, true))
  end)

  it("name the type of a key that is not a string", function()
    assert.are.equal("keys must be option names, got a number", core.check_options("connect", { 1 }))
    assert.are.equal("keys must be option names, got a boolean", core.check_options("connect", { [true] = 1 }))
  end)

  it("raise for a kind of options table that does not exist", function()
    local ok, err = pcall(core.check_options, "nosuch", {})
    assert.is_false(ok)
    assert.matches("no options table named 'nosuch'", err, nil, true)
  end)

  it("take ciphers and alpn among the tls keys", function()
    assert.is_nil(core.check_options("tls", { ciphers = "HIGH", alpn = "http/1.1" }))
    assert.matches("did you mean 'alpn'", core.check_options("tls", { alpm = "x" }), nil, true)
  end)

  it("refuse headers whose keys are neither names nor list positions", function()
    local ws = require "ws"
    local ok, err = pcall(ws.connect, "ws://127.0.0.1:9/", { headers = { [true] = "x" } })
    assert.is_false(ok)
    assert.matches("'headers' must map names to values or list {name, value} pairs", err, nil, true)
    ok, err = pcall(ws.connect, "ws://127.0.0.1:9/", { headers = { "x" } })
    assert.is_false(ok)
    assert.matches("'headers' list entries must be {name, value} pairs, got string", err, nil, true)
  end)
end)
