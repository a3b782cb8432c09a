// Three proxy replicas sharing a Redis bus behave as one service, seen by
// the official SignalR client under Node: every kind of send reaches exactly
// its targets, once, wherever they are connected; a killed replica's clients
// reconnect elsewhere while the others see no gap; through a Redis outage
// clients keep receiving (the app server gives each replica cut off from the
// bus a copy for its own clients), and only messages sent while replicas
// notice the outage or the recovery may be lost.
//
// Clients use WebSockets with skipNegotiation and a token minted by the
// testhub app server for the replicas' shared public URL (the balancer), so
// they can connect to one replica directly or through the balancer.
//
// Environment (set by tests/tests/scale_out.rs): PROXY_URLS and PROXY_PIDS
// (comma-separated, same order), LB_URL, APP_URL, REDIS_PORT, REDIS_PID.

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { env, sleep, start, until } from "./support/replicas.mjs";
import { stoppedAfterEach } from "./support/suite.mjs";

const PROXIES = env("PROXY_URLS").split(",");
const PIDS = env("PROXY_PIDS").split(",").map(Number);
const LB_URL = env("LB_URL");
const APP_URL = env("APP_URL");
const REDIS_PORT = env("REDIS_PORT");
const REDIS_PID = Number(env("REDIS_PID"));
const QUIET_MS = 400;

const open = stoppedAfterEach((c) => c.connection.stop());

// A started client of hub `testhub` at `base` (a replica or the balancer)
// recording every `Receive`.
async function connect(base, user, { reconnect = false } = {}) {
  const client = { user, received: [], reconnecting: 0, reconnected: 0 };
  client.connection = await start(APP_URL, base, user, { reconnect });
  client.connection.on("Receive", (m) => client.received.push(m));
  client.connection.onreconnecting(() => client.reconnecting++);
  client.connection.onreconnected(async () => {
    client.id = await client.connection.invoke("GetCallerConnectionId");
    client.reconnected++;
  });
  client.id = await client.connection.invoke("GetCallerConnectionId");
  open.push(client);
  return client;
}

const count = (client, message) => client.received.filter((m) => m === message).length;

// Waits until each of `targets` got `message`, lets stragglers arrive, then
// checks that every client in `all` got it exactly as often as it should.
async function expectDelivery(all, message, targets) {
  await until(`delivery of ${message} to ${targets.length} clients`, () =>
    targets.every((c) => count(c, message) >= 1),
  );
  await sleep(QUIET_MS);
  for (const c of all) {
    const expected = targets.includes(c) ? 1 : 0;
    assert.equal(count(c, message), expected, `${c.user} (${c.id}) received ${message} ${count(c, message)} times`);
  }
}

// The node id a replica puts at the start of the connection ids it issues.
async function nodeIds() {
  const ids = [];
  for (const base of PROXIES) {
    const probe = await connect(base, "probe");
    ids.push(probe.id.slice(0, 6));
    await probe.connection.stop();
    open.splice(open.indexOf(probe), 1);
  }
  return ids;
}

describe("three replicas, one Redis", () => {
  test("every audience reaches exactly its targets once, across replicas", { timeout: 60_000 }, async () => {
    // Two users per replica, and user `shared` on replicas 0 and 2.
    const byProxy = [];
    for (const [i, base] of PROXIES.entries()) {
      byProxy.push([await connect(base, `u${i}a`), await connect(base, `u${i}b`)]);
    }
    const shared0 = await connect(PROXIES[0], "shared");
    const shared2 = await connect(PROXIES[2], "shared");
    const all = [...byProxy.flat(), shared0, shared2];
    const [[a0, b0], [a1, b1], [a2, b2]] = byProxy;
    const nodes = new Set(all.map((c) => c.id.slice(0, 6)));
    assert.equal(nodes.size, 3, "clients are spread over three replicas");

    await a0.connection.invoke("SendToAll", "all-1");
    await expectDelivery(all, "all-1", all);

    await a1.connection.invoke("SendToAllExcept", "except-1", [b0.id, shared2.id]);
    await expectDelivery(all, "except-1", all.filter((c) => c !== b0 && c !== shared2));

    await b2.connection.invoke("SendToOthers", "others-1");
    await expectDelivery(all, "others-1", all.filter((c) => c !== b2));

    // A group with a member on every replica.
    for (const c of [a0, a1, shared2]) await c.connection.invoke("JoinGroup", "room");
    await b1.connection.invoke("SendToGroup", "room", "group-1");
    await expectDelivery(all, "group-1", [a0, a1, shared2]);
    await a1.connection.invoke("SendToOthersInGroup", "room", "group-2");
    await expectDelivery(all, "group-2", [a0, shared2]);
    await a0.connection.invoke("LeaveGroup", "room");
    await b1.connection.invoke("SendToGroup", "room", "group-3");
    await expectDelivery(all, "group-3", [a1, shared2]);

    // Several groups at once: a member of both gets one copy.
    await b2.connection.invoke("JoinGroup", "lobby");
    await a1.connection.invoke("JoinGroup", "lobby");
    await b0.connection.invoke("SendToGroups", ["room", "lobby"], "groups-1");
    await expectDelivery(all, "groups-1", [a1, shared2, b2]);

    await a2.connection.invoke("SendToUser", "shared", "user-1");
    await expectDelivery(all, "user-1", [shared0, shared2]);
    await a2.connection.invoke("SendToUsers", ["shared", "u1b"], "users-1");
    await expectDelivery(all, "users-1", [shared0, shared2, b1]);

    await a0.connection.invoke("SendToConnection", b2.id, "connection-1");
    await expectDelivery(all, "connection-1", [b2]);
    await b1.connection.invoke("SendToConnections", [a0.id, a2.id, a2.id], "connections-1");
    await expectDelivery(all, "connections-1", [a0, a2]);

    // A user group covers the user's connections on every replica, and
    // connections the user opens later.
    await a0.connection.invoke("AddUserToGroup", "shared", "fans");
    await b0.connection.invoke("SendToGroup", "fans", "fans-1");
    await expectDelivery(all, "fans-1", [shared0, shared2]);
    const shared1 = await connect(PROXIES[1], "shared");
    all.push(shared1);
    await b0.connection.invoke("SendToGroup", "fans", "fans-2");
    await expectDelivery(all, "fans-2", [shared0, shared1, shared2]);
    await a0.connection.invoke("RemoveUserFromGroup", "shared", "fans");
    await b0.connection.invoke("SendToGroup", "fans", "fans-3");
    await sleep(QUIET_MS);
    for (const c of all) assert.equal(count(c, "fans-3"), 0, `${c.user} still in the user group`);
  });

  test("a killed replica's clients reconnect to the others; the rest see no gap", { timeout: 60_000 }, async () => {
    const nodes = await nodeIds();
    // The publisher sits on replica 0; replica 1 is killed.
    const publisher = await connect(PROXIES[0], "publisher");
    const clients = [];
    for (let i = 0; i < 9; i++) clients.push(await connect(LB_URL, `lb${i}`, { reconnect: true }));
    const onVictim = clients.filter((c) => c.id.startsWith(nodes[1]));
    const others = clients.filter((c) => !c.id.startsWith(nodes[1]));
    assert.ok(onVictim.length > 0 && others.length > 0, `the balancer spread clients over replicas: ${clients.map((c) => c.id.slice(0, 6))}`);

    let seq = 0;
    let publishing = true;
    const publishLoop = (async () => {
      while (publishing) {
        await publisher.connection.invoke("SendToAll", `seq-${++seq}`);
        await sleep(20);
      }
    })();
    await sleep(300);
    process.kill(PIDS[1], "SIGKILL");
    await until("every client of the killed replica reconnected", () => onVictim.every((c) => c.reconnected > 0));
    await sleep(300);
    publishing = false;
    await publishLoop;
    const last = `seq-${seq}`;
    await until("the last message reached everyone", () => clients.every((c) => count(c, last) === 1));

    for (const c of onVictim) {
      assert.ok(!c.id.startsWith(nodes[1]), `${c.user} reconnected to a live replica`);
    }
    for (const c of others) {
      assert.equal(c.reconnecting, 0, `${c.user} on a surviving replica was not disturbed`);
      const got = c.received.filter((m) => m.startsWith("seq-"));
      const first = Number(got[0].slice(4));
      const expected = Array.from({ length: seq - first + 1 }, (_, k) => `seq-${first + k}`);
      assert.deepEqual(got, expected, `${c.user} saw every message once, in order`);
    }
  });
});

describe("Redis restarts", () => {
  let restarted;
  after(() => restarted?.kill("SIGKILL"));

  test("clients keep receiving through the outage, delivery across replicas resumes, the gap is counted", { timeout: 60_000 }, async () => {
    const local = await connect(PROXIES[0], "local");
    const remote = await connect(PROXIES[2], "remote");
    const publisher = await connect(PROXIES[0], "publisher");

    // Sequence numbers and when each was published.
    const sentAt = [null];
    const publish = async (n) => {
      for (let i = 0; i < n; i++) {
        sentAt.push(Date.now());
        await publisher.connection.invoke("SendToAll", `r-${sentAt.length - 1}`);
        await sleep(20);
      }
    };
    const last = () => sentAt.length - 1;
    await publish(10);
    await until("delivery before the outage", () => count(remote, `r-${last()}`) === 1);

    const killedAt = Date.now();
    process.kill(REDIS_PID, "SIGKILL");
    await publish(80);
    const restartedAt = Date.now();
    restarted = spawn(
      "redis-server",
      ["--bind", "127.0.0.1", "--port", REDIS_PORT, "--save", "", "--appendonly", "no"],
      { stdio: "ignore" },
    );
    // Replicas reconnect within about a second (their backoff starts at
    // 100 ms); then publish some more.
    await sleep(1_500);
    await publish(20);
    await until("the last message reached both", () => count(local, `r-${last()}`) === 1 && count(remote, `r-${last()}`) === 1);

    const numbers = (c) => c.received.filter((m) => m.startsWith("r-")).map((m) => Number(m.slice(2)));
    for (const [name, client] of [["local", local], ["remote", remote]]) {
      const got = numbers(client);
      assert.equal(new Set(got).size, got.length, `${name}: no duplicates`);
      assert.deepEqual(got, [...got].sort((a, b) => a - b), `${name}: in order`);
      const lost = sentAt.map((_, n) => n).filter((n) => n > 0 && !got.includes(n));
      const windows = lost.map((n) => [n, sentAt[n] - killedAt, sentAt[n] - restartedAt]);
      console.log(`${name} client: ${lost.length} of ${last()} lost; [seq, ms after the kill, ms after the restart]: ${JSON.stringify(windows)}`);
      // Only messages sent while the replicas were noticing the change may be lost.
      const noticing = (n) => (sentAt[n] >= killedAt && sentAt[n] - killedAt < 1_000) || (sentAt[n] >= restartedAt && sentAt[n] - restartedAt < 1_500);
      assert.deepEqual(lost.filter((n) => !noticing(n)), [], `${name}: messages lost outside the detection windows`);
    }
  });
});
