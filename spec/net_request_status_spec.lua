-- on_request answers with 2xx statuses carry their registered reason
-- phrases (RFC 9110 15.3, RFC 4918, RFC 5842, RFC 3229); an unregistered
-- 2xx gets its class's name.  reason_phrase_spec.lua covers 300..599.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"

local PHRASES = {
  [200] = "OK", [201] = "Created", [202] = "Accepted", [203] = "Non-Authoritative Information",
  [204] = "No Content", [205] = "Reset Content", [206] = "Partial Content", [207] = "Multi-Status",
  [208] = "Already Reported", [226] = "IM Used", [299] = "Success",
}

describe("on_request status lines", function()
  after_each(function() net.cleanup() end)

  it("carry the registered reason phrase of every 2xx", function()
    local srv = net.listen { on_request = function(req, res) res.status = tonumber(req.path:sub(2)) end }
    for status, phrase in pairs(PHRASES) do
      local _, text = net.http_exchange(srv.port, "GET /" .. status .. " HTTP/1.1\r\nHost: h\r\n\r\n")
      assert.are.equal("HTTP/1.1 " .. status .. " " .. phrase, text:match("^([^\r]*)\r\n"), status)
    end
  end)
end)
