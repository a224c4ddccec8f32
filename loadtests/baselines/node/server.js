// Baseline: Node Socket.IO with @socket.io/redis-adapter (node-redis clients), websocket
// transport only, no per-message deflate. Every connection joins room "bench"; events come
// from the outside publisher through Redis (python -m loadtests.publisher --mode node),
// in the adapter's own message format (what @socket.io/redis-emitter sends).
//
//   node loadtests/baselines/node/server.js PORT REDIS_URL
"use strict";
const { createServer } = require("http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

async function main() {
  const port = Number(process.argv[2]);
  const url = process.argv[3];
  const pub = createClient({ url });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  const http = createServer((req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end('{"status":"ok"}');
  });
  const io = new Server(http, {
    adapter: createAdapter(pub, sub),
    transports: ["websocket"],
    perMessageDeflate: false,
    serveClient: false,
  });
  io.on("connection", (socket) => socket.join("bench"));
  http.listen(port, "127.0.0.1", 4096);
  const stop = () => { io.close(); process.exit(0); };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => { console.error(err); process.exit(1); });
