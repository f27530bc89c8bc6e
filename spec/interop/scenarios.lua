-- The interoperability scenario matrix shared by every peer spec
-- (spec/interop/*_spec.lua).  Every peer program (spec/interop/peers/)
-- implements the same two roles with the same conventions:
--
-- Peer server:  `<peer> server [CERT KEY]` prints "PORT <n>" (and
-- "TLSPORT <n>" with a certificate) and serves every path:
--   * "/reject" is refused with 403;
--   * the subprotocol "chat.v1" is chosen when the client offers it;
--   * a text message "close:<code>:<reason>" closes with that code/reason;
--   * "frag:<kind>:<size>:<parts>" answers payload(size, kind) sent as
--     <parts> fragments of one message;
--   * "ping:<payload>" sends a ping with that payload, then the text
--     "pong:<payload>" once the pong came back ("pinged:<payload>" when the
--     peer's API cannot see pongs);
--   * "header:<name>" answers the value of that request header (or "");
--   * "ext:" answers the Sec-WebSocket-Extensions value the peer negotiated
--     ("" when none), "stats:" answers "in=<n> out=<n>", the bytes the
--     connection read and wrote on the wire (compressed column only);
--   * anything else is echoed with the same kind;
--   * every close is printed as "CLOSE <path> <code> <reason>".
--
-- Peer client:  `<peer> client WS_BASE WSS_BASE CAFILE SCENARIO...` runs
-- each scenario against WS_BASE .. "/" .. SCENARIO (the lua-ws server in the
-- spec, with the same conventions as the peer server) and prints
-- "RESULT <scenario> ok", "RESULT <scenario> fail <why>" or
-- "RESULT <scenario> na <why>" (the peer's API cannot do it).
--
-- Scenario names are the same on both sides; adding one means an entry
-- here plus the peers' client branch.
--
-- The compressed column (M.deflate_names, "deflate_*") runs with
-- permessage-deflate negotiated: the peer server always accepts it, the
-- peer client offers it for "deflate_*" scenarios (with the parameters of
-- M.DEFLATE_OFFER) and connects to $INTEROP_BASE_<scenario> when set (a
-- lua-ws server with other compress options), else WS_BASE; it checks the
-- extensions it negotiated and prints "EXT <scenario> <value>".
-- Lua 5.1 compatible.
local net = require "spec.helpers.net_util"
local ws = require "ws"
local assert = require "luassert"

local M = {}

M.SIZES = {
  { "0", 0 }, { "125", 125 }, { "126", 126 }, { "65535", 65535 }, { "65536", 65536 }, { "8MiB", 8 * 1024 * 1024 },
}

-- Deterministic payloads, the same in every peer program.
function M.payload(n, kind)
  return net.payload(n, kind)
end
M.UTF8 = string.rep("a\195\169\226\152\131\240\157\132\158", 1000) -- "aé☃𝄞" x 1000
M.PROTOCOL = "chat.v1"
M.OFFER = { "x.unknown", "chat.v1" }
M.HEADER_VALUE = "interop-value-42"
M.BURST = 1000
M.PING_FROM_LUA = "ping-from-lua"
M.PING_FROM_PEER = "ping-from-peer"
M.CLOSE_FROM_LUA = { 4002, "bye from lua" }
M.CLOSE_FROM_PEER = { 4001, "bye from peer" }

-- The scenario names, in run order.
M.names = {}
for _, kind in ipairs { "text", "binary" } do
  for _, s in ipairs(M.SIZES) do M.names[#M.names + 1] = kind .. "_" .. s[1] end
end
for _, n in ipairs { "utf8", "fragments_from_lua", "fragments_from_peer", "ping", "close_from_lua", "close_from_peer",
  "subprotocol", "headers", "wss", "reject", "burst" } do
  M.names[#M.names + 1] = n
end

local function size_of(name)
  local kind, label = name:match("^(%a+)_(%w+)$")
  for _, s in ipairs(M.SIZES) do
    if s[1] == label and (kind == "text" or kind == "binary") then return kind, s[2] end
  end
end
M.size_of = size_of

local function check_same(got, want, what)
  local ok, why = net.same(got, want)
  if not ok then error((what or "message") .. " differs: " .. tostring(why), 2) end
end

---------------------------------------------------------------------------
-- Direction 1: lua-ws client -> peer server.
-- ctx = {base = "ws://127.0.0.1:<port>", wss = "wss://localhost:<tlsport>",
--        cafile = ..., peer = proc (its stdout has the CLOSE lines)}

local function connect(ctx, name, opts)
  opts = opts or {}
  if opts.timeout == nil then opts.timeout = 10 end
  local c, err, info = ws.connect(ctx.base .. "/" .. name, opts)
  if not c then
    local status = info and info.status and (" status " .. info.status) or ""
    error("connect " .. name .. ": " .. tostring(err) .. status, 2)
  end
  net.track_conn(c)
  return c
end

local function recv(c, timeout, what)
  local data, kind, code, reason = c:receive(timeout or 20)
  if data == nil then
    error("no " .. (what or "message") .. ": " .. tostring(kind) .. " " .. tostring(code) .. " " .. tostring(reason), 2)
  end
  return data, kind
end

local function close_ok(c)
  c:close(1000, "done")
  assert(net.wait_until(function() return c.ready_state == "CLOSED" end, 10), "close handshake did not finish")
  assert.equals(1000, c.close_code)
  assert.is_true(c.was_clean)
end

local client = {}
M.client = client

local function echo_case(name)
  local kind, n = size_of(name)
  return function(ctx)
    local c = connect(ctx, name)
    local want = M.payload(n, kind)
    assert.is_true(c:send(want, kind))
    local got, gkind = recv(c, 60)
    check_same(got, want)
    assert.equals(kind, gkind)
    close_ok(c)
  end
end
for _, name in ipairs(M.names) do
  if size_of(name) then client[name] = echo_case(name) end
end

function client.utf8(ctx)
  local c = connect(ctx, "utf8")
  assert.is_true(c:send(M.UTF8, "text"))
  local got, kind = recv(c)
  check_same(got, M.UTF8)
  assert.equals("text", kind)
  close_ok(c)
end

function client.fragments_from_lua(ctx)
  local c = connect(ctx, "fragments_from_lua")
  local want = M.payload(300, "text")
  assert.is_true(c:send_fragment(want:sub(1, 100), false, "text"))
  assert.is_true(c:send_fragment(want:sub(101, 200), false))
  assert.is_true(c:send_fragment(want:sub(201), true))
  assert.is_true(c:send("after", "text"))
  local got, kind = recv(c)
  check_same(got, want)
  assert.equals("text", kind)
  assert.equals("after", (recv(c)))
  close_ok(c)
end

function client.fragments_from_peer(ctx)
  local c = connect(ctx, "fragments_from_peer")
  assert.is_true(c:send("frag:binary:300:3"))
  local got, kind = recv(c)
  check_same(got, M.payload(300, "binary"))
  assert.equals("binary", kind)
  assert.is_true(c:send("after"))
  assert.equals("after", (recv(c)))
  close_ok(c)
end

function client.ping(ctx)
  local c = connect(ctx, "ping")
  local pongs, pings = {}, {}
  c.on_pong = function(_, p) pongs[#pongs + 1] = p end
  c.on_ping = function(_, p) pings[#pings + 1] = p end
  assert.is_true(c:ping(M.PING_FROM_LUA))
  assert.truthy(net.wait_until(function() return #pongs > 0 end, 10), "no pong from the peer")
  assert.same({ M.PING_FROM_LUA }, pongs)
  assert.is_true(c:send("ping:" .. M.PING_FROM_PEER))
  local got = recv(c)
  assert.same({ M.PING_FROM_PEER }, pings)
  if got ~= "pinged:" .. M.PING_FROM_PEER then -- the peer could not observe pongs
    assert.equals("pong:" .. M.PING_FROM_PEER, got)
  end
  close_ok(c)
end

function client.close_from_lua(ctx)
  local c = connect(ctx, "close_from_lua")
  local code, reason = M.CLOSE_FROM_LUA[1], M.CLOSE_FROM_LUA[2]
  c:close(code, reason)
  assert(net.wait_until(function() return c.ready_state == "CLOSED" end, 10), "close handshake did not finish")
  assert.is_true(c.was_clean)
  assert.equals(code, c.close_code)
  local pc, pr = ctx.peer:wait_for("CLOSE /close_from_lua (%d+) ([^\n]*)\n", 10)
  assert.equals(code, tonumber(pc))
  assert.equals(reason, pr)
end

function client.close_from_peer(ctx)
  local c = connect(ctx, "close_from_peer")
  local code, reason = M.CLOSE_FROM_PEER[1], M.CLOSE_FROM_PEER[2]
  assert.is_true(c:send("close:" .. code .. ":" .. reason))
  local data, err, gcode, greason = c:receive(10)
  assert.is_nil(data)
  assert.equals("closed", err)
  assert.equals(code, gcode)
  assert.equals(reason, greason)
  assert(net.wait_until(function() return c.ready_state == "CLOSED" end, 10))
  assert.is_true(c.was_clean)
end

function client.subprotocol(ctx)
  local c = connect(ctx, "subprotocol", { protocols = M.OFFER })
  assert.equals(M.PROTOCOL, c.protocol)
  assert.is_true(c:send("x"))
  assert.equals("x", (recv(c)))
  close_ok(c)
end

function client.headers(ctx)
  local c = connect(ctx, "headers", { headers = { ["X-Interop"] = M.HEADER_VALUE } })
  assert.is_true(c:send("header:x-interop"))
  assert.equals(M.HEADER_VALUE, (recv(c)))
  close_ok(c)
end

function client.wss(ctx)
  if not ctx.wss then error("the peer server has no TLS port") end
  local c, err = ws.connect(ctx.wss .. "/wss", { timeout = 10, tls = { cafile = ctx.cafile } })
  assert(c, "wss connect: " .. tostring(err))
  net.track_conn(c)
  assert.is_true(c:send("hello tls"))
  assert.equals("hello tls", (recv(c)))
  local big = M.payload(65536, "binary")
  assert.is_true(c:send(big, "binary"))
  check_same((recv(c)), big)
  close_ok(c)
end

function client.reject(ctx)
  local c, err, info = ws.connect(ctx.base .. "/reject", { timeout = 10 })
  assert.is_nil(c)
  assert.matches("403", tostring(err))
  assert.equals(403, info and info.status)
end

function client.burst(ctx)
  local c = connect(ctx, "burst")
  for i = 1, M.BURST do assert.is_true(c:send("burst " .. i)) end
  for i = 1, M.BURST do
    assert.equals("burst " .. i, (recv(c, 20, "burst message " .. i)))
  end
  close_ok(c)
end

---------------------------------------------------------------------------
-- Direction 2: peer client -> lua-ws server.  The lua-ws server of one spec
-- file records what each path saw; server_checks[name](rec) asserts it
-- after the peer printed its RESULT line.

-- Start the lua-ws servers (plain and TLS).  Returns a state table:
-- {srv, tls_srv, base, wss, cafile, rec = {[path] = record}}.
-- compress: nil for the plain column, else the `compress` option of the
-- servers and {[scenario] = compress} for the extra servers whose bases are
-- st.bases[scenario] (M.start_lua_deflate_server).
function M.start_lua_server(certs, compress, extra)
  local st = { rec = {}, bases = {} }
  local function rec_for(path)
    local r = st.rec[path]
    if not r then
      r = { messages = {}, pings = {}, pongs = {}, closes = {}, opens = 0, upgrades = 0 }
      st.rec[path] = r
    end
    return r
  end
  st.rec_for = rec_for
  local function opts(tls, comp)
    return {
      host = "127.0.0.1", port = 0, tls = tls, protocols = { M.PROTOCOL }, compress = comp,
      max_message = 16 * 1024 * 1024,
      keep_request = true, -- the headers scenario echoes a request header later
      -- a page on the server's own origin, for the browser peer (Chromium
      -- blocks about:blank from reaching loopback addresses)
      on_request = function(_, res)
        res.status = 200
        res.headers = { ["Content-Type"] = "text/html; charset=utf-8" }
        res.body = "<!doctype html><title>lua-ws interop</title>\n"
      end,
      on_upgrade = function(req)
        local r = rec_for(req.path)
        r.upgrades = r.upgrades + 1
        r.headers = req.headers
        if req.path == "/reject" then return false, 403, "rejected by the interop spec" end
      end,
      on_open = function(c)
        local r = rec_for(c.path)
        r.opens = r.opens + 1
        r.protocol = c.protocol
        r.extensions = c.extensions
      end,
      on_ping = function(c, p) table.insert(rec_for(c.path).pings, p) end,
      on_pong = function(c, p)
        table.insert(rec_for(c.path).pongs, p)
        c:send("pong:" .. p)
      end,
      on_message = function(c, data, is_binary)
        local kind = is_binary and "binary" or "text"
        local r = rec_for(c.path)
        r.messages[#r.messages + 1] = { data, kind }
        if not is_binary then
          local code, reason = data:match("^close:(%d+):(.*)$")
          if code then c:close(tonumber(code), reason) return end
          local fkind, size, parts = data:match("^frag:(%a+):(%d+):(%d+)$")
          if fkind then
            local p = M.payload(tonumber(size), fkind)
            parts = tonumber(parts)
            local step = math.ceil(#p / parts)
            for i = 1, parts do
              c:send_fragment(p:sub((i - 1) * step + 1, i * step), i == parts, i == 1 and fkind or nil)
            end
            return
          end
          local pp = data:match("^ping:(.*)$")
          if pp then c:ping(pp) return end
          local h = data:match("^header:(.*)$")
          if h then c:send(c.request and c.request.headers and c.request.headers[h:lower()] or "") return end
        end
        c:send(data, kind)
      end,
      on_close = function(c, code, reason, was_clean)
        table.insert(rec_for(c.path).closes, { code, reason, was_clean })
      end,
    }
  end
  st.srv = net.listen(opts(nil, compress))
  st.tls_srv = net.listen(opts({ cert = certs.server_cert, key = certs.server_key }, compress))
  for name, comp in pairs(extra or {}) do
    st.bases[name] = "ws://127.0.0.1:" .. net.listen(opts(nil, comp)).port
  end
  st.base = "ws://127.0.0.1:" .. st.srv.port
  st.wss = "wss://localhost:" .. st.tls_srv.port
  st.cafile = certs.ca
  st.server_cert = certs.server_cert
  return st
end

local server_checks = {}
M.server_checks = server_checks

local function one_message(rec, want, kind)
  assert.equals(1, #rec.messages, "messages seen by the lua-ws server")
  check_same(rec.messages[1][1], want, "message seen by the lua-ws server")
  assert.equals(kind, rec.messages[1][2])
end

local function closed_normally(rec)
  assert.truthy(net.wait_until(function() return #rec.closes > 0 end, 5), "the lua-ws server saw no close")
  assert.is_true(rec.closes[1][3], "close was not clean")
end

for _, name in ipairs(M.names) do
  local kind, n = size_of(name)
  if kind then
    server_checks[name] = function(rec)
      one_message(rec, M.payload(n, kind), kind)
      closed_normally(rec)
    end
  end
end

function server_checks.utf8(rec)
  one_message(rec, M.UTF8, "text")
end

function server_checks.fragments_from_lua(rec)
  assert.equals("frag:binary:300:3", rec.messages[1][1])
end

function server_checks.fragments_from_peer(rec)
  one_message(rec, M.payload(300, "text"), "text")
end

-- ping: opts.peer_pings = false when the peer's API cannot send pings.
function server_checks.ping(rec, opts)
  if not (opts and opts.peer_pings == false) then
    assert.same({ M.PING_FROM_PEER }, rec.pings)
  end
  assert.same({ M.PING_FROM_LUA }, rec.pongs)
end

function server_checks.close_from_lua(rec)
  assert.truthy(net.wait_until(function() return #rec.closes > 0 end, 5))
  assert.equals(M.CLOSE_FROM_LUA[1], rec.closes[1][1])
  assert.equals(M.CLOSE_FROM_LUA[2], rec.closes[1][2])
  assert.is_true(rec.closes[1][3])
end

function server_checks.close_from_peer(rec)
  assert.truthy(net.wait_until(function() return #rec.closes > 0 end, 5))
  assert.equals(M.CLOSE_FROM_PEER[1], rec.closes[1][1])
  assert.equals(M.CLOSE_FROM_PEER[2], rec.closes[1][2])
  assert.is_true(rec.closes[1][3])
end

function server_checks.subprotocol(rec)
  assert.equals(M.PROTOCOL, rec.protocol)
end

function server_checks.headers(rec)
  assert.equals(M.HEADER_VALUE, rec.headers and rec.headers["x-interop"])
end

function server_checks.wss(rec)
  assert.equals(1, rec.opens)
  assert.equals("hello tls", rec.messages[1] and rec.messages[1][1])
end

function server_checks.reject(rec)
  assert.equals(1, rec.upgrades)
  assert.equals(0, rec.opens)
end

function server_checks.burst(rec)
  assert.equals(M.BURST, #rec.messages)
  for i = 1, M.BURST do
    if rec.messages[i][1] ~= "burst " .. i then
      error("burst message " .. i .. " is " .. tostring(rec.messages[i][1]))
    end
  end
end

---------------------------------------------------------------------------
-- The compressed column: the same kinds of exchanges with permessage-deflate
-- negotiated ("deflate_*" scenarios, both directions).

M.DEFLATE_SIZES = { "text_0", "text_125", "text_65536", "text_8MiB", "binary_125", "binary_65536" }
M.JSON_SIZE = 1024 * 1024
M.NCT_REPEAT = 3   -- deflate_no_context_takeover: the same message this many times
M.NCT_SIZE = 20000
M.deflate_names = {}
for _, n in ipairs(M.DEFLATE_SIZES) do M.deflate_names[#M.deflate_names + 1] = "deflate_" .. n end
for _, n in ipairs { "utf8", "json_1MiB", "fragments_from_lua", "fragments_from_peer", "burst", "close_from_lua",
  "close_from_peer", "no_context_takeover", "window_bits_10" } do
  M.deflate_names[#M.deflate_names + 1] = "deflate_" .. n
end

-- lua-ws client `compress` per scenario (default true).  threshold = 0
-- compresses the small messages too.
M.DEFLATE_CLIENT = {
  deflate_text_0 = { threshold = 0 },
  deflate_text_125 = { threshold = 0 },
  deflate_binary_125 = { threshold = 0 },
  deflate_burst = { threshold = 0 },
  deflate_close_from_peer = { threshold = 0 },
  deflate_no_context_takeover = { threshold = 0, client_no_context_takeover = true, server_no_context_takeover = true },
  deflate_window_bits_10 = { server_max_window_bits = 10 },
}
-- lua-ws servers of the peer-client direction: the default one, and one
-- per scenario that needs other options (their bases go to the peer client
-- as $INTEROP_BASE_<scenario>).
M.DEFLATE_SERVER = { threshold = 0 }
M.DEFLATE_SERVER_EXTRA = {
  deflate_no_context_takeover = { threshold = 0, server_no_context_takeover = true, client_no_context_takeover = true },
  deflate_window_bits_10 = { threshold = 0, server_max_window_bits = 10, client_max_window_bits = 10 },
}

-- "[{"id":1,"name":"user-1","active":false,"score":37},{"id":2,...", cut to n bytes.
function M.json_payload(n)
  local parts, len, i = { "[" }, 1, 0
  while len < n do
    i = i + 1
    local r = ('{"id":%d,"name":"user-%d","active":%s,"score":%d},'):format(i, i, i % 2 == 0 and "true" or "false",
      (i * 37) % 100)
    parts[#parts + 1] = r
    len = len + #r
  end
  return table.concat(parts):sub(1, n)
end

-- 3000 pseudo-random bytes (x = (75x + 74) mod 65537 from x = 1, low byte)
-- repeated 20 times: the repeats are 3000 bytes apart, beyond a 1 KiB window.
function M.window_payload()
  local b, x = {}, 1
  for i = 1, 3000 do
    x = (x * 75 + 74) % 65537
    b[i] = string.char(x % 256)
  end
  return table.concat(b):rep(20)
end

local function has(ext, what)
  return (" " .. tostring(ext) .. ";"):find("[ ;,]" .. what:gsub("%-", "%%-") .. "[ ;,=]") ~= nil
end
M.has_param = has

local function dconnect(ctx, name)
  local c = connect(ctx, name, { compress = M.DEFLATE_CLIENT[name] or true })
  assert(has(c.extensions, "permessage-deflate"), "lua-ws did not negotiate permessage-deflate: " .. c.extensions)
  assert.is_true(c:send("ext:"))
  local peer_ext = recv(c, 10, "the peer's extensions")
  assert(has(peer_ext, "permessage-deflate"), "the peer did not negotiate permessage-deflate: " .. peer_ext)
  return c, peer_ext
end

local function echo(c, data, kind, timeout)
  assert.is_true(c:send(data, kind))
  local got, gkind = recv(c, timeout or 60)
  check_same(got, data)
  assert.equals(kind, gkind)
end

local function stats(c)
  assert.is_true(c:send("stats:"))
  local s = recv(c, 10, "the peer's stats")
  local i, o = s:match("^in=(%d+) out=(%d+)$")
  assert(i, "stats: " .. s)
  return tonumber(i), tonumber(o)
end

for _, label in ipairs(M.DEFLATE_SIZES) do
  local name = "deflate_" .. label
  local kind, n = size_of(label)
  client[name] = function(ctx)
    local c = dconnect(ctx, name)
    echo(c, M.payload(n, kind), kind)
    close_ok(c)
  end
end

client.deflate_utf8 = function(ctx)
  local c = dconnect(ctx, "deflate_utf8")
  echo(c, M.UTF8, "text")
  close_ok(c)
end

-- Both ways compressed on the wire: the peer read and wrote far less than
-- the 2 x 1 MiB of text.
client.deflate_json_1MiB = function(ctx)
  local c = dconnect(ctx, "deflate_json_1MiB")
  echo(c, M.json_payload(M.JSON_SIZE), "text")
  local i, o = stats(c)
  assert(i > 0 and o > 0, "the peer counted no bytes: " .. i .. " " .. o)
  assert(i < M.JSON_SIZE / 4, "the peer read " .. i .. " bytes for 1 MiB of JSON")
  assert(o < M.JSON_SIZE / 4, "the peer wrote " .. o .. " bytes for 1 MiB of JSON")
  close_ok(c)
end

client.deflate_fragments_from_lua = function(ctx)
  local c = dconnect(ctx, "deflate_fragments_from_lua")
  local want = M.payload(300, "text")
  assert.is_true(c:send_fragment(want:sub(1, 100), false, "text"))
  assert.is_true(c:send_fragment(want:sub(101, 200), false))
  assert.is_true(c:send_fragment(want:sub(201), true))
  assert.is_true(c:send("after", "text"))
  local got, kind = recv(c)
  check_same(got, want)
  assert.equals("text", kind)
  assert.equals("after", (recv(c)))
  close_ok(c)
end

client.deflate_fragments_from_peer = function(ctx)
  local c = dconnect(ctx, "deflate_fragments_from_peer")
  assert.is_true(c:send("frag:binary:300:3"))
  local got, kind = recv(c)
  check_same(got, M.payload(300, "binary"))
  assert.equals("binary", kind)
  assert.is_true(c:send("frag:text:65536:4"))
  got, kind = recv(c)
  check_same(got, M.payload(65536, "text"))
  assert.equals("text", kind)
  close_ok(c)
end

client.deflate_burst = function(ctx)
  local c = dconnect(ctx, "deflate_burst")
  for i = 1, M.BURST do assert.is_true(c:send("burst " .. i)) end
  for i = 1, M.BURST do
    assert.equals("burst " .. i, (recv(c, 20, "burst message " .. i)))
  end
  close_ok(c)
end

client.deflate_close_from_lua = function(ctx)
  local c = dconnect(ctx, "deflate_close_from_lua")
  echo(c, M.payload(1000, "text"), "text")
  local code, reason = M.CLOSE_FROM_LUA[1], M.CLOSE_FROM_LUA[2]
  c:close(code, reason)
  assert(net.wait_until(function() return c.ready_state == "CLOSED" end, 10), "close handshake did not finish")
  assert.is_true(c.was_clean)
  assert.equals(code, c.close_code)
  local pc, pr = ctx.peer:wait_for("CLOSE /deflate_close_from_lua (%d+) ([^\n]*)\n", 10)
  assert.equals(code, tonumber(pc))
  assert.equals(reason, pr)
end

client.deflate_close_from_peer = function(ctx)
  local c = dconnect(ctx, "deflate_close_from_peer")
  local code, reason = M.CLOSE_FROM_PEER[1], M.CLOSE_FROM_PEER[2]
  assert.is_true(c:send("close:" .. code .. ":" .. reason))
  local data, err, gcode, greason = c:receive(10)
  assert.is_nil(data)
  assert.equals("closed", err)
  assert.equals(code, gcode)
  assert.equals(reason, greason)
  assert(net.wait_until(function() return c.ready_state == "CLOSED" end, 10))
  assert.is_true(c.was_clean)
end

client.deflate_no_context_takeover = function(ctx)
  local c, peer_ext = dconnect(ctx, "deflate_no_context_takeover")
  assert(has(c.extensions, "server_no_context_takeover"), "lua-ws extensions: " .. c.extensions)
  assert(has(peer_ext, "server_no_context_takeover"), "peer extensions: " .. peer_ext)
  local msg = M.payload(M.NCT_SIZE, "text")
  for _ = 1, M.NCT_REPEAT do echo(c, msg, "text") end
  echo(c, M.window_payload(), "binary")
  close_ok(c)
end

client.deflate_window_bits_10 = function(ctx)
  local c, peer_ext = dconnect(ctx, "deflate_window_bits_10")
  assert(has(c.extensions, "server_max_window_bits=10"), "lua-ws extensions: " .. c.extensions)
  assert(has(peer_ext, "server_max_window_bits=10"), "peer extensions: " .. peer_ext)
  for _ = 1, 2 do
    echo(c, M.window_payload(), "binary")
    echo(c, M.json_payload(100000), "text")
  end
  close_ok(c)
end

-- peer client -> lua-ws server, compressed: every record must show the
-- negotiation; opts.server_window = false when the peer cannot offer
-- server_max_window_bits (a browser).
local function negotiated(rec)
  assert.truthy(rec.opens >= 1, "the lua-ws server saw no connection")
  assert(has(rec.extensions, "permessage-deflate"), "lua-ws server extensions: " .. tostring(rec.extensions))
end

for _, label in ipairs(M.DEFLATE_SIZES) do
  local kind, n = size_of(label)
  server_checks["deflate_" .. label] = function(rec)
    negotiated(rec)
    one_message(rec, M.payload(n, kind), kind)
    closed_normally(rec)
  end
end

server_checks.deflate_utf8 = function(rec)
  negotiated(rec)
  one_message(rec, M.UTF8, "text")
end

server_checks.deflate_json_1MiB = function(rec)
  negotiated(rec)
  one_message(rec, M.json_payload(M.JSON_SIZE), "text")
end

server_checks.deflate_fragments_from_lua = function(rec)
  negotiated(rec)
  assert.equals("frag:binary:300:3", rec.messages[1][1])
  assert.equals("frag:text:65536:4", rec.messages[2] and rec.messages[2][1])
end

server_checks.deflate_fragments_from_peer = function(rec)
  negotiated(rec)
  one_message(rec, M.payload(300, "text"), "text")
end

server_checks.deflate_burst = function(rec)
  negotiated(rec)
  server_checks.burst(rec)
end

server_checks.deflate_close_from_lua = function(rec)
  negotiated(rec)
  server_checks.close_from_lua(rec)
end

server_checks.deflate_close_from_peer = function(rec)
  negotiated(rec)
  server_checks.close_from_peer(rec)
end

server_checks.deflate_no_context_takeover = function(rec)
  negotiated(rec)
  assert(has(rec.extensions, "server_no_context_takeover"), "lua-ws server extensions: " .. rec.extensions)
  assert(has(rec.extensions, "client_no_context_takeover"), "lua-ws server extensions: " .. rec.extensions)
  assert.equals(M.NCT_REPEAT, #rec.messages)
  for i = 1, M.NCT_REPEAT do check_same(rec.messages[i][1], M.payload(M.NCT_SIZE, "text"), "message " .. i) end
end

server_checks.deflate_window_bits_10 = function(rec, opts)
  negotiated(rec)
  assert(has(rec.extensions, "client_max_window_bits=10"), "lua-ws server extensions: " .. rec.extensions)
  if not (opts and opts.server_window == false) then
    assert(has(rec.extensions, "server_max_window_bits=10"), "lua-ws server extensions: " .. rec.extensions)
  end
  assert.equals(2, #rec.messages)
  check_same(rec.messages[1][1], M.window_payload(), "window payload")
  check_same(rec.messages[2][1], M.json_payload(100000), "json payload")
end

return M
