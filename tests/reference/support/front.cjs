// The suite's base URL: one origin in front of the testhub app server and,
// for skipNegotiation clients only, the proxy.
//
//   node support/front.cjs APP_URL PROXY_URL
//
// Prints `listening on http://127.0.0.1:PORT` once it accepts connections.
//
// Every HTTP request goes to the testhub unchanged (negotiate, /redirect,
// /bad-negotiate, /generateJwtToken, /clientresult/...). A client that skips
// negotiation opens its WebSocket straight at the hub URL (`/testhub`, no
// `id`): with Switchboard that socket belongs at the proxy, and it needs a
// client token, which a negotiate would have handed out. So such an upgrade
// takes a token from the testhub's `GET /token?hub=H` and is spliced, bytes
// untouched, to the proxy's `/client/?hub=H` with `Authorization: Bearer`.
// The WebSocket handshake itself is the proxy's answer to the client's key.

"use strict";

const http = require("node:http");
const net = require("node:net");

const [appUrl, proxyUrl] = process.argv.slice(2).map((url) => url && new URL(url));
if (!appUrl || !proxyUrl) {
  console.error("usage: node support/front.cjs APP_URL PROXY_URL");
  process.exit(2);
}

const server = http.createServer((request, response) => {
  const upstream = http.request(
    {
      host: appUrl.hostname,
      port: appUrl.port,
      method: request.method,
      path: request.url,
      headers: request.headers,
    },
    (answer) => {
      response.writeHead(answer.statusCode, answer.statusMessage, answer.rawHeaders);
      answer.pipe(response);
    },
  );
  upstream.on("error", (error) => {
    response.writeHead(502, { "content-type": "text/plain" });
    response.end(`front: the testhub did not answer: ${error.message}`);
  });
  request.pipe(upstream);
});

server.on("upgrade", async (request, socket, head) => {
  const url = new URL(request.url, "http://front");
  const hub = url.pathname.replace(/^\/+|\/+$/g, "");
  if (!hub || hub.includes("/") || url.searchParams.has("id")) {
    socket.end("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
    return;
  }
  let token;
  try {
    const answer = await fetch(new URL(`/token?hub=${encodeURIComponent(hub)}`, appUrl));
    if (!answer.ok) throw new Error(`GET /token answered ${answer.status}`);
    token = (await answer.text()).trim();
  } catch (error) {
    socket.end(`HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nx-front-error: ${error.message}\r\n\r\n`);
    return;
  }
  const target = new URL(`/client/?hub=${encodeURIComponent(hub)}`, proxyUrl);
  const lines = [`GET ${target.pathname}${target.search} HTTP/1.1`];
  for (let i = 0; i < request.rawHeaders.length; i += 2) {
    const name = request.rawHeaders[i];
    if (/^(host|authorization)$/i.test(name)) continue;
    lines.push(`${name}: ${request.rawHeaders[i + 1]}`);
  }
  lines.push(`Host: ${target.host}`, `Authorization: Bearer ${token}`);
  const proxy = net.connect(Number(target.port), target.hostname, () => {
    proxy.write(`${lines.join("\r\n")}\r\n\r\n`);
    if (head.length > 0) proxy.write(head);
    proxy.pipe(socket);
    socket.pipe(proxy);
  });
  proxy.on("error", () => socket.destroy());
  socket.on("error", () => proxy.destroy());
});

server.listen(0, "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
