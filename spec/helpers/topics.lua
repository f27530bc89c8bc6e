-- Shared by the topic and fan-out specs: a server whose connections are
-- kept by path and run commands sent as messages, and reading a client's
-- messages up to a marker.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"

local M = {}

-- A server whose connections are kept by path (server side) and whose
-- on_message runs commands: "sub:T", "unsub:T", "pub:T:data" (publishes
-- from inside the callback and answers "count:<n>"), "all" (broadcasts
-- "to all", answers "count:<n>"), "topics" (answers the list joined by
-- ",").  Returns the server, the connections by path, the closed ones.
function M.server(extra)
  local by_path, closed = {}, {}
  local srv
  local opts = {
    on_open = function(c) by_path[c.path] = c end,
    on_message = function(c, data)
      local t = data:match("^sub:(.*)$")
      if t then c:send(tostring(c:subscribe(t))) return end
      t = data:match("^unsub:(.*)$")
      if t then c:send(tostring(c:unsubscribe(t))) return end
      local topic, msg = data:match("^pub:([^:]*):(.*)$")
      if topic then c:send("count:" .. srv:publish(topic, msg)) return end
      if data == "all" then c:send("count:" .. srv:broadcast("to all")) return end
      if data == "topics" then c:send(table.concat(c:topics(), ",")) end
    end,
    on_close = function(c) closed[#closed + 1] = c end,
  }
  for k, v in pairs(extra or {}) do opts[k] = v end
  srv = net.listen(opts)
  return srv, by_path, closed
end

-- The server side of the connection to path, once it opened.
function M.side(by_path, path)
  assert(net.wait_until(function() return by_path[path] ~= nil end), "no server side for " .. path)
  return by_path[path]
end

-- A raw peer that upgrades on path and then reads nothing.
function M.stalled(srv, path)
  local raw = assert(net.raw_connect(srv.port, { no_read = true }))
  raw:send(net.upgrade_request(srv.port, path))
  return raw
end

-- A stalled peer on "/slow" and a client on "/fast", both subscribed to
-- topic: the raw peer, the client, and their server sides.
function M.slow_and_fast(srv, by_path, topic)
  local raw = M.stalled(srv, "/slow")
  local fast = assert(net.connect(net.url(srv, "/fast")))
  local slow_s, fast_s = M.side(by_path, "/slow"), M.side(by_path, "/fast")
  assert(slow_s:subscribe(topic))
  assert(fast_s:subscribe(topic))
  return raw, fast, slow_s, fast_s
end

-- Everything c receives until "end", which the server side sc sends after
-- the test's messages (anything queued before it arrives before it).
function M.drain(c, sc)
  assert(sc:send("end"))
  local got = {}
  while true do
    local data, err = c:receive(5)
    assert(data, "receive: " .. tostring(err))
    if data == "end" then return got end
    got[#got + 1] = data
  end
end

return M
