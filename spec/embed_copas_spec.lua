-- lua-ws inside Copas (Debian lua-copas: Copas 1.x for Lua 5.1 and
-- LuaJIT): ws.copas.attach runs the loop as a Copas thread next to
-- Copas-native LuaSocket I/O in the same process; a client and a server
-- inside Copas against lua-ws peers in child processes; errors of callbacks
-- handed to on_error; detach.
-- Lua 5.1 compatible.

local ws = require "ws"
local net = require "spec.helpers.net_util"
local embed = require "spec.helpers.embed"

describe("ws inside Copas", function()
  local copas = embed.needs("copas", "lua-copas", "Debian ships it for Lua 5.1/5.2")
  if not copas then return end
  -- copas.step until cond() or `limit` seconds.
  local function drive(cond, limit)
    return embed.drive(cond, function() copas.step(0.05) end, limit)
  end
  local wscopas = require "ws.copas"
  local socket = require "socket"

  local handles = {}
  local function attach(opts)
    local h = wscopas.attach(opts)
    handles[#handles + 1] = h
    return h
  end
  after_each(function()
    for _, h in ipairs(handles) do h:detach() end
    handles = {}
    drive(function() return false end, 0.1) -- let detached threads end
    net.cleanup()
  end)

  it("runs a client with callbacks next to Copas' own socket I/O", function()
    local child, port = net.spawn_echo_server()
    -- Copas-native: a line echo server and a client of it, in this process.
    local tcp = assert(socket.bind("127.0.0.1", 0))
    local _, tcp_port = tcp:getsockname()
    copas.addserver(tcp, function(skt)
      skt = copas.wrap(skt)
      local line = skt:receive("*l")
      while line do
        skt:send(line .. "\n")
        line = skt:receive("*l")
      end
    end)
    local lines = {}
    copas.addthread(function()
      local raw = socket.tcp()
      raw:settimeout(0)
      copas.connect(raw, "127.0.0.1", tcp_port)
      local skt = copas.wrap(raw)
      for i = 1, 3 do
        skt:send("line " .. i .. "\n")
        lines[#lines + 1] = skt:receive("*l")
      end
      raw:close()
    end)
    local got, closed = {}, nil
    attach()
    net.track_conn(ws.connect("ws://127.0.0.1:" .. port .. "/copas", {
      on_open = function(c) c:send("one") end,
      on_message = function(c, data)
        got[#got + 1] = data
        if #got == 1 then c:send("two") else c:close(1000) end
      end,
      on_close = function(_, code) closed = code end,
    }))
    assert.is_true(drive(function() return closed ~= nil and #lines == 3 end, 10))
    assert.are.same({ "one", "two" }, got)
    assert.are.equal(1000, closed)
    assert.are.same({ "line 1", "line 2", "line 3" }, lines)
    tcp:close()
    child:kill()
  end)

  it("runs a server that a lua-ws client in another process talks to", function()
    local srv
    local got, done = {}, false
    srv = net.listen {
      on_message = function(c, data)
        got[#got + 1] = data
        c:send("re: " .. data)
      end,
      on_close = function()
        srv:close()
        done = true
      end,
    }
    attach()
    local child = net.spawn_lua([[
      local ws = require "ws"
      local c = assert(ws.connect("ws://127.0.0.1:" .. arg[1] .. "/"))
      c:send("hello copas")
      print("REPLY " .. tostring(c:receive(5)))
      c:close(1000)
    ]], srv.port)
    assert.is_true(drive(function() return done end, 10))
    assert.are.same({ "hello copas" }, got)
    child:wait_exit(5)
    assert.matches("REPLY re: hello copas", child:output())
  end)

  it("runs timers only through the fd, and hands callback errors to on_error", function()
    local errs, fired = {}, false
    attach { on_error = function(e) errs[#errs + 1] = e end }
    ws.timer(0.01, function() error("boom in a callback") end)
    ws.timer(0.03, function() fired = true end)
    assert.is_true(drive(function() return fired end, 5))
    assert.are.equal(1, #errs)
    assert.matches("boom in a callback", errs[1])
  end)

  it("forever keeps the thread through idle time; detach ends it", function()
    local h = attach { forever = true }
    drive(function() return false end, 0.05) -- idle: the thread stays
    local fired = false
    ws.timer(0.01, function() fired = true end) -- started from outside
    assert.is_true(drive(function() return fired end, 5), "a timer started while idle did not run")
    h:detach()
  end)

  it("rejects bad arguments", function()
    assert.matches("table expected", select(2, pcall(wscopas.attach, 42)))
    assert.matches("unknown option 'nope'", select(2, pcall(wscopas.attach, { nope = 1 })))
  end)
end)
