-- lua-ws inside a real nginx with lua-nginx-module (Debian nginx +
-- libnginx-mod-http-lua on OpenResty's LuaJIT): ws.resty endpoints in
-- content_by_lua over the raw request socket, driven by lua-ws clients, a
-- raw TCP peer and Node `ws`; ws.resty clients inside nginx against lua-ws
-- servers (ws and wss verified by lua_ssl_trusted_certificate); and the
-- networked API refusing to run inside nginx.
-- Lua 5.1 compatible (runs in the LuaJIT pass only).

local ws = require "ws"
local net = require "spec.helpers.net_util"
local nginx = require "spec.helpers.nginx"
local proc = require "spec.helpers.proc"

local LOCATIONS = [[
    location /echo { content_by_lua_block {
      require("ws.resty").serve {
        protocols = { "chat.v1" }, compress = true,
        on_upgrade = function(req)
          if req.origin == "https://evil.example" then return false, 403, "origin not allowed" end
        end,
        on_message = function(c, data, is_binary)
          if data == "close me" then return c:close(4000, "asked") end
          c:send(data, is_binary and "binary" or "text")
        end,
        on_close = function(c, code, reason, clean)
          ngx.log(ngx.NOTICE, "WSCLOSE /echo ", code, " ", reason, " ", tostring(clean))
        end,
      }
    } }
    location /ping { content_by_lua_block {
      require("ws.resty").serve {
        ping_interval = 0.1, ping_timeout = 0.3,
        on_message = function(c, data) c:send(data) end,
        on_close = function(c, code) ngx.log(ngx.NOTICE, "WSCLOSE /ping ", code, " ", tostring(c.error)) end,
      }
    } }
    location /close_timeout { content_by_lua_block {
      require("ws.resty").serve {
        close_timeout = 0.3,
        on_open = function(c) c:close(1000, "bye") end,
        on_close = function(c, code, _, clean)
          ngx.log(ngx.NOTICE, "WSCLOSE /close_timeout ", code, " ", tostring(clean))
        end,
      }
    } }
    location /ticks { content_by_lua_block {
      local resty = require "ws.resty"
      local c = assert(resty.accept())
      -- Another light thread sends while this one is blocked reading.
      ngx.thread.spawn(function()
        for i = 1, 5 do
          ngx.sleep(0.01)
          c:send("tick " .. i)
        end
      end)
      local msg = c:receive(10)
      c:send("got " .. tostring(msg))
      c:send_fragment("in ", false)
      c:send_fragment("three ", false)
      c:send_fragment("parts", true)
      c:close(1000, "done")
    } }
    location /client { content_by_lua_block {
      local resty = require "ws.resty"
      local args = ngx.req.get_uri_args()
      local c, err = resty.connect(args.url, { server_name = args.name, protocols = { "chat.v1" },
        compress = args.compress == "1" })
      if not c then ngx.say("ERR ", err) return end
      c:send("hello from nginx")
      local reply = c:receive(5)
      c:close(1000, "bye")
      ngx.say("REPLY ", reply, " EXT ", tostring(c.extensions), " CLOSED ", c.closed[1], " ", tostring(c.closed[3]))
    } }
    location /refuse { content_by_lua_block {
      local ws = require "ws"
      local _, e1 = pcall(ws.connect, "ws://127.0.0.1:1/")
      local _, e2 = pcall(ws.listen, { port = 0 })
      ngx.say(e1)
      ngx.say(e2)
    } }
]]

local function curl(url, extra)
  local out = proc.sh("curl -s -i -m 10 " .. (extra or "") .. " " .. net.quote(url))
  return out
end

describe("ws.resty inside nginx", function()
  local missing = nginx.missing()
  if missing then return it(nginx.NEEDS, function() pending(missing) end) end
  local certs = require("spec.helpers.certs").get()
  local n
  setup(function()
    n = nginx.start { locations = LOCATIONS, trusted = certs.ca,
      ssl = { cert = certs.server_cert, key = certs.server_key } }
  end)
  teardown(function() if n then n:stop() end end)
  after_each(function() net.cleanup() end)

  local function url(path) return "ws://127.0.0.1:" .. n.port .. path end

  describe("server endpoint (serve / accept over ngx.req.socket(true))", function()
    it("echoes text and binary to a lua-ws client and closes cleanly, TCP closed by nginx", function()
      local c = net.track_conn(assert(ws.connect(url("/echo"))))
      c:send("hello")
      assert.are.same({ "hello", "text" }, { c:receive(5) })
      c:send("\0\1\2\255", "binary")
      assert.are.same({ "\0\1\2\255", "binary" }, { c:receive(5) })
      local big = net.payload(200000, "text")
      c:send(big)
      assert.are.equal(big, (c:receive(5)))
      c:send("close me")
      local _, what, code, reason = c:receive(5)
      assert.are.equal("closed", what)
      assert.are.equal(4000, code)
      assert.are.equal("asked", reason)
      assert.is_truthy(net.wait_until(function() return n:log():match("WSCLOSE /echo 4000 asked true") end, 5))
    end)

    it("closes the TCP connection itself once the close handshake is done", function()
      local core = require "ws.core"
      local r = assert(net.raw_connect(n.port))
      r:send("GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        .. "Sec-WebSocket-Key: " .. net.KEY .. "\r\nSec-WebSocket-Version: 13\r\n\r\n")
      assert.is_truthy(r:wait(function(d) return d:find("\r\n\r\n", 1, true) end))
      r:send(core.build_frame { opcode = 1, payload = "close me", mask = "abcd" })
      -- The server's close (4000 "asked"), then our answer.
      assert.is_truthy(r:wait(function(d) return d:find("\136\7\15\160asked", 1, true) end))
      assert.is_false(r.eof)
      r:send(core.build_frame { opcode = 8, payload = "\15\160", mask = "abcd" })
      assert.is_true(r:wait_eof(3), "nginx kept the TCP connection open after the close handshake")
    end)

    it("over TLS (nginx's ssl listener)", function()
      local c = net.track_conn(assert(ws.connect("wss://localhost:" .. n.ssl_port .. "/echo",
        { tls = { cafile = certs.ca } })))
      c:send("secure")
      assert.are.equal("secure", (c:receive(5)))
      c:close()
    end)

    it("negotiates subprotocols and permessage-deflate; the Origin hook refuses with 403", function()
      local c = net.track_conn(assert(ws.connect(url("/echo"), { protocols = { "x", "chat.v1" }, compress = true })))
      assert.are.equal("chat.v1", c.protocol)
      assert.matches("permessage%-deflate", c.extensions)
      local text = string.rep("compressible text ", 5000)
      c:send(text)
      assert.are.equal(text, (c:receive(5)))
      c:close()
      local none, err, info = ws.connect(url("/echo"), { origin = "https://evil.example" })
      assert.is_nil(none)
      assert.matches("403", err)
      assert.are.equal(403, info and info.status)
    end)

    it("answers a bad upgrade with the session's 400 / 426", function()
      local h = "-H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=='"
      local out = curl("http://127.0.0.1:" .. n.port .. "/echo", h .. " -H 'Sec-WebSocket-Version: 12'")
      assert.matches("^HTTP/1.1 426", out)
      assert.matches("Sec%-WebSocket%-Version: 13", out)
      out = curl("http://127.0.0.1:" .. n.port .. "/echo")
      assert.matches("^HTTP/1.1 400", out)
    end)

    it("sends keepalive pings, and closes 1006 when the peer stops answering", function()
      local pings, opened = 0, false
      local c = net.track_conn(ws.connect(url("/ping"), {
        on_open = function() opened = true end,
        on_ping = function() pings = pings + 1 end,
      }))
      assert.is_true(net.wait_until(function() return pings >= 2 end, 5), "no keepalive pings")
      assert.is_true(opened)
      c:close()
      -- A raw peer that completes the handshake and then never answers.
      local r = assert(net.raw_connect(n.port))
      r:send("GET /ping HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        .. "Sec-WebSocket-Key: " .. net.KEY .. "\r\nSec-WebSocket-Version: 13\r\n\r\n")
      assert.is_true(r:wait_eof(5), "nginx did not drop a peer that stopped answering pings")
      assert.matches("101", r:data())
      assert.is_truthy(net.wait_until(function() return n:log():match("WSCLOSE /ping 1006 keepalive timeout") end, 5))
    end)

    it("closes after close_timeout when the peer never answers the close", function()
      local r = assert(net.raw_connect(n.port))
      local t0 = net.now()
      r:send("GET /close_timeout HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        .. "Sec-WebSocket-Key: " .. net.KEY .. "\r\nSec-WebSocket-Version: 13\r\n\r\n")
      assert.is_true(r:wait_eof(5))
      local elapsed = net.now() - t0
      assert.matches("\136\5\3\232bye", r:data()) -- the close frame: 1000 "bye"
      assert.is_true(elapsed >= 0.25, "closed before close_timeout: " .. elapsed)
      assert.is_truthy(net.wait_until(function() return n:log():match("WSCLOSE /close_timeout 1006 false") end, 5))
    end)

    it("takes sends from another light thread while one reads", function()
      local c = net.track_conn(assert(ws.connect(url("/ticks"))))
      local got = {}
      for _ = 1, 5 do got[#got + 1] = (c:receive(5)) end
      assert.are.same({ "tick 1", "tick 2", "tick 3", "tick 4", "tick 5" }, got)
      c:send("over")
      assert.are.equal("got over", (c:receive(5)))
      assert.are.equal("in three parts", (c:receive(5)))
      local _, what, code = c:receive(5)
      assert.are.equal("closed", what)
      assert.are.equal(1000, code)
    end)

    it("interoperates with Node ws (compression on)", function()
      local out, status = proc.sh("bash scripts/interop_deps.sh node-ws", 900)
      if status ~= 0 then
        pending("Node ws is missing (scripts/interop_deps.sh node-ws): " .. out)
        return
      end
      local script = net.next_name("node") .. ".js"
      net.write_file(script, ([[
const WS = require(%q);
const ws = new WS(process.argv[2], { perMessageDeflate: true });
const got = [];
ws.on("open", () => { ws.send("from node"); ws.send(Buffer.from([0, 1, 2]), { binary: true }); });
ws.on("message", (d, isBinary) => {
  got.push(isBinary ? "bin:" + d.length : d.toString());
  if (got.length === 2) ws.close(1000, "node done");
});
ws.on("close", (code) => { console.log("EXT " + ws.extensions + " GOT " + got.join("|") + " CLOSE " + code); });
ws.on("error", (e) => { console.log("ERROR " + e.message); });
]]):format(net.sh("pwd"):match("[^\n]+") .. "/build/interop-node/node_modules/ws"))
      local res = proc.sh("env -u LD_PRELOAD node " .. net.quote(script) .. " " .. net.quote(url("/echo")), 20)
      assert.matches("EXT permessage%-deflate", res)
      assert.matches("GOT from node|bin:3 CLOSE 1000", res)
    end)
  end)

  describe("client (connect over ngx.socket.tcp)", function()
    it("talks to a lua-ws server over ws and wss, verified by lua_ssl_trusted_certificate", function()
      local child = net.spawn_lua([[
        local ws = require "ws"
        local srv = ws.listen { host = "127.0.0.1", port = 0, compress = true,
          on_message = function(c, data, is_binary) c:send(data, is_binary and "binary" or "text") end }
        print("PORT " .. srv.port)
        ws.run()
      ]])
      local port = tonumber(child:wait_output("PORT (%d+)", 15))
      local out = curl("http://127.0.0.1:" .. n.port .. "/client?url=ws://127.0.0.1:" .. port .. "/plain&compress=1")
      assert.matches("REPLY hello from nginx EXT permessage%-deflate[^\n]* CLOSED 1000 true", out)
      local tchild, tport = net.spawn_echo_server("tls", certs.server_cert, certs.server_key)
      out = curl("http://127.0.0.1:" .. n.port .. "/client?name=localhost&url=wss://127.0.0.1:" .. tport .. "/tls")
      assert.matches("REPLY hello from nginx EXT nil CLOSED 1000 true", out)
      -- A name the certificate does not carry: verification fails.
      out = curl("http://127.0.0.1:" .. n.port .. "/client?name=wrong.example&url=wss://127.0.0.1:" .. tport .. "/")
      assert.matches("ERR ws.resty.connect: TLS handshake with 127.0.0.1: [^\n]*certificate", out)
      -- Host names go to nginx's resolver (none configured here).
      out = curl("http://127.0.0.1:" .. n.port .. "/client?url=ws://localhost:" .. port .. "/")
      assert.matches("ERR ws.resty.connect: connect to localhost:%d+: [^\n]*resolver", out)
      child:kill()
      tchild:kill()
    end)
  end)

  it("left no Lua error, alert or crash in nginx's log", function()
    local log = n:log()
    for line in log:gmatch("[^\n]+") do
      assert.is_nil(line:match("%[error%].*") or line:match("%[alert%].*") or line:match("%[crit%].*")
        or line:match("%[emerg%].*"), line)
    end
  end)

  it("ws.connect and ws.listen refuse to run inside nginx and point to ws.resty", function()
    local out = curl("http://127.0.0.1:" .. n.port .. "/refuse")
    assert.matches("ws.connect: not inside nginx %(content phase%)[^\n]*ws%.resty", out)
    assert.matches("ws.listen: not inside nginx %(content phase%)[^\n]*ws%.resty", out)
  end)
end)
