-- A rejected handshake's status line carries the status's reason phrase
-- from the IANA HTTP status code registry (RFC 9110 section 15 and the
-- RFCs it lists); an unregistered status gets its class's name.
local ws = require "ws"

local REGISTERED = {
  [300] = "Multiple Choices", [301] = "Moved Permanently", [302] = "Found", [303] = "See Other",
  [304] = "Not Modified", [305] = "Use Proxy", [307] = "Temporary Redirect",
  [308] = "Permanent Redirect", [400] = "Bad Request", [401] = "Unauthorized",
  [402] = "Payment Required", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [406] = "Not Acceptable",
  [407] = "Proxy Authentication Required", [408] = "Request Timeout", [409] = "Conflict",
  [410] = "Gone", [411] = "Length Required", [412] = "Precondition Failed",
  [413] = "Content Too Large", [414] = "URI Too Long", [415] = "Unsupported Media Type",
  [416] = "Range Not Satisfiable", [417] = "Expectation Failed", [421] = "Misdirected Request",
  [422] = "Unprocessable Content", [423] = "Locked", [424] = "Failed Dependency",
  [425] = "Too Early", [426] = "Upgrade Required", [428] = "Precondition Required",
  [429] = "Too Many Requests", [431] = "Request Header Fields Too Large",
  [451] = "Unavailable For Legal Reasons", [500] = "Internal Server Error",
  [501] = "Not Implemented", [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout", [505] = "HTTP Version Not Supported",
  [506] = "Variant Also Negotiates", [507] = "Insufficient Storage", [508] = "Loop Detected",
  [511] = "Network Authentication Required",
}
local CLASS = { [3] = "Redirection", [4] = "Client Error", [5] = "Server Error" }

local function status_line(status)
  local request = ws.session { role = "client", url = "ws://example.org/" }:output()
  local s = ws.session { role = "server" }
  s:feed(request)
  assert.are.equal("request", (s:next_event()))
  s:reject(status)
  return (s:output():match("^([^\r]*)\r\n"))
end

describe("reason phrases of rejected handshakes", function()
  it("are the registered phrase for every registered status from 300 to 599", function()
    for status = 300, 599 do
      local phrase = REGISTERED[status] or CLASS[math.floor(status / 100)]
      assert.are.equal("HTTP/1.1 " .. status .. " " .. phrase, status_line(status))
    end
  end)
end)
