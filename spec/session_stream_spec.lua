-- A long random stream of valid frames (fixed seed): random sizes, text and
-- binary, random fragmentation and pings between and inside messages, fed
-- split at random points (and once one byte at a time).  Every message
-- must come out intact and in order, and every ping must get its pong.
local util = require "spec.helpers.session_util"

local OP = util.OP
local floor = math.floor

local SEED = 20240611

-- Valid UTF-8 pool with the byte offsets where characters start.
local function text_pool(n)
  local chars = { "a", "b", " ", "Z", "0", util.hex("c3 a9"), util.hex("ce bb"), util.hex("e2 82 ac"),
    util.hex("ef bf bd"), util.hex("f0 9f 98 80"), util.hex("f4 8f bf bf"), "~" }
  local t, starts, len = {}, {}, 0
  local x = 7
  while len < n do
    x = (x * 69069 + 1) % 4294967296
    local c = chars[floor(x / 65536) % #chars + 1]
    t[#t + 1] = c
    starts[#starts + 1] = len + 1
    len = len + #c
  end
  starts[#starts + 1] = len + 1
  return table.concat(t), starts
end

local BIN_POOL = util.bytes(140000, 99)
local TEXT_POOL, TEXT_STARTS = text_pool(140000)

local function random_size(max)
  local r = math.random()
  if r < 0.5 then
    return math.random(0, math.min(max, 200))
  elseif r < 0.85 then
    return math.random(0, math.min(max, 5000))
  end
  return math.random(0, max)
end

-- A text payload of about n bytes made of whole characters.
local function random_text(n)
  if n == 0 then return "" end
  local i = math.random(1, floor(#TEXT_STARTS / 2))
  local a = TEXT_STARTS[i]
  local j = i
  while j < #TEXT_STARTS and TEXT_STARTS[j] - a < n do j = j + 1 end
  return TEXT_POOL:sub(a, TEXT_STARTS[j] - 1)
end

local function random_binary(n)
  local a = math.random(1, #BIN_POOL - n)
  return BIN_POOL:sub(a, a + n - 1)
end

-- Build the stream.  mkframe(opcode, payload, opts) builds one frame as
-- the peer sends it.  Returns the bytes, the expected events (each
-- {kind, data, type}) and the list of ping payloads in order.
local function build_stream(nmsg, max, mkframe)
  local frames, expected, pings = {}, {}, {}
  local function ping()
    local p = random_binary(math.random(0, 125))
    frames[#frames + 1] = mkframe(OP.ping, p)
    expected[#expected + 1] = { "ping", p }
    pings[#pings + 1] = p
  end
  for _ = 1, nmsg do
    if math.random() < 0.15 then ping() end
    local kind = math.random() < 0.5 and "text" or "binary"
    local n = random_size(max)
    local data = kind == "text" and random_text(n) or random_binary(n)
    local nfrag = math.random() < 0.6 and 1 or math.random(2, 6)
    -- cut points in byte offsets; text may be cut inside characters
    local cuts = { 0 }
    for _ = 2, nfrag do cuts[#cuts + 1] = math.random(0, #data) end
    cuts[#cuts + 1] = #data
    table.sort(cuts)
    for f = 1, nfrag do
      local part = data:sub(cuts[f] + 1, cuts[f + 1])
      frames[#frames + 1] = mkframe(f == 1 and OP[kind] or OP.cont, part, { fin = f == nfrag })
      if f < nfrag and math.random() < 0.3 then ping() end
    end
    expected[#expected + 1] = { "message", data, kind }
  end
  return table.concat(frames), expected, pings
end

local function check_events(got, expected)
  assert.are.equal(#expected, #got, "number of events")
  for i, e in ipairs(expected) do
    local g = got[i]
    if g[1] ~= e[1] or g[2] ~= e[2] or g[3] ~= e[3] then
      error(string.format("event %d: expected %s (%d bytes, %s), got %s (%s bytes, %s)", i, e[1], #e[2],
        tostring(e[3]), tostring(g[1]), tostring(g[2] and #g[2]), tostring(g[3])))
    end
  end
end

local function check_pongs(out, pings, masked)
  local frames, rest = util.decode(out)
  assert.are.equal("", rest)
  assert.are.equal(#pings, #frames, "one pong per ping")
  for i, f in ipairs(frames) do
    assert.are.equal(OP.pong, f.opcode)
    assert.are.equal(masked, f.masked)
    assert.is_true(f.payload == pings[i], "pong " .. i .. " payload")
  end
end

local function feed_random(s, bytes)
  local got, pos = {}, 1
  while pos <= #bytes do
    local r = math.random()
    local n
    if r < 0.3 then n = math.random(1, 16) elseif r < 0.8 then n = math.random(1, 4096)
    else n = math.random(1, 100000) end
    s:feed(bytes:sub(pos, pos + n - 1))
    pos = pos + n
    for _, e in ipairs(util.events(s)) do got[#got + 1] = e end
  end
  return got
end

describe("random stream", function()
  it("delivers a few hundred random messages to a server, split at random points", function()
    math.randomseed(SEED)
    local s = util.server()
    local bytes, expected, pings = build_stream(300, 70000, util.cframe)
    print(string.format("session_stream_spec: seed %d, %d bytes, %d events, %d pings",
      SEED, #bytes, #expected, #pings))
    assert.is_true(#expected >= 300 and #pings > 20)
    local got = feed_random(s, bytes)
    check_events(got, expected)
    check_pongs(s:output(), pings, false)
    assert.are.equal("OPEN", s:state())
  end)

  it("delivers random messages to a client, split at random points", function()
    math.randomseed(SEED + 1)
    local s = util.client()
    local bytes, expected, pings = build_stream(200, 70000, util.sframe)
    local got = feed_random(s, bytes)
    check_events(got, expected)
    check_pongs(s:output(), pings, true)
  end)

  it("delivers a smaller random stream fed one byte at a time", function()
    math.randomseed(SEED + 2)
    local s = util.server()
    local bytes, expected, pings = build_stream(60, 300, util.cframe)
    check_events(util.feed_bytes(s, bytes), expected)
    check_pongs(s:output(), pings, false)
  end)

  it("round-trips random messages sent by one session to another", function()
    math.randomseed(SEED + 3)
    local c, srv = util.client(), util.server()
    local expected = {}
    for _ = 1, 100 do
      local kind = math.random() < 0.5 and "text" or "binary"
      local n = random_size(20000)
      local data = kind == "text" and random_text(n) or random_binary(n)
      if math.random() < 0.3 then
        local cut = math.random(0, #data)
        -- text is cut on a character boundary (splitting one is covered elsewhere)
        while kind == "text" and cut < #data and data:byte(cut + 1) >= 128 and data:byte(cut + 1) < 192 do
          cut = cut + 1
        end
        assert.is_true(c:send_fragment(data:sub(1, cut), false, kind))
        assert.is_true(c:send_fragment(data:sub(cut + 1), true))
      else
        assert.is_true(c:send(data, kind))
      end
      expected[#expected + 1] = { "message", data, kind }
    end
    local got = feed_random(srv, c:output())
    check_events(got, expected)
  end)
end)
