-- Small whole frames arriving several to a read take the connection's
-- shortest path (decoded in place, replies written in one go): its edges
-- on real sockets.  Many messages in one read, all answered in order; a
-- close from inside on_message with more frames behind it in the same
-- read; small messages beside a fragmented one and a ping in one read.
-- (A peer that stops reading, output left after a partial write:
-- net_backpressure_spec, net_idle_part_spec.)
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"

local function server_conn(events)
  assert(net.wait_until(function() return #net.select(events, "open") >= 1 end), "server saw no open")
  return net.select(events, "open")[1][2]
end

local function messages(events)
  local t = {}
  for _, e in ipairs(net.select(events, "message")) do t[#t + 1] = e[3] end
  return t
end

-- Read n frames from the raw peer (nil in place of a missing one).
local function read_frames(raw, n)
  local t = {}
  for i = 1, n do
    local f = raw:next_frame(5)
    if not f then break end
    t[i] = f
  end
  return t
end

describe("small frames several to a read", function()
  after_each(function()
    net.cleanup()
  end)

  it("answers every message of one read, in order", function()
    local srv, events = net.echo_server()
    local raw = assert(net.raw_connect(srv.port))
    assert.are.equal(101, assert(raw:handshake(srv.port, "/")).status)
    server_conn(events)
    local parts, want = {}, {}
    for i = 1, 40 do
      want[i] = ("m%03d"):format(i) .. string.rep("x", i)
      parts[i] = net.client_frame(i % 2 == 0 and 2 or 1, want[i])
    end
    assert(raw:send(table.concat(parts)))
    local got = {}
    for i, f in ipairs(read_frames(raw, 40)) do
      got[i] = f.payload
      assert.are.equal(i % 2 == 0 and 2 or 1, f.opcode)
    end
    assert.are.same(want, got)
    assert.are.same(want, messages(events))
  end)

  it("stops answering after a close from inside on_message, frames behind it in the same read", function()
    local events
    local srv
    srv, events = net.echo_server {
      on_message = function(c, data, is_binary)
        events[#events + 1] = { "message", c, data, is_binary }
        if data == "stop" then
          c:close(4001, "done")
        else
          events[#events + 1] = { "sent", c, (c:send(data, is_binary and "binary" or "text")) }
        end
      end,
    }
    local raw = assert(net.raw_connect(srv.port))
    assert.are.equal(101, assert(raw:handshake(srv.port, "/")).status)
    server_conn(events)
    assert(raw:send(net.client_frame(1, "a") .. net.client_frame(1, "stop") .. net.client_frame(2, "b")
      .. net.client_frame(1, "c")))
    local f1, f2 = raw:next_frame(5), raw:next_frame(5)
    assert.are.same({ 1, "a" }, { f1.opcode, f1.payload })
    assert.are.same({ 8, 4001, "done" }, { f2.opcode, f2.code, f2.reason })
    assert(raw:send_close(4001, "done"))
    assert.is_true(raw:wait_eof(5))
    assert.are.equal("", raw:data()) -- nothing was sent after the close frame
    assert.is_true(net.wait_until(function() return #net.select(events, "close") == 1 end))
    local cl = net.select(events, "close")[1]
    assert.are.same({ 4001, "done", true }, { cl[3], cl[4], cl[5] })
    local seen = messages(events)
    assert.are.same({ "a", "stop" }, { seen[1], seen[2] })
    -- "a" was answered; whatever came after the close could not be
    local sent = net.select(events, "sent")
    assert.is_true(sent[1][3])
    for i = 2, #sent do assert.is_falsy(sent[i][3]) end
    assert.are.equal(#seen - 1, #sent)
  end)

  it("delivers small messages around a fragmented one and a ping in the same read", function()
    local srv, events = net.echo_server()
    local raw = assert(net.raw_connect(srv.port))
    assert.are.equal(101, assert(raw:handshake(srv.port, "/")).status)
    server_conn(events)
    assert(raw:send(net.client_frame(1, "one") .. net.client_frame(1, "fr", false)
      .. net.client_frame(9, "pi") .. net.client_frame(0, "ag", false) .. net.client_frame(0, "ment")
      .. net.client_frame(2, "two")))
    local got = read_frames(raw, 4)
    local list = {}
    for i, f in ipairs(got) do list[i] = { f.opcode, f.payload } end
    assert.are.same({ { 1, "one" }, { 10, "pi" }, { 1, "fragment" }, { 2, "two" } }, list)
    assert.are.same({ "one", "fragment", "two" }, messages(events))
  end)
end)
