-- Thousands of connect/message/close cycles, callback style, with the
-- server in the same process: no fd and no Lua-visible memory growth.
local ws = require "ws"
local net = require "spec.helpers.net_util"

local function full_gc()
  collectgarbage()
  collectgarbage()
end

describe("connect/close cycles", function()
  after_each(function() net.cleanup() end)

  it("2000 cycles leave the fd count and Lua memory where they started", function()
    -- An echo server that keeps no record of its connections.
    local srv = net.listen { on_message = function(c, data) c:send(data) end }
    local url = net.url(srv)
    local done, target = 0, 0
    local function start_one()
      ws.connect(url, {
        on_open = function(c) c:send("ping") end,
        on_message = function(c, data)
          assert(data == "ping")
          c:close(1000, "done")
        end,
        on_close = function(_, code)
          assert(code == 1000, "closed with " .. tostring(code))
          done = done + 1
          if done < target then start_one() end
        end,
      })
    end
    -- warm up, then measure
    target = 20
    start_one()
    assert.is_true(net.wait_until(function() return done >= 20 and #srv:clients() == 0 end, 10))
    full_gc()
    local fds, mem = net.settled_fd_count(), collectgarbage("count")
    done, target = 0, 2000
    start_one()
    assert.is_true(net.wait_until(function() return done >= 2000 end, 60))
    assert.is_true(net.wait_until(function() return #srv:clients() == 0 end, 5))
    full_gc()
    local after
    net.wait_until(function()
      after = net.fd_count()
      return after <= fds
    end, 3)
    assert.is_true(after <= fds, after .. " fds after, " .. fds .. " before")
    -- Closed connections are collected: Lua memory does not grow per cycle.
    assert.is_true(collectgarbage("count") < mem + 256, "Lua heap grew from " .. mem .. " KiB to "
      .. collectgarbage("count") .. " KiB")
  end)
end)
