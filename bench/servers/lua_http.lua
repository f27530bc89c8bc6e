-- lua-http echo server for the benchmarks (Debian lua-http 0.4 on cqueues;
-- its dependencies exist for Lua 5.1 only, so it runs on lua5.1).
--   lua5.1 bench/servers/lua_http.lua [PORT]
-- Prints "listening on ws://127.0.0.1:PORT/" and serves until killed.
-- http.server runs one coroutine per connection (and per stream); the stream
-- is upgraded with http.websocket.new_from_stream and then echoes every
-- message with its own opcode until the client closes.
local cqueues = require "cqueues"
local http_server = require "http.server"
local http_headers = require "http.headers"
local websocket = require "http.websocket"

local function onstream(_, stream)
  local headers = assert(stream:get_headers())
  local ws = websocket.new_from_stream(stream, headers)
  if not ws then
    local h = http_headers.new()
    h:append(":status", "426")
    stream:write_headers(h, true)
    return
  end
  assert(ws:accept())
  while true do
    local data, kind = ws:receive()
    if data == nil then return end -- closed (the close reply is already sent)
    if not ws:send(data, kind) then return end
  end
end

local srv = assert(http_server.listen {
  host = "127.0.0.1",
  port = tonumber(arg[#arg]) or 0,
  tls = false,
  onstream = onstream,
  -- the default handler raises, which would stop the whole server
  onerror = function(_, _, op, err) io.stderr:write("lua_http: ", tostring(op), ": ", tostring(err), "\n") end,
})
assert(srv:listen())
local _, _, port = srv:localname()
io.stdout:write(("listening on ws://127.0.0.1:%d/\n"):format(port))
io.stdout:flush()
local cq = cqueues.new()
cq:wrap(function() assert(srv:loop()) end)
assert(cq:loop())
