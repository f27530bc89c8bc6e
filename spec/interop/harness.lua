-- Turns a peer description into busted tests over the scenario matrix of
-- spec/interop/scenarios.lua, in both directions:
--
--   "<peer> lua-client->peer-server <scenario>"   lua-ws connects to the peer
--   "<peer> peer-client->lua-server <scenario>"   the peer connects to lua-ws
--
-- and, for a peer with `deflate = true`, over the compressed column
-- (scenarios.deflate_names, permessage-deflate negotiated): the same peer
-- server, and a second peer client run against lua-ws servers with
-- `compress` (scenarios.DEFLATE_SERVER*).
--
-- Each test prints one line "[interop] <peer> <direction> <scenario>
-- pass|fail|pending" and appends it to build/interop/results.txt
-- (spec/interop/report.lua turns that file into a table).
--
-- peer = {
--   name = "node-ws", deps = "node-ws",             -- scripts/interop_deps.sh PEER
--   server = function(certs) return argv end,        -- nil: no server role
--   client = function(st, names) return argv end,    -- nil: no client role
--   server_na = {scenario = why},                    -- lua-client direction: not applicable
--   check_opts = {scenario = opts},                  -- passed to scenarios.server_checks
--   deflate = true,                                  -- also the compressed column
-- }
-- env = {describe = describe, it = it, pending = pending, teardown = teardown}
-- (busted's functions live in the spec file's environment, not in _G).
-- Lua 5.1 compatible.
local net = require "spec.helpers.net_util"
local proc = require "spec.helpers.proc"
local scenarios = require "spec.interop.scenarios"

local M = {}

M.DIR_CLIENT = "lua-client->peer-server"
M.DIR_SERVER = "peer-client->lua-server"

local function is_lua54()
  return _VERSION == "Lua 5.4" and rawget(_G, "jit") == nil
end

local function record(peer, dir, scen, result, why)
  local line = ("[interop] %s %s %s %s"):format(peer, dir, scen, result)
  print(line .. (why and result ~= "pass" and ("  -- " .. tostring(why):gsub("\n.*", "")) or ""))
  os.execute("mkdir -p build/interop")
  local f = io.open("build/interop/results.txt", "ab")
  if f then
    f:write(line, "\n")
    f:close()
  end
end

local deps_cache = {}
local function deps(name)
  if deps_cache[name] == nil then
    local out, code = proc.sh("bash scripts/interop_deps.sh " .. name, 900)
    deps_cache[name] = { code == 0, out }
  end
  return deps_cache[name][1], deps_cache[name][2]
end

local function results(text)
  local r = {}
  for name, status, why in text:gmatch("RESULT (%S+) (%a+) ?([^\n]*)") do
    r[name] = { status, why }
  end
  return r
end

function M.define(peer, env)
  local describe, it, pending, teardown = env.describe, env.it, env.pending, env.teardown
  describe("interop with " .. peer.name, function()
    local certs
    local server_proc, server_ctx

    local function get_certs()
      certs = certs or require("spec.helpers.certs").get()
      return certs
    end

    local function start_peer_server()
      if server_ctx then return server_ctx end
      local c = get_certs()
      server_proc = proc.start(peer.name .. " server", peer.server(c))
      local port = tonumber(server_proc:wait_for("PORT (%d+)\n", 30))
      local tls = tonumber(server_proc:output():match("TLSPORT (%d+)\n") or "")
      if not tls then tls = tonumber(server_proc:wait_for("TLSPORT (%d+)\n", 5)) end
      server_ctx = {
        base = "ws://127.0.0.1:" .. port,
        wss = tls and ("wss://localhost:" .. tls),
        cafile = c.ca, peer = server_proc,
      }
      return server_ctx
    end

    -- One peer client per column: {st = lua-ws servers, p = the process}.
    local clients = {}
    local function start_peer_client(column)
      if clients[column] then return clients[column] end
      local st, names, extra_env
      if column == "deflate" then
        st = scenarios.start_lua_server(get_certs(), scenarios.DEFLATE_SERVER, scenarios.DEFLATE_SERVER_EXTRA)
        names, extra_env = scenarios.deflate_names, {}
        for name, base in pairs(st.bases) do extra_env[#extra_env + 1] = "INTEROP_BASE_" .. name .. "=" .. base end
        table.sort(extra_env)
      else
        st, names = scenarios.start_lua_server(get_certs()), scenarios.names
      end
      local argv = peer.client(st, names)
      if extra_env and #extra_env > 0 then
        local pos = 2
        if argv[1] ~= "env" then table.insert(argv, 1, "env") end
        while argv[pos] == "-u" do pos = pos + 2 end
        for i = #extra_env, 1, -1 do table.insert(argv, pos, extra_env[i]) end
      end
      clients[column] = { st = st, p = proc.start(peer.name .. " " .. column .. " client", argv) }
      return clients[column]
    end

    teardown(function()
      proc.stop_all()
      net.cleanup()
    end)

    local function case(dir, scen, body)
      if not is_lua54() then
        -- Declared pending (not an empty pass): the interop specs run on Lua 5.4 only.
        pending(peer.name .. " " .. dir .. " " .. scen .. " (Lua 5.4 only)")
        return
      end
      it(peer.name .. " " .. dir .. " " .. scen, function()
        local ok, log = deps(peer.deps or peer.name)
        if not ok then
          local msg = peer.name .. " is missing and could not be installed (scripts/interop_deps.sh):\n"
            .. tostring(log)
          record(peer.name, dir, scen, "fail", "not installed")
          if os.getenv("CI") == "true" then error(msg, 0) end
          pending(msg)
          return
        end
        local res = { pcall(body) }
        if not res[1] then
          record(peer.name, dir, scen, "fail", type(res[2]) == "table" and res[2].message or res[2])
          error(res[2], 0)
        elseif res[2] == "na" then
          record(peer.name, dir, scen, "n/a", res[3])
          pending("not applicable to " .. peer.name .. ": " .. tostring(res[3]))
        else
          record(peer.name, dir, scen, "pass")
        end
      end)
    end

    local function column(name, names, client_fns, checks)
      if peer.server then
        for _, scen in ipairs(names) do
          case(M.DIR_CLIENT, scen, function()
            if peer.server_na and peer.server_na[scen] then return "na", peer.server_na[scen] end
            local ctx = start_peer_server()
            client_fns[scen](ctx)
          end)
        end
      end

      if peer.client then
        for _, scen in ipairs(names) do
          case(M.DIR_SERVER, scen, function()
            local cl = start_peer_client(name)
            local client_proc = cl.p
            local found
            net.wait_until(function()
              found = results(client_proc:output())[scen]
              return found or not client_proc:alive()
            end, peer.client_timeout or 120)
            found = found or results(client_proc:output())[scen]
            if not found then
              error(("%s client printed no RESULT for %s\nstdout:\n%s\nstderr:\n%s"):format(peer.name, scen,
                client_proc:output():sub(-2000), client_proc:errors():sub(-2000)), 0)
            end
            if found[1] == "na" then return "na", found[2] end
            assert(found[1] == "ok", peer.name .. " client: " .. scen .. ": " .. found[1] .. " " .. found[2]
              .. "\nstderr:\n" .. client_proc:errors():sub(-1500))
            local rec = cl.st.rec["/" .. scen] or cl.st.rec_for("/" .. scen)
            checks[scen](rec, peer.check_opts and peer.check_opts[scen])
          end)
        end
      end
    end

    column("plain", scenarios.names, scenarios.client, scenarios.server_checks)
    if peer.deflate then
      column("deflate", scenarios.deflate_names, scenarios.client, scenarios.server_checks)
    end
  end)
end

return M
