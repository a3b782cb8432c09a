// The official SignalR client under Node over each transport the proxy
// offers: WebSockets, server-sent events and long polling, against the sdk's
// testhub app server.
//
// Environment: APP_URL (the testhub app server), PROXY_URL (the proxy's
// public client URL). Run by tests/tests/transports.rs, or by hand:
//   APP_URL=http://127.0.0.1:5001 PROXY_URL=http://127.0.0.1:8080 node --test tests/js/transports.test.mjs

import { test } from "node:test";
import assert from "node:assert/strict";
import { env, stoppedAfterEach } from "./support/suite.mjs";
// SIGNALR_PACKAGE picks the client major: "@microsoft/signalr" (10) or
// "signalr8" (the 8.x client, installed under that alias).
const signalR = await import(process.env.SIGNALR_PACKAGE || "@microsoft/signalr");

const APP_URL = env("APP_URL");
const TEST_TIMEOUT_MS = 30_000;
const WAIT_MS = 10_000;

const TRANSPORTS = [
  ["WebSockets", "WebSocketTransport"],
  ["ServerSentEvents", "ServerSentEventsTransport"],
  ["LongPolling", "LongPollingTransport"],
];

const open = stoppedAfterEach();

function unique(prefix) {
  return `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
}

// A started connection over `transport` with every `Receive` collected.
async function connect(transport) {
  const connection = new signalR.HubConnectionBuilder()
    .withUrl(`${APP_URL}/testhub`, { transport: signalR.HttpTransportType[transport] })
    .configureLogging(signalR.LogLevel.Warning)
    .build();
  open.push(connection);
  const received = [];
  const waiters = new Set();
  connection.on("Receive", (message) => {
    received.push(message);
    for (const wake of waiters) wake();
  });
  await connection.start();
  const waitFor = async (message) => {
    const deadline = Date.now() + WAIT_MS;
    while (!received.includes(message)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no Receive(${message}) over ${transport}; got ${JSON.stringify(received)}`);
      await new Promise((resolve) => {
        const wake = () => {
          waiters.delete(wake);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(wake, left);
        waiters.add(wake);
      });
    }
  };
  return { connection, received, waitFor };
}

// Proves `message` never arrived: sends to one connection are ordered, so a
// marker sent afterwards arriving means the message would have too.
async function assertNotReceived(client, message) {
  const marker = unique("marker");
  await client.connection.invoke("SendToCaller", marker);
  await client.waitFor(marker);
  assert.ok(!client.received.includes(message), `${message} should not have arrived`);
}

for (const [transport, className] of TRANSPORTS) {
  test(`${transport}: connects over that transport and invokes with a result`, { timeout: TEST_TIMEOUT_MS }, async () => {
    const { connection } = await connect(transport);
    // The client's own record of the transport it settled on.
    assert.equal(connection.connection.transport.constructor.name, className);
    assert.equal(await connection.invoke("Echo", "hello"), "hello");
    const tricky = "line one\nline two\r\n\"quoted\" \u2603 \\ end";
    assert.equal(await connection.invoke("Echo", tricky), tricky);
    assert.equal(await connection.invoke("ReturnNull"), null);
    assert.equal(await connection.invoke("DoNothing"), undefined);
    await assert.rejects(connection.invoke("ThrowException", "boom"), {
      message: "An unexpected error occurred invoking 'ThrowException' on the server. HubException: boom",
    });
    assert.equal(await connection.invoke("GetCallerConnectionId"), connection.connectionId);
  });

  test(`${transport}: the server calls the client`, { timeout: TEST_TIMEOUT_MS }, async () => {
    const client = await connect(transport);
    const message = unique("just-you");
    await client.connection.invoke("SendToCaller", message);
    await client.waitFor(message);
    // Several messages queued at once all arrive, in order.
    const burst = [1, 2, 3, 4, 5].map((n) => `${message}-${n}`);
    await Promise.all(burst.map((m) => client.connection.invoke("SendToCaller", m)));
    await client.waitFor(burst[4]);
    assert.deepEqual(client.received.filter((m) => burst.includes(m)), burst);
  });

  test(`${transport}: groups reach members only`, { timeout: TEST_TIMEOUT_MS }, async () => {
    const member = await connect(transport);
    const outsider = await connect(transport);
    const group = unique("group");
    await member.connection.invoke("JoinGroup", group);
    const first = unique("to-group");
    await outsider.connection.invoke("SendToGroup", group, first);
    await member.waitFor(first);
    await assertNotReceived(outsider, first);
    await member.connection.invoke("LeaveGroup", group);
    const second = unique("after-leave");
    await outsider.connection.invoke("SendToGroup", group, second);
    await assertNotReceived(member, second);
  });

  test(`${transport}: stop closes cleanly`, { timeout: TEST_TIMEOUT_MS }, async () => {
    const { connection } = await connect(transport);
    let closedWith = "not closed";
    connection.onclose((error) => {
      closedWith = error;
    });
    await connection.stop();
    assert.equal(connection.state, signalR.HubConnectionState.Disconnected);
    assert.equal(closedWith, undefined);
  });
}

test("clients on different transports reach each other", { timeout: TEST_TIMEOUT_MS }, async () => {
  const clients = [];
  for (const [transport] of TRANSPORTS) clients.push(await connect(transport));
  const message = unique("everyone");
  await clients[2].connection.invoke("SendToAll", message);
  for (const client of clients) await client.waitFor(message);
});
