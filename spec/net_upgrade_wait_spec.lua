-- Callbacks that need to wait: on_upgrade runs as a task, so it may call
-- ws.sleep, ws.connect and receive before it decides; the handshake
-- timeout still applies (the client then gets 503).  Waiting calls made in
-- other callbacks raise an error that names ws.spawn.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"
local ws = net.ws

-- A callback-style client that records how its handshake ended.
local function client(url, opts)
  local log = {}
  local o = {
    on_open = function(c) log.opened = true; log.protocol = c.protocol end,
    on_error = function(_, err) log.error = err end,
    on_close = function(_, code) log.closed = code end,
  }
  for k, v in pairs(opts or {}) do o[k] = v end
  local c = assert(net.connect(url, o))
  return c, log
end

local function ended(log) return function() return log.opened or log.closed end end

-- Step the loop until the handshake of log ended and a step raised;
-- returns that error.
local function error_out_of_loop(log)
  local caught
  local deadline = net.now() + 5
  while not (ended(log)() and caught) and net.now() < deadline do
    local ok, err = pcall(ws.step, 0.01)
    if not ok then caught = err end
  end
  return caught
end

describe("on_upgrade may wait", function()
  after_each(function() net.cleanup() end)

  it("asks another WebSocket service before accepting (and still picks the subprotocol)", function()
    local service, service_port = net.spawn_echo_server()
    local asked = {}
    local srv = net.listen {
      protocols = { "chat.v2" },
      on_upgrade = function(req)
        local auth = assert(ws.connect("ws://127.0.0.1:" .. service_port .. "/auth"))
        auth:send(req.query or "")
        local answer = auth:receive(5)
        auth:close()
        asked[#asked + 1] = answer
        if answer ~= "token=good" then return false, 401, "unknown token" end
      end,
      on_message = function(c, data) c:send("echo " .. data) end,
    }
    local echo
    local good, glog = client(net.url(srv, "/?token=good"), {
      protocols = { "chat.v2" },
      on_message = function(_, data) echo = data end,
    })
    local _, blog = client(net.url(srv, "/?token=bad"))
    assert.is_truthy(net.wait_until(function() return ended(glog)() and ended(blog)() end, 10))
    assert.is_true(glog.opened)
    assert.are.equal("chat.v2", glog.protocol)
    good:send("hi")
    assert.is_truthy(net.wait_until(function() return echo end))
    assert.are.equal("echo hi", echo)
    assert.is_nil(blog.opened)
    assert.matches("401", blog.error)
    table.sort(asked)
    assert.are.same({ "token=bad", "token=good" }, asked)
    service:kill()
  end)

  it("decides for each client on its own: a slow decision does not hold up a fast one", function()
    local order = {}
    local srv = net.listen {
      on_upgrade = function(req)
        if req.path == "/slow" then ws.sleep(0.4) end
        order[#order + 1] = req.path
      end,
    }
    local _, slow = client(net.url(srv, "/slow"))
    local _, fast = client(net.url(srv, "/fast"))
    assert.is_truthy(net.wait_until(function() return slow.opened and fast.opened end))
    assert.are.same({ "/fast", "/slow" }, order)
  end)

  it("past handshake_timeout: the client gets 503 and the late decision is dropped", function()
    local finished, opened_on_server = false, false
    local srv = net.listen {
      handshake_timeout = 0.3,
      on_upgrade = function()
        ws.sleep(0.8)
        finished = true
        return true
      end,
      on_open = function() opened_on_server = true end,
    }
    local c, log = client(net.url(srv))
    local t0 = net.now()
    assert.is_truthy(net.wait_until(ended(log)))
    local elapsed = net.now() - t0
    assert.is_nil(log.opened)
    assert.matches("503", log.error)
    assert.are.equal(503, c.status)
    assert.is_true(elapsed >= 0.25 and elapsed < 3, "answered after " .. elapsed .. " s")
    assert.is_truthy(net.wait_until(function() return finished end))
    net.run_for(0.1)
    assert.is_false(opened_on_server)
  end)

  it("raising after it waited: the client gets 500 and the error comes out of the loop", function()
    local srv = net.listen {
      on_upgrade = function()
        ws.sleep(0.05)
        error("no auth backend")
      end,
    }
    local c, log = client(net.url(srv))
    local caught = error_out_of_loop(log)
    assert.matches("no auth backend", tostring(caught))
    assert.is_nil(log.opened)
    assert.are.equal(500, c.status)
  end)

  it("raising before it waits: the client gets 500 and the error comes out of the loop", function()
    local srv = net.listen { on_upgrade = function() error("at once") end }
    local c, log = client(net.url(srv))
    local caught = error_out_of_loop(log)
    assert.matches("at once", tostring(caught))
    assert.are.equal(500, c.status)
  end)

  it("returning a bad value after it waited: 500, and the error names on_upgrade", function()
    local srv = net.listen {
      on_upgrade = function()
        ws.sleep(0.05)
        return false, 200
      end,
    }
    local c, log = client(net.url(srv))
    local caught = error_out_of_loop(log)
    assert.matches("on_upgrade", tostring(caught))
    assert.are.equal(500, c.status)
  end)

  it("the client leaves while it waits: the late decision is dropped", function()
    local finished
    local srv = net.listen {
      on_upgrade = function()
        ws.sleep(0.3)
        finished = true
      end,
    }
    local raw = assert(net.raw_connect(srv.port))
    raw:send(net.upgrade_request(srv.port, "/"))
    net.run_for(0.1)
    raw:close()
    assert.is_truthy(net.wait_until(function() return finished end))
    net.run_for(0.1)
  end)

  it("the server closes while it waits: the client is cut, the late decision is dropped", function()
    local finished
    local srv = net.listen {
      on_upgrade = function()
        ws.sleep(0.3)
        finished = true
      end,
    }
    local _, log = client(net.url(srv))
    net.run_for(0.1)
    srv:close()
    assert.is_truthy(net.wait_until(ended(log)))
    assert.is_nil(log.opened)
    assert.is_truthy(net.wait_until(function() return finished end))
  end)
end)

describe("waiting inside other callbacks", function()
  after_each(function() net.cleanup() end)

  -- Each waiting call made from on_message: the error it raises.
  local function error_from_on_message(call)
    local err
    local srv = net.listen {
      on_message = function(c)
        err = select(2, pcall(call, c))
        c:send("done")
      end,
    }
    local c = assert(net.connect(net.url(srv)))
    c:send("go")
    assert.are.equal("done", c:receive(5))
    return err
  end

  it("ws.sleep names ws.spawn", function()
    assert.matches("ws.sleep: called from a callback.*ws%.spawn", error_from_on_message(function() ws.sleep(0.01) end))
  end)

  it("receive names ws.spawn", function()
    assert.matches("receive: called from a callback.*ws%.spawn", error_from_on_message(function(c) c:receive(1) end))
  end)

  it("a waiting ws.connect names ws.spawn and opens nothing", function()
    local srv2 = net.listen {}
    local before = #srv2:clients()
    local err = error_from_on_message(function() ws.connect(net.url(srv2)) end)
    assert.matches("ws.connect: called from a callback.*ws%.spawn", err)
    net.run_for(0.1)
    assert.are.equal(before, #srv2:clients())
  end)

  it("the same calls work in a task started there", function()
    local got
    local srv = net.listen {
      on_message = function(c)
        ws.spawn(function()
          ws.sleep(0.01)
          c:send("waited")
        end)
      end,
    }
    local c = assert(net.connect(net.url(srv)))
    c:send("go")
    got = c:receive(5)
    assert.are.equal("waited", got)
  end)
end)
