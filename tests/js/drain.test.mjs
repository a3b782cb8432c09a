// Graceful drain, seen by the official SignalR client under Node: 200
// clients on proxy A keep invoking `Record(n)` on the app server; A gets
// SIGTERM; each client is closed with allowReconnect at some point of A's
// drain window, reconnects through the balancer to proxy B (to which the
// app server is also linked), and carries on. Every invocation the client
// saw acknowledged was recorded by the app server.
//
// Environment (set by tests/tests/drain.rs): PROXY_A_URL, PROXY_B_URL,
// PROXY_A_PID, LB_URL (failover balancer: A while it is ready, then B),
// APP_URL, DRAIN_WINDOW_MS, CLIENTS.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as signalR from "@microsoft/signalr";
import { env, sleep, start as connect, until } from "./support/replicas.mjs";
import { stoppedAfterEach } from "./support/suite.mjs";

const PROXY_A_URL = env("PROXY_A_URL");
const PROXY_B_URL = env("PROXY_B_URL");
const PROXY_A_PID = Number(env("PROXY_A_PID"));
const LB_URL = env("LB_URL");
const APP_URL = env("APP_URL");
const DRAIN_WINDOW_MS = Number(env("DRAIN_WINDOW_MS"));
const CLIENTS = Number(env("CLIENTS"));
// Scheduling slack on a loaded 2-core machine.
const SLACK_MS = 250;

const open = stoppedAfterEach();

async function start(base, user, reconnect) {
  const connection = await connect(APP_URL, base, user, { reconnect, logLevel: signalR.LogLevel.Error });
  open.push(connection);
  return connection;
}

async function nodeOf(base) {
  const probe = await start(base, "probe", false);
  const id = await probe.invoke("GetCallerConnectionId");
  await probe.stop();
  return id.slice(0, 6);
}

test(`${CLIENTS} clients move from a draining proxy to another within the drain window`, { timeout: 90_000 }, async () => {
  const [nodeA, nodeB] = [await nodeOf(PROXY_A_URL), await nodeOf(PROXY_B_URL)];

  const clients = [];
  for (let i = 0; i < CLIENTS; i++) {
    const user = `drain${i}`;
    const connection = await start(LB_URL, user, true);
    const client = { user, connection, acked: [], failed: 0, closedAt: null, reconnectedAt: null };
    client.id = await connection.invoke("GetCallerConnectionId");
    connection.onreconnecting(() => (client.closedAt ??= Date.now()));
    connection.onreconnected(async () => {
      client.reconnectedAt ??= Date.now();
      client.id = await connection.invoke("GetCallerConnectionId");
    });
    clients.push(client);
  }
  assert.ok(clients.every((c) => c.id.startsWith(nodeA)), "every client starts on proxy A");

  // Each client invokes Record(n) back to back; an invocation cut by the
  // close is not acknowledged and is tried again with the same n.
  let running = true;
  const loops = clients.map(async (c) => {
    let n = 1;
    while (running) {
      if (c.connection.state !== signalR.HubConnectionState.Connected) {
        await sleep(20);
        continue;
      }
      try {
        assert.equal(await c.connection.invoke("Record", n), n);
        c.acked.push(n);
        n++;
      } catch {
        c.failed++;
      }
      await sleep(50);
    }
  });

  await sleep(500);
  const sigterm = Date.now();
  process.kill(PROXY_A_PID, "SIGTERM");
  await until(
    "every client reconnected",
    () => clients.every((c) => c.reconnectedAt !== null && c.id.startsWith(nodeB)),
    DRAIN_WINDOW_MS + 10_000,
  );
  await sleep(500);
  running = false;
  await Promise.all(loops);

  const closes = clients.map((c) => c.closedAt - sigterm).sort((a, b) => a - b);
  const moves = clients.map((c) => c.reconnectedAt - sigterm).sort((a, b) => a - b);
  const at = (list, q) => list[Math.min(list.length - 1, Math.floor(q * list.length))];
  console.log(
    `closed after SIGTERM: first ${closes[0]} ms, median ${at(closes, 0.5)} ms, last ${closes.at(-1)} ms; ` +
      `reconnected: median ${at(moves, 0.5)} ms, last ${moves.at(-1)} ms (drain window ${DRAIN_WINDOW_MS} ms)`,
  );
  assert.ok(moves.at(-1) <= DRAIN_WINDOW_MS + SLACK_MS, "every client reconnected within the drain window");
  assert.ok(
    closes.at(-1) - closes[0] >= DRAIN_WINDOW_MS / 2,
    "closes are spread over the drain window, not all at once",
  );

  for (const c of clients) {
    const recorded = await c.connection.invoke("Recorded");
    const missing = c.acked.filter((n) => !recorded.includes(n));
    assert.deepEqual(missing, [], `${c.user}: acknowledged invocations the app server never ran`);
    assert.ok(c.acked.length > 0, `${c.user} made progress`);
  }
  const totalAcked = clients.reduce((sum, c) => sum + c.acked.length, 0);
  const totalFailed = clients.reduce((sum, c) => sum + c.failed, 0);
  console.log(`${totalAcked} acknowledged invocations, ${totalFailed} cut by the close and retried`);
});
