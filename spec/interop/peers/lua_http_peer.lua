-- lua-http (`http.websocket`, Debian lua-http, Lua 5.1 + cqueues) peer for
-- spec/interop (conventions in spec/interop/scenarios.lua).
--   lua5.1 lua_http_peer.lua server [CERT KEY]
--   lua5.1 lua_http_peer.lua client WS_BASE WSS_BASE CAFILE SCENARIO...
-- lua-http cannot show received pongs: its server answers "ping:<p>" with
-- "pinged:<p>", and its client does not check the pong's payload.
local cqueues = require "cqueues"
local http_server = require "http.server"
local http_headers = require "http.headers"
local http_tls = require "http.tls"
local websocket = require "http.websocket"

io.stdout:setvbuf("no")
local function out(line) io.stdout:write(line, "\n") end

local function payload(n, kind)
  local t = {}
  if kind == "text" then
    for i = 0, 93 do t[#t + 1] = string.char(33 + i) end
  else
    for i = 0, 255 do t[#t + 1] = string.char((i * 7 + 3) % 256) end
  end
  local unit = table.concat(t)
  return string.rep(unit, math.floor(n / #unit) + 1):sub(1, n)
end
local UTF8 = string.rep("a\195\169\226\152\131\240\157\132\158", 1000)

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

-- Send one message as `parts` frames.
local function send_fragments(ws, data, kind, parts)
  local step = math.ceil(#data / parts)
  for i = 1, parts do
    assert(ws:send_frame({
      FIN = i == parts, MASK = ws.type == "client", opcode = i == 1 and (kind == "text" and 1 or 2) or 0,
      data = data:sub((i - 1) * step + 1, i * step),
    }))
  end
end

-- lua-http 0.4 reads the payload of a frame with a 16-bit length (126 to
-- 65535 bytes) without waiting for it, and fails with ETIMEDOUT when the
-- frame came in more than one TCP segment (lua-http issue #140; on loopback
-- a 65535-byte frame is two segments).  Before each receive, wait until the
-- next frame is all in the socket's buffer when it has such a length; any
-- failure here is left for `receive` to report.
local function await_whole_frame(ws, timeout)
  local sock = ws.socket
  local function peek(n)
    local ok, filled = pcall(sock.fill, sock, n, timeout)
    if not ok or not filled then return nil end
    local read, head = pcall(sock.xread, sock, n, "b", 0)
    if not read or type(head) ~= "string" or #head < n then return nil end
    sock:unget(head)
    return head
  end
  local head = peek(2)
  if not head or head:byte(2) % 128 ~= 126 then return end
  head = peek(4)
  if not head then return end
  local mask = head:byte(2) >= 128 and 4 or 0
  pcall(sock.fill, sock, 4 + mask + head:byte(3) * 256 + head:byte(4), timeout)
end

---------------------------------------------------------------------------
local function onstream(_, stream)
  local headers = assert(stream:get_headers())
  local path = headers:get(":path")
  if path == "/reject" then
    local h = http_headers.new()
    h:append(":status", "403")
    h:append("content-type", "text/plain")
    stream:write_headers(h, false)
    stream:write_chunk("rejected\n", true)
    return
  end
  local ws = assert(websocket.new_from_stream(stream, headers))
  assert(ws:accept({ protocols = { "chat.v1" } }))
  ws.close_timeout = 5
  while true do
    await_whole_frame(ws)
    local data, kind, code = ws:receive()
    if data == nil then
      out(("CLOSE %s %s %s"):format(path, tostring(ws.got_close_code or code), tostring(ws.got_close_message or "")))
      return
    end
    local done = false
    if kind == "text" then
      local c, reason = data:match("^close:(%d+):(.*)$")
      local fkind, size, parts = data:match("^frag:(%a+):(%d+):(%d+)$")
      local pp = data:match("^ping:(.*)$")
      local h = data:match("^header:(.*)$")
      if c then
        ws:close(tonumber(c), reason)
        out(("CLOSE %s %s %s"):format(path, c, reason))
        return
      elseif fkind then
        send_fragments(ws, payload(tonumber(size), fkind), fkind, tonumber(parts))
        done = true
      elseif pp then
        assert(ws:send_ping(pp))
        assert(ws:send("pinged:" .. pp))
        done = true
      elseif h then
        assert(ws:send(headers:get(h:lower()) or ""))
        done = true
      end
    end
    if not done then assert(ws:send(data, kind)) end
  end
end

local function server(cert, key)
  local cq = cqueues.new()
  local plain = assert(http_server.listen { host = "127.0.0.1", port = 0, tls = false, onstream = onstream })
  assert(plain:listen())
  local _, _, port = plain:localname()
  out("PORT " .. port)
  cq:wrap(function() assert(plain:loop()) end)
  if cert then
    local ctx = http_tls.new_server_context()
    assert(ctx:setCertificate(require("openssl.x509").new(read_file(cert))))
    assert(ctx:setPrivateKey(require("openssl.pkey").new(read_file(key))))
    local tls = assert(http_server.listen { host = "127.0.0.1", port = 0, tls = true, ctx = ctx, onstream = onstream })
    assert(tls:listen())
    local _, _, tport = tls:localname()
    out("TLSPORT " .. tport)
    cq:wrap(function() assert(tls:loop()) end)
  end
  assert(cq:loop())
end

---------------------------------------------------------------------------
local function check(cond, msg) if not cond then error(msg, 2) end end

local function recv(ws, want_kind)
  await_whole_frame(ws, 30)
  local data, kind, code = ws:receive(30)
  check(data ~= nil, "no message: " .. tostring(kind) .. " " .. tostring(code))
  if want_kind then check(kind == want_kind, "kind " .. tostring(kind)) end
  return data
end

local function close_ok(ws)
  ws:close(1000, "done", 10)
end

local function open(url, protocols, ctx, extra)
  local ws = websocket.new_from_uri(url, protocols)
  if ctx then ws.request.ctx = ctx end
  for k, v in pairs(extra or {}) do ws.request.headers:append(k, v) end
  return ws
end

local function run(name, base, wss, cafile)
  local url = base .. "/" .. name
  local kind, label = name:match("^(%a+)_(%w+)$")
  if (kind == "text" or kind == "binary") and label then
    local n = label == "8MiB" and 8 * 1024 * 1024 or tonumber(label)
    local ws = open(url)
    assert(ws:connect(10))
    local want = payload(n, kind)
    assert(ws:send(want, kind))
    check(recv(ws, kind) == want, "echo differs")
    return close_ok(ws)
  end
  if name == "reject" then
    local ws = open(url)
    local h, err = ws.request:go(10) -- the response head, to read its status
    check(h, "no response: " .. tostring(err))
    check(h:get(":status") == "403", "status " .. tostring(h:get(":status")))
    return
  end
  if name == "wss" then
    local ctx = http_tls.new_client_context()
    local store = require("openssl.x509.store").new()
    store:add(cafile)
    ctx:setStore(store)
    local ws = open(wss .. "/wss", nil, ctx)
    assert(ws:connect(10))
    assert(ws:send("hello tls"))
    check(recv(ws) == "hello tls", "echo differs")
    return close_ok(ws)
  end
  local ws = open(url, name == "subprotocol" and { "x.unknown", "chat.v1" } or nil, nil,
    name == "headers" and { ["x-interop"] = "interop-value-42" } or nil)
  assert(ws:connect(10))
  if name == "utf8" then
    assert(ws:send(UTF8, "text"))
    check(recv(ws, "text") == UTF8, "echo differs")
  elseif name == "fragments_from_lua" then
    assert(ws:send("frag:binary:300:3"))
    check(recv(ws, "binary") == payload(300, "binary"), "message differs")
  elseif name == "fragments_from_peer" then
    send_fragments(ws, payload(300, "text"), "text", 3)
    check(recv(ws, "text") == payload(300, "text"), "echo differs")
  elseif name == "ping" then
    assert(ws:send_ping("ping-from-peer")) -- lua-http drops pongs: the lua-ws side checks the ping
    assert(ws:send("ping:ping-from-lua"))
    check(recv(ws) == "pong:ping-from-lua", "no pong:ping-from-lua")
  elseif name == "close_from_lua" then
    assert(ws:send("close:4002:bye from lua"))
    local data, reason, code = ws:receive(10)
    check(data == nil and code == 4002 and reason == "bye from lua",
      "close " .. tostring(code) .. " " .. tostring(reason))
    return
  elseif name == "close_from_peer" then
    ws:close(4001, "bye from peer", 10)
    check(ws.got_close_code == 4001 and ws.got_close_message == "bye from peer",
      "close reply " .. tostring(ws.got_close_code) .. " " .. tostring(ws.got_close_message))
    return
  elseif name == "subprotocol" then
    check(ws.protocol == "chat.v1", "protocol " .. tostring(ws.protocol))
  elseif name == "headers" then
    assert(ws:send("header:x-interop"))
    check(recv(ws) == "interop-value-42", "header differs")
  elseif name == "burst" then
    for i = 1, 1000 do assert(ws:send("burst " .. i)) end
    for i = 1, 1000 do check(recv(ws) == "burst " .. i, "burst message " .. i) end
  else
    return "na", "unknown scenario"
  end
  return close_ok(ws)
end

local function client(base, wss, cafile, names)
  for _, name in ipairs(names) do
    -- Outside a coroutine lua-http blocks; pcall cannot yield on Lua 5.1.
    local ok, a, b = pcall(run, name, base, wss, cafile)
    if ok and a == "na" then
      out("RESULT " .. name .. " na " .. tostring(b))
    elseif ok then
      out("RESULT " .. name .. " ok")
    else
      out("RESULT " .. name .. " fail " .. tostring(a):gsub("\n", " "))
    end
  end
end

if arg[1] == "server" then
  server(arg[2], arg[3])
else
  local names = {}
  for i = 5, #arg do names[#names + 1] = arg[i] end
  client(arg[2], arg[3], arg[4], names)
end
