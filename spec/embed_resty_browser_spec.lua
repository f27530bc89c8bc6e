-- ws.resty inside a real nginx, driven by a real browser: nginx serves a
-- page and a ws.resty echo endpoint (permessage-deflate allowed, which
-- Chromium always offers); headless Chromium (Debian `chromium`, driven by
-- playwright-core from build/node) loads the page, whose script talks to
-- the endpoint through the browser's WebSocket API and reports what it saw.
-- The endpoint writes what it received and how the connection closed to a
-- file the spec reads.
--
-- Runs in the LuaJIT pass only (nginx runs LuaJIT; pending elsewhere, like
-- spec/embed_resty_spec.lua).  The browser peers are installed on demand by
-- scripts/browser_deps.sh; when that fails the test fails on CI (CI=true)
-- and is pending elsewhere.
-- Lua 5.1 compatible.

local net = require "spec.helpers.net_util"
local nginx = require "spec.helpers.nginx"
local proc = require "spec.helpers.proc"

-- Multi-byte UTF-8 (2, 3 and 4 byte sequences) in a message and in the
-- close reason.
local UTF8 = "h\195\169llo w\195\182rld \226\128\148 \230\151\165\230\156\172\232\170\158 \240\159\154\128"
local REASON = "bye from chromium \226\156\147"
local BIG = 102400 -- bytes of the large text message

-- The page: one WebSocket, a text / binary / large text round trip, then
-- close(1000, REASON). Each finding is a "key<TAB>value" line in
-- window.results; window.done says it is over.
local PAGE = [[
<!doctype html>
<meta charset="utf-8">
<title>ws.resty in Chromium</title>
<script>
"use strict";
window.results = [];
window.done = false;
const out = (k, v) => window.results.push(k + "\t" + v);
const UTF8 = "@UTF8@", REASON = "@REASON@", BIG = @BIG@;
const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
// Deterministic, not trivially compressible text.
let big = "", x = 12345;
const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;";
while (big.length < BIG) {
  x = (Math.imul(x, 1103515245) + 12345) >>> 0;
  big += alphabet[(x >>> 16) % alphabet.length];
}
const ws = new WebSocket("ws://" + location.host + "/ws", ["x.v0", "chat.v1"]);
ws.binaryType = "arraybuffer";
const queue = [];
let waiter = null;
ws.onmessage = (e) => {
  if (waiter) { const w = waiter; waiter = null; w(e.data); } else queue.push(e.data);
};
const next = () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => { waiter = r; }));
const closed = new Promise((r) => { ws.onclose = r; });
(async () => {
  await Promise.race([new Promise((r) => { ws.onopen = r; }),
    closed.then((e) => { throw new Error("closed before open: " + e.code); })]);
  out("extensions", ws.extensions);
  out("protocol", ws.protocol);
  ws.send(UTF8);
  let m = await next();
  out("utf8_type", typeof m);
  out("utf8", m);
  const bin = new Uint8Array(256).map((_, i) => 255 - i);
  ws.send(bin);
  m = await next();
  out("binary_type", m instanceof ArrayBuffer ? "arraybuffer" : typeof m);
  out("binary", hex(m));
  ws.send(big);
  m = await next();
  out("big_len", m.length);
  out("big_same", m === big ? "yes" : "no");
  ws.close(1000, REASON);
  const e = await closed;
  out("close_code", e.code);
  out("close_reason", e.reason);
  out("close_clean", e.wasClean);
})().catch((e) => out("error", String(e))).finally(() => { window.done = true; });
</script>
]]

-- Loads PAGE_URL in headless Chromium and prints the page's findings.
local DRIVER = [[
"use strict";
const fs = require("fs"), os = require("os"), path = require("path");
const [modPath, pageUrl] = process.argv.slice(2);
let context = null;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lua-ws-chromium-"));
async function finish(code) {
  if (context) { const c = context; context = null; await c.close().catch(() => {}); }
  fs.rmSync(dir, { recursive: true, force: true });
  process.exit(code);
}
const guard = setTimeout(() => { console.log("error\ttimed out"); finish(1); }, 40000);
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => finish(1));
(async () => {
  const { chromium } = require(modPath);
  context = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    timeout: 20000,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--disable-dev-shm-usage"],
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on("pageerror", (e) => console.log("pageerror\t" + String(e).split("\n")[0]));
  const response = await page.goto(pageUrl, { waitUntil: "load" });
  console.log("status\t" + (response ? response.status() : 0));
  await page.waitForFunction(() => window.done === true, null, { timeout: 20000 });
  for (const line of await page.evaluate(() => window.results)) console.log(line);
})().then(() => { clearTimeout(guard); return finish(0); },
  (e) => { clearTimeout(guard); console.log("error\t" + String(e).split("\n")[0]); return finish(1); });
]]

local function hex(s)
  return (s:gsub(".", function(b) return ("%02x"):format(b:byte()) end))
end

-- "key<TAB>value" lines as a table (first value of each key wins).
local function findings(text)
  local t = {}
  for k, v in text:gmatch("([%w_]+)\t([^\n]*)") do
    if t[k] == nil then t[k] = v end
  end
  return t
end

local function escape(s) return (s:gsub("%%", "%%%%")) end

describe("ws.resty inside nginx with headless Chromium", function()
  local missing = nginx.missing()
  if missing then return it(nginx.NEEDS, function() pending(missing) end) end

  local n
  after_each(function()
    if n then n:stop() end
    n = nil
    proc.stop_all()
    net.cleanup()
  end)

  it("echoes UTF-8, binary and 100 KB messages over permessage-deflate; the page's close(1000, reason)"
    .. " reaches the endpoint", function()
    local out, code = proc.sh("bash scripts/browser_deps.sh", 600)
    if code ~= 0 then
      local msg = "Chromium/playwright-core are missing and could not be installed "
        .. "(scripts/browser_deps.sh):\n" .. tostring(out)
      if os.getenv("CI") == "true" then error(msg, 0) end
      pending(msg)
      return
    end

    local dir = net.next_name("resty-browser")
    assert(os.execute("mkdir -p " .. net.quote(dir)))
    local page = PAGE:gsub("@UTF8@", escape(UTF8)):gsub("@REASON@", escape(REASON)):gsub("@BIG@", BIG)
    net.write_file(dir .. "/page.html", page)
    local driver = dir .. "/driver.js"
    net.write_file(driver, DRIVER)
    local record = dir .. "/record.txt"

    n = nginx.start { locations = ([[
    location = /page.html { root @DIR@; default_type "text/html; charset=utf-8"; }
    location /ws { content_by_lua_block {
      local function record(line)
        local f = assert(io.open("@RECORD@", "ab"))
        f:write(line, "\n")
        f:close()
      end
      local function hex(s) return (s:gsub(".", function(b) return ("%02x"):format(b:byte()) end)) end
      require("ws.resty").serve {
        protocols = { "chat.v1" }, compress = true,
        on_open = function(c) record("open " .. tostring(c.extensions)) end,
        on_message = function(c, data, is_binary)
          if is_binary then
            record("binary " .. #data .. " " .. hex(data))
          else
            record("text " .. #data .. " " .. (#data <= 100 and data or data:sub(1, 16)))
          end
          c:send(data, is_binary and "binary" or "text")
        end,
        on_close = function(c, code, reason, clean)
          record("close " .. tostring(code) .. " " .. tostring(clean) .. " " .. tostring(reason))
        end,
      }
    } }
]]):gsub("@DIR@", escape(dir)):gsub("@RECORD@", escape(record)) }

    local modpath = os.getenv("PLAYWRIGHT_CORE")
      or (os.getenv("PWD") or proc.sh("pwd"):match("[^\n]+")) .. "/build/node/node_modules/playwright-core"
    local browser = proc.start("chromium driver", { "env", "-u", "LD_PRELOAD", "node", driver, modpath,
      "http://127.0.0.1:" .. n.port .. "/page.html" })
    assert.truthy(browser:wait_exit(60), "the Chromium driver did not finish")
    local function failure()
      return ("driver stdout:\n%s\nstderr:\n%s\nnginx log:\n%s\nendpoint record:\n%s"):format(browser:output(),
        browser:errors(), n:log(), net.read_file(record) or "(none)")
    end
    local got = findings(browser:output())
    assert(got.status == "200", failure())
    assert(got.error == nil and got.pageerror == nil, failure())

    -- What the browser saw.
    assert.matches("^permessage%-deflate", got.extensions, failure())
    assert.equals("chat.v1", got.protocol)
    assert.equals("string", got.utf8_type)
    assert.equals(UTF8, got.utf8)
    local bin = {}
    for i = 0, 255 do bin[#bin + 1] = string.char(255 - i) end
    bin = table.concat(bin)
    assert.equals("arraybuffer", got.binary_type)
    assert.equals(hex(bin), got.binary)
    assert.equals(tostring(BIG), got.big_len)
    assert.equals("yes", got.big_same)
    assert.equals("1000", got.close_code)
    assert.equals(REASON, got.close_reason)
    assert.equals("true", got.close_clean)

    -- What the endpoint saw, in order.
    local lines = {}
    assert.truthy(net.wait_until(function()
      lines = {}
      for line in (net.read_file(record) or ""):gmatch("[^\n]+") do lines[#lines + 1] = line end
      return #lines >= 5
    end, 5), failure())
    assert.equals(5, #lines, failure())
    assert.matches("^open permessage%-deflate", lines[1])
    assert.equals("text " .. #UTF8 .. " " .. UTF8, lines[2])
    assert.equals("binary 256 " .. hex(bin), lines[3])
    assert.matches("^text " .. BIG .. " ", lines[4])
    assert.equals("close 1000 true " .. REASON, lines[5])
  end)
end)
