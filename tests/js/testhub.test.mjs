// Scenarios for the official SignalR client under Node against a Switchboard
// proxy and the sdk's testhub app server.
//
// Environment: APP_URL (the testhub app server), PROXY_URL (the proxy's
// public client URL). Run by tests/tests/js_client.rs, or by hand:
//   APP_URL=http://127.0.0.1:5001 PROXY_URL=http://127.0.0.1:8080 node --test tests/js/testhub.test.mjs

import { test } from "node:test";
import assert from "node:assert/strict";
import { env, stoppedAfterEach } from "./support/suite.mjs";
// SIGNALR_PACKAGE picks the client major: "@microsoft/signalr" (10) or
// "signalr8" (the 8.x client, installed under that alias).
const signalR = await import(process.env.SIGNALR_PACKAGE || "@microsoft/signalr");

const APP_URL = env("APP_URL");
const PROXY_URL = env("PROXY_URL");
const TEST_TIMEOUT_MS = 30_000;
const WAIT_MS = 10_000;

const open = stoppedAfterEach();

function build(url, { logLevel = signalR.LogLevel.Warning, ...options } = {}) {
  const connection = new signalR.HubConnectionBuilder()
    .withUrl(url, { transport: signalR.HttpTransportType.WebSockets, ...options })
    .configureLogging(logLevel)
    .build();
  open.push(connection);
  return connection;
}

// A connection through the app server's negotiate redirect, started, with
// every `Receive` it gets collected.
async function connect(user) {
  const query = user === undefined ? "" : `?user=${encodeURIComponent(user)}`;
  const connection = build(`${APP_URL}/testhub${query}`);
  const inbox = new Inbox(connection);
  await connection.start();
  return { connection, inbox };
}

// The `Receive` messages of one connection, in arrival order.
class Inbox {
  constructor(connection) {
    this.messages = [];
    this.waiters = new Set();
    connection.on("Receive", (message) => {
      this.messages.push(message);
      for (const wake of this.waiters) wake();
    });
  }

  async waitFor(message) {
    const deadline = Date.now() + WAIT_MS;
    while (!this.messages.includes(message)) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`no Receive(${JSON.stringify(message)}) within ${WAIT_MS} ms; got ${JSON.stringify(this.messages)}`);
      }
      await new Promise((resolve) => {
        const wake = () => {
          this.waiters.delete(wake);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(wake, left);
        this.waiters.add(wake);
      });
    }
  }
}

// Proves `message` never reaches this client: the server's sends are ordered
// per connection, so once a marker sent afterwards has arrived, anything
// sent before it would have arrived too.
async function assertNotReceived({ connection, inbox }, message) {
  const marker = `marker-${Math.random().toString(36).slice(2)}`;
  await connection.invoke("SendToCaller", marker);
  await inbox.waitFor(marker);
  assert.ok(!inbox.messages.includes(message), `${JSON.stringify(message)} should not have been received`);
}

function unique(prefix) {
  return `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
}

async function eventually(check) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

async function expectRefused(url, token) {
  const connection = build(url, { accessTokenFactory: () => token, logLevel: signalR.LogLevel.None });
  await assert.rejects(connection.start(), (error) => {
    assert.match(error.message, /Unauthorized: Status code '401'/);
    return true;
  });
  assert.equal(connection.state, signalR.HubConnectionState.Disconnected);
}

async function tokenFromApp(query) {
  const response = await fetch(`${APP_URL}/token?${new URLSearchParams(query)}`);
  assert.equal(response.status, 200, `GET /token?${new URLSearchParams(query)}`);
  return (await response.text()).trim();
}

test("negotiates through the app server's redirect and connects over WebSockets", { timeout: TEST_TIMEOUT_MS }, async () => {
  const user = unique("alice");
  const { connection } = await connect(user);
  assert.equal(connection.state, signalR.HubConnectionState.Connected);
  assert.ok(connection.connectionId, "the proxy's negotiate gave a connection id");
  assert.equal(await connection.invoke("GetCallerConnectionId"), connection.connectionId);
  assert.equal(await connection.invoke("GetUserId"), user);
});

test("invokes a method and gets its result", { timeout: TEST_TIMEOUT_MS }, async () => {
  const { connection } = await connect();
  assert.equal(await connection.invoke("Echo", "hello"), "hello");
  const tricky = "h\u00e9llo \"quoted\" \u2603 \\ \n end";
  assert.equal(await connection.invoke("Echo", tricky), tricky);
  assert.equal(await connection.invoke("GetUserId"), null);
});

test("invokes a void method and one returning null", { timeout: TEST_TIMEOUT_MS }, async () => {
  const { connection } = await connect();
  assert.equal(await connection.invoke("DoNothing"), undefined);
  assert.equal(await connection.invoke("ReturnNull"), null);
  // A non-blocking send of a void method resolves once it is written.
  await connection.send("DoNothing");
  assert.equal(await connection.invoke("Echo", "after send"), "after send");
});

test("reports a hub exception with the reference error text", { timeout: TEST_TIMEOUT_MS }, async () => {
  const { connection } = await connect();
  await assert.rejects(connection.invoke("ThrowException", "boom"), {
    message: "An unexpected error occurred invoking 'ThrowException' on the server. HubException: boom",
  });
  // The connection survives a failed invocation.
  assert.equal(await connection.invoke("Echo", "still up"), "still up");
});

test("the server calls the caller back", { timeout: TEST_TIMEOUT_MS }, async () => {
  const client = await connect();
  await client.connection.invoke("SendToCaller", "just you");
  await client.inbox.waitFor("just you");
});

test("SendToAll reaches every client", { timeout: TEST_TIMEOUT_MS }, async () => {
  const first = await connect();
  const second = await connect();
  const message = unique("everyone");
  await first.connection.invoke("SendToAll", message);
  await first.inbox.waitFor(message);
  await second.inbox.waitFor(message);
});

test("SendToOthers skips the caller", { timeout: TEST_TIMEOUT_MS }, async () => {
  const caller = await connect();
  const other = await connect();
  const message = unique("others");
  await caller.connection.invoke("SendToOthers", message);
  await other.inbox.waitFor(message);
  await assertNotReceived(caller, message);
});

test("SendToAllExcept skips the listed connections", { timeout: TEST_TIMEOUT_MS }, async () => {
  const caller = await connect();
  const excluded = await connect();
  const included = await connect();
  const message = unique("all-except");
  await caller.connection.invoke("SendToAllExcept", message, [excluded.connection.connectionId]);
  await caller.inbox.waitFor(message);
  await included.inbox.waitFor(message);
  await assertNotReceived(excluded, message);
});

test("groups: members receive, non-members and leavers do not", { timeout: TEST_TIMEOUT_MS }, async () => {
  const member = await connect();
  const outsider = await connect();
  const group = unique("group");
  await member.connection.invoke("JoinGroup", group);

  const first = unique("to-group");
  await outsider.connection.invoke("SendToGroup", group, first);
  await member.inbox.waitFor(first);
  await assertNotReceived(outsider, first);

  await member.connection.invoke("LeaveGroup", group);
  const second = unique("after-leave");
  await outsider.connection.invoke("SendToGroup", group, second);
  await assertNotReceived(member, second);
});

test("users: every connection of the user receives, other users do not", { timeout: TEST_TIMEOUT_MS }, async () => {
  const user = unique("carol");
  const phone = await connect(user);
  const laptop = await connect(user);
  const someoneElse = await connect(unique("dave"));
  const message = unique("to-user");
  await someoneElse.connection.invoke("SendToUser", user, message);
  await phone.inbox.waitFor(message);
  await laptop.inbox.waitFor(message);
  await assertNotReceived(someoneElse, message);
});

test("the app server sees the client connect and disconnect", { timeout: TEST_TIMEOUT_MS }, async () => {
  const user = unique("eve");
  const { connection } = await connect(user);
  const connectionId = connection.connectionId;
  await connection.stop();
  await eventually(async () => {
    const response = await fetch(`${APP_URL}/events`);
    assert.equal(response.status, 200);
    const events = (await response.json()).filter((event) => event.connectionId === connectionId);
    assert.deepEqual(events, [
      { event: "connected", connectionId, userId: user },
      { event: "disconnected", connectionId, userId: user },
    ]);
  });
});

test("a garbage token is refused with 401", { timeout: TEST_TIMEOUT_MS }, async () => {
  await expectRefused(`${PROXY_URL}/client/?hub=testhub`, "garbage");
});

test("an expired token is refused with 401", { timeout: TEST_TIMEOUT_MS }, async () => {
  const token = await tokenFromApp({ lifetime: "-60" });
  await expectRefused(`${PROXY_URL}/client/?hub=testhub`, token);
});

test("a token for another hub is refused with 401", { timeout: TEST_TIMEOUT_MS }, async () => {
  const token = await tokenFromApp({ hub: "otherhub" });
  await expectRefused(`${PROXY_URL}/client/?hub=testhub`, token);
});

test("a token minted by the app server is accepted straight at the proxy", { timeout: TEST_TIMEOUT_MS }, async () => {
  // The control for the refusals above: the same path with a valid token works.
  const user = unique("frank");
  const token = await tokenFromApp({ user });
  const connection = build(`${PROXY_URL}/client/?hub=testhub`, { accessTokenFactory: () => token });
  await connection.start();
  assert.equal(await connection.invoke("GetUserId"), user);
});
