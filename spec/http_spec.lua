-- The HTTP/1.1 head parser behind the opening handshake (csrc/core/http.c),
-- driven through ws.core.parse_request / parse_response / head_end.
local core = require "ws.core"

local REQUEST = table.concat({
  "GET /chat?room=1 HTTP/1.1",
  "Host: example.com:8080",
  "Upgrade: websocket",
  "Connection: Upgrade",
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
  "Sec-WebSocket-Version: 13",
  "", "",
}, "\r\n")

local RESPONSE = table.concat({
  "HTTP/1.1 101 Switching Protocols",
  "Upgrade: websocket",
  "Connection: Upgrade",
  "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
  "", "",
}, "\r\n")

local function req(lines)
  return table.concat(lines, "\r\n") .. "\r\n\r\n"
end

local function header(parsed, i)
  local h = parsed.headers[i]
  return h.name, h.value
end

describe("http request parsing", function()
  it("parses the request line and headers in order", function()
    local r = assert(core.parse_request(REQUEST))
    assert.equal("GET", r.method)
    assert.equal("/chat?room=1", r.target)
    assert.equal(1, r.version_minor)
    assert.is_nil(r.status)
    assert.is_nil(r.reason)
    assert.equal(5, #r.headers)
    assert.same({"Host", "example.com:8080"}, {header(r, 1)})
    assert.same({"Sec-WebSocket-Version", "13"}, {header(r, 5)})
    assert.equal(#REQUEST, r.head_length)
  end)

  it("accepts later HTTP/1.x minors", function()
    local r = assert(core.parse_request(req({"GET / HTTP/1.2", "Host: x"})))
    assert.equal(2, r.version_minor)
  end)

  it("rejects HTTP/1.0 and other major versions as a version error", function()
    for _, v in ipairs({"HTTP/1.0", "HTTP/2.0", "HTTP/0.9"}) do
      local r, err = core.parse_request(req({"GET / " .. v, "Host: x"}))
      assert.is_nil(r)
      assert.matches("unsupported HTTP version", err, 1, true)
    end
  end)

  it("trims whitespace around values and keeps inner whitespace", function()
    local r = assert(core.parse_request(req({"GET / HTTP/1.1", "X-A:   a  b \t", "X-B:c", "X-C:"})))
    assert.same({"X-A", "a  b"}, {header(r, 1)})
    assert.same({"X-B", "c"}, {header(r, 2)})
    assert.same({"X-C", ""}, {header(r, 3)})
  end)

  it("keeps HTAB and obs-text in values", function()
    local r = assert(core.parse_request(req({"GET / HTTP/1.1", "X: a\tb\200\255"})))
    assert.equal("a\tb\200\255", r.headers[1].value)
  end)

  it("keeps duplicated headers as separate entries", function()
    local r = assert(core.parse_request(req({"GET / HTTP/1.1", "X-Dup: 1", "Other: o", "x-dup: 2"})))
    assert.equal(3, #r.headers)
    assert.same({"X-Dup", "1"}, {header(r, 1)})
    assert.same({"x-dup", "2"}, {header(r, 3)})
  end)

  it("joins obs-folded lines into one value without line breaks", function()
    local r = assert(core.parse_request(req({"GET / HTTP/1.1", "X-Fold: a", "  b", "\tc", "Next: n"})))
    assert.equal(2, #r.headers)
    local v = r.headers[1].value
    assert.matches("^a%s+b%s+c$", v)
    assert.is_nil(v:find("[\r\n]"))
    assert.same({"Next", "n"}, {header(r, 2)})
  end)

  it("folds onto an empty value", function()
    local r = assert(core.parse_request(req({"GET / HTTP/1.1", "X-Fold:", "   b  "})))
    assert.equal("b", r.headers[1].value)
  end)

  it("rejects a continuation line before any header", function()
    local r, err = core.parse_request(req({"GET / HTTP/1.1", " folded", "Host: x"}))
    assert.is_nil(r)
    assert.equal("malformed request head", err)
  end)

  it("accepts bare LF line endings", function()
    local r = assert(core.parse_request("GET / HTTP/1.1\nHost: x\nX: y\n\n"))
    assert.equal(2, #r.headers)
    assert.equal("y", r.headers[2].value)
  end)

  it("ignores bytes after the blank line and reports the head length", function()
    local r = assert(core.parse_request(REQUEST .. "\129\5hello"))
    assert.equal(#REQUEST, r.head_length)
    assert.equal(5, #r.headers)
  end)

  local bad = {
    ["whitespace before the colon"] = {"GET / HTTP/1.1", "Host : x"},
    ["a tab before the colon"] = {"GET / HTTP/1.1", "Host\t: x"},
    ["a name that is not a token"] = {"GET / HTTP/1.1", "X@Y: z"},
    ["an empty name"] = {"GET / HTTP/1.1", ": z"},
    ["a line without colon"] = {"GET / HTTP/1.1", "Host x"},
    ["a control character in a value"] = {"GET / HTTP/1.1", "X: a\1b"},
    ["DEL in a value"] = {"GET / HTTP/1.1", "X: a\127b"},
    ["NUL in a value"] = {"GET / HTTP/1.1", "X: a\0b"},
    ["a bare CR in a value"] = {"GET / HTTP/1.1", "X: a\rb"},
    ["a double space in the request line"] = {"GET  / HTTP/1.1", "Host: x"},
    ["a missing version"] = {"GET /", "Host: x"},
    ["a missing target"] = {"GET HTTP/1.1", "Host: x"},
    ["a lowercase version"] = {"GET / http/1.1", "Host: x"},
    ["a malformed version"] = {"GET / HTTP/1.x", "Host: x"},
    ["trailing text after the version"] = {"GET / HTTP/1.1 x", "Host: x"},
    ["a method that is not a token"] = {"G(T / HTTP/1.1", "Host: x"},
    ["a control character in the target"] = {"GET /\1 HTTP/1.1", "Host: x"},
    ["an empty request line"] = {"", "Host: x"},
  }
  for what, lines in pairs(bad) do
    it("rejects " .. what, function()
      local r, err = core.parse_request(req(lines))
      assert.is_nil(r)
      assert.equal("malformed request head", err)
    end)
  end

  it("says incomplete when the blank line is missing", function()
    local r, err = core.parse_request("GET / HTTP/1.1\r\nHost: x\r\n")
    assert.is_nil(r)
    assert.equal("incomplete request head", err)
  end)
end)

describe("http response parsing", function()
  it("parses the status line", function()
    local r = assert(core.parse_response(RESPONSE))
    assert.equal(101, r.status)
    assert.equal("Switching Protocols", r.reason)
    assert.equal(1, r.version_minor)
    assert.is_nil(r.method)
    assert.is_nil(r.target)
    assert.equal(3, #r.headers)
    assert.same({"Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}, {header(r, 3)})
  end)

  it("accepts HTTP/1.0 responses, an empty reason and a missing reason", function()
    local r = assert(core.parse_response("HTTP/1.0 404 \r\n\r\n"))
    assert.equal(404, r.status)
    assert.equal(0, r.version_minor)
    assert.equal("", r.reason)
    r = assert(core.parse_response("HTTP/1.1 101\r\nUpgrade: websocket\r\n\r\n"))
    assert.equal(101, r.status)
    assert.equal("", r.reason)
  end)

  it("keeps spaces inside the reason", function()
    local r = assert(core.parse_response("HTTP/1.1 426 Upgrade  Required\r\n\r\n"))
    assert.equal("Upgrade  Required", r.reason)
  end)

  it("rejects other major versions", function()
    local r, err = core.parse_response("HTTP/2.0 101 OK\r\n\r\n")
    assert.is_nil(r)
    assert.matches("unsupported HTTP version", err, 1, true)
  end)

  for _, line in ipairs({"HTTP/1.1 1O1 OK", "HTTP/1.1 10 OK", "HTTP/1.1 1011 OK", "HTTP/1.1  101 OK",
                         "HTTP/1.1 101\1", "HTTP/1.1 101 O\1K", "HTTP/1.1", "ICY 200 OK", "http/1.1 101 x"}) do
    it("rejects the status line " .. string.format("%q", line), function()
      local r, err = core.parse_response(line .. "\r\n\r\n")
      assert.is_nil(r)
      assert.equal("malformed response head", err)
    end)
  end

  it("applies the same header rules as requests", function()
    local r, err = core.parse_response("HTTP/1.1 101 OK\r\nUpgrade : websocket\r\n\r\n")
    assert.is_nil(r)
    assert.equal("malformed response head", err)
  end)
end)

describe("http limits", function()
  local function with_headers(n)
    local lines = {"GET / HTTP/1.1"}
    for i = 1, n do lines[#lines + 1] = "X-" .. i .. ": v" end
    return req(lines)
  end

  it("allows exactly max_headers headers and rejects one more", function()
    assert.truthy(core.parse_request(with_headers(3), {max_headers = 3}))
    local r, err = core.parse_request(with_headers(4), {max_headers = 3})
    assert.is_nil(r)
    assert.equal("too many headers", err)
  end)

  it("defaults to 64 headers", function()
    assert.truthy(core.parse_request(with_headers(64)))
    local r, err = core.parse_request(with_headers(65))
    assert.is_nil(r)
    assert.equal("too many headers", err)
  end)

  it("allows a head of exactly max_head bytes and rejects a longer one", function()
    assert.truthy(core.parse_request(REQUEST, {max_head = #REQUEST}))
    local r, err = core.parse_request(REQUEST, {max_head = #REQUEST - 1})
    assert.is_nil(r)
    assert.equal("request head too large", err)
    r, err = core.parse_response(RESPONSE, {max_head = 20})
    assert.is_nil(r)
    assert.equal("response head too large", err)
  end)

  it("defaults to 8192 bytes", function()
    local big = req({"GET / HTTP/1.1", "X: " .. string.rep("a", 8200)})
    local r, err = core.parse_request(big)
    assert.is_nil(r)
    assert.equal("request head too large", err)
    -- also when no end of head has arrived yet
    r, err = core.parse_request("GET / HTTP/1.1\r\nX: " .. string.rep("a", 9000))
    assert.is_nil(r)
    assert.equal("request head too large", err)
  end)

  it("raises on bad limit options", function()
    assert.has_error(function() core.parse_request(REQUEST, {max_head = 0}) end)
    assert.has_error(function() core.parse_request(REQUEST, {max_headers = 1.5}) end)
    local ok, err = pcall(core.parse_request, REQUEST, {max_head = "x"})
    assert.is_false(ok)
    assert.matches("max_head", err, 1, true)
    assert.has_error(function() core.parse_request(REQUEST, 5) end)
    assert.has_error(function() core.parse_request(REQUEST, {max_head = 0 / 0}) end)
    assert.has_error(function() core.parse_request(REQUEST, {max_headers = 1e300}) end)
    assert.has_error(function() core.head_end(REQUEST, 1e300) end)
    assert.has_error(function() core.head_end(REQUEST, #REQUEST + 1) end)
    assert.has_error(function() core.head_end(REQUEST, 0, -1) end)
  end)
end)

describe("http head end", function()
  local heads = {
    ["a request"] = REQUEST,
    ["a response"] = RESPONSE,
    ["LF-only lines"] = "GET / HTTP/1.1\nHost: x\n\n",
    ["a folded header"] = req({"GET / HTTP/1.1", "X: a", " b"}),
  }

  for what, head in pairs(heads) do
    it("finds every prefix of " .. what .. " incomplete, then the whole head", function()
      local parse = head:sub(1, 4) == "HTTP" and core.parse_response or core.parse_request
      for i = 0, #head - 1 do
        local r, err = parse(head:sub(1, i))
        assert.is_nil(r)
        assert.matches("^incomplete", err)
        assert.equal(0, (core.head_end(head:sub(1, i))))
      end
      assert.truthy(parse(head))
      assert.equal(#head, (core.head_end(head)))
    end)

    it("resumes " .. what .. " fed one byte at a time without rescanning", function()
      local scanned, n = 0, 0
      for i = 1, #head do
        local before = scanned
        n, scanned = core.head_end(head:sub(1, i), scanned)
        assert.is_true(scanned >= before)
        if i < #head then
          assert.equal(0, n)
          -- only the last few bytes may be looked at again
          assert.is_true(scanned >= i - 3)
        end
      end
      assert.equal(#head, n)
    end)

    it("finds the end of " .. what .. " fed in random chunks", function()
      math.randomseed(#head)
      for _ = 1, 20 do
        local scanned, n, have = 0, 0, 0
        while n == 0 do
          have = math.min(#head + 3, have + math.random(1, 7))
          n, scanned = core.head_end(head:sub(1, have) .. "", scanned)
        end
        assert.equal(#head, n)
      end
    end)
  end

  it("tolerates a mix of CRLF and LF before the blank line", function()
    assert.equal(21, (core.head_end("GET / HTTP/1.1\nX:\r\n\r\nrest")))
    assert.equal(20, (core.head_end("GET / HTTP/1.1\nX:\n\r\nrest")))
  end)

  it("reports a head too large when max_head bytes hold no end", function()
    assert.same({nil, "head too large"}, {core.head_end(string.rep("a", 100), 0, 100)})
    assert.equal(0, (core.head_end(string.rep("a", 99), 0, 100)))
    assert.same({nil, "head too large"}, {core.head_end(REQUEST, 0, #REQUEST - 1)})
    assert.equal(#REQUEST, (core.head_end(REQUEST, 0, #REQUEST)))
  end)
end)
