-- lua-ws inside libuv: ws.luv.attach over Debian's lua-luv (Lua 5.1-5.4,
-- LuaJIT), a client and a server inside uv.run() next to uv timers, uv.run()
-- returning once lua-ws is idle, errors of callbacks handed to on_error,
-- detach; and a headless Neovim (its own LuaJIT and vim.loop) running a
-- client and a server whose callbacks call vim.api, which Neovim forbids in
-- uv callbacks ("fast events") and allows through vim.schedule.
-- Lua 5.1 compatible.

local ws = require "ws"
local net = require "spec.helpers.net_util"
local embed = require "spec.helpers.embed"

local function cwd()
  return os.getenv("PWD") or net.sh("pwd"):match("[^\n]+")
end

-- Absolute package paths for another process started in this directory.
local function abs_paths(path)
  local dir, parts = cwd(), {}
  for entry in (path .. ";"):gmatch("([^;]*);") do
    if entry ~= "" and entry:sub(1, 1) ~= "/" then entry = dir .. "/" .. entry:gsub("^%./", "") end
    parts[#parts + 1] = entry
  end
  return table.concat(parts, ";")
end

describe("ws inside luv", function()
  local uv = embed.needs("luv", "lua-luv", "scripts/embed_deps.sh")
  if not uv then return end
  local wsluv = require "ws.luv"

  after_each(function() net.cleanup() end)

  -- uv.run() with a guard timer that stops it after `limit` seconds.
  local function run_uv(limit)
    local timed_out = false
    local guard = uv.new_timer()
    guard:start(math.floor(limit * 1000), 0, function()
      timed_out = true
      uv.stop()
    end)
    guard:unref()
    uv.run()
    guard:close()
    uv.run("nowait") -- let the close callbacks run
    return not timed_out
  end

  it("runs a client with callbacks in uv.run() next to a uv timer; uv.run returns when done", function()
    local child, port = net.spawn_echo_server()
    local got, closed, ticks = {}, nil, 0
    net.track_conn(ws.connect("ws://127.0.0.1:" .. port .. "/luv", {
      on_open = function(c) c:send("one") end,
      on_message = function(c, data)
        got[#got + 1] = data
        if #got == 1 then c:send("two") else c:close(1000) end
      end,
      on_close = function(_, code) closed = code end,
    }))
    local tick = uv.new_timer()
    tick:start(1, 1, function() ticks = ticks + 1 end)
    tick:unref() -- does not keep uv.run() going
    local h = wsluv.attach(uv)
    assert.is_true(run_uv(10), "uv.run() did not return once lua-ws was idle")
    tick:close()
    h:detach()
    uv.run("nowait")
    assert.are.same({ "one", "two" }, got)
    assert.are.equal(1000, closed)
    assert.is_true(ticks > 0, "the uv timer never ran")
    child:kill()
  end)

  it("runs a server that a lua-ws client in another process talks to", function()
    local srv
    local got = {}
    srv = net.listen {
      on_message = function(c, data)
        got[#got + 1] = data
        c:send("re: " .. data)
      end,
      on_close = function() srv:close() end,
    }
    local h = wsluv.attach(uv)
    local child = net.spawn_lua([[
      local ws = require "ws"
      local c = assert(ws.connect("ws://127.0.0.1:" .. arg[1] .. "/"))
      c:send("hello luv")
      print("REPLY " .. tostring(c:receive(5)))
      c:close(1000)
    ]], srv.port)
    assert.is_true(run_uv(10))
    h:detach()
    uv.run("nowait")
    assert.are.same({ "hello luv" }, got)
    child:wait_exit(5)
    assert.matches("REPLY re: hello luv", child:output())
  end)

  it("wakes for work queued from a uv callback (outside a lua-ws turn)", function()
    local child, port = net.spawn_echo_server()
    local h = wsluv.attach(uv, { forever = true })
    local reply
    local t = uv.new_timer()
    t:start(20, 0, function()
      -- connect and send from a uv callback: nothing on the wire yet, only
      -- the wake-up makes lua-ws run.
      net.track_conn(ws.connect("ws://127.0.0.1:" .. port .. "/later", {
        on_open = function(c) c:send("queued from uv") end,
        on_message = function(c, data)
          reply = data
          c:close()
          h:detach()
        end,
      }))
    end)
    assert.is_true(run_uv(10))
    t:close()
    uv.run("nowait")
    assert.are.equal("queued from uv", reply)
    child:kill()
  end)

  it("hands errors of callbacks to on_error; the loops keep working", function()
    local errs = {}
    local h = wsluv.attach(uv, { on_error = function(e) errs[#errs + 1] = e end })
    ws.timer(0.01, function() error("boom in a callback") end)
    local fired = false
    ws.timer(0.03, function() fired = true end)
    assert.is_true(run_uv(5))
    h:detach()
    uv.run("nowait")
    assert.are.equal(1, #errs)
    assert.matches("boom in a callback", errs[1])
    assert.is_true(fired)
  end)

  it("rejects bad arguments", function()
    assert.matches("luv module expected", select(2, pcall(wsluv.attach, 42)))
    assert.matches("unknown option 'nope'", select(2, pcall(wsluv.attach, uv, { nope = true })))
    assert.matches("schedule must be a function", select(2, pcall(wsluv.attach, uv, { schedule = 1 })))
  end)

  describe("in a headless Neovim", function()
    local nvim = net.sh("command -v nvim || true"):match("[^\n]+")
    local function skip_reason()
      if not nvim then return "neovim is not installed (scripts/embed_deps.sh)" end
      if not rawget(_G, "jit") then
        return "Neovim embeds LuaJIT: this runs in the LuaJIT pass (ws.core built for LuaJIT)"
      end
    end

    local procs = {}
    after_each(function()
      for _, pid in ipairs(procs) do os.execute("kill -9 " .. pid .. " 2>/dev/null") end
      procs = {}
    end)

    -- Starts nvim --headless on a Lua script; its results go to `out`.
    local function start_nvim(source, ...)
      local base = net.next_name("nvim")
      local script, out = base .. ".lua", base .. ".out"
      local args = { ... }
      local head = string.format("package.path = %q\npackage.cpath = %q\nlocal OUT, ARG = %q, %q\n",
        abs_paths(package.path), abs_paths(package.cpath), out, args[1] or "")
      net.write_file(script, head .. source)
      local cmd = string.format("(exec %s --headless -u NONE -i NONE -n -c %s >%s.log 2>&1 </dev/null) & echo $!",
        nvim, net.quote("luafile " .. script), base)
      local p = assert(io.popen(cmd))
      local pid = tonumber(p:read("*l"))
      p:close()
      procs[#procs + 1] = pid
      return out, base .. ".log"
    end

    local function wait_file(path, pattern, limit)
      local text
      net.wait_until(function()
        text = net.read_file(path)
        return text and text:match(pattern)
      end, limit or 15)
      return text
    end

    -- Written into the Neovim scripts: the result file and a guard.
    local PRELUDE = [[
local function report(s)
  local f = assert(io.open(OUT, "ab")); f:write(s, "\n"); f:close()
end
vim.defer_fn(function() report("GUARD timed out"); vim.cmd("qa!") end, 10000)
local ok, ws = pcall(require, "ws")
if not ok then report("LOADERR " .. tostring(ws)); vim.cmd("qa!") end
]]

    it("runs a client whose callbacks call vim.api", function()
      local reason = skip_reason()
      if reason then pending(reason) return end
      local child, port = net.spawn_echo_server()
      local out, log = start_nvim(PRELUDE .. [[
require("ws.luv").attach()   -- vim.loop and vim.schedule by default
ws.connect("ws://127.0.0.1:" .. ARG .. "/nvim", {
  on_open = function(c) c:send("from neovim") end,
  on_message = function(c, data)
    vim.api.nvim_set_var("ws_reply", data) -- an error in a fast event
    report("REPLY " .. vim.api.nvim_get_var("ws_reply") .. " fast=" .. tostring(vim.in_fast_event()))
    c:close(1000)
  end,
  on_close = function(_, code)
    report("CLOSE " .. code)
    vim.cmd("qa!")
  end,
  on_error = function(_, err) report("ERROR " .. err) end,
})
]], port)
      local text = wait_file(out, "CLOSE %d+") or ""
      local logtext = net.read_file(log) or ""
      assert.matches("REPLY from neovim fast=false", text, 1, false, "output: " .. text .. "\nlog: " .. logtext)
      assert.matches("CLOSE 1000", text)
      child:kill()
    end)

    it("runs a server that a lua-ws client talks to", function()
      local reason = skip_reason()
      if reason then pending(reason) return end
      local out = start_nvim(PRELUDE .. [[
local srv
srv = ws.listen {
  host = "127.0.0.1", port = 0,
  on_message = function(c, data)
    vim.api.nvim_buf_set_lines(0, 0, -1, false, { data })
    c:send("nvim has: " .. vim.api.nvim_buf_get_lines(0, 0, 1, false)[1])
  end,
  on_close = function()
    report("DONE")
    srv:close()
    vim.cmd("qa!")
  end,
}
require("ws.luv").attach()
report("PORT " .. srv.port)
]])
      local port = tonumber((wait_file(out, "PORT (%d+)") or ""):match("PORT (%d+)"))
      assert.is_number(port, "Neovim did not listen: " .. tostring(net.read_file(out)))
      local c = net.track_conn(assert(ws.connect("ws://127.0.0.1:" .. port .. "/")))
      c:send("a line")
      assert.are.equal("nvim has: a line", (c:receive(10)))
      c:close(1000)
      assert.matches("DONE", wait_file(out, "DONE") or "")
    end)
  end)
end)
