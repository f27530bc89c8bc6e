-- A topic most of whose subscribers left gives back its subscriber array
-- (topic.c halves it while under a quarter is used): the rest still get
-- every publish, in order, and joining again grows it back.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"
local topic_util = require "spec.helpers.topics"

describe("topics after many left", function()
  after_each(function() net.cleanup() end)

  it("shrink and grow again without losing a subscriber", function()
    local srv, by_path = topic_util.server()
    local N = 24
    local clients, sides = {}, {}
    for i = 1, N do
      clients[i] = assert(net.connect(net.url(srv, "/c" .. i), { timeout = 5 }))
      sides[i] = topic_util.side(by_path, "/c" .. i)
      assert.is_true(sides[i]:subscribe("room"))
    end
    assert.are.equal(N, srv:subscribers("room"))
    -- from the middle and both ends, so members move inside the array
    for i = 1, N do
      if i ~= 5 and i ~= 12 and i ~= N then
        assert.is_true(sides[i]:unsubscribe("room"))
      end
    end
    assert.are.equal(3, srv:subscribers("room"))
    for k = 1, 3 do assert.are.equal(3, srv:publish("room", "m" .. k)) end
    for _, i in ipairs { 5, 12, N } do
      for k = 1, 3 do assert.are.equal("m" .. k, (clients[i]:receive(5)), "client " .. i) end
    end
    -- back to all of them
    for i = 1, N do sides[i]:subscribe("room") end
    assert.are.equal(N, srv:subscribers("room"))
    assert.are.equal(N, srv:publish("room", "all again"))
    for i = 1, N do assert.are.equal("all again", (clients[i]:receive(5)), "client " .. i) end
  end)
end)
