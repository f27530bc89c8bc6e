// Node `ws` echo server (with bufferutil / utf-8-validate when installed).
//   NODE_PATH=build/bench-node/node_modules node bench/servers/node_ws.js [--deflate] [PORT]
// --deflate accepts permessage-deflate offers (ws's defaults: messages under
// 1 KiB are sent uncompressed).
// Prints "listening on ws://127.0.0.1:PORT/" and serves until killed.
'use strict';
const { WebSocketServer } = require('ws');
const deflate = process.argv[2] === '--deflate';
const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(process.argv[process.argv.length - 1]) || 0,
  perMessageDeflate: deflate, maxPayload: 64 * 1024 * 1024 });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
wss.on('listening', () => console.log(`listening on ws://127.0.0.1:${wss.address().port}/`));
