-- Soak (issue 6): thousands of clients from a child process connect,
-- exchange messages and leave at random (close codes 1000/1001/4000, or
-- giving up while still connecting) for a bounded time; afterwards the
-- server's fd count, Lua heap (after a full GC) and RSS are back near
-- their baseline.  About 20 s by default; WS_SOAK_SECONDS=N runs longer.
-- Runs on Lua 5.4 only.
-- Lua 5.1 compatible syntax.

local net = require "spec.helpers.net_util"

local SECONDS = tonumber(os.getenv("WS_SOAK_SECONDS") or "") or 20

-- The child: keeps up to CONC clients busy until the deadline, then prints
-- "DONE <connections> <messages> <failures>".
local CLIENTS = [==[
local ws = require "ws"
local port, seconds, conc = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3])
local start = os.time()
local active, conns, msgs, failures = 0, 0, 0, 0
math.randomseed(os.time())
local function open_one()
  active = active + 1
  conns = conns + 1
  local left = math.random(1, 6)
  local c = ws.connect("ws://127.0.0.1:" .. port .. "/soak", {
    timeout = 10, close_timeout = 2,
    on_open = function(c) c:send(string.rep("x", math.random(0, 2000))) end,
    on_message = function(c)
      msgs = msgs + 1
      left = left - 1
      if left > 0 then
        c:send(string.rep("y", math.random(0, 4000)), math.random() < 0.5 and "binary" or "text")
        return
      end
      local r = math.random()
      if r < 0.6 then c:close(1000, "bye")
      elseif r < 0.8 then c:close(4000)
      else c:close(1001) end
    end,
    on_error = function() failures = failures + 1 end,
    on_close = function() active = active - 1 end,
  })
  if math.random() < 0.05 then c:close() end -- leaves before the handshake ends
end
while os.time() - start < seconds do
  while active < conc do open_one() end
  ws.step(0.01)
end
local deadline = os.time() + 15
while active > 0 and os.time() < deadline do ws.step(0.05) end
print(string.format("DONE %d %d %d %d", conns, msgs, failures, active))
]==]

describe("soak #soak", function()
  after_each(function()
    net.cleanup()
  end)

  it("thousands of clients come and go; fds and memory return to the baseline", function()
    if _VERSION ~= "Lua 5.4" then
      pending("runs on Lua 5.4 only")
      return
    end
    local opens, closes, errors = 0, 0, 0
    local srv = net.listen {
      handshake_timeout = 5,
      on_open = function() opens = opens + 1 end,
      on_message = function(c, data, is_binary) c:send(data, is_binary and "binary" or "text") end,
      on_close = function() closes = closes + 1 end,
      on_error = function() errors = errors + 1 end,
    }
    -- Warm up (buffers, first allocations), then take the baseline.
    local warm = assert(net.connect(net.url(srv)))
    assert.is_true(warm:send("warm"))
    assert.are.equal("warm", (warm:receive(5)))
    warm:close()
    net.wait_until(function() return closes == 1 end, 3)
    collectgarbage("collect")
    collectgarbage("collect")
    local fd0 = net.settled_fd_count()
    local heap0 = collectgarbage("count")
    local rss0 = net.rss_kb()

    local child = net.spawn_lua(CLIENTS, srv.port, SECONDS, 100)
    local peak_clients = 0
    net.wait_until(function()
      peak_clients = math.max(peak_clients, #srv:clients())
      return not child:alive()
    end, SECONDS + 40)
    local out = child:output()
    local conns, msgs, failures, left = out:match("DONE (%d+) (%d+) (%d+) (%d+)")
    assert.is_truthy(conns, "the client process did not finish: " .. out .. child:errors())
    conns, msgs, failures = tonumber(conns), tonumber(msgs), tonumber(failures)
    print(string.format("soak: %d s, %d connections, %d messages, %d client errors, peak %d clients, %d left",
      SECONDS, conns, msgs, failures, peak_clients, tonumber(left)))
    assert.is_true(conns >= 1000, "only " .. conns .. " connections")
    assert.is_true(msgs >= conns, "only " .. msgs .. " messages")
    assert.is_true(failures <= conns / 100, failures .. " client errors")

    -- Every connection ended on the server too.
    assert.is_true(net.wait_until(function() return #srv:clients() == 0 and closes >= opens end, 10),
      #srv:clients() .. " clients still open")
    assert.are.equal(opens, closes)
    assert.is_true(net.wait_until(function() return net.fd_count() <= fd0 end, 5),
      "fds: " .. fd0 .. " before, " .. net.fd_count() .. " after")
    collectgarbage("collect")
    collectgarbage("collect")
    local heap = collectgarbage("count")
    local rss = net.rss_kb()
    print(string.format("soak: Lua heap %.0f -> %.0f KiB, RSS %d -> %d KiB", heap0, heap, rss0, rss))
    assert.is_true(heap - heap0 < 512, string.format("Lua heap grew by %.0f KiB", heap - heap0))
    -- Under AddressSanitizer freed memory sits in its quarantine (256 MiB by
    -- default), so RSS says little there; the heap and fd checks still hold.
    local asan = (os.getenv("LD_PRELOAD") or ""):find("asan", 1, true) ~= nil
    local rss_limit = asan and 300 * 1024 or 32 * 1024
    assert.is_true(rss - rss0 < rss_limit, "RSS grew by " .. (rss - rss0) .. " KiB")
  end)
end)
