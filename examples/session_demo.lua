-- In-memory demo: a client session and a server session do the opening
-- handshake, exchange messages, ping and close, with the bytes passed
-- between them by hand (no sockets): what a host does with ws.core.
local ws = require "ws"

local client = ws.session{ role = "client", url = "ws://example.test/chat?room=1",
                           protocols = { "chat.v2", "chat.v1" } }
local server = ws.session{ role = "server", protocols = { "chat.v1" } }

local function show(who, kind, a, b, c)
  local parts = {}
  for _, v in ipairs({ a, b, c }) do
    if type(v) == "table" then
      local keys = {}
      for k, x in pairs(v) do
        if type(x) ~= "table" then keys[#keys + 1] = k .. "=" .. tostring(x) end
      end
      table.sort(keys)
      parts[#parts + 1] = "{" .. table.concat(keys, ", ") .. "}"
    elseif v ~= nil then
      parts[#parts + 1] = string.format("%q", tostring(v))
    end
  end
  print(string.format("%-6s %-8s %s", who, kind, table.concat(parts, " ")))
end

-- Move bytes both ways and deliver events until both sides are quiet.
local function pump()
  repeat
    local moved = false
    local out = client:output()
    if #out > 0 then server:feed(out); moved = true end
    out = server:output()
    if #out > 0 then client:feed(out); moved = true end
    for kind, a, b, c in server:events() do
      show("server", kind, a, b, c)
      moved = true
      if kind == "request" then
        server:accept()                    -- picks chat.v1 from the offers
      elseif kind == "message" then
        server:send("echo: " .. a, b)      -- answer from inside the loop
      end
    end
    for kind, a, b, c in client:events() do
      show("client", kind, a, b, c)
      moved = true
    end
  until not moved
end

pump()
print("client protocol:", client:protocol())
client:send("hello, world")
client:send("\0\1\2\3", "binary")
client:ping("are you there?")
pump()
client:close(1000, "done")
pump()
print("states:", client:state(), server:state())
