-- ws:// and wss:// URL parsing (csrc/core/url.c) through ws.core.parse_url.
local core = require "ws.core"

local function parse_error(url)
  local ok, err = pcall(core.parse_url, url)
  assert.is_false(ok, "expected " .. tostring(url) .. " to be rejected")
  return err
end

describe("parse_url", function()
  local valid = {
    ["ws://example.com"] =
      {secure = false, host = "example.com", port = 80, resource = "/"},
    ["wss://example.com"] =
      {secure = true, host = "example.com", port = 443, resource = "/"},
    ["ws://example.com/"] =
      {secure = false, host = "example.com", port = 80, resource = "/"},
    ["WS://EXAMPLE.com/Chat"] =
      {secure = false, host = "example.com", port = 80, resource = "/Chat"},
    ["WsS://Example.Com"] =
      {secure = true, host = "example.com", port = 443, resource = "/"},
    ["ws://example.com:8080/chat"] =
      {secure = false, host = "example.com", port = 8080, resource = "/chat"},
    ["wss://example.com:80/"] =
      {secure = true, host = "example.com", port = 80, resource = "/"},
    ["ws://example.com:1"] =
      {secure = false, host = "example.com", port = 1, resource = "/"},
    ["ws://example.com:65535"] =
      {secure = false, host = "example.com", port = 65535, resource = "/"},
    ["ws://example.com:00080"] =
      {secure = false, host = "example.com", port = 80, resource = "/"},
    ["ws://example.com:/x"] =
      {secure = false, host = "example.com", port = 80, resource = "/x"},
    ["ws://example.com/a/b?x=1&y=%20"] =
      {secure = false, host = "example.com", port = 80, resource = "/a/b?x=1&y=%20"},
    ["ws://example.com?q"] =
      {secure = false, host = "example.com", port = 80, resource = "/?q"},
    ["ws://example.com:9000?q=1"] =
      {secure = false, host = "example.com", port = 9000, resource = "/?q=1"},
    ["ws://127.0.0.1:8080/"] =
      {secure = false, host = "127.0.0.1", port = 8080, resource = "/"},
    ["ws://[::1]/"] =
      {secure = false, host = "::1", port = 80, resource = "/"},
    ["wss://[::1]:8443/x?y"] =
      {secure = true, host = "::1", port = 8443, resource = "/x?y"},
    ["ws://[2001:DB8::A:1]"] =
      {secure = false, host = "2001:db8::a:1", port = 80, resource = "/"},
    ["ws://[::ffff:192.0.2.1]:9/"] =
      {secure = false, host = "::ffff:192.0.2.1", port = 9, resource = "/"},
    ["ws://my_service.local-net.example/"] =
      {secure = false, host = "my_service.local-net.example", port = 80, resource = "/"},
    ["ws://localhost"] =
      {secure = false, host = "localhost", port = 80, resource = "/"},
  }
  for url, want in pairs(valid) do
    it("parses " .. url, function()
      assert.same(want, core.parse_url(url))
    end)
  end

  it("decodes userinfo", function()
    local u = core.parse_url("ws://alice:s%40cr%3At@example.com/")
    assert.equal("alice:s@cr:t", u.userinfo)
    assert.equal("example.com", u.host)
    u = core.parse_url("ws://bob@[::1]:9/")
    assert.equal("bob", u.userinfo)
    assert.equal("::1", u.host)
    assert.equal(9, u.port)
  end)

  it("takes the last '@' as the end of the userinfo", function()
    local u = core.parse_url("ws://u:p@ss@example.com/")
    assert.equal("u:p@ss", u.userinfo)
    assert.equal("example.com", u.host)
  end)

  it("leaves userinfo nil without credentials", function()
    assert.is_nil(core.parse_url("ws://example.com/").userinfo)
  end)

  it("keeps '@' in the path out of the userinfo", function()
    local u = core.parse_url("ws://example.com/a@b")
    assert.is_nil(u.userinfo)
    assert.equal("/a@b", u.resource)
  end)

  local invalid = {
    [""] = "empty URL",
    ["example.com/chat"] = "missing scheme",
    ["://example.com"] = "missing scheme",
    ["http://example.com/"] = "unsupported scheme 'http'",
    ["HTTPS://example.com/"] = "unsupported scheme 'HTTPS'",
    ["wss2://example.com/"] = "unsupported scheme 'wss2'",
    ["ws:example.com"] = "expected '//' after the scheme",
    ["ws:/example.com"] = "expected '//' after the scheme",
    ["ws://"] = "missing host",
    ["ws:///path"] = "missing host",
    ["ws://:80/"] = "missing host",
    ["ws://user@/"] = "missing host",
    ["ws://example.com/#frag"] = "fragment not allowed",
    ["ws://example.com#"] = "fragment not allowed",
    ["ws://example.com:0/"] = "invalid port '0'",
    ["ws://example.com:65536/"] = "invalid port '65536'",
    ["ws://example.com:99999999999999999999/"] = "invalid port '99999999999999999999'",
    ["ws://example.com:-1/"] = "invalid port '-1'",
    ["ws://example.com:8o/"] = "invalid port '8o'",
    ["ws://example.com:80:81/"] = "invalid port '80:81'",
    ["ws://exa mple.com/"] = "URL contains a space",
    ["ws://example.com/a b"] = "URL contains a space",
    ["ws://example.com/\n"] = "URL contains a control character",
    ["ws://example.com/\t"] = "URL contains a control character",
    ["ws://example.com/\127"] = "URL contains a control character",
    ["ws://ex\195\164mple.com/"] = "non-ASCII",
    ["ws://exa!mple.com/"] = "invalid character in host 'exa!mple.com'",
    ["ws://exa%41mple.com/"] = "invalid character in host",
    ["ws://[::1/"] = "missing ']' after IPv6 address",
    ["ws://[::1]x/"] = "unexpected characters after IPv6 address",
    ["ws://[]/"] = "invalid IPv6 address",
    ["ws://[::g]/"] = "invalid IPv6 address '::g'",
    ["ws://[1:2:3:4:5:6:7:8:9]/"] = "invalid IPv6 address",
    ["ws://[fe80::1%25eth0]/"] = "invalid IPv6 address",
    ["ws://[127.0.0.1]/"] = "invalid IPv6 address",
    ["ws://::1/"] = "IPv6 address must be in brackets",
    ["ws://2001:db8::1/"] = "IPv6 address must be in brackets",
    ["ws://256.0.0.1/"] = "invalid IPv4 address '256.0.0.1'",
    ["ws://1.2.3/"] = "invalid IPv4 address",
    ["ws://1.2.3.4.5/"] = "invalid IPv4 address",
    ["ws://a%zz@example.com/"] = "invalid percent-encoding in userinfo",
    ["ws://a%4@example.com/"] = "invalid percent-encoding in userinfo",
    ["ws://a%00@example.com/"] = "userinfo contains a NUL byte",
  }
  for url, msg in pairs(invalid) do
    it("rejects " .. string.format("%q", url) .. " with its reason", function()
      local err = parse_error(url)
      assert.matches("bad argument #1", err, 1, true)
      assert.matches("invalid URL: ", err, 1, true)
      assert.matches(msg, err, 1, true)
    end)
  end

  it("rejects over-long parts", function()
    assert.matches("host too long", parse_error("ws://" .. string.rep("a", 300) .. "/"), 1, true)
    assert.matches("userinfo too long",
      parse_error("ws://" .. string.rep("u", 300) .. "@example.com/"), 1, true)
    assert.matches("path too long", parse_error("ws://example.com/" .. string.rep("p", 5000)), 1, true)
    -- just under the limits is fine
    local u = core.parse_url("ws://" .. string.rep("a", 255) .. "/" .. string.rep("p", 4094))
    assert.equal(255, #u.host)
    assert.equal(4095, #u.resource)
  end)

  it("rejects a URL with a NUL byte and non-strings", function()
    assert.matches("NUL", parse_error("ws://example.com/\0x"), 1, true)
    assert.matches("bad argument #1", parse_error(nil), 1, true)
    assert.matches("bad argument #1", parse_error({}), 1, true)
  end)
end)
