// socket.io peer for switchboard-bench. Clients connect over WebSockets
// only (no long-polling upgrade: the favourable setting for many clients),
// join rooms with `join` (acknowledged), and receive `bench` events whose
// arguments are [stream, seq, sentMicros, pad]. `POST /publish` (see
// ../pace.js) emits to everyone or to random rooms; `GET /health` answers
// once listening. Tuned as socket.io's performance guide says: the native
// `bufferutil` and `utf-8-validate` add-ons installed beside `ws` (which
// loads them by itself), and each connection's initial HTTP request
// dropped once connected.
//
// Usage: node server.js PORT
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");
const { handlePublish } = require("../pace.js");

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: node server.js PORT");
  process.exit(2);
}

const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/health") {
    res.writeHead(200).end("ok");
  } else if (req.method === "POST" && req.url === "/publish") {
    handlePublish(req, res, async (batch) => {
      for (const { group, args } of batch) {
        // One encode per emit; socket.io writes the same frame to each socket.
        (group === null ? io : io.to(group)).emit("bench", ...args);
      }
      return 0;
    }).catch((error) => res.writeHead(500).end(String(error)));
  } else if (!req.url.startsWith("/socket.io/")) {
    res.writeHead(404).end();
  }
});

const io = new Server(server, {
  transports: ["websocket"],
  serveClient: false,
  // socket.io's default; stated because compression would cost CPU per frame.
  perMessageDeflate: false,
});

// The upgrade request is otherwise kept for the connection's lifetime.
io.engine.on("connection", (rawSocket) => {
  rawSocket.request = null;
});

io.on("connection", (socket) => {
  socket.on("join", (rooms, ack) => {
    socket.join(rooms);
    if (typeof ack === "function") ack(rooms.length);
  });
});

server.listen(port, "127.0.0.1", () => {
  console.error(`socket.io ${require("socket.io/package.json").version} listening on 127.0.0.1:${port}`);
});
