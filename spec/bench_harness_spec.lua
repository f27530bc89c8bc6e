-- The benchmark harness against lua-ws, briefly: bench/loadgen.c is built
-- here and drives bench/servers/luaws_callback.lua (a child process, port 0)
-- in every mode `make bench` uses.  The load generator checks every byte of
-- every echo (sequence numbers and the bytes between), so these are
-- correctness runs of lua-ws under concurrent load and a guard against the
-- harness rotting; nothing here is timed.
local net = require "spec.helpers.net_util"
local proc = require "spec.helpers.proc"

local quote = net.quote

-- Key=value pairs of the load generator's one line of output.
local function fields(line)
  local t = {}
  for k, v in line:gmatch("(%S+)=(%S+)") do t[k] = tonumber(v) or v end
  return t
end

describe("bench harness (load generator against lua-ws)", function()
  local loadgen

  setup(function()
    loadgen = net.tmpdir() .. "/loadgen"
    -- no sanitizer preload for gcc or the load generator (only lua-ws is instrumented)
    local out, code = proc.sh(("LD_PRELOAD= gcc -O1 -Wall -Wextra -Werror -o %s bench/loadgen.c -lssl -lcrypto -lz")
      :format(quote(loadgen)), 120)
    assert(code == 0, "building bench/loadgen.c failed:\n" .. out)
  end)

  after_each(function() proc.stop_all() end)

  local function server(...)
    local p = proc.lua("bench/servers/luaws_callback.lua", ...)
    return p, tonumber(p:wait_for("listening on ws://127%.0%.0%.1:(%d+)/")), p.pid
  end

  -- Run the load generator; its fields, or (on failure) nil and what it said.
  local function run(port, pid, args)
    local cmd = ("LD_PRELOAD= %s %s --port %d --server-pid %d"):format(quote(loadgen), args, port, pid)
    local out, code = proc.sh(cmd, 60)
    if code ~= 0 then return nil, out end
    return fields(out), out
  end

  it("echoes 32-byte binary messages on 20 connections, in order and complete", function()
    local _, port, pid = server("0")
    local r = assert(run(port, pid, "echo -c 20 -s 32 -d 0.3"))
    assert.is_true(r.msgs > 20, "messages echoed: " .. tostring(r.msgs))
  end)

  it("echoes 64 KiB and 1 MiB messages (throughput mode)", function()
    local _, port, pid = server("0")
    for _, size in ipairs { 65536, 1048576 } do
      local r = assert(run(port, pid, "throughput -s " .. size .. " -d 0.3"))
      assert.is_true(r.msgs >= 2, size .. " bytes: messages echoed: " .. tostring(r.msgs))
      assert.are.equal(size, r.size)
    end
  end)

  it("echoes 4 MiB messages on 4 connections, 1 in flight each (throughput mode)", function()
    local _, port, pid = server("0")
    local r = assert(run(port, pid, "throughput -c 4 -w 1 -s 4194304 -d 0.5"))
    assert.is_true(r.msgs >= 4, "messages echoed: " .. tostring(r.msgs))
    assert.are.equal(4194304, r.size)
  end)

  -- A raw TCP echo (python3) that flips one bit at stream offset FLIP (-1:
  -- none), as the raw floor runs with --raw.
  local raw_echo = [[
import socket, sys
flip = int(sys.argv[1])
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(1)
print("listening on ws://127.0.0.1:%d/" % s.getsockname()[1], flush=True)
c, _ = s.accept()
buf = b""
while b"\r\n\r\n" not in buf:
    buf += c.recv(65536)
c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
data, n = buf.split(b"\r\n\r\n", 1)[1], 0
while True:
    b = bytearray(data)
    if n <= flip < n + len(b):
        b[flip - n] ^= 1
    n += len(b)
    c.sendall(bytes(b))
    data = c.recv(1 << 20)
    if not data:
        break
]]

  for _, case in ipairs { { flip = -1 }, { flip = 300000, what = "one bit flipped mid-message" } } do
    it("--raw: " .. (case.what and "fails on an echo with " .. case.what or "passes an intact echo"), function()
      local p = proc.start("raw echo", { "python3", "-c", raw_echo, tostring(case.flip) })
      local port = tonumber(p:wait_for("listening on ws://127%.0%.0%.1:(%d+)/"))
      local r, out = run(port, p.pid, "throughput -c 1 -w 1 -s 1048576 -d 0.3 --raw")
      if case.what then
        assert.is_nil(r)
        assert.matches("echo of message 0 differs from what was sent", out)
      else
        assert(r, out)
        assert.is_true(r.msgs >= 1)
      end
    end)
  end

  it("echoes JSON-like text byte for byte, uncompressed", function()
    local _, port, pid = server("0")
    local r = assert(run(port, pid, "echo -c 10 -s 4096 -d 0.3 --json"))
    assert.is_true(r.msgs > 10)
    assert.are.equal(0, r.deflate)
    assert.are.equal(4096, r.wire_bytes_per_msg)
  end)

  for _, option in ipairs { "--deflate", "--deflate-small" } do
    it("echoes permessage-deflate messages byte for byte, compressed both ways (server " .. option .. ")",
      function()
        local _, port, pid = server(option, "0")
        local r = assert(run(port, pid, "echo -c 10 -s 4096 -d 0.3 --deflate"))
        assert.is_true(r.msgs > 10)
        assert.are.equal(1, r.compressed_frac) -- every echo came back compressed
        assert.is_true(r.wire_bytes_per_msg < 2048, "wire bytes per message: " .. r.wire_bytes_per_msg)
      end)
  end

  it("fails --deflate against a server that does not accept permessage-deflate", function()
    local _, port, pid = server("0")
    local r, out = run(port, pid, "echo -c 2 -s 4096 -d 0.3 --deflate")
    assert.is_nil(r)
    assert.matches("did not accept permessage%-deflate", out)
  end)

  it("runs handshake cycles and holds idle connections", function()
    local _, port, pid = server("0")
    local h = assert(run(port, pid, "handshake -c 5 -d 0.3"))
    assert.is_true(h.cycles > 5, "cycles: " .. tostring(h.cycles))
    -- idle fails unless all 200 open and echo; -1 means /proc of the server was not read
    local i = assert(run(port, pid, "idle -n 200"))
    assert.is_true(i.server_anon_before_kb > 0 and i.server_anon_after_kb > 0)
  end)
end)
