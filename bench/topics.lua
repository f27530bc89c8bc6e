-- Topics: memory per subscription and server CPU per delivery.
--   lua5.4 bench/topics.lua [connections] [publishes] [size] [burst] [compress]
-- compress: "none" (default); "shared": permessage-deflate, the clients
-- ask for server_no_context_takeover (one compressed frame per publish);
-- "own": permessage-deflate with context takeover (one deflate per
-- receiver).
-- Memory: one connection subscribes to many distinct topics (a topic each:
-- the most a subscription costs) and many connections subscribe to one
-- topic (a slot each), measured as the process's RSS growth.  CPU:
-- srv:publish to a topic every connection of this process subscribed to,
-- timed with os.clock around the publish calls only (framing once plus
-- queuing for each receiver); the clients read between publishes.  Also
-- timed: the whole process (publish, the server's writes and the clients'
-- reads) per delivery.  Queued memory: BURST publishes are queued before
-- the loop runs (nothing written yet), measured as RSS growth per queued
-- delivery.
-- Prints a Markdown table.
local ws = require "ws"

local CONNS = tonumber(arg[1]) or 200
local PUBLISHES = tonumber(arg[2]) or 2000
local SIZE = tonumber(arg[3]) or 128
local TOPICS = 200000
local BURST = tonumber(arg[4]) or 50
local COMPRESS = arg[5] or "none"
local client_opts = ({ none = {}, shared = { compress = { server_no_context_takeover = true } },
  own = { compress = true } })[COMPRESS]
assert(client_opts, "compress: none, shared or own")

local function rss_kb()
  for line in io.lines("/proc/self/status") do
    local v = line:match("^VmRSS:%s+(%d+)")
    if v then return tonumber(v) end
  end
end

local server_side = {}
local srv = ws.listen { port = 0, compress = COMPRESS ~= "none",
  on_open = function(c) server_side[#server_side + 1] = c end }
local received = 0
for _ = 1, CONNS do
  local opts = { on_message = function() received = received + 1 end }
  for k, v in pairs(client_opts) do opts[k] = v end
  assert(ws.connect("ws://127.0.0.1:" .. srv.port .. "/", opts))
end
while #server_side < CONNS do ws.step(0.01) end

for _, c in ipairs(server_side) do c:subscribe("feed") end
-- (queued first, on a fresh heap) queued, not yet written: what each delivery holds
local big = string.rep("y", 4 * SIZE)
collectgarbage()
collectgarbage()
local q0 = rss_kb()
local queued = 0
for _ = 1, BURST do queued = queued + srv:publish("feed", big) end
local per_queued = (rss_kb() - q0) * 1024 / queued
received = 0
while received < queued do ws.step(0.01) end
received = 0


-- (shared first: memory freed by one measurement is reused by the next)
local names = {}
for i = 1, TOPICS do names[i] = "topic-" .. i end
-- one topic, every connection (repeated on many topics to be measurable)
local SHARED = math.max(1, math.floor(TOPICS / CONNS))
collectgarbage()
collectgarbage()
local r1 = rss_kb()
for t = 1, SHARED do
  for _, c in ipairs(server_side) do c:subscribe(names[t]) end
end
local per_slot = (rss_kb() - r1) * 1024 / (SHARED * CONNS)
for t = 1, SHARED do
  for _, c in ipairs(server_side) do c:unsubscribe(names[t]) end
end

-- distinct topics on one connection
collectgarbage()
local r0 = rss_kb()
local first = server_side[1]
for i = 1, TOPICS do first:subscribe(names[i]) end
local per_topic = (rss_kb() - r0) * 1024 / TOPICS
for i = 1, TOPICS do first:unsubscribe(names[i]) end

-- text that compresses about as well as JSON does
local words = { "id", "name", "value", "time", "status", "ok", "user", "items" }
local parts = {}
for i = 1, SIZE do parts[i] = words[i % #words + 1] .. i end
local msg = table.concat(parts, ","):sub(1, SIZE)
local cpu, deliveries = 0, 0
local all0 = os.clock()
for _ = 1, PUBLISHES do
  local t0 = os.clock()
  deliveries = deliveries + srv:publish("feed", msg)
  cpu = cpu + os.clock() - t0
  while received < deliveries do ws.step(0.01) end
end
local all = os.clock() - all0

print(string.format("| topics, %d connections, %d-byte messages, compress %s | value |", CONNS, SIZE, COMPRESS))
print("| --- | --- |")
print(string.format("| memory per subscription, a topic each (%d topics) | %.0f bytes |", TOPICS, per_topic))
print(string.format("| memory per subscription, shared topics (%d x %d) | %.0f bytes |", SHARED, CONNS, per_slot))
print(string.format("| server CPU per delivery (srv:publish / receivers) | %.0f ns |", cpu / deliveries * 1e9))
print(string.format("| server CPU per publish to %d receivers | %.1f us |", CONNS, cpu / PUBLISHES * 1e6))
print(string.format("| process CPU per delivery (publish, write, client read) | %.0f ns |", all / deliveries * 1e9))
print(string.format("| memory per queued delivery of %d bytes (%d publishes queued) | %.0f bytes |",
  4 * SIZE, BURST, per_queued))
srv:close()
