-- A real nginx with lua-nginx-module for the ws.resty specs: a prefix
-- folder in a temp dir, a config written at test time (the modules loaded
-- as Debian packages them, lua_package_path/cpath to this checkout), one
-- process (master_process off) on a free port, stopped by stop().
--
--   local nginx = require "spec.helpers.nginx"
--   local n = nginx.start{ locations = "location /echo { content_by_lua_block { ... } }",
--                          ssl = { cert = ..., key = ... }, trusted = cafile }
--   n.port, n.ssl_port, n:log(), n:stop()
--
-- Lua 5.1 compatible.
local net = require "spec.helpers.net_util"
local proc = require "spec.helpers.proc"

local M = {}

M.MODULES = {
  "/usr/lib/nginx/modules/ndk_http_module.so",
  "/usr/lib/nginx/modules/ngx_http_lua_module.so",
}

-- The name of the one (pending) test of a spec when nginx.missing() says why.
M.NEEDS = "needs nginx with lua-nginx-module and LuaJIT"

-- Why nginx specs cannot run here, or nil.
function M.missing()
  if net.sh("command -v nginx || true"):match("^%s*$") then return "nginx is not installed" end
  for _, m in ipairs(M.MODULES) do
    if not net.read_file(m) then return m .. " is missing (libnginx-mod-http-lua)" end
  end
  if not rawget(_G, "jit") then
    return "nginx runs LuaJIT: the ws.resty specs run in the LuaJIT pass (ws.core built for LuaJIT)"
  end
  return nil
end

local function cwd()
  return os.getenv("PWD") or net.sh("pwd"):match("[^\n]+")
end

local function abs_paths(path)
  local dir, parts = cwd(), {}
  for entry in (path .. ";"):gmatch("([^;]*);") do
    if entry ~= "" and entry:sub(1, 1) ~= "/" then entry = dir .. "/" .. entry:gsub("^%./", "") end
    if entry ~= "" then parts[#parts + 1] = entry end
  end
  return table.concat(parts, ";") .. ";;"
end
M.abs_paths = abs_paths

local free_port = net.free_port

local Nginx = {}
Nginx.__index = Nginx

function Nginx:log() return net.read_file(self.prefix .. "/logs/error.log") or "" end

function Nginx:stop()
  if self.proc then self.proc:kill(2) end
  self.proc = nil
end

function M.start(opts)
  local prefix = net.next_name("nginx")
  assert(os.execute("mkdir -p " .. net.quote(prefix .. "/conf") .. " " .. net.quote(prefix .. "/logs") .. " "
    .. net.quote(prefix .. "/tmp")))
  local port = free_port()
  local ssl_port = opts.ssl and free_port() or nil
  local lines = {}
  for _, m in ipairs(M.MODULES) do lines[#lines + 1] = "load_module " .. m .. ";" end
  lines[#lines + 1] = [[
daemon off;
master_process off;
worker_processes 1;
error_log logs/error.log info;
pid logs/nginx.pid;
events { worker_connections 256; }
http {
  access_log off;
  lua_socket_log_errors off; # read timeouts are how ws.resty wakes for keepalive
  client_body_temp_path tmp; proxy_temp_path tmp; fastcgi_temp_path tmp;
  uwsgi_temp_path tmp; scgi_temp_path tmp;]]
  lines[#lines + 1] = ("  lua_package_path %q;"):format(abs_paths(package.path))
  lines[#lines + 1] = ("  lua_package_cpath %q;"):format(abs_paths(package.cpath))
  if opts.trusted then
    lines[#lines + 1] = ("  lua_ssl_trusted_certificate %s;\n  lua_ssl_verify_depth 3;"):format(opts.trusted)
  end
  lines[#lines + 1] = "  server {\n    listen 127.0.0.1:" .. port .. ";"
  if opts.ssl then
    lines[#lines + 1] = ("    listen 127.0.0.1:%d ssl;\n    ssl_certificate %s;\n    ssl_certificate_key %s;")
      :format(ssl_port, opts.ssl.cert, opts.ssl.key)
  end
  lines[#lines + 1] = opts.locations
  lines[#lines + 1] = "  }\n}\n"
  net.write_file(prefix .. "/conf/nginx.conf", table.concat(lines, "\n"))
  local self = setmetatable({ prefix = prefix, port = port, ssl_port = ssl_port }, Nginx)
  self.proc = proc.start("nginx", { "nginx", "-p", prefix, "-c", "conf/nginx.conf" })
  -- Up once it accepts connections.
  local up = net.wait_until(function()
    local r = net.raw_connect(port, { no_read = true })
    if r then r:close() return true end
    return not self.proc:alive()
  end, 10)
  if not up or not self.proc:alive() then
    error("nginx did not start:\n" .. self.proc:errors() .. "\n" .. self:log(), 2)
  end
  return self
end

return M
