-- Allocation failures in more scenarios than spec/alloc_failure_spec.lua's
-- TLS echo: the sans-I/O core (handshake helpers, sessions with
-- permessage-deflate, fragments, pings, a reject with headers, the codec),
-- a plain ws:// server with topics (a compressed publish too), a
-- rejected upgrade, a Unix socket, extra headers and subprotocols, and
-- large messages with the large-block cache.  Every allocation lua-ws makes in a
-- scenario fails in turn, one per run, in a child process with
-- spec/helpers/failalloc.c preloaded.  Each run must reach its end: every
-- step either works, returns nil/false with an error, or raises an error
-- saying that memory ran out; never a crash, a hang or an abort.
-- Skipped under AddressSanitizer and valgrind (their allocators replace
-- the preloaded one).
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"

local quote = net.quote

-- Each step runs under pcall and prints "STEP name ok|error ...|skipped":
-- after the first error the steps that need what failed are skipped (the
-- ones marked `always` still run: the clean-up).
local PRELUDE = [[
local failed
local function step(name, f, always)
  if failed and not always then print("STEP " .. name .. " skipped") return end
  local ok, err = pcall(f)
  if not ok then failed = true end
  print("STEP " .. name .. " " .. (ok and "ok" or ("error " .. tostring(err))))
end
]]

local CORE = PRELUDE .. [[
local core = require "ws.core"
local KEY = "dGhlIHNhbXBsZSBub25jZQ=="
-- the next event of this kind (others before it are skipped)
local function next_of(sess, want)
  while true do
    local kind, data = sess:next_event()
    if kind == want or kind == "error" or kind == nil then return kind, data end
  end
end
step("helpers", function()
  local req, accept = core.client_handshake("ws://example.com:8080/chat?a=b",
    { key = KEY, protocols = { "chat", "super" }, origin = "http://example.com",
      headers = { ["X-A"] = "1", ["X-B"] = "2" } })
  local parsed = assert(core.parse_request(req))
  assert(parsed.target == "/chat?a=b")
  local resp = assert(core.accept(req, { protocols = { "super" }, headers = { ["X-S"] = "s" } }))
  assert(core.check_response(resp, accept, { protocols = { "chat", "super" } }))
  assert(core.parse_response(resp))
  local refused, status = core.accept("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
  assert(refused == nil and status == 400)
  assert(core.parse_url("wss://[::1]:9/p?q"))
end)
step("codec", function()
  local f = core.build_frame { opcode = 2, payload = string.rep("b", 70000), mask = "abcd" }
  assert(core.parse_frame_header(f))
  assert(#core.mask(string.rep("m", 1000), "wxyz", 3) == 1000)
  local v = core.utf8_validator()
  assert(v:feed("h\xc3") and v:feed("\xa9") and v:finish())
  assert(core.utf8_valid("ok"))
end)
step("session", function()
  local c = core.session { role = "client", url = "ws://example.test/room", protocols = { "a", "b" },
    headers = { ["X-A"] = "b" }, compress = { threshold = 0 } }
  local s = core.session { role = "server", protocols = { "b", "a" }, compress = true }
  s:feed(c:output())
  assert(s:next_event() == "request")
  assert(s:accept { headers = { ["X-S"] = "1" } })
  c:feed(s:output())
  assert(c:next_event() == "open")
  for _, n in ipairs { 10, 1000, 70000 } do
    assert(c:send(string.rep("x", n)))
    s:feed(c:output())
    local kind, data = next_of(s, "message")
    assert(kind == "message" and #data == n, tostring(kind) .. " " .. tostring(data))
    assert(s:send(data, "binary"))
    c:feed(s:output())
    kind, data = next_of(c, "message")
    assert(kind == "message" and #data == n, tostring(kind) .. " " .. tostring(data))
  end
  assert(c:send_fragment("part", false))
  assert(c:send_fragment(string.rep("y", 5000), true))
  assert(c:ping("p"))
  s:feed(c:output())
  for _, _ in s:events() do end
  assert(s:close(1000, "bye"))
  c:feed(s:output())
  for _, _ in c:events() do end
  s:feed(c:output())
  assert(s:state() ~= "OPEN", s:state())
end)
step("reject", function()
  local c = core.session { role = "client", url = "ws://example.test/" }
  local s = core.session { role = "server" }
  s:feed(c:output())
  assert(s:next_event() == "request")
  assert(s:reject(403, "go away", { ["X-Why"] = "test", ["X-More"] = "more" }))
  c:feed(s:output())
  assert(c:next_event() == "error")
end)
collectgarbage()
print("DONE")
]]

local NET = PRELUDE .. [[
local ws = require "ws"
local sock = arg[1] .. "." .. os.getenv("WS_FAIL_ALLOC")
local srv, usrv, c, d, u, e
step("listen", function()
  srv = ws.listen { port = 0, protocols = { "chat" }, compress = true,
    on_upgrade = function(req)
      if req.path == "/no" then return false, 403, "not here", { ["X-Why"] = "test" } end
      return { protocol = req.protocols[1], headers = { ["X-Server"] = "yes" } }
    end,
    on_open = function(conn) conn:subscribe("room") end,
    on_message = function(_, data) srv:publish("room", data) end }
  usrv = ws.listen { unix = sock, on_message = function(conn, data) conn:send(data) end }
end)
step("connect", function()
  c = assert(ws.connect("ws://127.0.0.1:" .. srv.port .. "/a", { protocols = { "chat" },
    headers = { ["X-Client"] = "1" }, timeout = 2 }))
  d = assert(ws.connect("ws://127.0.0.1:" .. srv.port .. "/b", { timeout = 2 }))
end)
step("reject", function()
  local r, err = ws.connect("ws://127.0.0.1:" .. srv.port .. "/no", { timeout = 2 })
  assert(r == nil and err)
end)
step("publish", function()
  assert(c:send("to the room"))
  assert(d:receive(1))
  assert(srv:publish("room", "from the server") >= 0)
  assert(c:receive(1))
  assert(srv:broadcast("all") >= 0)
end)
step("deflate", function()
  -- a receiver that shares the publish's compressed frame
  e = assert(ws.connect("ws://127.0.0.1:" .. srv.port .. "/e",
    { compress = { server_no_context_takeover = true }, timeout = 2 }))
  local text = string.rep("compressible ", 50)
  assert(srv:publish("room", text) >= 0)
  assert(e:receive(1) == text)
end)
step("unix", function()
  u = assert(ws.connect("ws+unix://" .. sock .. ":/path", { timeout = 2 }))
  assert(u:send("over unix"))
  assert(u:receive(1) == "over unix")
end)
step("close", function()
  for _, x in pairs { c, d, e, u } do x:close(1000, "bye") end
  if srv then srv:close() end
  if usrv then usrv:close() end
end, true)
collectgarbage()
print("DONE")
]]

-- Large messages: the first one turns the large-block cache on
-- (its state and the loop timer that gives the blocks back are allocated
-- then); the cache set by hand and turned off again, on every Lua.
local LARGE = PRELUDE .. [[
local ws = require "ws"
local srv, c
step("listen", function()
  srv = ws.listen { port = 0, on_message = function(conn, data, bin) conn:send(data, bin and "binary" or "text") end }
end)
step("connect", function()
  c = assert(ws.connect("ws://127.0.0.1:" .. srv.port .. "/", { timeout = 5 }))
end)
step("large", function()
  for i = 1, 3 do
    local m = string.rep(string.char(96 + i), 200000)
    assert(c:send(m, "binary"))
    assert(c:receive(5) == m) -- 5 s: 200 kB both ways on a busy machine
  end
  collectgarbage()
end)
step("by_hand", function()
  ws.keep_large_blocks(4 * 1048576)
  ws.keep_large_blocks(false)
end)
step("close", function()
  if c then c:close(1000, "bye") end
  if srv then srv:close() end
end, true)
collectgarbage()
print("DONE")
]]

-- What a step may fail with: memory ran out, or the other side of a
-- connection failed because of that (it closed, reset, answered 500, a
-- message did not come), or an assert of the scenario whose call
-- returned nil/false.  "not enough memory" is Lua's own: while the cache
-- of ws.keep_large_blocks sits in front of the state's allocator, Lua's
-- allocations are made from ws/core.so as far as the preload can tell.
local CLEAN = { "out of memory", "Cannot allocate memory", "closed", "reset by peer", "Broken pipe",
  "got 500", "timeout", "connection is not open", "assertion failed", "not enough memory" }

local run = net.run_status

local function no_sanitizer()
  local preload = os.getenv("LD_PRELOAD") or ""
  return not (preload:find("asan", 1, true) or preload:find("vgpreload", 1, true))
end

-- Sweep: the scenario works without a failure (every step ok), then every
-- allocation fails in turn.  Returns the number of allocations and the
-- error lines seen.
local function sweep(dir, shim, name, source, args)
  local script = dir .. "/" .. name .. ".lua"
  net.write_file(script, string.format("package.path = %q\npackage.cpath = %q\n", package.path, package.cpath)
    .. source)
  local function scenario(n)
    return run(string.format("WS_FAIL_ALLOC=%d LD_PRELOAD=%s timeout 60 %s %s %s", n, quote(shim),
      quote(net.lua_interpreter()), quote(script), args or ""))
  end
  local out, code = scenario(1000000)
  assert.are.equal(0, code, out)
  local total = tonumber(out:match("failalloc: (%d+) allocations, failed: no"))
  if not total or total == 0 then return nil, out end
  assert.is_nil(out:find("STEP %S+ error"), out)
  assert.matches("\nDONE\n", "\n" .. out, nil, true)
  local errors = {}
  for n = 1, total do
    out, code = scenario(n)
    local what = name .. ": allocation " .. n .. " of " .. total .. ":\n" .. out
    assert.are.equal(0, code, what)
    assert.matches("failalloc: %d+ allocations, failed: yes", out, nil, what)
    assert.matches("\nDONE\n", "\n" .. out, nil, true)
    for raised in out:gmatch("STEP %S+ error ([^\n]*)") do
      -- an assert of the scenario itself fails when a call returned
      -- nil/false with its error: that error is in the message too
      local clean = false
      for _, text in ipairs(CLEAN) do clean = clean or raised:find(text, 1, true) ~= nil end
      assert.is_true(clean, what)
      errors[#errors + 1] = raised
    end
  end
  return total, errors
end

describe("allocation failures", function()
  local dir, shim
  before_each(function()
    if not no_sanitizer() then return end
    dir = net.tmpdir()
    shim = dir .. "/failalloc.so"
    local out, code = run("cc -shared -fPIC -O1 -o " .. quote(shim) .. " spec/helpers/failalloc.c -ldl")
    assert.are.equal(0, code, out)
  end)

  -- The sweep of one scenario, or nil after marking the test pending when
  -- the preloaded allocator cannot be used here.  `file`, when given, names
  -- a file in the test's directory that the scenario gets as its argument
  -- (the directory exists only once the sanitizer check has passed).
  local function sweep_or_pending(name, scenario, file)
    if not no_sanitizer() then
      pending("the sanitizer's allocator replaces the preloaded one")
      return nil
    end
    local total, errors = sweep(dir, shim, name, scenario, file and quote(dir .. "/" .. file))
    if not total then pending("the preloaded allocator is not in use here: " .. errors) return nil end
    return total, errors
  end

  it("in the sans-I/O core (handshakes, sessions with deflate, codec) end in clean errors", function()
    local total, errors = sweep_or_pending("core", CORE)
    if not total then return end
    assert.is_true(total > 20, total)
    local oom = 0
    for _, e in ipairs(errors) do if e:find("out of memory", 1, true) then oom = oom + 1 end end
    assert.is_true(oom >= 10, table.concat(errors, "\n"))
  end)

  it("in a ws:// server with topics, a rejected upgrade and a Unix socket end in clean errors", function()
    local total, errors = sweep_or_pending("net", NET, "ws.sock")
    if not total then return end
    assert.is_true(total > 20, total)
    assert.is_true(#errors >= 5, table.concat(errors, "\n"))
  end)

  it("with large messages and the large-block cache end in clean errors", function()
    local total, errors = sweep_or_pending("large", LARGE)
    if not total then return end
    assert.is_true(total > 10, total)
    local oom = 0
    for _, e in ipairs(errors) do if e:find("out of memory", 1, true) then oom = oom + 1 end end
    assert.is_true(oom >= 1, table.concat(errors, "\n"))
  end)
end)
