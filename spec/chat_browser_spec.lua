-- The chat example with a real browser: headless Chromium (Debian package
-- `chromium`) driven by playwright-core (npm, in build/node) through
-- spec/helpers/browser.js.  The page sends a message that a Lua client must
-- receive, and the Lua client's answer must show up in the page.  Multi-node:
-- two chat servers joined by a real redis-server, a page on each; what is
-- typed in the page of node A shows up in the page of node B and back.
--
-- Runs on Lua 5.4 only (the page and the server do not depend on the Lua
-- version, and one browser run per `make test` is enough).  Its peers are
-- installed on demand by scripts/browser_deps.sh; when that fails the test
-- fails on CI (CI=true) and is pending elsewhere.
local net = require "spec.helpers.net_util"
local proc = require "spec.helpers.proc"
local redis = require "spec.helpers.redis"
local ws = require "ws"

local function is_lua54()
  return _VERSION == "Lua 5.4" and rawget(_G, "jit") == nil
end

-- Install what is missing (once per process); true, or false plus the log.
local deps_ok, deps_log
local function browser_deps()
  if deps_ok == nil then
    local out, code = proc.sh("bash scripts/browser_deps.sh", 600)
    deps_ok, deps_log = code == 0, out
  end
  return deps_ok, deps_log
end

-- The JSON lines browser.js printed, as {event = ..., text = ..., message = ...}
-- (flat string fields are all the spec needs; no JSON library).
local function events(text)
  local list = {}
  for line in text:gmatch("[^\n]+") do
    local e = {}
    for k, v in line:gmatch('"(%w+)":"([^"\\]*)"') do
      if e[k] == nil then e[k] = v end
    end
    e.ok = line:match('"ok":true') ~= nil
    e.line = line
    if e.event then list[#list + 1] = e end
  end
  return list
end

local function find(list, name)
  for _, e in ipairs(list) do
    if e.event == name then return e end
  end
end

describe("chat example in headless Chromium", function()
  local conns = {}

  after_each(function()
    redis.stop_all()
    for _, c in ipairs(conns) do
      if c.ready_state == "OPEN" then c:close() end
    end
    net.wait_until(function()
      for _, c in ipairs(conns) do
        if c.ready_state ~= "CLOSED" then return false end
      end
      return true
    end, 3)
    conns = {}
    proc.stop_all()
    net.cleanup()
  end)

  -- Lua 5.4 with Chromium and playwright-core; else pending (an error on CI
  -- when they cannot be installed).
  local function can_run()
    if not is_lua54() then
      pending("the browser spec runs on Lua 5.4 only (this is " .. (rawget(_G, "jit") and "LuaJIT" or _VERSION) .. ")")
      return false
    end
    local ok, log = browser_deps()
    if not ok then
      local msg = "Chromium/playwright-core are missing and could not be installed "
        .. "(scripts/browser_deps.sh):\n" .. tostring(log)
      if os.getenv("CI") == "true" then error(msg, 0) end
      pending(msg)
      return false
    end
    return true
  end

  it("a message typed in the page reaches a Lua client, and the Lua client's reaches the page", function()
    if not can_run() then return end

    local started = net.now()
    local server = proc.lua("examples/chat/server.lua", "0", "--seconds", "60")
    local port = tonumber(server:wait_for("listening on ws://127%.0%.0%.1:(%d+)/chat\n"))

    -- The Lua side of the conversation.
    local lua_client = assert(ws.connect("ws://127.0.0.1:" .. port .. "/chat"))
    conns[#conns + 1] = lua_client

    local tag = tostring(os.time()) .. "-" .. tostring(math.random(100000, 999999))
    local from_browser = "hello from chromium " .. tag
    local from_lua = "hello from lua " .. tag

    local browser = proc.start("browser.js", { "env", "-u", "LD_PRELOAD", "node", "spec/helpers/browser.js",
      "http://127.0.0.1:" .. port .. "/", from_browser, from_lua })
    local function seen() return events(browser:output()) end
    local function failure()
      local e = find(seen(), "error")
      return ("browser.js: %s\nstdout:\n%s\nstderr:\n%s"):format(e and e.line or "(no error line)",
        browser:output(), browser:errors())
    end

    -- The browser types and sends; the server broadcasts; the Lua client
    -- receives it (the loop keeps stepping meanwhile).
    local got, kind = lua_client:receive(40)
    assert(got, "the Lua client got nothing from the browser (" .. tostring(kind) .. ")\n" .. failure())
    assert.equals(from_browser, got)
    assert.equals("text", kind)
    assert.truthy(net.wait_until(function() return find(seen(), "echoed") or not browser:alive() end, 15),
      failure())
    assert.truthy(find(seen(), "echoed"), failure())
    assert.truthy(find(seen(), "open"), failure())

    -- Now the Lua client speaks and the page must show it.
    assert.is_true(lua_client:send(from_lua))
    assert.equals(from_lua, (lua_client:receive(5))) -- the broadcast includes the sender
    net.wait_until(function() return find(seen(), "done") or not browser:alive() end, 20)
    local done = find(seen(), "done")
    assert(done and done.ok, failure())
    assert.equals(from_lua, (find(seen(), "received") or {}).text)
    assert.matches((from_browser:gsub("%p", "%%%0")), done.line) -- the page's list holds both
    assert.truthy(browser:wait_exit(10), "browser.js did not exit")

    server:wait_for("join .*join ")
    lua_client:close()
    assert.is_true(net.now() - started < 60, "the browser spec took too long")
  end)

  it("multi-node: a message typed in a page on node A shows up in a page on node B, and back", function()
    if not can_run() then return end
    local started = net.now()
    local r = redis.start()
    local function chat_node()
      local p = proc.lua("examples/chat/server.lua", "0", "--seconds", "60", "--redis", r.port)
      local port = tonumber(p:wait_for("listening on ws://127%.0%.0%.1:(%d+)/chat\n"))
      p:wait_for("redis connected, node %x+")
      return p, port
    end
    local node_a, port_a = chat_node()
    local node_b, port_b = chat_node()
    local tag = tostring(os.time()) .. "-" .. tostring(math.random(100000, 999999))
    local from_a, from_b = "hello from node A " .. tag, "hello from node B " .. tag

    local function page(port, text, wait_for, mode)
      local argv = { "env", "-u", "LD_PRELOAD", "node", "spec/helpers/browser.js",
        "http://127.0.0.1:" .. port .. "/", text, wait_for }
      if mode then argv[#argv + 1] = mode end
      return proc.start("browser.js", argv)
    end
    local function failure(b)
      local e = find(events(b:output()), "error")
      return ("browser.js: %s\nstdout:\n%s\nstderr:\n%s"):format(e and e.line or "(no error line)",
        b:output(), b:errors())
    end
    -- B listens first: its page is open and node B subscribed before A types.
    local page_b = page(port_b, from_b, from_a, "answer")
    assert.truthy(net.wait_until(function()
      return find(events(page_b:output()), "open") or not page_b:alive()
    end, 30), failure(page_b))
    assert.truthy(find(events(page_b:output()), "open"), failure(page_b))
    assert.truthy(net.wait_until(function() return r:numsub("chat:chat") == 1 end, 10))
    local page_a = page(port_a, from_a, from_b)
    for _, b in ipairs { page_a, page_b } do
      net.wait_until(function() return find(events(b:output()), "done") or not b:alive() end, 40)
      local done = find(events(b:output()), "done")
      assert(done and done.ok, failure(b))
      -- Each page's list holds both messages, each once.
      for _, text in ipairs { from_a, from_b } do
        local _, count = done.line:gsub((text:gsub("%p", "%%%0")), "")
        assert.are.equal(1, count, text .. " in " .. done.line)
      end
      assert.truthy(b:wait_exit(10), "browser.js did not exit")
    end
    node_a:wait_for("join ")
    node_b:wait_for("join ")
    assert.is_true(net.now() - started < 90, "the multi-node browser spec took too long")
  end)
end)
