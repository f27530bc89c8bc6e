-- ws.core used without the ws module (in a child process, where nothing
-- installs ws's hooks): on_upgrade is called directly (a subprotocol
-- picked, a rejection), and on Lua 5.4 a connection in a `<close>`
-- variable starts its close at the end of the scope (ws.core's own
-- __close; the ws module replaces it with its own).
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"

local quote = net.quote

local SCRIPT = [[
local core = require "ws.core"
local loop = core.loop()
local srv = core.listen({ host = "127.0.0.1", port = 0,
  on_upgrade = function(req) if req.path == "/no" then return false, 403, "no" end return "chat" end,
  on_message = function(c, d) c:send(d) end }, loop)
local function step_until(cond)
  local deadline = loop:now() + 5
  while not cond() and loop:now() < deadline do loop:step(0.05) end
end
local function dial(path, protocols)
  local st = {}
  local c = core.connect("ws://127.0.0.1:" .. srv.port .. path, { protocols = protocols,
    on_open = function() st.open = true end, on_error = function(_, e) st.err = e end,
    on_close = function(_, code) st.closed = code end }, loop)
  step_until(function() return st.open or st.err or st.closed end)
  return c, st
end
local c, st = dial("/yes", { "other", "chat" })
print("OPEN " .. tostring(st.open) .. " " .. tostring(c.protocol))
local _, st2 = dial("/no")
print("REJECTED " .. tostring(st2.err))
if _VERSION == "Lua 5.4" then
  local f = load("local c = ... do local x <close> = c end return c.ready_state")
  print("CLOSE " .. f(c))
  step_until(function() return st.closed end)
  print("CLOSED " .. tostring(st.closed))
end
loop:close()
print("DONE")
]]

describe("ws.core alone", function()
  it("calls on_upgrade directly and closes a <close> connection", function()
    local script = net.tmpdir() .. "/core_alone.lua"
    net.write_file(script, string.format("package.path = %q\npackage.cpath = %q\n", package.path, package.cpath)
      .. SCRIPT)
    local p = assert(io.popen(quote(net.lua_interpreter()) .. " " .. quote(script) .. " 2>&1; echo \"__exit:$?\""))
    local out = p:read("*a")
    p:close()
    assert.matches("__exit:0%s*$", out)
    assert.matches("OPEN true chat\n", out, nil, true)
    assert.matches("REJECTED handshake failed: expected status 101, got 403\n", out, nil, true)
    if _VERSION == "Lua 5.4" then
      assert.matches("CLOSE CLOSING\nCLOSED 1000\n", out, nil, true)
    end
    assert.matches("\nDONE\n", out, nil, true)
  end)
end)
