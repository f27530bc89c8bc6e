-- The lua-ws command (bin/lua-ws): the client through pipes and through a
-- pseudo-terminal (script(1)), --exec, binary output, headers, protocols,
-- compression, TLS, a proxy (http:// and https://), Unix sockets, exit
-- codes, --file and the progress of long sends (terminal vs pipe); the
-- server (echo, broadcast, TLS); against lua-ws peers in other processes and the Node
-- ws peer that spec/interop installs.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"
local proc = require "spec.helpers.proc"
local tinyproxy = require "spec.helpers.tinyproxy"
local certs = require("spec.helpers.certs").get()

local CLI = "bin/lua-ws"

-- Run lua-ws with a shell word list; stdin: text to pipe in.  Returns the
-- output (stdout and stderr) and the exit code.
local function run(args, stdin)
  return proc.run_lua(CLI, args, stdin)
end

-- Only stdout: the received messages.
local function run_stdout(args, stdin)
  local cmd = ("LUA_PATH=%s LUA_CPATH=%s %s %s %s 2>/dev/null"):format(net.quote(package.path),
    net.quote(package.cpath), net.quote(net.lua_interpreter()), CLI, args)
  if stdin then cmd = "printf %s " .. net.quote(stdin) .. " | " .. cmd end
  return proc.sh(cmd)
end

-- A child lua-ws server; returns the child and its port.
local function cli_server(...)
  local p = proc.lua(CLI, "--listen", "0", ...)
  local port = tonumber(p:wait_for("listening on wss?://127%.0%.0%.1:(%d+)/"))
  return p, port
end

-- A child lua-ws script server (source gets `ws` and prints PORT n).
local function script_server(body)
  local ch = net.spawn_lua("local ws = require 'ws'\n" .. body ..
    "\nprint('PORT ' .. srv.port)\nws.run()\n")
  return ch, tonumber(ch:wait_output("PORT (%d+)", 10))
end

describe("the lua-ws command", function()
  after_each(function()
    net.cleanup()
    proc.stop_all()
  end)

  describe("usage", function()
    it("--help lists the options and exits 0", function()
      local out, code = run("--help")
      assert.equal(0, code)
      for _, opt in ipairs({ "--header", "--protocol", "--origin", "--compress", "--cafile", "--insecure",
        "--proxy", "--ping-interval", "--connect-timeout", "--exec", "--listen", "--tls", "--base64",
        "--file", "--progress", "--no-progress", "--proxy-cafile", "--proxy-insecure" }) do
        assert.truthy(out:find(opt, 1, true), opt)
      end
    end)

    it("exits 2 for bad usage, saying why", function()
      local out, code = run("--bogus")
      assert.equal(2, code)
      assert.matches("unknown option '--bogus'", out, 1, true)
      out, code = run("")
      assert.equal(2, code)
      assert.matches("a URL or --listen PORT is needed", out, 1, true)
      out, code = run("--ping-interval soon ws://127.0.0.1:9/")
      assert.equal(2, code)
      assert.matches("--ping-interval needs a non-negative number", out, 1, true)
      out, code = run("http://127.0.0.1:9/")
      assert.equal(2, code)
      assert.matches("invalid URL", out, 1, true)
    end)
  end)

  describe("client", function()
    it("--exec sends one message, prints the reply and exits 0", function()
      local _, port = net.spawn_echo_server()
      local out, code = run_stdout("--exec 'hello there' ws://127.0.0.1:" .. port .. "/")
      assert.equal(0, code)
      assert.equal("< hello there\n", out)
    end)

    it("sends the lines of a pipe in order and closes with 1000 at its end", function()
      local ch, port = net.spawn_echo_server()
      local out, code = run_stdout("ws://127.0.0.1:" .. port .. "/", "one\ntwo\r\nthree")
      assert.equal(0, code)
      assert.equal("< one\n< two\n< three\n", out)
      assert.truthy(net.wait_until(function() return ch:output():find("CLOSE 1000 true", 1, true) end, 3))
    end)

    it("reads stdin from a regular file too", function()
      local _, port = net.spawn_echo_server()
      local file = net.next_name("input")
      net.write_file(file, "from a file\n")
      local out, code = run_stdout("ws://127.0.0.1:" .. port .. "/ < " .. net.quote(file))
      assert.equal(0, code)
      assert.equal("< from a file\n", out)
    end)

    it("sends binary with --binary and prints it as hex, or base64 with --base64", function()
      local _, port = net.spawn_echo_server()
      local url = " ws://127.0.0.1:" .. port .. "/"
      assert.equal("< [binary 3 bytes] 4869ff\n", (run_stdout("--binary --exec \"$(printf 'Hi\\377')\"" .. url)))
      assert.equal("< [binary 2 bytes] SGk=\n", (run_stdout("-b --base64 -x Hi" .. url)))
    end)

    it("sends --header, --protocol and --origin, and offers --compress", function()
      local _, port = script_server([[
srv = ws.listen{ host = "127.0.0.1", port = 0, protocols = { "chat.v2" }, compress = true,
  on_message = function(c)
    local r = c.request
    c:send(table.concat({ r.headers["x-token"] or "-", r.origin or "-", c.protocol,
      c.extensions and "deflate" or "plain" }, " "))
  end,
  on_upgrade = function(req) local _ = req end, keep_request = true }]])
      local url = " ws://127.0.0.1:" .. port .. "/"
      local out, code = run_stdout("-H 'X-Token: abc' -p chat.v1 -p chat.v2 -o https://example.org --compress -x q"
        .. url)
      assert.equal(0, code)
      assert.equal("< abc https://example.org chat.v2 deflate\n", out)
      assert.equal("< - - chat.v2 plain\n", (run_stdout("-p chat.v2 -x q" .. url)))
    end)

    it("exits 1 when it cannot connect, with the reason on stderr", function()
      local out, code = run("--connect-timeout 2 -x hi ws://127.0.0.1:1/")
      assert.equal(1, code)
      assert.matches("cannot connect to 127.0.0.1 port 1: connection refused", out, 1, true)
      local _, port = script_server([[
srv = ws.listen{ host = "127.0.0.1", port = 0, on_upgrade = function() return false, 403, "Forbidden" end }]])
      out, code = run("-x hi ws://127.0.0.1:" .. port .. "/")
      assert.equal(1, code)
      assert.matches("expected status 101, got 403", out, 1, true)
    end)

    it("exits 3 when the server closes with another code, 0 for 1000", function()
      local _, port = net.spawn_echo_server()
      local url = " ws://127.0.0.1:" .. port .. "/"
      local out, code = run(url, "close:4001:go away\n")
      assert.equal(3, code)
      assert.matches("closed 4001 go away", out, 1, true)
      out, code = run(url, "close:1000:done\n")
      assert.equal(0, code)
      assert.matches("closed 1000 done", out, 1, true)
    end)

    it("exits 4 when --exec gets no reply within --wait", function()
      local _, port = script_server([[srv = ws.listen{ host = "127.0.0.1", port = 0 }]])
      local out, code = run("-w 0.3 -x anyone ws://127.0.0.1:" .. port .. "/")
      assert.equal(4, code)
      assert.matches("no reply within 0.3 s", out, 1, true)
    end)

    it("verifies TLS with --cafile, fails without it (exit 1), and --insecure says it is insecure", function()
      local _, port = net.spawn_echo_server("tls", certs.server_cert, certs.server_key)
      local url = " wss://localhost:" .. port .. "/"
      local out, code = run_stdout("--cafile " .. net.quote(certs.ca) .. " -x secure" .. url)
      assert.equal(0, code)
      assert.equal("< secure\n", out)
      out, code = run("-x secure" .. url)
      assert.equal(1, code)
      assert.matches("certificate verify failed for localhost", out, 1, true)
      out, code = run("--insecure -x secure" .. url)
      assert.equal(0, code)
      assert.matches("warning: --insecure", out, 1, true)
      assert.matches("< secure", out, 1, true)
    end)

    it("goes through --proxy, and --proxy none ignores HTTP_PROXY", function()
      local p = tinyproxy.start()
      local _, port = net.spawn_echo_server()
      local url = " ws://127.0.0.1:" .. port .. "/"
      assert.equal("< proxied\n", (run_stdout("--proxy " .. p.url .. " -x proxied" .. url)))
      assert.truthy(p:log():find("Established connection", 1, true))
      local out, code = run("--proxy none -x direct" .. url)
      assert.equal(0, code)
      assert.matches("< direct", out, 1, true)
      tinyproxy.stop_all()
    end)

    it("goes through an https:// proxy with --proxy-cafile; --proxy-insecure says it is insecure", function()
      local p = tinyproxy.start_tls{ cert = certs.self_cert, key = certs.self_key }
      local _, port = net.spawn_echo_server("tls", certs.server_cert, certs.server_key)
      local url = " wss://localhost:" .. port .. "/"
      local cafile = " --cafile " .. net.quote(certs.ca)
      assert.equal("< tunnelled\n", (run_stdout("--proxy " .. p.url .. " --proxy-cafile " ..
        net.quote(certs.self_cert) .. cafile .. " -x tunnelled" .. url)))
      assert.truthy(p:log():find("Established connection", 1, true))
      -- --cafile is the server's trust only: the proxy fails without its own.
      local out, code = run("--proxy " .. p.url .. cafile .. " -x x" .. url)
      assert.equal(1, code)
      assert.matches("proxy 127.0.0.1 port " .. p.tls_port .. ": TLS certificate verify failed", out, 1, true)
      out, code = run("--proxy " .. p.url .. " --proxy-insecure" .. cafile .. " -x insecure" .. url)
      assert.equal(0, code)
      assert.matches("warning: --proxy-insecure", out, 1, true)
      assert.matches("< insecure", out, 1, true)
      tinyproxy.stop_all()
    end)

    it("reaches ws+unix:// servers", function()
      local path = net.next_name("cli") .. ".sock"
      local ch = net.spawn_lua(([[
local ws = require "ws"
ws.listen{ unix = %q, on_message = function(c, d) c:send("unix:" .. d) end }
print("PORT 0")
ws.run()
]]):format(path))
      ch:wait_output("PORT (%d+)", 10)
      assert.equal("< unix:hi\n", (run_stdout("-x hi ws+unix://" .. path .. ":/x")))
    end)

    it("works in a terminal: typed lines are sent, Ctrl-D closes, exit 0", function()
      local _, port = net.spawn_echo_server()
      local cmd = ("(sleep 0.5; printf 'typed line\\n'; sleep 0.5; printf '\\004'; sleep 2) | " ..
        "script -qefc %s /dev/null"):format(net.quote(("LUA_PATH=%s LUA_CPATH=%s %s %s ws://127.0.0.1:%d/"):format(
        net.quote(package.path), net.quote(package.cpath), net.quote(net.lua_interpreter()), CLI, port)))
      local out, code = proc.sh(cmd, 20)
      assert.equal(0, code)
      out = out:gsub("\r", "")
      assert.matches("type a line to send it", out, 1, true)
      assert.matches("\n< typed line\n", out, 1, true)
      assert.matches("closed 1000", out, 1, true)
    end)
  end)

  describe("progress of long sends", function()
    local MIB8 = 8 * 1024 * 1024
    local big, port

    -- A server answering each message with its length (no 8 MiB echo to print).
    before_each(function()
      if not big then
        big = net.next_name("big") .. ".txt"
        net.write_file(big, string.rep("a", MIB8))
      end
      local _
      _, port = script_server([[
srv = ws.listen{ host = "127.0.0.1", port = 0,
  on_message = function(c, d) c:send("got " .. #d) end }]])
    end)

    local function env_cmd(args)
      return ("LUA_PATH=%s LUA_CPATH=%s %s %s %s"):format(net.quote(package.path), net.quote(package.cpath),
        net.quote(net.lua_interpreter()), CLI, args)
    end

    it("shows progress in a terminal: rewritten in place, then the total", function()
      local url = " ws://127.0.0.1:" .. port .. "/"
      local out, code = proc.sh("script -qefc " .. net.quote(env_cmd("--file " .. net.quote(big) .. url)) ..
        " /dev/null", 30)
      assert.equal(0, code)
      assert.matches("\r\27%[Klua%-ws: sending [%d.]+ [KMi]*B of 8%.0 MiB %(%d+%%%)", out)
      assert.matches("\r\27[Klua-ws: sent " .. MIB8 .. " bytes in ", out, 1, true)
      assert.matches("< got " .. MIB8, out, 1, true)
      -- --quiet and --no-progress turn it off.
      for _, flag in ipairs({ "--quiet", "--no-progress" }) do
        out, code = proc.sh("script -qefc " .. net.quote(env_cmd(flag .. " --file " .. net.quote(big) .. url)) ..
          " /dev/null", 30)
        assert.equal(0, code)
        assert.is_nil(out:find("sent " .. MIB8, 1, true), flag)
        assert.matches("< got " .. MIB8, out, 1, true)
      end
    end)

    it("shows none in a pipeline unless --progress, which prints plain lines", function()
      local url = " ws://127.0.0.1:" .. port .. "/"
      local out, code = run("--file " .. net.quote(big) .. url)
      assert.equal(0, code)
      assert.matches("< got " .. MIB8, out, 1, true)
      assert.matches("connected to", out, 1, true)
      assert.is_nil(out:find("sent " .. MIB8, 1, true))
      assert.is_nil(out:find("sending", 1, true))
      out, code = run("--progress --file " .. net.quote(big) .. url)
      assert.equal(0, code)
      assert.matches("\nlua%-ws: sent " .. MIB8 .. " bytes in [%d.]+ s", out)
      assert.is_nil(out:find("\27", 1, true))
      assert.is_nil(out:find("\r", 1, true))
      -- A long stdin line: the same display; short lines none.
      local cmd = ("head -c 300000 /dev/zero | tr '\\0' b | %s 2>&1"):format(env_cmd("--progress" .. url))
      out, code = proc.sh(cmd, 30)
      assert.equal(0, code)
      assert.matches("lua-ws: sent 300000 bytes in ", out, 1, true)
      assert.matches("< got 300000", out, 1, true)
      out, code = run("--progress" .. url, "short\n")
      assert.equal(0, code)
      assert.matches("< got 5", out, 1, true)
      assert.is_nil(out:find("sent ", 1, true))
    end)

    it("says 'send interrupted' when the connection ends first (exit 3)", function()
      -- The server fails the connection at the frame header (over max_message)
      -- and closes; 32 MiB cannot all sit in the socket buffers by then.
      local _, sport = script_server([[
srv = ws.listen{ host = "127.0.0.1", port = 0, max_message = 1000 }]])
      local huge = net.next_name("huge") .. ".txt"
      net.write_file(huge, string.rep("z", 32 * 1024 * 1024))
      local out, code = run("--progress --file " .. net.quote(huge) .. " ws://127.0.0.1:" .. sport .. "/")
      os.remove(huge)
      assert.equal(3, code)
      assert.matches("lua%-ws: send interrupted after [%d.]+ [KMi]*B of 32%.0 MiB\n", out)
      assert.is_nil(out:find("sent 33554432", 1, true))
    end)

    it("--file errors: unreadable, with --exec, text that is not UTF-8", function()
      local url = " ws://127.0.0.1:" .. port .. "/"
      local out, code = run("--file /nonexistent/file" .. url)
      assert.equal(2, code)
      assert.matches("--file: /nonexistent/file: No such file or directory", out, 1, true)
      out, code = run("--file " .. net.quote(big) .. " -x hi" .. url)
      assert.equal(2, code)
      assert.matches("--exec and --file cannot be used together", out, 1, true)
      local bin = net.next_name("bin") .. ".dat"
      net.write_file(bin, "\255\254binary")
      out, code = run("--file " .. net.quote(bin) .. url)
      assert.equal(2, code)
      assert.matches("invalid UTF-8 in a text message; send it as binary (use --binary)", out, 1, true)
      out, code = run("--binary --file " .. net.quote(bin) .. url)
      assert.equal(0, code)
      assert.matches("< got 8", out, 1, true)
    end)
  end)

  describe("server", function()
    it("--listen echoes to a lua-ws client in another process; the client's close is logged", function()
      local srv, port = cli_server()
      local out, code = run_stdout("-x ping-pong ws://127.0.0.1:" .. port .. "/room")
      assert.equal(0, code)
      assert.equal("< ping-pong\n", out)
      -- Status lines go to stderr.
      assert.truthy(net.wait_until(function() return srv:errors():find("closed 127%.0%.0%.1:%d+ 1000") end, 3))
      assert.matches("open 127%.0%.0%.1:%d+ /room", srv:errors())
      assert.matches("< ping-pong", srv:output(), 1, true)
    end)

    it("--listen --tls serves wss://", function()
      local _, port = cli_server("--tls", certs.server_cert, certs.server_key)
      local out, code = run_stdout("--cafile " .. net.quote(certs.ca) .. " -x tls wss://localhost:" .. port .. "/")
      assert.equal(0, code)
      assert.equal("< tls\n", out)
    end)

    it("--broadcast sends every client's message to every client", function()
      local _, port = cli_server("--broadcast")
      local url = "ws://127.0.0.1:" .. port .. "/"
      local listener = assert(net.connect(url))
      local out, code = run_stdout("-x to-all " .. url)
      assert.equal(0, code)
      assert.equal("< to-all\n", out)
      assert.same({ "to-all", "text" }, { listener:receive(3) })
    end)

    it("exits 1 when it cannot listen", function()
      local _, port = cli_server()
      local out, code = run("--listen " .. port)
      assert.equal(1, code)
      assert.matches("cannot listen", out, 1, true)
    end)
  end)

  describe("with the Node ws peer", function()
    local ok_deps = false
    setup(function()
      local _, code = proc.sh("bash scripts/interop_deps.sh node-ws", 900)
      ok_deps = code == 0
    end)

    local function node(src, ...)
      local file = net.next_name("node") .. ".js"
      net.write_file(file, "const WS = require(" .. ("%q"):format(
        (os.getenv("PWD") or ".") .. "/build/interop-node/node_modules/ws") .. ");\n" .. src)
      local argv = { "node", file }
      for i = 1, select("#", ...) do argv[#argv + 1] = select(i, ...) end
      return proc.start("node", argv)
    end

    it("lua-ws --exec against a Node ws echo server", function()
      assert.is_true(ok_deps, "scripts/interop_deps.sh node-ws failed")
      local p = node([[
const wss = new WS.WebSocketServer({ host: "127.0.0.1", port: 0 }, () => console.log("PORT " + wss.address().port));
wss.on("connection", (s) => s.on("message", (d, bin) => s.send(bin ? d : "node:" + d.toString(), { binary: bin })));
]])
      local port = p:wait_for("PORT (%d+)")
      local out, code = run_stdout("ws://127.0.0.1:" .. port .. "/", "a\nb\n")
      assert.equal(0, code)
      assert.equal("< node:a\n< node:b\n", out)
      local bin = run_stdout("-b -x \"$(printf '\\001\\002')\" ws://127.0.0.1:" .. port .. "/")
      assert.equal("< [binary 2 bytes] 0102\n", bin)
    end)

    it("a Node ws client against lua-ws --listen", function()
      assert.is_true(ok_deps, "scripts/interop_deps.sh node-ws failed")
      local _, port = cli_server()
      local p = node([[
const s = new WS.WebSocket("ws://127.0.0.1:" + process.argv[2] + "/node");
s.on("open", () => s.send("from node"));
s.on("message", (d) => { console.log("GOT " + d.toString()); s.close(1000); });
s.on("close", (code) => console.log("CLOSE " + code));
]], port)
      assert.equal("from node", p:wait_for("GOT ([^\n]+)"))
      assert.equal("1000", p:wait_for("CLOSE (%d+)"))
    end)
  end)
end)
