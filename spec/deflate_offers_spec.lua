-- permessage-deflate against a peer that uses every liberty the server's
-- answer leaves it (RFC 7692 7.1.1): for each combination of the four
-- parameters in a client's offer, a server session answers, then a zlib
-- raw deflate stream (Python's zlib, not our code) compresses the
-- client's messages keeping its context unless the answer says
-- client_no_context_takeover, with the largest window the answer allows;
-- and a zlib inflater that keeps its context, with exactly the window the
-- answer names, reads the server's messages.
local util = require "spec.helpers.session_util"
local core = require "ws.core"

local PY = "/usr/bin/python3"
local SCRIPT = [[
import sys, zlib, binascii
mode, bits, reset = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
z = None
for h in sys.argv[4:]:
    data = binascii.unhexlify(h)
    if mode == "deflate":
        if z is None or reset:
            z = zlib.compressobj(6, zlib.DEFLATED, -bits)
        out = z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(b"\x00\x00\xff\xff")
        out = out[:-4]
    else:
        if z is None:
            z = zlib.decompressobj(-bits)
        out = z.decompress(data + b"\x00\x00\xff\xff")
    print(binascii.hexlify(out).decode())
]]

local function tohex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- Run the zlib script: mode "deflate" or "inflate" over a list of strings.
local function zlib(mode, bits, reset, list)
  local args = {}
  for i = 1, #list do args[i] = tohex(list[i]) end
  local f = assert(io.popen(("%s -c '%s' %s %d %s %s"):format(PY, SCRIPT, mode, bits,
    reset and "1" or "0", table.concat(args, " "))))
  local out = {}
  for line in f:lines() do out[#out + 1] = util.hex(line) end
  f:close()
  assert.are.equal(#list, #out, "zlib " .. mode .. " failed")
  return out
end

local function have_python()
  local f = io.popen(PY .. " -c 'import zlib; print(1)' 2>/dev/null")
  local ok = f and f:read("*l") == "1"
  if f then f:close() end
  return ok
end

-- Messages that share most of their bytes, so a stream that keeps its
-- context encodes the later ones mostly as references into the earlier.
local function messages()
  local base = {}
  for i = 1, 40 do base[i] = ("{\"id\":%d,\"name\":\"user%d\",\"text\":\"hello there\"}"):format(i, i * 7) end
  local m = table.concat(base, ",")
  return { m, m .. " again", m:reverse() .. m, m }
end

-- The answer's parameters: name -> true or the number given.
local function params(answer)
  local p = {}
  for part in answer:gmatch("[^;]+") do
    local name, value = part:match("^%s*([%w_%-]+)%s*=?%s*(%d*)%s*$")
    if name and name ~= "permessage-deflate" then
      p[name] = value ~= "" and tonumber(value) or true
    end
  end
  return p
end

local OFFERS = { "server_no_context_takeover", "client_no_context_takeover",
  "server_max_window_bits=10", "client_max_window_bits" }

describe("permessage-deflate offers: every combination of the four parameters", function()
  if not have_python() then
    it("needs " .. PY .. " with zlib", function() pending("python3 missing") end)
    return
  end
  for mask = 0, 15 do
    local offer = { "permessage-deflate" }
    for i = 1, 4 do
      if math.floor(mask / 2 ^ (i - 1)) % 2 == 1 then
        offer[#offer + 1] = OFFERS[i]
      end
    end
    offer = table.concat(offer, "; ")
    it("'" .. offer .. "': four messages each way", function()
      local s = core.session { role = "server", compress = true }
      s:feed("GET /chat HTTP/1.1\r\nHost: example.org\r\nUpgrade: websocket\r\n"
        .. "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        .. "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: " .. offer .. "\r\n\r\n")
      local evs = util.events(s)
      assert.are.equal("request", evs[1][1])
      s:accept()
      local status, headers = util.parse_http(s:output())
      assert.are.equal("HTTP/1.1 101 Switching Protocols", status)
      local answer = headers["sec-websocket-extensions"]
      assert.truthy(answer and answer:find("^permessage%-deflate"), answer)
      local p = params(answer)
      -- What the offer asked of the server is answered.
      if mask % 2 == 1 then assert.is_true(p.server_no_context_takeover) end
      if math.floor(mask / 4) % 2 == 1 then assert.are.equal(10, p.server_max_window_bits) end

      -- Client to server: the client keeps its context unless told not to.
      local msgs = messages()
      local cbits = p.client_max_window_bits or 15
      local reset = p.client_no_context_takeover == true
      local z = zlib("deflate", cbits, reset, msgs)
      if not reset then
        assert.is_true(#z[4] < #z[1] / 4, "the zlib stream kept its context")
      end
      local wire = {}
      for i = 1, #z do
        wire[i] = util.cframe(util.OP.text, z[i], { rsv1 = true })
      end
      evs = util.feed(s, table.concat(wire))
      assert.are.equal("open", table.remove(evs, 1)[1])
      assert.are.equal(#msgs, #evs, "events: " .. table.concat(util.kinds(evs), ","))
      for i = 1, #msgs do
        assert.are.same({ "message", msgs[i], "text" }, { evs[i][1], evs[i][2], evs[i][3] })
      end

      -- Server to client: read with exactly the window the answer names.
      for i = 1, #msgs do assert.is_true(s:send(msgs[i])) end
      local frames = util.decode(s:output())
      assert.are.equal(#msgs, #frames)
      local payloads = {}
      for i = 1, #frames do
        assert.is_true(frames[i].rsv1)
        payloads[i] = frames[i].payload
      end
      local plain = zlib("inflate", p.server_max_window_bits or 15, false, payloads)
      assert.are.same(msgs, plain)
    end)
  end
end)
