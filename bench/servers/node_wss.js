// Node `ws` wss:// echo server: https.createServer + ws (with bufferutil /
// utf-8-validate when installed).
//   NODE_PATH=build/bench-node/node_modules node bench/servers/node_wss.js CERT KEY [PORT]
// Prints "listening on wss://127.0.0.1:PORT/" and serves until killed.
'use strict';
const fs = require('fs');
const https = require('https');
const { WebSocketServer } = require('ws');

const [cert, key, port] = process.argv.slice(2);
const server = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) });
const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
server.listen(Number(port || 0), '127.0.0.1',
  () => console.log(`listening on wss://127.0.0.1:${server.address().port}/`));
