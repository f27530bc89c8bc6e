-- Per-message compression choice: send(data, kind, {compress = false})
-- sends one message uncompressed on a permessage-deflate connection, and
-- {compress = true} compresses one below the threshold.  Checked on the
-- bytes of a sans-I/O session (RSV1 of the frame) and on a real
-- connection (what is queued, and what the peer receives).
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"
local core = require "ws.core"

local function rsv1(frame) return math.floor(frame:byte(1) / 64) % 2 == 1 end

describe("per-message compression choice", function()
  after_each(function() net.cleanup() end)

  local function session(threshold)
    return core.session{ role = "server", handshake = false, compress = { threshold = threshold } }
  end

  it("{compress = false} sends an uncompressed frame; the default compresses", function()
    local s = session(0)
    local text = ("abc"):rep(200)
    assert.is_true(s:send(text))
    local auto = s:output()
    assert.is_true(rsv1(auto))
    assert.is_true(#auto < #text)
    assert.is_true(s:send(text, "text", { compress = false }))
    local plain = s:output()
    assert.is_false(rsv1(plain))
    assert.equal(text, plain:sub(-#text))
    -- The next message is compressed again, and the context still works.
    assert.is_true(s:send(text, "binary"))
    assert.is_true(rsv1(s:output()))
  end)

  it("{compress = true} compresses a message under the threshold", function()
    local s = session(1024)
    assert.is_true(s:send("short text"))
    assert.is_false(rsv1(s:output()))
    assert.is_true(s:send("short text", "text", { compress = true }))
    assert.is_true(rsv1(s:output()))
  end)

  it("without permessage-deflate the option changes nothing", function()
    local s = core.session{ role = "server", handshake = false }
    assert.is_true(s:send("x", "text", { compress = true }))
    assert.is_false(rsv1(s:output()))
  end)

  it("raises for a bad options argument, naming it", function()
    local s = session(0)
    assert.error_matches(function() s:send("x", "text", 5) end, "bad argument #3")
    assert.error_matches(function() s:send("x", "text", { compress = "no" }) end, "'compress' must be a boolean")
  end)

  it("on a connection: the uncompressed message is queued whole and arrives intact", function()
    local got = {}
    local srv = net.listen{ compress = true, on_message = function(_, data) got[#got + 1] = data end }
    local c = assert(net.connect(net.url(srv), { compress = true }))
    assert.truthy(c.extensions:find("permessage-deflate", 1, true))
    local data = ("z"):rep(100000)
    assert.is_true(c:send(data, "binary", { compress = false }))
    -- Queued until the loop turns: 100000 bytes plus a 14-byte header.
    assert.equal(100014, c:buffered_amount())
    net.wait_until(function() return c:buffered_amount() == 0 end, 3)
    assert.is_true(c:send(data, "binary"))
    assert.is_true(c:buffered_amount() < 1000)
    assert.truthy(net.wait_until(function() return #got == 2 end, 3))
    assert.is_true(got[1] == data and got[2] == data)
    assert.error_matches(function() c:send("x", "text", { compress = 1 }) end, "'compress' must be a boolean")
  end)
end)
