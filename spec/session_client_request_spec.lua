-- The client request a session sends, built by the same code as
-- core.client_handshake: URL credentials as Basic authorization, header
-- order, and option errors that name the option.
local core = require "ws.core"

local KEY = "dGhlIHNhbXBsZSBub25jZQ=="

local function header_value(text, name)
  return text:match("\r\n" .. name .. ": ([^\r]*)\r\n")
end

local function request(opts)
  local t = { role = "client", key = KEY }
  for k, v in pairs(opts) do t[k] = v end
  return core.session(t):output()
end

local function session_error(opts)
  local t = { role = "client", url = "ws://h/" }
  for k, v in pairs(opts) do t[k] = v end
  local ok, err = pcall(core.session, t)
  assert.is_false(ok)
  return tostring(err)
end

describe("session client request", function()
  it("turns URL credentials into Basic authorization", function()
    local out = request { url = "ws://user:pw@host/" }
    assert.is_truthy(out:find("\r\nAuthorization: Basic dXNlcjpwdw==\r\n", 1, true), out)
    out = request { url = "ws://Aladdin:open%20sesame@h/" }
    assert.are.equal("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", header_value(out, "Authorization"))
  end)

  it("sends no Authorization without credentials", function()
    assert.is_nil(header_value(request { url = "ws://host/" }, "Authorization"))
  end)

  it("lets an explicit Authorization header win, in any case", function()
    local out = request { url = "ws://user:pw@host/", headers = { authorization = "Bearer t" } }
    assert.are.equal("Bearer t", header_value(out, "authorization"))
    assert.is_nil(header_value(out, "Authorization"))
    out = request { url = "ws://user:pw@host/", headers = { { "AUTHORIZATION", "Bearer u" } } }
    assert.are.equal("Bearer u", header_value(out, "AUTHORIZATION"))
    assert.is_falsy(out:find("Basic", 1, true))
  end)

  it("keeps extra headers besides the credentials", function()
    local out = request { url = "ws://user:pw@host/", headers = { ["X-A"] = "1" } }
    assert.are.equal("1", header_value(out, "X%-A"))
    assert.are.equal("Basic dXNlcjpwdw==", header_value(out, "Authorization"))
  end)

  it("matches core.client_handshake byte for byte", function()
    local opts = {
      origin = "https://app.example", protocols = { "chat.v2", "chat.v1" }, extensions = "permessage-deflate",
      headers = { { "X-First", "1" }, { "X-Second", 2 } }, key = KEY,
    }
    local url = "wss://u:p@example.com:8443/path?q=1"
    local expected = core.client_handshake(url, opts)
    local t = { role = "client", url = url }
    for k, v in pairs(opts) do t[k] = v end
    assert.are.equal(expected, core.session(t):output())
  end)

  it("keeps the order of list-form headers and takes number values", function()
    local out = request { url = "ws://h/", headers = { { "X-B", "2" }, { "X-A", 1 }, { "X-C", "3" } } }
    local b, a, c = out:find("X-B: 2", 1, true), out:find("X-A: 1", 1, true), out:find("X-C: 3", 1, true)
    assert.is_truthy(b and a and c, out)
    assert.is_true(b < a and a < c)
  end)

  it("reads options through __index", function()
    local opts = setmetatable({ role = "client", key = KEY }, {
      __index = function(_, k)
        if k == "url" then return "ws://h" .. "/" .. "idx" end
        if k == "origin" then return ("o"):rep(3) .. "://x" end
      end,
    })
    local out = core.session(opts):output()
    collectgarbage()
    assert.is_truthy(out:find("GET /idx HTTP/1.1", 1, true), out)
    assert.are.equal("ooo://x", header_value(out, "Origin"))
  end)

  local WRONG = {
    { "url", { url = 42 }, "'url' must be a string" },
    { "url", { url = "http://h/" }, "unsupported scheme 'http'" },
    { "url", { url = "ws://h/\0x" }, "NUL" },
    { "origin", { origin = 5 }, "'origin' must be a string" },
    { "extensions", { extensions = true }, "'extensions' must be a string" },
    { "key", { key = {} }, "'key' must be a string" },
    { "protocols", { protocols = 42 }, "'protocols'" },
    { "protocols", { protocols = { "ok", 7 } }, "'protocols'" },
    { "protocols", { protocols = { "a\0b" } }, "NUL" },
    { "headers", { headers = "X-A: b" }, "'headers' must be a table" },
    { "headers", { headers = { "X-A: b" } }, "{name, value}" },
    { "headers", { headers = { X = true } }, "header values" },
    { "headers", { headers = { { 1, "v" } } }, "header names" },
    { "headers", { headers = { X = "a\0b" } }, "NUL" },
  }
  for _, c in ipairs(WRONG) do
    it("raises naming " .. c[1] .. " for " .. c[3], function()
      local err = session_error(c[2])
      assert.is_truthy(err:find("bad argument #1", 1, true), err)
      assert.is_truthy(err:find(c[1], 1, true), err)
      assert.is_truthy(err:find(c[3], 1, true), err)
    end)
  end

  it("raises naming url when it is missing", function()
    local ok, err = pcall(core.session, { role = "client" })
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("'url'", 1, true), err)
  end)

  it("raises on headers the handshake sets itself", function()
    local err = session_error { headers = { Host = "x" } }
    assert.is_truthy(err:find("header 'Host' is set by the handshake", 1, true), err)
    err = session_error { protocols = { "a b" } }
    assert.is_truthy(err:find("invalid subprotocol 'a b'", 1, true), err)
  end)
end)
