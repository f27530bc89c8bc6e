-- Smoke tests of the examples: each one is started the way a user starts it
-- (`lua examples/X.lua ...` in a child process, port 0), its port is read
-- from what it prints, a lua-ws client in this process exercises it, and it
-- is stopped (killed) at the end of the test.
local net = require "spec.helpers.net_util"
local ws = require "ws"

local proc = require "spec.helpers.proc"

local quote = net.quote
local start, run = proc.lua, proc.run_lua

local function receive_all(c, n, timeout)
  local got = {}
  for _ = 1, n do
    local m = c:receive(timeout or 5)
    if not m then break end
    got[#got + 1] = m
  end
  return got
end

describe("examples (smoke)", function()
  local conns = {}
  local function track(c)
    if c then conns[#conns + 1] = c end
    return c
  end

  after_each(function()
    for _, c in ipairs(conns) do
      if c.ready_state == "OPEN" then c:close() end
    end
    net.wait_until(function()
      for _, c in ipairs(conns) do
        if c.ready_state ~= "CLOSED" then return false end
      end
      return true
    end, 3)
    conns = {}
    proc.stop_all()
    net.cleanup()
  end)

  it("echo_server.lua echoes text and binary, and echo_client.lua talks to it", function()
    local srv = start("examples/echo_server.lua", "0", "--seconds", "30")
    local port = srv:wait_for("listening on ws://127%.0%.0%.1:(%d+)/\n")
    local url = "ws://127.0.0.1:" .. port .. "/"

    local c = track(assert(ws.connect(url)))
    assert.is_true(c:send("héllo"))
    assert.same({ "héllo", "text" }, { c:receive(5) })
    local bin = string.char(0, 1, 2, 255, 254)
    assert.is_true(c:send(bin, "binary"))
    assert.same({ bin, "binary" }, { c:receive(5) })
    c:close(1000, "done")
    assert.same({ nil, "closed", 1000, "done" }, { c:receive(5) })
    srv:wait_for("closed 127%.0%.0%.1:%d+ 1000 done")

    -- The client example: messages from its arguments, then from stdin.
    local out, code0 = run("examples/echo_client.lua", quote(url) .. " hello " .. quote("two words"))
    assert.equals(0, code0, out)
    assert.matches("connected to " .. url:gsub("%p", "%%%0"), out)
    assert.matches("echo: hello\necho: two words\n", out)
    assert.matches("closed 1000 bye", out)
    out = run("examples/echo_client.lua", quote(url), "one\ntwo\n")
    assert.matches("echo: one\necho: two\n", out)

    -- A client that cannot connect says so and fails.
    srv:kill()
    local code
    out, code = run("examples/echo_client.lua", quote(url) .. " x")
    assert.matches("connect ws://127%.0%.0%.1:%d+/: ", out)
    assert.equals(1, code)
  end)

  it("echo_server.lua stops by itself after --seconds", function()
    local srv = start("examples/echo_server.lua", "--seconds", "0.3", "0")
    srv:wait_for("listening on ws://127%.0%.0%.1:%d+/")
    assert.is_truthy(srv:wait_exit(5))
    assert.equals("", srv:errors())
  end)

  it("chat/server.lua serves its page at / and broadcasts every message to every client", function()
    local srv = start("examples/chat/server.lua", "0", "--seconds", "30")
    local port = tonumber(srv:wait_for("listening on ws://127%.0%.0%.1:(%d+)/chat\n"))
    srv:wait_for("open http://127%.0%.0%.1:%d+/ in a browser")

    -- The page, over plain HTTP on the same port.
    local resp = net.http_exchange(port, "GET / HTTP/1.1\r\nHost: 127.0.0.1:" .. port .. "\r\n\r\n")
    assert.equals(200, resp.status)
    assert.matches("^text/html", resp.headers["content-type"])
    assert.matches("new WebSocket%(", resp.body)
    assert.matches('id="messages"', resp.body)
    resp = net.http_exchange(port, "GET /nothing HTTP/1.1\r\nHost: 127.0.0.1:" .. port .. "\r\n\r\n")
    assert.equals(404, resp.status)

    local url = "ws://127.0.0.1:" .. port .. "/chat"
    local a = track(assert(ws.connect(url)))
    local b = track(assert(ws.connect(url, { origin = "http://127.0.0.1:" .. port })))
    srv:wait_for("join .*join ")
    assert.is_true(a:send("hi from a"))
    assert.same({ "hi from a", "text" }, { a:receive(5) })
    assert.same({ "hi from a", "text" }, { b:receive(5) })
    assert.is_true(b:send("héllo from b"))
    assert.same({ "héllo from b" }, receive_all(a, 1))
    assert.same({ "héllo from b" }, receive_all(b, 1))

    -- A third client sees what comes after it joined, not before.
    local c = track(assert(ws.connect(url)))
    assert.is_true(c:send("third"))
    for _, conn in ipairs({ a, b, c }) do
      assert.same({ "third", "text" }, { conn:receive(5) })
    end

    -- Only /chat upgrades, and browsers only from the server's own pages.
    local bad, err, info = ws.connect("ws://127.0.0.1:" .. port .. "/other")
    assert.is_nil(bad)
    assert.matches("404", err)
    assert.equals(404, info.status)
    bad, err, info = ws.connect(url, { origin = "https://evil.example" })
    assert.is_nil(bad)
    assert.matches("403", err)
    assert.equals(403, info.status)

    a:close()
    srv:wait_for("leave 127%.0%.0%.1:%d+ %(1000%)")
  end)

  it("chat/server.lua --redis: two chat servers joined by Redis share one room", function()
    local redis = require "spec.helpers.redis"
    if not redis.available() then error("redis-server is not installed (scripts/deps.sh installs it)") end
    local r = redis.start()
    local ok, err = pcall(function()
      local function chat()
        local p = start("examples/chat/server.lua", "0", "--seconds", "30", "--redis", "127.0.0.1:" .. r.port)
        local port = tonumber(p:wait_for("listening on ws://127%.0%.0%.1:(%d+)/chat\n"))
        p:wait_for("redis connected, node %x+")
        return p, "ws://127.0.0.1:" .. port .. "/chat"
      end
      local _, url_a = chat()
      local _, url_b = chat()
      local a = track(assert(ws.connect(url_a)))
      local b = track(assert(ws.connect(url_b)))
      assert(net.wait_until(function() return r:numsub("chat:chat") == 2 end, 10))
      assert.is_true(a:send("hi from node A"))
      assert.same({ "hi from node A", "text" }, { a:receive(5) })
      assert.same({ "hi from node A", "text" }, { b:receive(5) })
      assert.is_true(b:send("héllo from node B"))
      assert.same({ "héllo from node B" }, receive_all(b, 1))
      assert.same({ "héllo from node B" }, receive_all(a, 1))
      assert.same({ nil, "timeout" }, { a:receive(0.3) }) -- each message once
    end)
    redis.stop_all()
    if not ok then error(err, 0) end
  end)

  it("bot.lua subscribes, answers commands, pings, and subscribes again after the server restarts", function()
    -- The server the bot talks to runs here; every connection records what
    -- it received.
    local conns_seen, pings = {}, 0
    local function serve(port)
      return ws.listen {
        host = "127.0.0.1", port = port,
        on_open = function(c)
          c.got = {}
          conns_seen[#conns_seen + 1] = c
        end,
        on_message = function(c, data) c.got[#c.got + 1] = data end,
        on_ping = function() pings = pings + 1 end,
      }
    end
    local function latest() return conns_seen[#conns_seen] end
    -- Wait for a message on the latest connection (index > `after`).
    local function wait_message(conn, pattern, after)
      local found
      net.wait_until(function()
        for i = (after or 0) + 1, #conn.got do
          if conn.got[i]:match(pattern) then found = conn.got[i]; return true end
        end
      end, 10)
      return found
    end
    local function ask(conn, command, pattern)
      local n = #conn.got
      assert.is_true(conn:send(command))
      return wait_message(conn, pattern, n)
    end

    local server = serve(0)
    local port = server.port
    local bot = start("examples/bot.lua", "ws://127.0.0.1:" .. port .. "/", "--ping", "0.2", "--retry", "0.1",
      "--seconds", "60")
    bot:wait_for("open #1 ")
    assert.truthy(net.wait_until(function() return latest() ~= nil end, 5))
    local first = latest()
    assert.equals('{"op":"subscribe","room":"lobby"}', wait_message(first, "subscribe"))

    assert.equals("pong", ask(first, "!ping", "^pong$"))
    assert.equals("hello there", ask(first, "!echo hello there", "^hello there$"))
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", ask(first, "!time", "^%d%d%d%d%-"))
    assert.truthy(net.wait_until(function() return pings >= 2 end, 5), "the bot pings")
    bot:wait_for("command !ping %-> pong")

    -- The server goes away and comes back on the same port: the bot
    -- reconnects and subscribes again.
    server:close()
    net.run_for(0.3)
    server = serve(port)
    assert.truthy(net.wait_until(function() return latest() ~= first end, 15), "the bot came back")
    local second = latest()
    assert.equals('{"op":"subscribe","room":"lobby"}', wait_message(second, "subscribe"))
    assert.equals("pong", ask(second, "!ping", "^pong$"))
    bot:wait_for("open #2 ")
    bot:wait_for("reconnecting: attempt %d+ in [%d.]+ s")
    server:close()
  end)

  it("wss_server.lua makes a certificate for localhost and echoes over wss://", function()
    local srv = start("examples/wss_server.lua", "0", "--seconds", "30")
    local cert = srv:wait_for("certificate: ([^\n]+)\n")
    local port = srv:wait_for("listening on wss://localhost:(%d+)/\n")
    local dir = cert:match("^(.*)/cert%.pem$")
    assert.truthy(dir and dir:match("%-lua%-ws%-wss$"), cert)
    local url = "wss://localhost:" .. port .. "/"

    local ok, err = pcall(function()
      local c = track(assert(ws.connect(url, { tls = { cafile = cert } })))
      assert.is_true(c:send("secure hello"))
      assert.same({ "secure hello", "text" }, { c:receive(5) })
      c:close()
      assert.equals("closed", select(2, c:receive(5)))

      -- Without the certificate the client does not trust it.
      local bad, why = ws.connect(url)
      assert.is_nil(bad)
      assert.matches("certificate", why)

      -- The example client with --cafile.
      local out = run("examples/echo_client.lua", quote(url) .. " --cafile " .. quote(cert) .. " over-tls")
      assert.matches("echo: over%-tls\n", out)
    end)
    srv:kill()
    os.execute("rm -rf " .. quote(dir)) -- killed, it could not remove it itself
    if not ok then error(err, 0) end
  end)

  it("wss_server.lua removes its certificate directory when it stops by itself", function()
    local srv = start("examples/wss_server.lua", "0", "--seconds", "0.3")
    local cert = srv:wait_for("certificate: ([^\n]+)\n")
    assert.truthy(srv:wait_exit(5))
    assert.is_nil(io.open(cert, "rb"))
  end)
end)
