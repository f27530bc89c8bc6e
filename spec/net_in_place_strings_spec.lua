-- A large message (one frame of 128 KiB or more that spans reads) is
-- received into a block laid out as the Lua string it becomes, and the
-- string is made in that block: no copy.  What is checked: every byte of
-- every message, text and binary, at lengths that end on every byte of a
-- word (LuaJIT clears a string's last word before it copies into it, so
-- there only lengths that are a multiple of 4 are made in place); how many
-- strings were made in place (ws.keep_large_blocks' fourth value; builds
-- for ASan and valgrind copy instead, as those report the copy onto
-- itself); the end of a message arriving with the next frame; and the block
-- given back when a message never completes (the connection reset
-- mid-message, its loop closed).  The echo server and its client run in
-- two child processes, so the client's strings do not meet the server's
-- (LuaJIT and Lua 5.1 intern strings: an equal one is reused, not made).
-- Lua 5.1 compatible.

local ws = require "ws"
local net = require "spec.helpers.net_util"

local MiB = 1024 * 1024
local COPIES = os.getenv("WS_TEST_VARIANT") == "sanitize" or os.getenv("WS_TEST_VARIANT") == "valgrind"

local function in_place() return select(4, ws.keep_large_blocks()) end

-- Echoes every message; "stats" answers with ws.keep_large_blocks()'s
-- fourth value and how many messages came.
local SERVER = [==[
local ws = require "ws"
local n = 0
local srv = ws.listen { host = "127.0.0.1", port = 0, max_message = 16 * 1024 * 1024,
  on_message = function(c, data, binary)
    if data == "stats" then
      local _, _, _, in_place = ws.keep_large_blocks()
      c:send(("%d %d"):format(in_place, n))
      return
    end
    n = n + 1
    c:send(data, binary and "binary" or "text")
  end }
print("PORT " .. srv.port)
ws.run()
]==]

-- The client: sends each size as text and as binary, checks every byte of
-- every echo, then asks for the server's count.  Prints
-- "RESULT <sent> <bad> <server in place> <client in place> <expected>":
-- expected counts the messages whose length can be made in place here
-- (LuaJIT: a multiple of 4).  A message of n bytes differs for each i (a
-- text one ends in a two-byte character, so a lost last byte is invalid
-- UTF-8).
local CLIENT = [==[
local ws = require "ws"
local MiB = 1024 * 1024
local sizes = { MiB, MiB + 1, MiB + 2, MiB + 3, 4 * MiB + 5, 300 * 1024 + 7, 16 * MiB }
local function message(i, n, kind)
  local head = ("%06d:"):format(i)
  if kind == "text" then return head .. string.rep(string.char(97 + i % 26), n - #head - 2) .. "\195\169" end
  return head .. string.rep(string.char(i % 256), n - #head)
end
local sent, bad, expected, echoed, stats = 0, 0, 0, nil, nil
local c = assert(ws.connect("ws://127.0.0.1:" .. arg[1] .. "/", { max_message = 16 * MiB,
  on_message = function(_, data, binary)
    if not binary and data:match("^%d+ %d+$") then stats = data else echoed = { data, binary } end
  end }))
while c.ready_state == "CONNECTING" do ws.step(0.1) end
for _, n in ipairs(sizes) do
  if not rawget(_G, "jit") or n % 4 == 0 then expected = expected + 2 end
  for _, kind in ipairs { "text", "binary" } do
    sent = sent + 1
    echoed = nil
    assert(c:send(message(sent, n, kind), kind))
    collectgarbage(); collectgarbage() -- (the message gone: no equal string for LuaJIT or 5.1 to find)
    while not echoed do ws.step(1) end
    if echoed[1] ~= message(sent, n, kind) or echoed[2] ~= (kind == "binary") then bad = bad + 1 end
  end
end
c:send("stats")
while not stats do ws.step(1) end
print(("RESULT %d %d %s %d %d"):format(sent, bad, stats:match("^%d+"), select(4, ws.keep_large_blocks()), expected))
c:close()
]==]

describe("large messages made into strings where they arrived", function()
  after_each(net.cleanup)

  it("delivers every byte of text and binary messages, and makes them in place", function()
    local server = net.spawn_lua(SERVER)
    local port = server:wait_output("PORT (%d+)", 15)
    assert.is_truthy(port, server:errors())
    local client = net.spawn_lua(CLIENT, port)
    local line = client:wait_output("(RESULT [%d ]+)", 120)
    assert.is_truthy(line, client:output() .. client:errors())
    local sent, bad, on_server, on_client, expected = line:match("RESULT (%d+) (%d+) (%d+) (%d+) (%d+)")
    sent, bad, on_server, on_client, expected = tonumber(sent), tonumber(bad), tonumber(on_server),
      tonumber(on_client), tonumber(expected)
    assert.equal(14, sent)
    assert.equal(0, bad)
    for _, made in ipairs { on_server, on_client } do
      if COPIES then
        assert.equal(0, made)
      else -- all but the first (which turns the block cache on), when they span reads
        assert.is_true(made >= expected - 3 and made <= expected, "made in place: " .. made .. " of " .. expected)
      end
    end
  end)

  it("makes a message in place when its last bytes arrive in one read with the next frame", function()
    local got = {}
    local srv = net.listen { max_message = 16 * MiB,
      on_message = function(_, data) got[#got + 1] = data end }
    local r = assert(net.raw_connect(srv.port))
    r:handshake(srv.port)
    r:send(net.client_frame(2, string.rep("a", MiB))) -- turns the block cache on
    assert.truthy(net.wait_until(function() return #got == 1 end, 20))
    -- Built, then collected: no equal string for LuaJIT or 5.1 to find.
    local frame = net.client_frame(2, string.rep("tail", MiB)) .. net.client_frame(1, "next")
    for _ = 1, 2 do collectgarbage() end
    local before = in_place()
    r:send(frame:sub(1, #frame - 8192 - 6 - 4))
    net.run_for(0.2)
    assert.equal(1, #got)
    r:send(frame:sub(#frame - 8192 - 6 - 4 + 1)) -- the last 8 KiB and the next frame, in one write
    assert.truthy(net.wait_until(function() return #got == 3 end, 20))
    assert.equal(4 * MiB, #got[2])
    assert.is_true(got[2] == string.rep("tail", MiB))
    assert.equal("next", got[3])
    assert.equal(COPIES and 0 or 1, in_place() - before)
  end)

  it("gives the block back when the connection is reset or its loop closed mid-message", function()
    for _, how in ipairs { "reset", "loop" } do
      local closes, got = {}, {}
      local srv = net.listen { max_message = 16 * MiB,
        on_message = function(_, data) got[#got + 1] = #data end,
        on_close = function(_, code) closes[#closes + 1] = code end }
      -- A first large message turns the block cache on; the second stops halfway.
      local r = assert(net.raw_connect(srv.port))
      r:handshake(srv.port)
      r:send(net.client_frame(2, string.rep("a", MiB)))
      assert.truthy(net.wait_until(function() return #got == 1 end, 20))
      local frame = net.client_frame(2, string.rep("b", 4 * MiB))
      r:send(frame:sub(1, 2 * MiB))
      net.run_for(0.2)
      if how == "reset" then
        r:reset()
        assert.truthy(net.wait_until(function() return #closes == 1 end, 10))
        assert.same({ 1006 }, closes)
      else
        ws.loop():close()
        assert.equal(1, #closes) -- (1006: no close frame fits in the middle of a message)
        r:close()
      end
      assert.same({ MiB }, got)
    end
  end)
end)
