-- A wss:// echo server with a self-signed certificate for localhost, made on
-- the fly with the openssl command line into a fresh temporary directory.
--   lua5.4 examples/wss_server.lua [PORT] [--seconds N]
-- PORT (or $WS_PORT) defaults to 8443; 0 picks a free port.  It prints
--   certificate: /tmp/.../cert.pem
--   listening on wss://localhost:PORT/
-- A client trusts that certificate with tls = {cafile = "<that path>"}:
--   local c = ws.connect("wss://localhost:PORT/", {tls = {cafile = path}})
-- The directory is removed when the server stops by itself (--seconds N);
-- after Ctrl-C or a kill it stays in /tmp (its path is the one printed).
local ws = require "ws"

io.stdout:setvbuf("line")

local port, seconds = tonumber(os.getenv("WS_PORT") or "8443"), nil
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "--seconds" then
    seconds = tonumber(arg[i + 1]); i = i + 1
  elseif a == "--port" then
    port = tonumber(arg[i + 1]); i = i + 1
  elseif tonumber(a) then
    port = tonumber(a)
  else
    io.stderr:write("usage: wss_server.lua [PORT] [--seconds N]\n")
    os.exit(2)
  end
  i = i + 1
end

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Run a shell command; raise with its output when it fails.  (The status is
-- read from the output: io.popen():close() reports nothing on Lua 5.1.)
local function sh(cmd)
  local p = assert(io.popen("(" .. cmd .. ") 2>&1; echo \"__exit:$?\""))
  local out = p:read("*a")
  p:close()
  local body, code = out:match("^(.-)__exit:(%d+)%s*$")
  if code ~= "0" then error("command failed: " .. cmd .. "\n" .. tostring(body or out), 0) end
  return body
end

-- A private directory named after os.tmpname().
local dir = os.tmpname()
os.remove(dir)
dir = dir .. "-lua-ws-wss"
sh("mkdir -m 700 " .. quote(dir))

local cert, key, cnf = dir .. "/cert.pem", dir .. "/key.pem", dir .. "/openssl.cnf"
local f = assert(io.open(cnf, "wb"))
f:write([[
[req]
distinguished_name = dn
prompt = no
[dn]
CN = localhost
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1
subjectKeyIdentifier = hash
]])
f:close()
local ok, err = pcall(function()
  sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " .. quote(key))
  sh(("openssl req -x509 -new -key %s -sha256 -days 2 -config %s -extensions leaf -out %s")
    :format(quote(key), quote(cnf), quote(cert)))
end)
if not ok then
  os.execute("rm -rf " .. quote(dir))
  io.stderr:write("could not make a certificate (is the openssl command installed?)\n", tostring(err), "\n")
  os.exit(1)
end

local server = ws.listen {
  host = "127.0.0.1",
  port = port,
  tls = { cert = cert, key = key },
  on_open = function(c)
    print(("open %s:%d (TLS name %s)"):format(c.remote_address, c.remote_port, tostring(c.server_name)))
  end,
  on_message = function(c, data, is_binary) c:send(data, is_binary and "binary" or "text") end,
  on_close = function(c, code) print(("closed %s:%d %d"):format(c.remote_address, c.remote_port, code)) end,
  on_error = function(c, e) print(("error %s:%d %s"):format(c.remote_address, c.remote_port, e)) end,
}
print("certificate: " .. cert)
print(("listening on wss://localhost:%d/"):format(server.port))

if seconds then
  ws.timer(seconds, function() server:close() end)
end
local run_ok, run_err = pcall(ws.run)
os.execute("rm -rf " .. quote(dir))
if not run_ok then error(run_err, 0) end
