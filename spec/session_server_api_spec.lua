-- The server side of the session API: accept and reject after a request.
local core = require "ws.core"

local function requested(protocols)
  local c = core.session{ role = "client", url = "ws://example.test/room", protocols = protocols }
  local s = core.session{ role = "server", protocols = { "b", "a" } }
  s:feed(c:output())
  local kind, req = s:next_event()
  assert.are.equal("request", kind)
  return c, s, req
end

describe("server session", function()
  it("chooses the first offered protocol it supports, in the client's order", function()
    local c, s = requested({ "a", "b" })
    assert.is_true(s:accept())
    assert.are.equal("a", s:protocol())
    c:feed(s:output())
    local kind, info = c:next_event()
    assert.are.equal("open", kind)
    assert.are.equal("a", info.protocol)
  end)

  it("refuses to accept with a protocol the client did not offer", function()
    local _, s = requested({ "a" })
    local ok, err = pcall(s.accept, s, { protocol = "z" })
    assert.is_false(ok)
    assert.matches("not offered", err)
    assert.are.equal("CONNECTING", s:state())
    assert.are.equal("", s:output())
  end)

  it("rejects with a status, a reason body and extra headers", function()
    local c, s = requested()
    assert.is_true(s:reject(403, "go away", { ["X-Why"] = "test" }))
    local out = s:output()
    assert.matches("^HTTP/1.1 403 Forbidden\r\n", out)
    assert.matches("\r\nX%-Why: test\r\n", out)
    assert.matches("\r\n\r\ngo away\n?$", out)
    assert.are.equal("CLOSED", s:state())
    local kind, code, _, clean = s:next_event()
    assert.are.same({ "close", 1006, false }, { kind, code, clean })
    c:feed(out)
    local ckind, _, status = c:next_event()
    assert.are.same({ "error", 403 }, { ckind, status })
  end)

  it("raises on a reject header that would split the response, and stays waiting", function()
    local _, s = requested()
    local ok, err = pcall(function() return s:reject(403, "no", { ["X-A"] = "b\r\nInjected: 1" }) end)
    assert.is_false(ok)
    assert.matches("bad argument #%d.*invalid header", err)
    assert.are.equal("CONNECTING", s:state())
    assert.are.equal("", s:output())
    assert.is_true(s:reject(400, "no"))
  end)

  it("raises on an accept header that would split the response", function()
    local _, s = requested()
    local ok = pcall(s.accept, s, { headers = { ["X-A"] = "b\r\nInjected: 1" } })
    assert.is_false(ok)
    assert.are.equal("CONNECTING", s:state())
    assert.are.equal("", s:output())
  end)

  it("rejects a status outside 300-599 as an argument error", function()
    local _, s = requested()
    assert.has_error(function() s:reject(200) end)
    assert.has_error(function() s:reject(600) end)
    assert.are.equal("CONNECTING", s:state())
  end)

  it("answers 400 as soon as the bytes cannot start a request line", function()
    local s = core.session{ role = "server" }
    s:feed("GE")
    assert.is_nil(s:next_event()) -- still a possible request
    local s2 = core.session{ role = "server" }
    s2:feed("\22\3\1\0") -- a TLS ClientHello, no line end in sight
    local kind, _, status = s2:next_event()
    assert.are.same({ "error", 400 }, { kind, status })
    assert.matches("^HTTP/1.1 400", s2:output())
  end)
end)
