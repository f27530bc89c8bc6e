-- permessage-deflate over real TCP on 127.0.0.1: ws.connect <-> ws.listen
-- with compress, large JSON-like text round trips, the extensions field on
-- both ends, declined offers, and the inflated-size limit.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"

local function json_like(n, seed)
  local t = {}
  for i = 1, n do
    t[i] = string.format('{"id":%d,"user":"user%d","tags":["a","b","c"],"score":%d.%d}',
                         i, (i * 7 + seed) % 97, (i * 31 + seed) % 1000, i % 10)
  end
  return "[" .. table.concat(t, ",") .. "]"
end

describe("permessage-deflate over sockets", function()
  after_each(function()
    net.cleanup()
  end)

  local function server(compress, extra)
    local opts = { compress = compress }
    for k, v in pairs(extra or {}) do opts[k] = v end
    local srv, events = net.echo_server(opts)
    return srv, events
  end

  local function server_conn(events)
    for _, e in ipairs(events) do
      if e[1] == "open" then return e[2] end
    end
  end

  it("negotiates and round-trips large JSON-like text messages", function()
    local srv, events = server(true)
    local c = assert(net.connect(net.url(srv, "/"), { compress = true }))
    assert.are.equal("permessage-deflate", c.extensions)
    assert(net.wait_until(function() return server_conn(events) ~= nil end, 5))
    assert.are.equal("permessage-deflate", server_conn(events).extensions)
    for i = 1, 4 do
      local msg = json_like(5000 * i, i)
      assert.is_true(c:send(msg))
      local got, kind = c:receive(10)
      assert.are.equal("text", kind)
      local ok, why = net.same(msg, got)
      assert(ok, why)
    end
    local bin = string.rep("\0\1\2\3", 50000)
    assert.is_true(c:send(bin, "binary"))
    local got, kind = c:receive(10)
    assert.are.equal("binary", kind)
    assert.is_true(got == bin)
    c:close()
  end)

  it("negotiates every parameter between client and server", function()
    local srv = server({ client_max_window_bits = 10, no_context_takeover = true,
                         client_no_context_takeover = true })
    local c = assert(net.connect(net.url(srv, "/"), {
      compress = { threshold = 0, server_max_window_bits = 12, server_no_context_takeover = true },
    }))
    assert.are.equal("permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
                     .. " server_max_window_bits=12; client_max_window_bits=10", c.extensions)
    for i = 1, 3 do
      local msg = json_like(1000, i)
      assert.is_true(c:send(msg))
      local ok, why = net.same(msg, (c:receive(10)))
      assert(ok, why)
    end
  end)

  it("stays uncompressed when the server does not enable compress", function()
    local srv = server(nil)
    local c = assert(net.connect(net.url(srv, "/"), { compress = true }))
    assert.is_nil(c.extensions) -- nil when none, as everywhere
    local msg = json_like(100, 1)
    assert.is_true(c:send(msg))
    assert.are.equal(msg, (c:receive(10)))
  end)

  it("closes with 1009 when a message inflates past max_message", function()
    local srv, events = server(true, { max_message = 100000 })
    local c = assert(net.connect(net.url(srv, "/"), { compress = true }))
    assert.is_true(c:send(string.rep("a", 5000000)))
    local data, what, code = c:receive(10)
    assert.is_nil(data)
    assert.are.equal("closed", what)
    assert.are.equal(1009, code)
    assert(net.wait_until(function()
      for _, e in ipairs(events) do
        if e[1] == "close" then return true end
      end
      return false
    end, 5))
  end)

  it("streams fragments of a compressed message", function()
    local srv = server(true)
    local c = assert(net.connect(net.url(srv, "/"), { compress = true }))
    local parts = { json_like(300, 1), json_like(300, 2), json_like(300, 3) }
    for i, p in ipairs(parts) do assert.is_true(c:send_fragment(p, i == #parts)) end
    local ok, why = net.same(table.concat(parts), (c:receive(10)))
    assert(ok, why)
  end)
end)
