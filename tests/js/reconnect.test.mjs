// Stateful reconnect with the official SignalR client under Node, for each
// hub protocol named in PROTOCOLS (default "json"; "messagepack" uses
// @microsoft/signalr-protocol-msgpack): a WebSocket killed mid-stream resumes
// on the same connection with every message delivered exactly once, and a
// connection whose id expired falls back to automatic reconnect.
//
// Environment: APP_URL (the testhub app server), DISCONNECT_TIMEOUT_MS (the
// proxy's --disconnect-timeout), optional PROTOCOLS. Run by
// tests/tests/reconnect.rs.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as signalR from "@microsoft/signalr";
import { MessagePackHubProtocol } from "@microsoft/signalr-protocol-msgpack";
import { stoppedAfterEach } from "./support/suite.mjs";

const APP_URL = process.env.APP_URL?.replace(/\/$/, "");
if (!APP_URL) throw new Error("APP_URL must be set");
const DISCONNECT_TIMEOUT_MS = Number(process.env.DISCONNECT_TIMEOUT_MS);
if (!(DISCONNECT_TIMEOUT_MS > 0)) throw new Error("DISCONNECT_TIMEOUT_MS must be set");
const PROTOCOLS = (process.env.PROTOCOLS || "json").split(",").filter(Boolean);
const TEST_TIMEOUT_MS = 30_000;
const WAIT_MS = 10_000;
const COUNT = 60;

const open = stoppedAfterEach();

function build(protocol, { stateful = false } = {}) {
  let builder = new signalR.HubConnectionBuilder()
    .withUrl(`${APP_URL}/testhub`, { transport: signalR.HttpTransportType.WebSockets })
    .configureLogging(signalR.LogLevel.Warning);
  if (stateful) {
    builder = builder.withStatefulReconnect().withAutomaticReconnect([0, 200, 500, 1000, 2000]);
  }
  if (protocol === "messagepack") builder = builder.withHubProtocol(new MessagePackHubProtocol());
  const connection = builder.build();
  open.push(connection);
  return connection;
}

// Every `Receive` of one connection, in arrival order, plus its reconnects.
function watch(connection) {
  const seen = { messages: [], reconnecting: 0, reconnected: [] };
  connection.on("Receive", (m) => {
    seen.messages.push(m);
  });
  connection.onreconnecting(() => seen.reconnecting++);
  connection.onreconnected((id) => seen.reconnected.push(id));
  return seen;
}

async function until(what, check) {
  const deadline = Date.now() + WAIT_MS;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${WAIT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// The Node `ws` socket under the client's WebSocket transport.
function socketOf(connection) {
  const ws = connection.connection.transport?._webSocket;
  assert.ok(ws && typeof ws.terminate === "function", "the client runs on the ws package");
  return ws;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

for (const protocol of PROTOCOLS) {
  describe(`WebSockets / ${protocol}`, { timeout: TEST_TIMEOUT_MS }, () => {
    test("a killed socket resumes: every message exactly once, no reconnect events", async () => {
      const a = build(protocol, { stateful: true });
      const seen = watch(a);
      const b = build(protocol);
      await a.start();
      await b.start();
      const id = await a.invoke("GetCallerConnectionId");

      const expected = [];
      let during;
      for (let i = 0; i < COUNT; i++) {
        expected.push(`m${i}`);
        await b.invoke("SendToConnection", id, `m${i}`);
        if (i === COUNT / 3) {
          // No close handshake: the TCP connection just dies.
          socketOf(a).terminate();
          // Sent while the socket is gone: the client keeps it and replays.
          during = a.invoke("Echo", "during the outage");
        }
      }
      await until(`${COUNT} messages`, () => seen.messages.length >= COUNT);
      assert.equal(await during, "during the outage");
      // Anything duplicated would show up after a short wait.
      await sleep(300);
      assert.deepEqual(seen.messages, expected);
      assert.equal(seen.reconnecting, 0);
      assert.deepEqual(seen.reconnected, []);
      assert.equal(await a.invoke("GetCallerConnectionId"), id);
    });

    test("an id that expired falls back to automatic reconnect", async () => {
      const a = build(protocol, { stateful: true });
      const seen = watch(a);
      const b = build(protocol);
      await a.start();
      await b.start();
      const id = await a.invoke("GetCallerConnectionId");

      // Hold the transport's reconnect back until the proxy gave the id up.
      const transport = a.connection.transport;
      const connect = transport.connect.bind(transport);
      transport.connect = async (...args) => {
        await sleep(DISCONNECT_TIMEOUT_MS + 1000);
        return connect(...args);
      };
      socketOf(a).terminate();

      await until("onreconnected", () => seen.reconnected.length > 0);
      assert.equal(seen.reconnecting, 1);
      const newId = seen.reconnected[0];
      assert.notEqual(newId, id);
      assert.equal(await a.invoke("GetCallerConnectionId"), newId);
      await b.invoke("SendToConnection", newId, "after");
      await until("the message after the reconnect", () => seen.messages.includes("after"));
    });
  });
}
