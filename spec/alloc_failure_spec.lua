-- Allocation failures: every allocation lua-ws makes in one scenario (a
-- loop, a wss:// server with permessage-deflate and a subprotocol, a client
-- connecting to it, echoes of 10, 1000 and 70 000 bytes, a broadcast, the
-- close) is made to fail in turn, one per run, in a child process with
-- spec/helpers/failalloc.c preloaded (the Nth allocation made from
-- ws/core.so returns NULL; Lua's, OpenSSL's and libc's own never fail).
-- Each run must end the way a script sees any failure: an error raised
-- with a message or a nil, err from connect/send/receive, or a connection
-- that closes; never a crash, a hang or an abort, and the script always
-- reaches its end.  Skipped under AddressSanitizer and valgrind, whose
-- allocators take the place of the preloaded one.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"
local certs = require("spec.helpers.certs").get()

local quote = net.quote

local SCENARIO = [[
local ws = require "ws"
local cert, key, ca, wait = arg[1], arg[2], arg[3], tonumber(arg[4])
local ok, err = pcall(function()
  local srv = ws.listen { port = 0, compress = true, protocols = { "chat" },
    tls = { cert = cert, key = key },
    on_message = function(c, d, bin) c:send(d, bin and "binary" or "text") end }
  local c, e = ws.connect("wss://localhost:" .. srv.port .. "/chat?x=1",
    { compress = true, protocols = { "chat" }, tls = { cafile = ca }, timeout = wait + 1 })
  if not c then print("CONNECT " .. tostring(e)); srv:close(); return end
  for _, n in ipairs { 10, 1000, 70000 } do
    local sent, serr = c:send(string.rep("x", n))
    local m, kind = c:receive(wait)
    print("ECHO " .. n .. " " .. tostring(sent or serr) .. " " .. tostring(m and #m) .. " " .. tostring(kind))
  end
  print("BROADCAST " .. tostring(srv:broadcast("all")) .. " " .. tostring((c:receive(wait))))
  c:close(1000, "bye")
  srv:close()
end)
print("DONE " .. tostring(ok) .. " " .. tostring(err))
]]

local run = net.run_status

describe("allocation failures", function()
  it("in every allocation of a TLS + compression scenario end in clean errors, never a crash", function()
    local preload = os.getenv("LD_PRELOAD") or ""
    if preload:find("asan", 1, true) or preload:find("vgpreload", 1, true) then
      pending("the sanitizer's allocator replaces the preloaded one")
      return
    end
    local dir = net.tmpdir()
    local shim = dir .. "/failalloc.so"
    local out, code = run("cc -shared -fPIC -O1 -o " .. quote(shim) .. " spec/helpers/failalloc.c -ldl")
    assert.are.equal(0, code, out)
    local script = dir .. "/alloc_scenario.lua"
    net.write_file(script, string.format("package.path = %q\npackage.cpath = %q\n", package.path, package.cpath)
      .. SCENARIO)
    local function scenario(n, wait)
      return run(string.format("WS_FAIL_ALLOC=%d LD_PRELOAD=%s timeout 60 %s %s %s %s %s %s", n, quote(shim),
        quote(net.lua_interpreter()), quote(script), quote(certs.server_cert), quote(certs.server_key),
        quote(certs.ca), wait))
    end

    -- Without a failure: the whole scenario works, and says how many
    -- allocations it made.
    out, code = scenario(1000000, 5)
    assert.are.equal(0, code, out)
    local total = tonumber(out:match("failalloc: (%d+) allocations, failed: no"))
    if not total or total == 0 then
      pending("the preloaded allocator is not in use here: " .. out)
      return
    end
    assert.matches("ECHO 10 true 10 text\nECHO 1000 true 1000 text\nECHO 70000 true 70000 text\n"
      .. "BROADCAST 1 all\nDONE true nil\n", out)

    local errors = {}
    for n = 1, total do
      out, code = scenario(n, 0.25)
      assert.are.equal(0, code, "allocation " .. n .. " of " .. total .. ":\n" .. out)
      assert.matches("failalloc: %d+ allocations, failed: yes", out, nil, "allocation " .. n)
      assert.matches("\nDONE [^\n]*\n", "\n" .. out, nil, "allocation " .. n .. ":\n" .. out)
      -- A raised error says what ran out.
      local raised = out:match("DONE false ([^\n]*)")
      if raised then
        assert.is_truthy(raised:find("out of memory", 1, true) or raised:find("Cannot allocate memory", 1, true),
          "allocation " .. n .. ": " .. raised)
      end
      for line in out:gmatch("[^\n]*out of memory[^\n]*") do errors[#errors + 1] = line end
    end
    -- The failures were seen as such, not only as closed connections.
    assert.is_true(#errors >= 5, table.concat(errors, "\n"))
  end)
end)
