-- Test certificates for the TLS specs, made with the openssl command line
-- into a fresh temporary directory, once per process (the result is
-- cached).  EC P-256 keys keep the generation fast.
--
--   local certs = require("spec.helpers.certs").get()
--
-- returns a table of paths:
--   dir          the temporary directory
--   ca           CA certificate (PEM) that signed server, wrong and client
--   capath       a directory holding the CA certificate under its hash name
--                (nil when `openssl rehash` is not available)
--   server_cert  server_key   SAN DNS:localhost, IP:127.0.0.1, IP:::1
--   wrong_cert   wrong_key    signed by the CA, but for wrong.example.invalid
--   self_cert    self_key     self-signed, SAN localhost / 127.0.0.1 / ::1
--   client_cert  client_key   client certificate (clientAuth) signed by the CA
--
-- Lua 5.1 compatible.

local M = {}

local cached

local CONFIG = [[
[req]
distinguished_name = dn
prompt = no

[dn]
CN = unused

[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash

[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[wrong]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.example.invalid
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[self]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1
subjectKeyIdentifier = hash

[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
]]

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = quote

-- Run a shell command; return its output, or raise with the output when it
-- failed.  The exit status is read from the output itself because
-- io.popen():close() reports nothing on Lua 5.1.
local function sh(cmd)
  local p = assert(io.popen("(" .. cmd .. ") 2>&1; echo \"__exit:$?\""))
  local out = p:read("*a")
  p:close()
  local body, code = out:match("^(.-)__exit:(%d+)%s*$")
  if not body or code ~= "0" then
    error("certs: command failed (" .. tostring(code) .. "): " .. cmd .. "\n" .. tostring(body or out), 2)
  end
  return body
end
M.sh = sh

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- Directories made here, removed at exit (best effort: when the Lua state
-- closes).
local dirs = {}

-- A fresh private directory named after os.tmpname().
function M.tmpdir(tag)
  local name = os.tmpname()
  os.remove(name)
  name = name .. "-" .. (tag or "lua-ws")
  sh("mkdir -m 700 " .. quote(name))
  dirs[#dirs + 1] = name
  return name
end

local function remove_dirs()
  for _, d in ipairs(dirs) do
    os.execute("rm -rf " .. quote(d))
  end
end
if _VERSION == "Lua 5.1" and newproxy then -- luacheck: ignore 113
  local proxy = newproxy(true) -- luacheck: ignore 113
  getmetatable(proxy).__gc = remove_dirs
  M._sentinel = proxy
else
  M._sentinel = setmetatable({}, { __gc = remove_dirs })
end

local function make()
  local dir = M.tmpdir("certs")
  local function p(name) return dir .. "/" .. name end
  local cnf = p("openssl.cnf")
  write(cnf, CONFIG)
  local q = quote

  local function key(name)
    sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " .. q(p(name)))
  end

  -- CA
  key("ca.key")
  sh(string.format("openssl req -x509 -new -key %s -sha256 -days 3 -subj %s -config %s -extensions v3_ca -out %s",
    q(p("ca.key")), q("/CN=lua-ws test CA"), q(cnf), q(p("ca.pem"))))

  -- Leaf signed by the CA.
  local serial = 1000
  local function signed(name, cn, section)
    key(name .. ".key")
    sh(string.format("openssl req -new -key %s -subj %s -config %s -out %s",
      q(p(name .. ".key")), q("/CN=" .. cn), q(cnf), q(p(name .. ".csr"))))
    serial = serial + 1
    sh(string.format("openssl x509 -req -in %s -CA %s -CAkey %s -set_serial %d -days 3 -sha256 "
      .. "-extfile %s -extensions %s -out %s",
      q(p(name .. ".csr")), q(p("ca.pem")), q(p("ca.key")), serial, q(cnf), section, q(p(name .. ".pem"))))
  end
  signed("server", "localhost", "server")
  signed("wrong", "wrong.example.invalid", "wrong")
  signed("client", "lua-ws test client", "client")

  -- Self-signed leaf.
  key("self.key")
  sh(string.format("openssl req -x509 -new -key %s -sha256 -days 3 -subj %s -config %s -extensions self -out %s",
    q(p("self.key")), q("/CN=localhost"), q(cnf), q(p("self.pem"))))

  -- A CA directory for the capath option.
  local capath = p("capath")
  sh("mkdir " .. q(capath) .. " && cp " .. q(p("ca.pem")) .. " " .. q(capath .. "/ca.pem"))
  if not pcall(sh, "openssl rehash " .. q(capath)) then capath = nil end

  return {
    dir = dir,
    ca = p("ca.pem"),
    capath = capath,
    server_cert = p("server.pem"), server_key = p("server.key"),
    wrong_cert = p("wrong.pem"), wrong_key = p("wrong.key"),
    self_cert = p("self.pem"), self_key = p("self.key"),
    client_cert = p("client.pem"), client_key = p("client.key"),
  }
end

-- The certificate paths; generated on the first call.
function M.get()
  if not cached then cached = make() end
  return cached
end

return setmetatable(M, { __call = function() return M.get() end })
