// Chromium peer for spec/interop: the browser's WebSocket API in headless
// Chromium (Debian `chromium`), driven by playwright-core from build/node
// (scripts/browser_deps.sh).  Client role only.
//   node chromium_peer.js client WS_BASE WSS_BASE CAFILE SCENARIO...
// The wss:// server certificate is trusted through Chromium's SPKI
// allow-list (--ignore-certificate-errors-spki-list), computed from
// INTEROP_SERVER_CERT (the spec's test certificate).
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const os = require("os");
const path = require("path");

const root = path.resolve(__dirname, "..", "..", "..");
const modPath = process.env.PLAYWRIGHT_CORE || path.join(root, "build", "node", "node_modules", "playwright-core");
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
function out(line) { process.stdout.write(line + "\n"); }

// Runs inside the page.
async function scenario(name, base, wss) {
  function payload(n, kind) {
    if (kind === "text") {
      const unit = Array.from({ length: 94 }, (_, i) => String.fromCharCode(33 + i)).join("");
      return unit.repeat(Math.floor(n / 94) + 1).slice(0, n);
    }
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = ((i % 256) * 7 + 3) % 256;
    return b;
  }
  function same(a, b) {
    if (typeof a === "string" || typeof b === "string") return a === b;
    const x = new Uint8Array(a), y = new Uint8Array(b);
    if (x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
    return true;
  }
  function check(cond, msg) { if (!cond) throw new Error(msg); }
  function open(url, protocols) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, protocols || []);
      ws.binaryType = "arraybuffer";
      const q = [], w = [];
      ws.onmessage = (e) => {
        const m = [e.data, typeof e.data === "string" ? "text" : "binary"];
        if (w.length) w.shift()(m); else q.push(m);
      };
      ws.next = () => (q.length ? Promise.resolve(q.shift()) : new Promise((r) => w.push(r)));
      ws.closed = new Promise((r) => ws.addEventListener("close", (e) => r([e.code, e.reason, e.wasClean])));
      ws.onopen = () => resolve(ws);
      ws.onerror = () => reject(new Error("websocket error"));
    });
  }
  async function closeOk(ws) {
    ws.close(1000, "done");
    const [code, , clean] = await ws.closed;
    check(code === 1000 && clean, "close " + code + " clean=" + clean);
  }
  const url = base + "/" + name;
  let m;
  if (name.startsWith("deflate_")) {
    // The compressed column: the browser always offers permessage-deflate
    // (with client_max_window_bits); check what it agreed to.
    const has = (ext, what) => new RegExp(`(^|[ ;,])${what}($|[ ;,=])`).test(ext);
    const jsonPayload = (n) => {
      const parts = ["["];
      let len = 1;
      for (let i = 1; len < n; i++) {
        const r = `{"id":${i},"name":"user-${i}","active":${i % 2 === 0},"score":${(i * 37) % 100}},`;
        parts.push(r);
        len += r.length;
      }
      return parts.join("").slice(0, n);
    };
    const windowPayload = () => {
      const b = new Uint8Array(60000);
      let x = 1;
      for (let i = 0; i < 3000; i++) { x = (x * 75 + 74) % 65537; b[i] = x & 255; }
      for (let r = 1; r < 20; r++) b.copyWithin(r * 3000, 0, 3000);
      return b;
    };
    const ws = await open(url);
    const ext = ws.extensions;
    check(has(ext, "permessage-deflate"), "not negotiated: " + ext);
    const echo = async (data) => {
      ws.send(data);
      const [got, kind] = await ws.next();
      check(kind === (typeof data === "string" ? "text" : "binary"), "kind " + kind);
      check(same(got, typeof data === "string" ? data : data.buffer), "echo differs");
    };
    if ((m = /^deflate_(text|binary)_(\d+|8MiB)$/.exec(name))) {
      await echo(payload(m[2] === "8MiB" ? 8 * 1024 * 1024 : Number(m[2]), m[1]));
    } else {
      switch (name) {
        case "deflate_utf8": await echo("a\u00e9\u2603\u{1D11E}".repeat(1000)); break;
        case "deflate_json_1MiB": await echo(jsonPayload(1024 * 1024)); break;
        case "deflate_fragments_from_lua": {
          ws.send("frag:binary:300:3");
          let [got, kind] = await ws.next();
          check(kind === "binary" && same(got, payload(300, "binary").buffer), "message differs");
          ws.send("frag:text:65536:4");
          [got, kind] = await ws.next();
          check(kind === "text" && got === payload(65536, "text"), "message differs");
          break;
        }
        case "deflate_burst":
          for (let i = 1; i <= 1000; i++) ws.send("burst " + i);
          for (let i = 1; i <= 1000; i++) check((await ws.next())[0] === "burst " + i, "burst message " + i);
          break;
        case "deflate_close_from_lua": {
          ws.send("close:4002:bye from lua");
          const [code, reason, clean] = await ws.closed;
          check(code === 4002 && reason === "bye from lua" && clean, `close ${code} ${reason} ${clean}`);
          return ext;
        }
        case "deflate_close_from_peer": {
          await echo(payload(1000, "text"));
          ws.close(4001, "bye from peer");
          const [code, reason, clean] = await ws.closed;
          check(code === 4001 && reason === "bye from peer" && clean, `close ${code} ${reason} ${clean}`);
          return ext;
        }
        case "deflate_no_context_takeover":
          check(has(ext, "server_no_context_takeover") && has(ext, "client_no_context_takeover"), "extensions " + ext);
          for (let i = 0; i < 3; i++) await echo(payload(20000, "text"));
          break;
        case "deflate_window_bits_10":
          check(has(ext, "client_max_window_bits=10"), "extensions " + ext);
          await echo(windowPayload());
          await echo(jsonPayload(100000));
          break;
        default:
          throw new Error("unknown scenario " + name);
      }
    }
    await closeOk(ws);
    return ext;
  }
  if ((m = /^(text|binary)_(\w+)$/.exec(name))) {
    const n = m[2] === "8MiB" ? 8 * 1024 * 1024 : Number(m[2]);
    const ws = await open(url);
    const want = payload(n, m[1]);
    ws.send(want);
    const [got, kind] = await ws.next();
    check(kind === m[1], "kind " + kind);
    check(same(got, m[1] === "text" ? want : want.buffer), "echo differs");
    return closeOk(ws);
  }
  if (name === "reject") {
    try { await open(url); } catch (e) { return "rejected"; }
    throw new Error("the handshake was accepted");
  }
  if (name === "wss") {
    const ws = await open(wss + "/wss");
    ws.send("hello tls");
    check((await ws.next())[0] === "hello tls", "echo differs");
    return closeOk(ws);
  }
  const ws = await open(url, name === "subprotocol" ? ["x.unknown", "chat.v1"] : []);
  switch (name) {
    case "utf8": {
      const u = "a\u00e9\u2603\u{1D11E}".repeat(1000);
      ws.send(u);
      check((await ws.next())[0] === u, "echo differs");
      break;
    }
    case "fragments_from_lua": {
      ws.send("frag:binary:300:3");
      const [got, kind] = await ws.next();
      check(kind === "binary" && same(got, payload(300, "binary").buffer), "message differs");
      break;
    }
    case "ping": // the page cannot ping; the lua-ws server pings it
      ws.send("ping:ping-from-lua");
      check((await ws.next())[0] === "pong:ping-from-lua", "no pong:ping-from-lua");
      break;
    case "close_from_lua": {
      ws.send("close:4002:bye from lua");
      const [code, reason, clean] = await ws.closed;
      check(code === 4002 && reason === "bye from lua" && clean, `close ${code} ${reason} ${clean}`);
      return;
    }
    case "close_from_peer": {
      ws.close(4001, "bye from peer");
      const [code, reason, clean] = await ws.closed;
      check(code === 4001 && reason === "bye from peer" && clean, `close ${code} ${reason} ${clean}`);
      return;
    }
    case "subprotocol":
      check(ws.protocol === "chat.v1", "protocol " + ws.protocol);
      break;
    case "burst":
      for (let i = 1; i <= 1000; i++) ws.send("burst " + i);
      for (let i = 1; i <= 1000; i++) check((await ws.next())[0] === "burst " + i, "burst message " + i);
      break;
    default:
      throw new Error("unknown scenario " + name);
  }
  return closeOk(ws);
}

const NA = {
  fragments_from_peer: "the browser API cannot choose how a message is fragmented",
  deflate_fragments_from_peer: "the browser API cannot choose how a message is fragmented",
  headers: "the browser API cannot add request headers",
};

async function main(base, wssBase, names) {
  const { chromium } = require(modPath);
  const pem = fs.readFileSync(process.env.INTEROP_SERVER_CERT);
  const spki = crypto.createHash("sha256")
    .update(new crypto.X509Certificate(pem).publicKey.export({ type: "spki", format: "der" })).digest("base64");
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "lua-ws-interop-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath, headless: true, timeout: 30000,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
      "--ignore-certificate-errors-spki-list=" + spki],
  });
  try {
    const page = context.pages()[0] || (await context.newPage());
    const socketErrors = [];
    page.on("websocket", (w) => w.on("socketerror", (e) => socketErrors.push(String(e))));
    await page.goto(base.replace(/^ws/, "http") + "/page");
    await page.addScriptTag({ content: scenario.toString() });
    out("LAUNCHED " + context.browser()?.version());
    for (const name of names) {
      if (NA[name]) { out(`RESULT ${name} na ${NA[name]}`); continue; }
      try {
        socketErrors.length = 0;
        const b = process.env["INTEROP_BASE_" + name] || base; // the compressed column's other servers
        const res = await Promise.race([page.evaluate(([n, b, w]) => window.scenario(n, b, w), [name, b, wssBase]),
          new Promise((_, rej) => setTimeout(() => rej(new Error("timeout")), 60000))]);
        if (name.startsWith("deflate_")) out(`EXT ${name} ${res}`);
        if (name === "reject") {
          await new Promise((r) => setTimeout(r, 200));
          if (!socketErrors.some((e) => /\b403\b/.test(e))) throw new Error("no 403 in " + JSON.stringify(socketErrors));
        }
        out(`RESULT ${name} ok`);
      } catch (e) {
        out(`RESULT ${name} fail ${String(e.message || e).split("\n")[0]}`);
      }
    }
  } finally {
    await context.close().catch(() => {});
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

const [mode, base, wssBase, , ...names] = process.argv.slice(2);
if (mode !== "client") { console.error("usage: chromium_peer.js client WS_BASE WSS_BASE CAFILE SCENARIO..."); process.exit(2); }
main(base, wssBase, names).then(() => process.exit(0), (e) => { out("ERROR " + e.message); process.exit(1); });
