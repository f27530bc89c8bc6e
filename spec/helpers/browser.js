// Drives the chat page (examples/chat/index.html) in headless Chromium for
// spec/chat_browser_spec.lua, with playwright-core from build/node.
//
//   node spec/helpers/browser.js PAGE_URL BROWSER_TEXT LUA_TEXT [answer]
//
// It opens PAGE_URL, waits for the page's WebSocket to open, types
// BROWSER_TEXT into the send box and submits it, waits for it to come back
// into the message list (the server's broadcast), then waits for LUA_TEXT
// (sent by the spec's Lua client once it has BROWSER_TEXT) to appear in the
// list.  With "answer" it waits for LUA_TEXT (typed by another page) first,
// and then types BROWSER_TEXT.  Progress goes to stdout as JSON lines the
// spec reads:
//   {"event":"launched","version":...}
//   {"event":"open","status":"connected"}
//   {"event":"sent","text":...}
//   {"event":"echoed","text":...}
//   {"event":"received","text":...}
//   {"event":"done","ok":true,"messages":[...]}
// or {"event":"error","message":...} (exit status 1).
//
// Environment: CHROMIUM (default /usr/bin/chromium), PLAYWRIGHT_CORE (the
// module path; default build/node/node_modules/playwright-core),
// BROWSER_TIMEOUT_MS (default 40000, the whole run).
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");

const root = path.resolve(__dirname, "..", "..");
const modPath = process.env.PLAYWRIGHT_CORE || path.join(root, "build", "node", "node_modules", "playwright-core");
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const totalTimeout = Number(process.env.BROWSER_TIMEOUT_MS || 40000);

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

const [pageUrl, browserText, luaText, mode] = process.argv.slice(2);
if (!pageUrl || !browserText || !luaText || (mode !== undefined && mode !== "answer")) {
  emit({ event: "error", message: "usage: browser.js PAGE_URL BROWSER_TEXT LUA_TEXT [answer]" });
  process.exit(2);
}

let context = null;
let userDataDir = null;

async function cleanup() {
  if (context) {
    const c = context;
    context = null;
    await c.close().catch(() => {});
  }
  if (userDataDir) {
    fs.rmSync(userDataDir, { recursive: true, force: true });
    userDataDir = null;
  }
}

async function fail(message) {
  emit({ event: "error", message: String(message) });
  await cleanup();
  process.exit(1);
}

// A hard stop, whatever hangs.
const guard = setTimeout(() => {
  fail("timed out after " + totalTimeout + " ms");
}, totalTimeout);
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => fail("killed by " + sig));
}

async function main() {
  const { chromium } = require(modPath);
  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "lua-ws-chromium-"));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    timeout: 20000,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
    ],
  });
  const browser = context.browser();
  emit({ event: "launched", version: browser ? browser.version() : null });

  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(15000);
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));

  const response = await page.goto(pageUrl, { waitUntil: "load" });
  if (!response || response.status() !== 200) {
    throw new Error("page answered " + (response ? response.status() : "nothing"));
  }

  // The page says "connected" once its WebSocket is open.
  await page.waitForFunction(() => document.getElementById("status").textContent === "connected");
  emit({ event: "open", status: await page.textContent("#status") });

  const inList = (text) =>
    page.waitForFunction(
      (t) => Array.from(document.querySelectorAll("#messages li.message")).some((li) => li.textContent === t),
      text,
    );

  // Type into the send box and press the button, like a person.
  const type = async () => {
    await page.fill("#text", browserText);
    await page.click("#send");
    emit({ event: "sent", text: browserText });
    await inList(browserText);
    emit({ event: "echoed", text: browserText });
  };
  if (mode !== "answer") await type();
  await inList(luaText);
  emit({ event: "received", text: luaText });
  if (mode === "answer") await type();

  const messages = await page.$$eval("#messages li", (lis) => lis.map((li) => li.textContent));
  if (pageErrors.length) throw new Error("errors in the page: " + pageErrors.join("; "));
  emit({ event: "done", ok: true, messages });
}

main()
  .then(async () => {
    clearTimeout(guard);
    await cleanup();
    process.exit(0);
  })
  .catch((e) => fail(e && e.stack ? e.stack.split("\n")[0] : e));
