// bench/c100k: Node `ws` as the usual fan-out, looping client.send over
// wss.clients (ws frames the message again for every client).
//   NODE_PATH=build/bench-node/node_modules node bench/c100k_node.js PORT CTL_PORT
// GET /pub?t0=<ns>&r=<round> on CTL_PORT sends "t0=<ns>;r=<round>;" padded to
// 64 bytes (binary) to every client and answers with the count.
'use strict';
const http = require('http');
const { WebSocketServer } = require('ws');
const [port, ctl] = process.argv.slice(2).map(Number);
const wss = new WebSocketServer({ host: '127.0.0.1', port, backlog: 65535, clientTracking: true });
http.createServer((req, res) => {
  const m = /^\/pub\?t0=(\d+)&r=(\d+)/.exec(req.url);
  let sent = 0;
  if (m) {
    const payload = Buffer.alloc(64, '.');
    payload.write(`t0=${m[1]};r=${m[2]};`);
    for (const c of wss.clients) { c.send(payload, { binary: true }); sent++; }
  } else if (req.url === '/gc' && global.gc) {
    global.gc();
  }
  res.end(String(sent));
}).listen(ctl, '127.0.0.1');
wss.on('listening', () => console.log(`listening on ws://127.0.0.1:${port}/`));
