// The official SignalR client under Node against a proxy whose client port
// serves TLS: it negotiates through the testhub app server (plain HTTP), is
// redirected to the proxy's https:// URL and connects there over wss://,
// server-sent events and long polling, trusting the test CA through
// NODE_EXTRA_CA_CERTS.
//
// Environment: APP_URL (the testhub app server), PROXY_URL (the proxy's
// https:// client URL), NODE_EXTRA_CA_CERTS (the CA that signed the proxy's
// certificate). Run by tests/tests/tls.rs.

import { test } from "node:test";
import assert from "node:assert/strict";
import tls from "node:tls";
import { env, stoppedAfterEach } from "./support/suite.mjs";
const signalR = await import(process.env.SIGNALR_PACKAGE || "@microsoft/signalr");

const APP_URL = env("APP_URL");
const PROXY_URL = env("PROXY_URL");
const TEST_TIMEOUT_MS = 30_000;

const TRANSPORTS = [
  ["WebSockets", "WebSocketTransport"],
  ["ServerSentEvents", "ServerSentEventsTransport"],
  ["LongPolling", "LongPollingTransport"],
];

const open = stoppedAfterEach();

test("the proxy's client URL is https", () => {
  assert.match(PROXY_URL, /^https:\/\//);
  assert.ok(process.env.NODE_EXTRA_CA_CERTS, "NODE_EXTRA_CA_CERTS names the test CA");
});

for (const [transport, className] of TRANSPORTS) {
  test(`${transport}: negotiates through the app server and connects to the proxy over TLS`, { timeout: TEST_TIMEOUT_MS }, async () => {
    const connection = new signalR.HubConnectionBuilder()
      .withUrl(`${APP_URL}/testhub`, { transport: signalR.HttpTransportType[transport] })
      .configureLogging(signalR.LogLevel.Warning)
      .build();
    open.push(connection);
    await connection.start();
    const transportObject = connection.connection.transport;
    assert.equal(transportObject.constructor.name, className);
    // The redirect from the app server's negotiate landed on the proxy's
    // https:// URL, and the transport runs there: wss:// for WebSockets.
    // The client keeps that URL only in its transports' private fields.
    const used = transportObject._webSocket ? transportObject._webSocket.url : transportObject._url;
    const expected = transport === "WebSockets" ? PROXY_URL.replace(/^https:/, "wss:") : PROXY_URL;
    assert.ok(used.startsWith(`${expected}/client/`), `the transport uses ${used}, expected ${expected}/client/...`);
    assert.equal(await connection.invoke("Echo", `hello over ${transport}`), `hello over ${transport}`);
    assert.equal(await connection.invoke("GetCallerConnectionId"), connection.connectionId);
  });
}

test("the client port offers HTTP/1.1 by ALPN and refuses plain HTTP", { timeout: TEST_TIMEOUT_MS }, async () => {
  const { hostname, port } = new URL(PROXY_URL);
  const alpn = await new Promise((resolve, reject) => {
    const socket = tls.connect({ host: hostname, port: Number(port), ALPNProtocols: ["h2", "http/1.1"] }, () => {
      const chosen = socket.alpnProtocol;
      socket.end();
      resolve(chosen);
    });
    socket.on("error", reject);
  });
  assert.equal(alpn, "http/1.1");
  // Plain HTTP to the TLS port gets no HTTP answer.
  const plain = PROXY_URL.replace(/^https:/, "http:");
  await assert.rejects(fetch(`${plain}/client/negotiate?hub=testhub`, { method: "POST" }));
});
