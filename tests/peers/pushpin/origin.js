// Origin for the Pushpin peer of switchboard-bench. Pushpin turns each
// client WebSocket into WebSocket-over-HTTP requests to this server (route
// option `over_http`); on OPEN the answer subscribes the connection, through
// GRIP control messages, to the channel `all` and to every channel named in
// the client's `channels` query parameter. `POST /publish` (see ../pace.js)
// publishes plain text frames `[stream, seq, sentMicros, pad]` through
// Pushpin's HTTP publish endpoint, all messages due at one tick in one
// request; `GET /health` answers once listening.
//
// Usage: node origin.js PORT PUBLISH_URL
"use strict";

const http = require("node:http");
const { handlePublish } = require("../pace.js");

const port = Number(process.argv[2]);
const publishUrl = process.argv[3];
if (!Number.isInteger(port) || port <= 0 || !publishUrl) {
  console.error("usage: node origin.js PORT PUBLISH_URL");
  process.exit(2);
}

// Publishing keeps its connections to Pushpin open.
const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

/** One event of the WebSocket-over-HTTP format: `TYPE hexlen\r\nbody\r\n`. */
function event(type, body) {
  if (body === undefined) return `${type}\r\n`;
  return `${type} ${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n`;
}

/** The event types in a WebSocket-over-HTTP request body. */
function eventTypes(body) {
  const types = [];
  let rest = body;
  while (rest.length) {
    const line = rest.indexOf("\r\n");
    if (line < 0) break;
    const [type, len] = rest.slice(0, line).toString("latin1").split(" ");
    types.push(type);
    const size = len === undefined ? 0 : parseInt(len, 16) + 2;
    rest = rest.subarray(line + 2 + size);
  }
  return types;
}

function websocketEvents(req, res) {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    const types = eventTypes(Buffer.concat(chunks));
    let out = "";
    if (types.includes("OPEN")) {
      const query = new URL(req.url, "http://origin").searchParams.get("channels");
      const channels = ["all", ...(query ? query.split(",").filter(Boolean) : [])];
      out += event("OPEN");
      for (const channel of channels) {
        out += event("TEXT", "c:" + JSON.stringify({ type: "subscribe", channel }));
      }
    }
    if (types.includes("CLOSE")) out += event("CLOSE", "");
    res
      .writeHead(200, {
        "content-type": "application/websocket-events",
        "sec-websocket-extensions": "grip",
      })
      .end(out);
  });
}

/** Sends one batch to Pushpin; resolves to how many failed. */
function publishBatch(batch) {
  const items = batch.map(({ group, args }) => ({
    channel: group === null ? "all" : group,
    formats: { "ws-message": { content: JSON.stringify(args) } },
  }));
  const body = JSON.stringify({ items });
  return new Promise((resolve) => {
    const req = http.request(
      publishUrl,
      { method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } },
      (res) => {
        res.resume();
        res.on("end", () => {
          if (res.statusCode !== 200) console.error(`publish answered ${res.statusCode}`);
          resolve(res.statusCode === 200 ? 0 : batch.length);
        });
      },
    );
    req.on("error", (error) => {
      console.error(`publish failed: ${error.message}`);
      resolve(batch.length);
    });
    req.end(body);
  });
}

const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/health") {
    res.writeHead(200).end("ok");
  } else if (req.method === "POST" && req.url === "/publish") {
    handlePublish(req, res, publishBatch).catch((error) => res.writeHead(500).end(String(error)));
  } else if (req.method === "POST" && (req.headers["content-type"] || "").startsWith("application/websocket-events")) {
    websocketEvents(req, res);
  } else {
    res.writeHead(404).end();
  }
});
server.keepAliveTimeout = 60_000;

server.listen(port, "127.0.0.1", () => {
  console.error(`pushpin origin listening on 127.0.0.1:${port}, publishing to ${publishUrl}`);
});
