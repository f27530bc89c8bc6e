-- permessage-deflate (RFC 7692) at session level: the byte-exact examples
-- of section 7.2.3, context takeover, uncompressed messages inside a
-- compressed connection, fragmented compressed messages, negotiation of
-- every parameter in both roles (invalid and repeated ones included),
-- RSV1 misuse (1002), and a compression bomb (1009, bounded memory).
-- Lua 5.1 compatible.
local core = require "ws.core"
local util = require "spec.helpers.session_util"

local OP, hex, tohex = util.OP, util.hex, util.tohex

local KEY = "dGhlIHNhbXBsZSBub25jZQ=="
local ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

local function lines(t)
  return table.concat(t, "\r\n") .. "\r\n\r\n"
end

local function request(ext_lines)
  local t = {
    "GET /chat HTTP/1.1", "Host: example.com", "Upgrade: websocket", "Connection: Upgrade",
    "Sec-WebSocket-Key: " .. KEY, "Sec-WebSocket-Version: 13",
  }
  for _, e in ipairs(ext_lines or {}) do t[#t + 1] = "Sec-WebSocket-Extensions: " .. e end
  return lines(t)
end

local function response(ext)
  local t = {
    "HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
    "Sec-WebSocket-Accept: " .. ACCEPT,
  }
  if ext then t[#t + 1] = "Sec-WebSocket-Extensions: " .. ext end
  return lines(t)
end

-- A server session with handshake, fed the request; returns the session,
-- the Sec-WebSocket-Extensions value of its 101 answer (or nil).
local function server_answer(compress, ext_lines)
  local s = util.set_role(core.session { role = "server", compress = compress }, "server")
  local evs = util.feed(s, request(ext_lines))
  assert.are.same({ "request" }, util.kinds(evs))
  assert.is_true(s:accept())
  local head = s:output()
  local _, headers = util.parse_http(head)
  assert.are.same({ "open" }, util.kinds(util.events(s)))
  return s, headers["sec-websocket-extensions"]
end

-- A client session with handshake; returns it and its request headers.
local function client(compress, extra)
  local t = { role = "client", url = "ws://example.com/chat", key = KEY, mask_key = util.KEY,
              compress = compress }
  for k, v in pairs(extra or {}) do t[k] = v end
  local c = util.set_role(core.session(t), "client")
  local _, headers = util.parse_http(c:output())
  return c, headers
end

-- Feed a response to a fresh client; returns the events.
local function client_result(compress, ext)
  local c = client(compress)
  return c, util.feed(c, response(ext))
end

-- Compressed frame bytes of a message as a given role would send them.
local function compressed(role, data, kind, opts)
  local o = { threshold = 0, no_context_takeover = true }
  for k, v in pairs(opts or {}) do o[k] = v end
  local s = util.session(role, { compress = o })
  assert.is_true(s:send(data, kind))
  return s:output()
end

describe("permessage-deflate: RFC 7692 examples", function()
  it("compresses 'Hello' without context takeover as f2 48 cd c9 c9 07 00", function()
    local s = util.server { compress = { threshold = 0, no_context_takeover = true } }
    s:send("Hello")
    assert.are.equal(tohex(hex("c1 07 f2 48 cd c9 c9 07 00")), tohex(s:output()))
    s:send("Hello")
    assert.are.equal(tohex(hex("c1 07 f2 48 cd c9 c9 07 00")), tohex(s:output()))
  end)

  it("shrinks the second 'Hello' to f2 00 11 00 00 with context takeover (7.2.3.2)", function()
    local s = util.server { compress = { threshold = 0 } }
    s:send("Hello")
    s:send("Hello")
    assert.are.equal(tohex(hex("c1 07 f2 48 cd c9 c9 07 00 c1 05 f2 00 11 00 00")),
                     tohex(s:output()))
  end)

  it("reads the RFC frames, including a stored block (7.2.3.3) and BFINAL (7.2.3.4)", function()
    local c = util.client { compress = {} }
    local evs = util.feed(c, hex("c1 07 f2 48 cd c9 c9 07 00") .. hex("c1 05 f2 00 11 00 00"))
    assert.are.same({ { "message", "Hello", "text" }, { "message", "Hello", "text" } }, evs)
    c = util.client { compress = {} }
    evs = util.feed(c, hex("c1 0b 00 05 00 fa ff 48 65 6c 6c 6f 00"))
    assert.are.same({ { "message", "Hello", "text" } }, evs)
    c = util.client { compress = {} }
    evs = util.feed(c, hex("c1 08 f3 48 cd c9 c9 07 00 00") .. hex("c1 07 f2 48 cd c9 c9 07 00"))
    assert.are.same({ { "message", "Hello", "text" }, { "message", "Hello", "text" } }, evs)
  end)

  it("reads the fragmented example of 7.2.3.1 (RSV1 on the first frame only)", function()
    local c = util.client { compress = {} }
    local evs = util.feed(c, hex("41 03 f2 48 cd") .. hex("80 04 c9 c9 07 00"))
    assert.are.same({ { "message", "Hello", "text" } }, evs)
  end)

  it("reads an empty compressed message (a single 00 byte)", function()
    local c = util.client { compress = {} }
    assert.are.same({ { "message", "", "text" } }, util.feed(c, hex("c1 01 00")))
    local s = util.server { compress = { threshold = 0 } }
    s:send("")
    assert.are.equal(tohex(hex("c1 01 00")), tohex(s:output()))
  end)
end)

describe("permessage-deflate: messages", function()
  for _, role in ipairs { "server", "client" } do
    local peer = role == "server" and "client" or "server"

    it(role .. " sends short messages uncompressed and long ones compressed", function()
      local s = util.session(role, { compress = {} })
      s:send("short")
      local f = util.decode(s:output())[1]
      assert.is_false(f.rsv1)
      assert.are.equal("short", f.payload)
      local long = string.rep("abcdefgh", 100)
      s:send(long)
      f = util.decode(s:output())[1]
      assert.is_true(f.rsv1)
      assert.is_true(#f.payload < 40)
    end)

    it(role .. " reads an uncompressed message inside a compressed connection", function()
      local s = util.session(role, { compress = {} })
      local bytes = util.in_frame(s, OP.text, "plain")
      assert.are.same({ { "message", "plain", "text" } }, util.feed(s, bytes))
    end)

    it(role .. " round-trips text and binary with context takeover, byte by byte", function()
      local a = util.session(role, { compress = { threshold = 0 } })
      local b = util.session(peer, { compress = {} })
      local msgs = { { util.ascii(3000, 1), "text" }, { util.bytes(2000, 2), "binary" },
                     { util.ascii(3000, 1), "text" }, { "", "text" }, { "é€😀", "text" } }
      local wire = ""
      for _, m in ipairs(msgs) do
        assert.is_true(a:send(m[1], m[2]))
        wire = wire .. a:output()
      end
      local evs = util.feed_bytes(b, wire)
      assert.are.equal(#msgs, #evs)
      for i, m in ipairs(msgs) do assert.are.same({ "message", m[1], m[2] }, evs[i]) end
    end)

    it(role .. " sends a fragmented message compressed, RSV1 on the first frame only", function()
      local a = util.session(role, { compress = {} })
      local b = util.session(peer, { compress = {} })
      local parts = { string.rep("x", 500), string.rep("y", 500), "end" }
      for i, p in ipairs(parts) do assert.is_true(a:send_fragment(p, i == #parts)) end
      local out = a:output()
      local frames = util.decode(out)
      assert.are.equal(3, #frames)
      assert.is_true(frames[1].rsv1)
      assert.is_false(frames[2].rsv1)
      assert.is_false(frames[3].rsv1)
      assert.are.same({ { "message", table.concat(parts), "text" } }, util.feed(b, out))
    end)

    it(role .. " streams inflated fragments with stream = true", function()
      local a = util.session(role, { compress = {} })
      local b = util.session(peer, { compress = {}, stream = true })
      a:send_fragment(string.rep("a", 300), false)
      a:send_fragment(string.rep("b", 300), true)
      local evs = util.feed(b, a:output())
      assert.are.same({ { "fragment", string.rep("a", 300), "text", false },
                        { "fragment", string.rep("b", 300), "text", true } }, evs)
    end)

    it(role .. " interleaves a ping inside a compressed fragmented message", function()
      local b = util.session(role, { compress = {} })
      local full = compressed(peer, "Hello Hello Hello", "text")
      local f = util.decode(full)[1]
      local half = math.floor(#f.payload / 2)
      local bytes = util.in_frame(b, OP.text, f.payload:sub(1, half), { fin = false, rsv1 = true })
        .. util.in_frame(b, OP.ping, "p")
        .. util.in_frame(b, OP.cont, f.payload:sub(half + 1))
      local evs = util.feed(b, bytes)
      assert.are.same({ "ping", "message" }, util.kinds(evs))
      assert.are.equal("Hello Hello Hello", evs[2][2])
    end)

    it(role .. " releases zlib state between messages without context takeover", function()
      local a = util.session(role, { compress = { threshold = 0, no_context_takeover = true,
                                                   server_no_context_takeover = true,
                                                   client_no_context_takeover = true } })
      local _, z = a:memory()
      assert.are.equal(0, z)
      a:send(string.rep("z", 1000))
      _, z = a:memory()
      assert.are.equal(0, z)
      util.feed(a, util.in_frame(a, OP.text, util.decode(compressed(peer, "hello hello"))[1].payload,
                                 { rsv1 = true }))
      _, z = a:memory()
      assert.are.equal(0, z)
      -- with takeover the state stays (allocated lazily on first use)
      local k = util.session(role, { compress = { threshold = 0 } })
      _, z = k:memory()
      assert.are.equal(0, z)
      k:send("hello")
      _, z = k:memory()
      assert.is_true(z > 100000)
    end)

    it(role .. " fails with 1002 on RSV1 on a control frame", function()
      local s = util.session(role, { compress = {} })
      util.assert_fail(s, util.feed(s, util.in_frame(s, OP.ping, "x", { rsv1 = true })), 1002)
    end)

    it(role .. " fails with 1002 on RSV1 on a continuation frame", function()
      local s = util.session(role, { compress = {} })
      local bytes = util.in_frame(s, OP.text, "a", { fin = false })
        .. util.in_frame(s, OP.cont, "b", { rsv1 = true })
      util.assert_fail(s, util.feed(s, bytes), 1002)
    end)

    it(role .. " fails with 1002 on RSV1 without negotiation", function()
      local s = util.session(role)
      local f = util.decode(compressed(peer, "Hello"))[1]
      util.assert_fail(s, util.feed(s, util.in_frame(s, OP.text, f.payload, { rsv1 = true })), 1002)
    end)

    it(role .. " fails with 1002 on RSV2/RSV3 even with compression", function()
      local s = util.session(role, { compress = {} })
      util.assert_fail(s, util.feed(s, util.in_frame(s, OP.text, "x", { rsv2 = true })), 1002)
    end)

    it(role .. " fails with 1007 on corrupt compressed data", function()
      local s = util.session(role, { compress = {} })
      local bytes = util.in_frame(s, OP.binary, hex("ff ff ff ff"), { rsv1 = true })
      util.assert_fail(s, util.feed(s, bytes), 1007)
    end)

    it(role .. " fails with 1007 on inflated text that is not UTF-8, before the end", function()
      local s = util.session(role, { compress = {} })
      local bad = util.decode(compressed(peer, "ok \255" .. string.rep("x", 5000), "binary"))[1]
      -- sent as text: the invalid byte is found as soon as it is inflated
      local frame = util.in_frame(s, OP.text, bad.payload, { rsv1 = true })
      local evs = util.feed(s, frame:sub(1, #frame - 1))
      util.assert_fail(s, evs, 1007)
    end)

    it(role .. " applies max_message to the inflated size of a bomb (1009, bounded memory)",
       function()
         local limit = 64 * 1024
         local s = util.session(role, { compress = {}, max_message = limit })
         local big = string.rep("\0", 16 * 1024 * 1024)
         local f = util.decode(compressed(peer, big, "binary"))[1]
         big = nil -- luacheck: ignore 311
         assert.is_true(#f.payload < 20000) -- a few KiB on the wire
         local frame = util.in_frame(s, OP.binary, f.payload, { rsv1 = true })
         -- feed a small part: inflation stops as soon as the limit is passed
         s:feed(frame:sub(1, 200))
         local bufs, z = s:memory()
         assert.is_true(bufs < 3 * limit, "buffers: " .. bufs)
         assert.is_true(z < 100 * 1024, "zlib: " .. z)
         util.assert_fail(s, util.events(s), 1009)
         bufs, z = s:memory()
         assert.is_true(bufs < 1024)
         assert.are.equal(0, z)
       end)

    it(role .. " counts fragments of a compressed message together against max_message",
       function()
         local s = util.session(role, { compress = {}, max_message = 1000 })
         local f = util.decode(compressed(peer, string.rep("q", 1500), "binary"))[1]
         local half = math.floor(#f.payload / 2)
         local bytes = util.in_frame(s, OP.binary, f.payload:sub(1, half), { fin = false, rsv1 = true })
           .. util.in_frame(s, OP.cont, f.payload:sub(half + 1))
         util.assert_fail(s, util.feed(s, bytes), 1009)
       end)
  end
end)

describe("permessage-deflate: client negotiation", function()
  it("offers permessage-deflate with client_max_window_bits by default", function()
    local _, h = client(true)
    assert.are.equal("permessage-deflate; client_max_window_bits", h["sec-websocket-extensions"])
    local _, h2 = client(nil)
    assert.is_nil(h2["sec-websocket-extensions"])
  end)

  it("offers every parameter asked for, before the host's own offers", function()
    local _, h = client({ server_no_context_takeover = true, client_no_context_takeover = true,
                          server_max_window_bits = 10, client_max_window_bits = 12 },
                        { extensions = "x-foo" })
    assert.are.equal("permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
                     .. " server_max_window_bits=10; client_max_window_bits=12, x-foo",
                     h["sec-websocket-extensions"])
  end)

  local accepted = {
    { true, "permessage-deflate" },
    { true, "permessage-deflate; server_no_context_takeover" },
    { true, "permessage-deflate; client_no_context_takeover" },
    { true, "permessage-deflate; server_max_window_bits=10" },
    { true, "permessage-deflate; server_max_window_bits=\"9\"" },
    { true, "permessage-deflate; client_max_window_bits=9" },
    { true, "permessage-deflate; client_max_window_bits=8" },
    { true, "permessage-deflate ;  server_no_context_takeover" },
    { { server_max_window_bits = 12 }, "permessage-deflate; server_max_window_bits=11" },
    { { server_no_context_takeover = true }, "permessage-deflate; server_no_context_takeover" },
  }
  for _, a in ipairs(accepted) do
    it("accepts the response '" .. a[2] .. "'", function()
      local c, evs = client_result(a[1], a[2])
      assert.are.same({ "open" }, util.kinds(evs))
      assert.are.equal(a[2], c:extensions())
      assert.are.equal(a[2], evs[1][2].extensions)
    end)
  end

  local rejected = {
    { true, "permessage-deflate; foo", "unknown parameter" },
    { true, "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
      "repeated parameter" },
    { true, "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
      "repeated parameter" },
    { true, "permessage-deflate; server_max_window_bits=7", "8 to 15" },
    { true, "permessage-deflate; server_max_window_bits=16", "8 to 15" },
    { true, "permessage-deflate; server_max_window_bits=010", "8 to 15" },
    { true, "permessage-deflate; server_max_window_bits=ten", "8 to 15" },
    { true, "permessage-deflate; server_max_window_bits", "needs a value" },
    { true, "permessage-deflate; client_max_window_bits", "without a value" },
    { true, "permessage-deflate; client_no_context_takeover=1", "take no value" },
    { true, "permessage-deflate, permessage-deflate", "twice" },
    { { client_max_window_bits = false }, "permessage-deflate; client_max_window_bits=10",
      "not offered" },
    { { server_max_window_bits = 10 }, "permessage-deflate; server_max_window_bits=12",
      "over the 10 offered" },
    { { server_max_window_bits = 10 }, "permessage-deflate", "offered but not answered" },
    { { server_no_context_takeover = true }, "permessage-deflate", "offered but not answered" },
  }
  for _, r in ipairs(rejected) do
    it("fails the handshake on '" .. r[2] .. "'", function()
      local compress = r[1]
      if type(compress) == "table" and compress.client_max_window_bits == false then
        compress = { server_no_context_takeover = false }
      end
      local c = client(compress)
      if r[1] ~= compress then
        -- an offer without client_max_window_bits: a raw extensions offer
        c = util.set_role(core.session { role = "client", url = "ws://example.com/chat", key = KEY,
                                         extensions = "permessage-deflate" }, "client")
        c:output()
      end
      local evs = util.feed(c, response(r[2]))
      assert.are.same({ "error", "close" }, util.kinds(evs))
      assert.is_truthy(evs[1][2]:find(r[3], 1, true), evs[1][2])
      assert.are.equal("CLOSED", c:state())
    end)
  end

  it("opens without compression when the server declines", function()
    local c, evs = client_result(true, nil)
    assert.are.same({ "open" }, util.kinds(evs))
    assert.is_nil(c:extensions())
    c:send(string.rep("a", 1000))
    assert.is_false(util.decode(c:output())[1].rsv1)
  end)

  it("compresses with the window the server imposes, and not at all for 8 bits", function()
    local c = client_result(true, "permessage-deflate; client_max_window_bits=8")
    c:send(string.rep("abc", 1000))
    local f = util.decode(c:output())[1]
    assert.is_false(f.rsv1) -- zlib cannot compress with a 256-byte window
    assert.are.equal(3000, #f.payload)
    c = client_result(true, "permessage-deflate; client_max_window_bits=9")
    c:send(string.rep("abc", 1000))
    assert.is_true(util.decode(c:output())[1].rsv1)
  end)

  it("takes a hand-written permessage-deflate offer in 'extensions' as compression", function()
    local c = util.set_role(core.session { role = "client", url = "ws://example.com/chat",
                                           key = KEY, mask_key = util.KEY,
                                           extensions = "permessage-deflate" }, "client")
    c:output()
    assert.are.same({ "open" }, util.kinds(util.feed(c, response("permessage-deflate"))))
    local evs = util.feed(c, hex("c1 07 f2 48 cd c9 c9 07 00"))
    assert.are.same({ { "message", "Hello", "text" } }, evs)
  end)

  it("rejects bad compress options with a message that names them", function()
    local cases = {
      { { level = 10 }, "'compress.level' must be an integer between %-1 and 9" },
      { { window_bits = 8 }, "'compress.window_bits'" },
      { { client_max_window_bits = 8 }, "'compress.client_max_window_bits'" },
      { { server_max_window_bits = 16 }, "'compress.server_max_window_bits'" },
      { { threshold = -1 }, "'compress.threshold'" },
      { { no_context_takeover = 1 }, "'compress.no_context_takeover' must be a boolean" },
      { { bogus = 1 }, "unknown option 'compress.bogus'" },
      { "yes", "'compress' must be a boolean or a table" },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(core.session, { role = "client", url = "ws://x/", compress = case[1] })
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find(case[2]), err)
    end
  end)
end)

describe("permessage-deflate: server negotiation", function()
  local cases = {
    -- compress option, offers, expected answer (nil: declined)
    { true, { "permessage-deflate" }, "permessage-deflate" },
    { nil, { "permessage-deflate" }, nil },
    { false, { "permessage-deflate" }, nil },
    { true, {}, nil },
    { true, { "x-foo, permessage-deflate; client_max_window_bits" }, "permessage-deflate" },
    { true, { "permessage-deflate; server_no_context_takeover" },
      "permessage-deflate; server_no_context_takeover" },
    { true, { "permessage-deflate; client_no_context_takeover" },
      "permessage-deflate; client_no_context_takeover" },
    { true, { "permessage-deflate; server_max_window_bits=10" },
      "permessage-deflate; server_max_window_bits=10" },
    { { server_max_window_bits = 9 }, { "permessage-deflate; server_max_window_bits=12" },
      "permessage-deflate; server_max_window_bits=9" },
    { { client_max_window_bits = 10 }, { "permessage-deflate; client_max_window_bits" },
      "permessage-deflate; client_max_window_bits=10" },
    { { client_max_window_bits = 10 }, { "permessage-deflate; client_max_window_bits=9" },
      "permessage-deflate; client_max_window_bits=9" },
    { { client_max_window_bits = 10 }, { "permessage-deflate" }, "permessage-deflate" },
    { { no_context_takeover = true }, { "permessage-deflate" },
      "permessage-deflate; server_no_context_takeover" },
    { { client_no_context_takeover = true }, { "permessage-deflate" },
      "permessage-deflate; client_no_context_takeover" },
    -- several offers: the first acceptable one wins
    { true, { "permessage-deflate; server_max_window_bits=8, permessage-deflate" },
      "permessage-deflate" },
    { true, { "permessage-deflate; foo=1, permessage-deflate; client_no_context_takeover" },
      "permessage-deflate; client_no_context_takeover" },
    { true, { "permessage-deflate; server_max_window_bits=11",
              "permessage-deflate; server_max_window_bits=12" },
      "permessage-deflate; server_max_window_bits=11" },
    -- invalid or repeated parameters: declined
    { true, { "permessage-deflate; server_no_context_takeover; server_no_context_takeover" }, nil },
    { true, { "permessage-deflate; client_max_window_bits=7" }, nil },
    { true, { "permessage-deflate; client_max_window_bits; client_max_window_bits=9" }, nil },
    { true, { "permessage-deflate; server_max_window_bits" }, nil },
    { true, { "permessage-deflate; server_max_window_bits=16" }, nil },
    { true, { "permessage-deflate; server_no_context_takeover=yes" }, nil },
    { true, { "permessage-deflate; unknown" }, nil },
    { true, { "permessage-deflate; server_max_window_bits=8" }, nil },
  }
  for _, case in ipairs(cases) do
    it("answers " .. table.concat(case[2], " | ") .. " with " .. tostring(case[3])
       .. " (compress = " .. tostring(type(case[1]) == "table" and "{...}" or case[1]) .. ")",
       function()
         local s, ext = server_answer(case[1], case[2])
         assert.are.equal(case[3], ext)
         assert.are.equal(case[3], s:extensions())
       end)
  end

  it("keeps the host's own extensions after permessage-deflate", function()
    local s = util.set_role(core.session { role = "server", compress = true }, "server")
    util.feed(s, request { "permessage-deflate, x-foo" })
    assert.is_true(s:accept { extensions = "x-foo" })
    local _, h = util.parse_http(s:output())
    assert.are.equal("permessage-deflate, x-foo", h["sec-websocket-extensions"])
  end)

  for _, params in ipairs {
    {},
    { server_no_context_takeover = true },
    { client_no_context_takeover = true },
    { server_max_window_bits = 9, client_max_window_bits = 9 },
    { server_max_window_bits = 11, client_max_window_bits = true, level = 1, mem_level = 1 },
    { server_no_context_takeover = true, client_no_context_takeover = true, threshold = 0 },
  } do
    local names = {}
    for k, v in pairs(params) do names[#names + 1] = k .. "=" .. tostring(v) end
    table.sort(names)
    it("round-trips through a full handshake with {" .. table.concat(names, ", ") .. "}",
       function()
         local c = util.set_role(core.session { role = "client", url = "ws://example.com/",
                                                compress = params }, "client")
         local sp = {}
         for k, v in pairs(params) do if k ~= "client_max_window_bits" then sp[k] = v end end
         local s = util.set_role(core.session { role = "server", compress = sp }, "server")
         util.pump(c, s)
         assert.are.same({ "request" }, util.kinds(util.events(s)))
         assert.is_true(s:accept())
         util.pump(c, s)
         assert.are.same({ "open" }, util.kinds(util.events(c)))
         assert.are.same({ "open" }, util.kinds(util.events(s)))
         assert.are.equal(s:extensions(), c:extensions())
         assert.is_truthy(c:extensions():find("^permessage%-deflate"))
         for i = 1, 3 do
           local m = string.rep('{"id":' .. i .. ',"name":"item"}', 200)
           c:send(m)
           s:send(m .. "!")
           util.pump(c, s)
           assert.are.same({ { "message", m, "text" } }, util.events(s))
           assert.are.same({ { "message", m .. "!", "text" } }, util.events(c))
         end
       end)
  end
end)

describe("permessage-deflate: sessions without a handshake", function()
  it("take compress as already negotiated and report the extensions string", function()
    local s = util.server { compress = { server_no_context_takeover = true,
                                         client_max_window_bits = 10 } }
    assert.are.equal("permessage-deflate; server_no_context_takeover; client_max_window_bits=10",
                     s:extensions())
    assert.is_nil(util.server():extensions())
  end)
end)
