-- Out of file descriptors: in a child process limited to 64 (ulimit -n)
-- that has used them all up, every call that needs a new descriptor
-- (listen on a port, on every address, on a Unix path, over a stale
-- socket; connect by address, by name, to a Unix path) fails with an error
-- naming the cause, and nothing else breaks: once descriptors are free
-- again, the same calls work and the server made before still answers.
-- Also: a Unix path a live server holds is refused, not taken over.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"

local quote = net.quote

local SCRIPT = [[
local ws = require "ws"
local dir = arg[1]
local function try(name, f, ...)
  local ok, a, b = pcall(f, ...)
  if ok and a then print(name .. " ok") else print(name .. " failed " .. tostring(ok and b or a)) end
  return ok and a or nil
end
-- A stale socket: its server's process ended without removing it.
os.execute(string.format("%s -e %q", arg[-1], "package.path = " .. string.format("%q", package.path)
  .. " package.cpath = " .. string.format("%q", package.cpath)
  .. " require('ws').listen { unix = " .. string.format("%q", dir .. "/stale.sock") .. " } os.exit(0)"))
local srv = ws.listen { port = 0, on_message = function(c, d) c:send(d) end }
local live = ws.listen { unix = dir .. "/live.sock", on_message = function(c, d) c:send(d) end }
try("taken", ws.listen, { unix = dir .. "/live.sock" })

local hold = require("spec.helpers.nofile").use_up()
print("held " .. #hold)
local steps = {
  { "listen_any", ws.listen, { host = "*", port = 0 } },
  { "listen_host", ws.listen, { host = "127.0.0.1", port = 0 } },
  { "listen_unix", ws.listen, { unix = dir .. "/new.sock" } },
  { "listen_stale", ws.listen, { unix = dir .. "/stale.sock" } },
  { "connect_addr", ws.connect, "ws://127.0.0.1:" .. srv.port .. "/", { timeout = 5 } },
  { "connect_name", ws.connect, "ws://localhost:" .. srv.port .. "/", { timeout = 5 } },
  { "connect_unix", ws.connect, "ws+unix://" .. dir .. "/live.sock", { timeout = 5 } },
}
for _, s in ipairs(steps) do try(s[1], s[2], s[3], s[4]) end

require("spec.helpers.nofile").release(hold)
hold = nil
collectgarbage()
print("released")
for _, s in ipairs(steps) do
  local r = try(s[1], s[2], s[3], s[4])
  if r and r.send then
    r:send("echo")
    print(s[1] .. " echo " .. tostring((r:receive(5))))
    r:close()
  elseif r then
    r:close()
  end
end
srv:close()
live:close()
print("DONE")
]]

local run = net.run_status

describe("out of file descriptors", function()
  it("every call needing a descriptor fails with EMFILE, and works again once some are free", function()
    local dir = net.tmpdir()
    local script = dir .. "/nofile.lua"
    net.write_file(script, string.format("package.path = %q\npackage.cpath = %q\n", package.path, package.cpath)
      .. SCRIPT)
    local out, code = run(string.format("ulimit -n 64 && exec %s %s %s", quote(net.lua_interpreter()),
      quote(script), quote(dir)))
    assert.are.equal(0, code, out)
    assert.matches("taken failed [^\n]*live%.sock: something is listening there\n", out)
    local before, after = out:match("^(.*)\nreleased\n(.*)$")
    assert(before, out)
    local emfile = "Too many open files"
    for _, name in ipairs { "listen_any", "listen_host", "listen_unix", "listen_stale", "connect_addr",
      "connect_name", "connect_unix" } do
      local line = before:match("\n" .. name .. " ([^\n]*)")
      assert(line, name .. ":\n" .. out)
      assert.matches("^failed ", line, nil, name)
      assert.is_truthy(line:find(emfile, 1, true), name .. ": " .. line)
      assert.matches("\n" .. name .. " ok\n", "\n" .. after, nil, name .. ":\n" .. after)
    end
    -- each error names what it was about
    assert.matches("\nlisten_unix failed [^\n]*new%.sock: socket: ", before)
    assert.matches("\nlisten_stale failed [^\n]*stale%.sock: socket: ", before)
    assert.matches("\nconnect_name failed [^\n]*'localhost'", before)
    assert.matches("\nconnect_addr failed [^\n]*127%.0%.0%.1 port %d+", before)
    for _, name in ipairs { "connect_addr", "connect_name", "connect_unix" } do
      assert.matches("\n" .. name .. " echo echo\n", "\n" .. after, nil, name .. ":\n" .. after)
    end
    assert.matches("\nDONE\n$", out)
  end)
end)
