-- permessage-deflate against plain frames on a text-heavy (JSON) payload:
-- client session → bytes → server session, in memory, so only the protocol
-- work is timed (CPU time, os.clock).  Prints a Markdown table.
--   lua5.4 bench/compression.lua [messages] [size]
local core = require "ws.core"

local N = tonumber(arg[1]) or 20000
local SIZE = tonumber(arg[2]) or 4096

-- JSON-like records with some variety, as a chat or market feed sends.
local function payload(i)
  local parts, n = {}, 0
  while n < SIZE do
    local rec = string.format('{"id":%d,"user":"user%d","room":"lobby","text":"message number %d from the feed",'
      .. '"ts":%d,"tags":["a","b","c"],"ok":true}', i * 7 + #parts, (i + #parts) % 97, i, 1700000000 + i)
    parts[#parts + 1] = rec
    n = n + #rec + 1
  end
  return ("[" .. table.concat(parts, ",") .. "]"):sub(1, SIZE)
end

local messages = {}
for i = 1, 64 do messages[i] = payload(i) end

local function run(name, compress)
  local c = core.session{ role = "client", handshake = false, compress = compress }
  local s = core.session{ role = "server", handshake = false, compress = compress }
  local wire, got = 0, 0
  local t0 = os.clock()
  for i = 1, N do
    assert(c:send(messages[(i % #messages) + 1]))
    local out = c:output()
    wire = wire + #out
    s:feed(out)
    for kind, data in s:events() do
      if kind == "message" then got = got + #data end
    end
  end
  local dt = os.clock() - t0
  assert(got == N * SIZE, "lost data")
  return { name = name, mbps = got / dt / 1e6, us = dt / N * 1e6, ratio = wire / got }
end

local rows = {
  run("uncompressed", nil),
  run("permessage-deflate (context takeover)", {}),
  run("permessage-deflate (no context takeover)", { no_context_takeover = true,
    client_no_context_takeover = true, server_no_context_takeover = true }),
  run("permessage-deflate, level 1", { level = 1 }),
}
print(string.format("%d messages of %d bytes of JSON, %s, CPU time (os.clock)\n", N, SIZE, _VERSION))
print("| mode | MB/s of payload | µs CPU per message (both ends) | bytes on the wire / payload |")
print("| --- | --- | --- | --- |")
for _, r in ipairs(rows) do
  print(string.format("| %s | %.0f | %.1f | %.3f |", r.name, r.mbps, r.us, r.ratio))
end
