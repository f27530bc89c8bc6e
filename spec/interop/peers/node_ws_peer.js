// Node `ws` peer for spec/interop (conventions in spec/interop/scenarios.lua).
//   node node_ws_peer.js server [CERT KEY]
//   node node_ws_peer.js client WS_BASE WSS_BASE CAFILE SCENARIO...
// `ws` comes from build/interop-node (scripts/interop_deps.sh).
"use strict";
const fs = require("fs");
const path = require("path");
const root = path.resolve(__dirname, "..", "..", "..");
const WS = require(path.join(root, "build", "interop-node", "node_modules", "ws"));

function out(line) { process.stdout.write(line + "\n"); }

function payload(n, kind) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = kind === "text" ? 33 + (i % 94) : (((i % 256) * 7) + 3) % 256;
  return kind === "text" ? b.toString("latin1") : b;
}
const UTF8 = "a\u00e9\u2603\u{1D11E}".repeat(1000);
// Compressed column payloads (scenarios.lua json_payload / window_payload).
function jsonPayload(n) {
  const parts = ["["];
  let len = 1;
  for (let i = 1; len < n; i++) {
    const r = `{"id":${i},"name":"user-${i}","active":${i % 2 === 0},"score":${(i * 37) % 100}},`;
    parts.push(r);
    len += r.length;
  }
  return parts.join("").slice(0, n);
}
function windowPayload() {
  const b = Buffer.alloc(3000);
  let x = 1;
  for (let i = 0; i < 3000; i++) { x = (x * 75 + 74) % 65537; b[i] = x & 255; }
  return Buffer.concat(Array(20).fill(b));
}

function serve(server) {
  const wss = new WS.WebSocketServer({
    server, maxPayload: 64 * 1024 * 1024,
    // accepted when offered (the compressed column); threshold 0: every message
    perMessageDeflate: { threshold: 0 },
    handleProtocols: (protocols) => (protocols.has("chat.v1") ? "chat.v1" : false),
    verifyClient: (info, cb) => (info.req.url === "/reject" ? cb(false, 403, "rejected") : cb(true)),
  });
  wss.on("headers", (headers, req) => {
    const h = headers.find((l) => /^sec-websocket-extensions:/i.test(l));
    req.negotiatedExtensions = h ? h.replace(/^[^:]*:\s*/, "") : "";
  });
  wss.on("connection", (ws, req) => {
    const p = req.url;
    ws.on("message", (data, isBinary) => {
      if (!isBinary) {
        const s = data.toString("utf8");
        let m;
        if ((m = /^close:(\d+):(.*)$/s.exec(s))) return ws.close(Number(m[1]), m[2]);
        if ((m = /^frag:(\w+):(\d+):(\d+)$/.exec(s))) {
          const pl = Buffer.from(payload(Number(m[2]), m[1]), "latin1");
          const parts = Number(m[3]), step = Math.ceil(pl.length / parts);
          for (let i = 0; i < parts; i++) {
            ws.send(pl.subarray(i * step, (i + 1) * step), { binary: m[1] === "binary", fin: i === parts - 1 });
          }
          return;
        }
        if ((m = /^ping:(.*)$/s.exec(s))) {
          const want = m[1];
          ws.once("pong", (d) => ws.send("pong:" + d.toString()));
          return ws.ping(want);
        }
        if ((m = /^header:(.*)$/s.exec(s))) return ws.send(String(req.headers[m[1].toLowerCase()] || ""));
        if (s === "ext:") return ws.send(req.negotiatedExtensions || "");
        if (s === "stats:") return ws.send(`in=${ws._socket.bytesRead} out=${ws._socket.bytesWritten}`);
      }
      ws.send(data, { binary: isBinary });
    });
    ws.on("close", (code, reason) => out(`CLOSE ${p} ${code} ${reason.toString()}`));
  });
}

function server(cert, key) {
  const http = require("http");
  const plain = http.createServer();
  serve(plain);
  plain.listen(0, "127.0.0.1", () => {
    out("PORT " + plain.address().port);
    if (cert) {
      const https = require("https").createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) });
      serve(https);
      https.listen(0, "127.0.0.1", () => out("TLSPORT " + https.address().port));
    }
  });
}

// ---- client
function open(url, protocols, opts) {
  return new Promise((resolve, reject) => {
    const ws = new WS.WebSocket(url, protocols || [], Object.assign({ maxPayload: 64 * 1024 * 1024 }, opts || {}));
    const q = [], waiters = [];
    ws.q = q;
    ws.closed = new Promise((res) => ws.on("close", (code, reason) => res([code, reason.toString()])));
    ws.on("message", (data, isBinary) => {
      const m = [isBinary ? data : data.toString("utf8"), isBinary ? "binary" : "text"];
      if (waiters.length) waiters.shift()(m); else q.push(m);
    });
    ws.next = () => (q.length ? Promise.resolve(q.shift()) : new Promise((r) => waiters.push(r)));
    ws.on("upgrade", (res) => { ws.negotiatedExtensions = res.headers["sec-websocket-extensions"] || ""; });
    ws.on("open", () => resolve(ws));
    ws.on("unexpected-response", (req, res) => reject(Object.assign(new Error("status " + res.statusCode), { status: res.statusCode })));
    ws.on("error", reject);
  });
}
function eq(a, b, what) {
  const A = Buffer.isBuffer(a) ? a : Buffer.from(String(a), "latin1");
  const B = Buffer.isBuffer(b) ? b : Buffer.from(String(b), "latin1");
  if (typeof a === "string" && typeof b === "string") { if (a !== b) throw new Error(`${what || "message"} differs (${a.length}/${b.length})`); return; }
  if (!A.equals(B)) throw new Error(`${what || "message"} differs (${A.length}/${B.length})`);
}
async function closeOk(ws) {
  ws.close(1000, "done");
  const [code] = await ws.closed;
  if (code !== 1000) throw new Error("close code " + code);
}

function has(ext, what) { return new RegExp(`(^|[ ;,])${what}($|[ ;,=])`).test(ext); }

// The compressed column: permessage-deflate offered (threshold 0: every
// message compressed), the negotiation checked on this side.
async function runDeflate(name, base) {
  const url = (process.env["INTEROP_BASE_" + name] || base) + "/" + name;
  const pmd = { threshold: 0 };
  if (name === "deflate_no_context_takeover") Object.assign(pmd, { serverNoContextTakeover: true, clientNoContextTakeover: true });
  if (name === "deflate_window_bits_10") Object.assign(pmd, { serverMaxWindowBits: 10 });
  const ws = await open(url, [], { perMessageDeflate: pmd });
  const ext = ws.negotiatedExtensions;
  out(`EXT ${name} ${ext}`);
  if (!has(ext, "permessage-deflate") || ws.extensions !== "permessage-deflate") throw new Error("not negotiated: " + ext);
  const echo = async (data, binary) => {
    ws.send(data, { binary });
    const [got, kind] = await ws.next();
    if (kind !== (binary ? "binary" : "text")) throw new Error("kind " + kind);
    eq(got, data);
  };
  let m;
  if ((m = /^deflate_(text|binary)_(\w+)$/.exec(name)) && m[2] !== "1MiB") {
    const n = m[2] === "8MiB" ? 8 * 1024 * 1024 : Number(m[2]);
    await echo(payload(n, m[1]), m[1] === "binary");
    return closeOk(ws);
  }
  switch (name) {
    case "deflate_utf8":
      await echo(UTF8, false);
      return closeOk(ws);
    case "deflate_json_1MiB": {
      const r0 = ws._socket.bytesRead, w0 = ws._socket.bytesWritten;
      await echo(jsonPayload(1024 * 1024), false);
      const r = ws._socket.bytesRead - r0, w = ws._socket.bytesWritten - w0;
      if (!(r > 0 && r <= 262144 && w > 0 && w <= 262144)) throw new Error(`not compressed on the wire: read ${r} wrote ${w}`);
      return closeOk(ws);
    }
    case "deflate_fragments_from_lua": {
      ws.send("frag:binary:300:3");
      let [got, kind] = await ws.next();
      if (kind !== "binary") throw new Error("kind " + kind);
      eq(got, payload(300, "binary"));
      ws.send("frag:text:65536:4");
      [got, kind] = await ws.next();
      if (kind !== "text") throw new Error("kind " + kind);
      eq(got, payload(65536, "text"));
      return closeOk(ws);
    }
    case "deflate_fragments_from_peer": {
      const p = Buffer.from(payload(300, "text"), "latin1");
      ws.send(p.subarray(0, 100), { binary: false, fin: false });
      ws.send(p.subarray(100, 200), { binary: false, fin: false });
      ws.send(p.subarray(200), { binary: false, fin: true });
      const [got] = await ws.next();
      eq(got, p.toString("latin1"));
      return closeOk(ws);
    }
    case "deflate_burst":
      for (let i = 1; i <= 1000; i++) ws.send("burst " + i);
      for (let i = 1; i <= 1000; i++) { const [got] = await ws.next(); eq(got, "burst " + i); }
      return closeOk(ws);
    case "deflate_close_from_lua": {
      ws.send("close:4002:bye from lua");
      const [code, reason] = await ws.closed;
      if (code !== 4002 || reason !== "bye from lua") throw new Error(`close ${code} ${reason}`);
      return;
    }
    case "deflate_close_from_peer": {
      await echo(payload(1000, "text"), false);
      ws.close(4001, "bye from peer");
      const [code, reason] = await ws.closed;
      if (code !== 4001 || reason !== "bye from peer") throw new Error(`close ${code} ${reason}`);
      return;
    }
    case "deflate_no_context_takeover":
      if (!has(ext, "server_no_context_takeover") || !has(ext, "client_no_context_takeover")) throw new Error("extensions " + ext);
      for (let i = 0; i < 3; i++) await echo(payload(20000, "text"), false);
      return closeOk(ws);
    case "deflate_window_bits_10":
      if (!has(ext, "server_max_window_bits=10") || !has(ext, "client_max_window_bits=10")) throw new Error("extensions " + ext);
      await echo(windowPayload(), true);
      await echo(jsonPayload(100000), false);
      return closeOk(ws);
    default:
      throw Object.assign(new Error("unknown scenario"), { na: true });
  }
}

async function run(name, base, wssBase, cafile) {
  if (name.startsWith("deflate_")) return runDeflate(name, base);
  const url = base + "/" + name;
  let m;
  if ((m = /^(text|binary)_(\w+)$/.exec(name))) {
    const n = m[2] === "8MiB" ? 8 * 1024 * 1024 : Number(m[2]);
    const ws = await open(url);
    const want = payload(n, m[1]);
    ws.send(m[1] === "text" ? Buffer.from(want, "latin1") : want, { binary: m[1] === "binary" });
    const [got, kind] = await ws.next();
    if (kind !== m[1]) throw new Error("kind " + kind);
    eq(m[1] === "text" ? Buffer.from(got, "utf8") : got, m[1] === "text" ? Buffer.from(want, "latin1") : want);
    return closeOk(ws);
  }
  const ws = name === "reject" || name === "wss" ? null
    : await open(url, name === "subprotocol" ? ["x.unknown", "chat.v1"] : [],
      name === "headers" ? { headers: { "X-Interop": "interop-value-42" } } : {});
  switch (name) {
    case "utf8": {
      ws.send(UTF8);
      const [got, kind] = await ws.next();
      if (kind !== "text") throw new Error("kind " + kind);
      eq(got, UTF8);
      return closeOk(ws);
    }
    case "fragments_from_lua": {
      ws.send("frag:binary:300:3");
      const [got, kind] = await ws.next();
      if (kind !== "binary") throw new Error("kind " + kind);
      eq(got, payload(300, "binary"));
      return closeOk(ws);
    }
    case "fragments_from_peer": {
      const p = Buffer.from(payload(300, "text"), "latin1");
      ws.send(p.subarray(0, 100), { binary: false, fin: false });
      ws.send(p.subarray(100, 200), { binary: false, fin: false });
      ws.send(p.subarray(200), { binary: false, fin: true });
      const [got] = await ws.next();
      eq(got, p.toString("latin1"));
      return closeOk(ws);
    }
    case "ping": {
      const pong = new Promise((r) => ws.once("pong", (d) => r(d.toString())));
      const pinged = new Promise((r) => ws.once("ping", (d) => r(d.toString())));
      ws.ping("ping-from-peer");
      eq(await pong, "ping-from-peer", "pong payload");
      ws.send("ping:ping-from-lua");
      eq(await pinged, "ping-from-lua", "ping payload");
      const [got] = await ws.next();
      eq(got, "pong:ping-from-lua");
      return closeOk(ws);
    }
    case "close_from_lua": {
      ws.send("close:4002:bye from lua");
      const [code, reason] = await ws.closed;
      if (code !== 4002 || reason !== "bye from lua") throw new Error(`close ${code} ${reason}`);
      return;
    }
    case "close_from_peer": {
      ws.close(4001, "bye from peer");
      const [code, reason] = await ws.closed;
      if (code !== 4001 || reason !== "bye from peer") throw new Error(`close ${code} ${reason}`);
      return;
    }
    case "subprotocol":
      if (ws.protocol !== "chat.v1") throw new Error("protocol " + ws.protocol);
      return closeOk(ws);
    case "headers": {
      ws.send("header:x-interop");
      const [got] = await ws.next();
      eq(got, "interop-value-42");
      return closeOk(ws);
    }
    case "wss": {
      const t = await open(wssBase + "/wss", [], { ca: fs.readFileSync(cafile) });
      t.send("hello tls");
      const [got] = await t.next();
      eq(got, "hello tls");
      return closeOk(t);
    }
    case "reject":
      try { await open(url); } catch (e) {
        if (e.status === 403) return;
        throw new Error("expected status 403, got " + e.message);
      }
      throw new Error("the handshake was accepted");
    case "burst": {
      for (let i = 1; i <= 1000; i++) ws.send("burst " + i);
      for (let i = 1; i <= 1000; i++) { const [got] = await ws.next(); eq(got, "burst " + i); }
      return closeOk(ws);
    }
    default:
      throw Object.assign(new Error("unknown scenario"), { na: true });
  }
}

async function client(base, wssBase, cafile, names) {
  for (const name of names) {
    try {
      await Promise.race([run(name, base, wssBase, cafile),
        new Promise((_, rej) => setTimeout(() => rej(new Error("timeout")), 60000))]);
      out(`RESULT ${name} ok`);
    } catch (e) {
      out(`RESULT ${name} ${e.na ? "na" : "fail"} ${String(e.message).replace(/\n/g, " ")}`);
    }
  }
  process.exit(0);
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === "server") server(rest[0], rest[1]);
else if (mode === "client") client(rest[0], rest[1], rest[2], rest.slice(3));
else { console.error("usage: node_ws_peer.js server|client ..."); process.exit(2); }
