-- Shared helpers for the session specs: sessions for both roles, a frame
-- builder and decoder written in plain Lua (independent of the C codec,
-- except for core.mask, which codec_spec checks against a pure-Lua XOR),
-- event collection, wiring two sessions together, and the common
-- assertion for a connection that failed with a protocol error.
--
-- Lua 5.1 compatible: no bit operators, no \x escapes, no string.pack.

local core = require "ws.core"
local assert = require "luassert"

local M = {}
M.core = core

local char, byte, floor = string.char, string.byte, math.floor
local concat = table.concat
local unpack = table.unpack or unpack -- luacheck: ignore 143

-- Parse "e2 82 ac" into bytes.
function M.hex(s)
  local t = {}
  for h in s:gmatch("%x%x") do
    t[#t + 1] = char(tonumber(h, 16))
  end
  return concat(t)
end

-- Show bytes as hex (for failure messages).
function M.tohex(s)
  return (s:gsub(".", function(c) return string.format("%02x ", byte(c)) end))
end

-- The fixed masking key the client sessions of the specs use.
M.KEY = char(0x37, 0xfa, 0x21, 0x3d)
-- The masking key the simulated client peer uses for frames it sends.
M.PEER_KEY = char(0x9a, 0x01, 0xff, 0x5c)

M.OP = { cont = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10 }

local roles = setmetatable({}, { __mode = "k" })

local function merge(base, extra)
  local t = {}
  for k, v in pairs(base) do t[k] = v end
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

-- A server session in OPEN state (the host did the handshake).
function M.server(opts)
  local s = core.session(merge({ role = "server", handshake = false }, opts))
  roles[s] = "server"
  return s
end

-- A client session in OPEN state with the fixed masking key M.KEY.
function M.client(opts)
  local s = core.session(merge({ role = "client", handshake = false, mask_key = M.KEY }, opts))
  roles[s] = "client"
  return s
end

-- A session of the given role ("server" or "client") in OPEN state.
function M.session(role, opts)
  if role == "server" then return M.server(opts) end
  return M.client(opts)
end

-- Remember the role of a session made without the helpers above.
function M.set_role(s, role)
  roles[s] = role
  return s
end

function M.role(s)
  return roles[s]
end

-- Build a frame in plain Lua.  t = {opcode, payload, fin (default true),
-- rsv1, rsv2, rsv3, mask = 4-byte key or nil, length = override of the
-- length field (to build lying headers), len_bytes = 0|2|8 to force an
-- encoding}.
function M.frame(t)
  local p = t.payload or ""
  local fin = t.fin
  if fin == nil then fin = true end
  local b1 = (fin and 128 or 0) + (t.rsv1 and 64 or 0) + (t.rsv2 and 32 or 0)
    + (t.rsv3 and 16 or 0) + (t.opcode or 0)
  local len = t.length or #p
  local mbit = t.mask and 128 or 0
  local enc = t.len_bytes
  if not enc then
    if len <= 125 then enc = 0 elseif len <= 65535 then enc = 2 else enc = 8 end
  end
  local hdr
  if enc == 0 then
    hdr = char(b1, mbit + len)
  elseif enc == 2 then
    hdr = char(b1, mbit + 126, floor(len / 256), len % 256)
  else
    local d = {}
    local v = len
    for i = 8, 1, -1 do
      d[i] = v % 256
      v = floor(v / 256)
    end
    hdr = char(b1, mbit + 127) .. char(d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8])
  end
  if t.mask then
    return hdr .. t.mask .. core.mask(p, t.mask)
  end
  return hdr .. p
end

local function frame_with(opcode, payload, opts, mask)
  local t = merge(opts or {}, {})
  t.opcode = opcode
  t.payload = payload
  if t.mask == nil then t.mask = mask end
  if t.mask == false then t.mask = nil end
  return M.frame(t)
end

-- A frame as a client peer sends it (masked with M.PEER_KEY).
function M.cframe(opcode, payload, opts)
  return frame_with(opcode, payload, opts, M.PEER_KEY)
end

-- A frame as a server peer sends it (unmasked).
function M.sframe(opcode, payload, opts)
  return frame_with(opcode, payload, opts, nil)
end

-- A frame as the peer of session s sends it (masked toward a server).
function M.in_frame(s, opcode, payload, opts)
  if roles[s] == "client" then
    return M.sframe(opcode, payload, opts)
  end
  return M.cframe(opcode, payload, opts)
end

-- The exact bytes session s (made by the helpers) sends for a frame:
-- unmasked from a server, masked with M.KEY from a client.
function M.out_frame(s, opcode, payload, opts)
  if roles[s] == "client" then
    return frame_with(opcode, payload, opts, M.KEY)
  end
  return frame_with(opcode, payload, opts, nil)
end

function M.close_payload(code, reason)
  if not code then return "" end
  return char(floor(code / 256), code % 256) .. (reason or "")
end

-- Code and reason of a close frame payload (nil code when empty).
function M.close_code(payload)
  if #payload < 2 then return nil, payload end
  local hi, lo = byte(payload, 1, 2)
  return hi * 256 + lo, payload:sub(3)
end

-- Decode a byte string into frames (plain Lua header parsing).  Returns the
-- list of frames {fin, rsv1, rsv2, rsv3, opcode, masked, mask, length,
-- header_len, payload (unmasked), raw} and the undecoded remainder.
function M.decode(bytes)
  local frames, pos, n = {}, 1, #bytes
  while n - pos + 1 >= 2 do
    local b1, b2 = byte(bytes, pos, pos + 1)
    local f = {
      fin = b1 >= 128,
      rsv1 = floor(b1 / 64) % 2 == 1,
      rsv2 = floor(b1 / 32) % 2 == 1,
      rsv3 = floor(b1 / 16) % 2 == 1,
      opcode = b1 % 16,
      masked = b2 >= 128,
    }
    local len, hl = b2 % 128, 2
    if len == 126 then
      if n - pos + 1 < 4 then break end
      local x, y = byte(bytes, pos + 2, pos + 3)
      len, hl = x * 256 + y, 4
    elseif len == 127 then
      if n - pos + 1 < 10 then break end
      len = 0
      for i = pos + 2, pos + 9 do
        len = len * 256 + byte(bytes, i)
      end
      hl = 10
    end
    if f.masked then
      if n - pos + 1 < hl + 4 then break end
      f.mask = bytes:sub(pos + hl, pos + hl + 3)
      hl = hl + 4
    end
    if n - pos + 1 < hl + len then break end
    local p = bytes:sub(pos + hl, pos + hl + len - 1)
    if f.masked then p = core.mask(p, f.mask) end
    f.length, f.header_len, f.payload = len, hl, p
    f.raw = bytes:sub(pos, pos + hl + len - 1)
    frames[#frames + 1] = f
    pos = pos + hl + len
  end
  return frames, bytes:sub(pos)
end

local function pack(...)
  return { n = select("#", ...), ... }
end

-- Events that M.pump took out of a session, kept for M.events.
local stash = setmetatable({}, { __mode = "k" })

-- All events ready in s, as a list of {kind, a, b, c, d} (including those
-- M.pump already took out).
function M.events(s)
  local list = stash[s] or {}
  stash[s] = nil
  while true do
    local e = pack(s:next_event())
    if e[1] == nil then break end
    e.n = nil
    list[#list + 1] = e
  end
  return list
end

-- Feed bytes to s and return the events that became ready.
function M.feed(s, bytes)
  s:feed(bytes)
  return M.events(s)
end

-- Feed one byte at a time; returns all events in order.
function M.feed_bytes(s, bytes)
  local list = {}
  for i = 1, #bytes do
    s:feed(bytes:sub(i, i))
    for _, e in ipairs(M.events(s)) do list[#list + 1] = e end
  end
  return list
end

-- The kinds of an event list, e.g. {"ping", "message"}.
function M.kinds(list)
  local t = {}
  for i, e in ipairs(list) do t[i] = e[1] end
  return t
end

function M.count(list, kind)
  local n = 0
  for _, e in ipairs(list) do
    if e[1] == kind then n = n + 1 end
  end
  return n
end

function M.find(list, kind)
  for _, e in ipairs(list) do
    if e[1] == kind then return e end
  end
end

-- Move bytes between two sessions until neither has anything to send.
-- Like a host, it drains each session's events after feeding it (the
-- session may do its work, e.g. queue a pong, as events are taken); the
-- events are kept and returned by the next M.events(s).
function M.pump(a, b, limit)
  local function drain(s)
    local evs = M.events(s)
    stash[s] = evs
  end
  for _ = 1, limit or 100 do
    drain(a)
    local x = a:output()
    if x ~= "" then b:feed(x) end
    drain(b)
    local y = b:output()
    if y ~= "" then a:feed(y) end
    if x == "" and y == "" then return end
  end
  error("pump: the sessions never went quiet")
end

-- Split an HTTP head: returns the first line, a table of headers (lowercase
-- name -> value, repeated headers joined with ", "), and the bytes after
-- the blank line; nil when no complete head.
function M.parse_http(text)
  local e = text:find("\r\n\r\n", 1, true)
  if not e then return nil end
  local head, rest = text:sub(1, e + 1), text:sub(e + 4)
  local first
  local headers = {}
  for line in head:gmatch("(.-)\r\n") do
    if not first then
      first = line
    else
      local name, value = line:match("^([^:]+):%s*(.-)%s*$")
      if name then
        name = name:lower()
        if headers[name] then
          headers[name] = headers[name] .. ", " .. value
        else
          headers[name] = value
        end
      end
    end
  end
  return first, headers, rest
end

-- Assert that session s failed the connection with close code `code` and
-- that the events `evs` (all events since the offending bytes were fed,
-- or since the start) end with "error", msg, code then "close", code,
-- reason, false.  opts.before = kinds of the events expected before the
-- error (default none); opts.before_frames = number of frames expected in
-- the output before the close frame (default 0).  Checks that the output is
-- exactly the close frame with that code, masked only from a client, and
-- that nothing at all happens afterwards.  Returns the decoded frames.
function M.assert_fail(s, evs, code, opts)
  opts = opts or {}
  local before = opts.before or {}
  local expected = {}
  for i, k in ipairs(before) do expected[i] = k end
  expected[#expected + 1] = "error"
  expected[#expected + 1] = "close"
  assert.are.same(expected, M.kinds(evs))
  local err, cl = evs[#evs - 1], evs[#evs]
  assert.is_string(err[2])
  assert.are.equal(code, err[3])
  assert.are.equal(code, cl[2])
  assert.is_string(cl[3])
  assert.is_false(cl[4])
  assert.are.equal("CLOSED", s:state())

  local out = s:output()
  local frames, rest = M.decode(out)
  assert.are.equal("", rest)
  assert.are.equal((opts.before_frames or 0) + 1, #frames)
  local f = frames[#frames]
  assert.are.equal(M.OP.close, f.opcode)
  assert.is_true(f.fin)
  if roles[s] then
    assert.are.equal(roles[s] == "client", f.masked)
  end
  local got = M.close_code(f.payload)
  assert.are.equal(code, got)

  -- nothing more, whatever happens next
  assert.are.equal("", s:output())
  local ok, e2 = s:send("after")
  assert.is_nil(ok)
  assert.is_string(e2)
  s:feed(M.in_frame(s, M.OP.text, "late"))
  s:feed(M.in_frame(s, M.OP.ping, "late"))
  s:eof()
  assert.are.same({}, M.events(s))
  assert.are.equal("", s:output())
  assert.are.equal("CLOSED", s:state())
  return frames
end

-- Deterministic pseudo-random bytes without math.random (so the spec's
-- own random sequences are not disturbed): a linear congruential generator.
function M.bytes(n, seed)
  local x = seed or 12345
  local t, chunk = {}, {}
  for i = 1, n do
    x = (x * 1103515245 + 12345) % 2147483648
    chunk[#chunk + 1] = floor(x / 65536) % 256
    if #chunk == 4096 or i == n then
      t[#t + 1] = char(unpack(chunk))
      chunk = {}
    end
  end
  return concat(t)
end

-- Text of n bytes of printable ASCII.
function M.ascii(n, seed)
  local b = M.bytes(n, seed)
  return (b:gsub(".", function(c) return char(32 + byte(c) % 95) end))
end

-- Plain-Lua XOR of two byte values (reference for core.mask).
function M.bxor(a, b)
  local r, p = 0, 1
  for _ = 1, 8 do
    local x, y = a % 2, b % 2
    if x ~= y then r = r + p end
    a, b, p = (a - x) / 2, (b - y) / 2, p * 2
  end
  return r
end

-- Plain-Lua masking (reference for core.mask).
function M.lua_mask(data, key, offset)
  offset = offset or 0
  local k = { byte(key, 1, 4) }
  local t = {}
  for i = 1, #data do
    t[i] = char(M.bxor(byte(data, i), k[(offset + i - 1) % 4 + 1]))
  end
  return concat(t)
end

return M
