// The negotiate and connection edges the SignalR client conformance suites
// probe, with the official client under Node against the proxy and the sdk's
// testhub app server: negotiate redirects with and without a token, a failed
// negotiate's body, the app's own bearer auth in front of `authorizedhub`,
// the transport each connection really uses, a hub the proxy offers no
// WebSockets for, CORS preflights at the proxy, and keep-alive pings.
//
// Environment:
//   APP_URL, PROXY_URL: a testhub app server and its proxy, started with
//     `--hub-transports testhub-nowebsockets=sse,longpolling`;
//   KEEPALIVE_APP_URL: a testhub linked to a proxy started with
//     `--keep-alive-interval 1s --client-timeout 3s`.
// Run by tests/tests/conformance.rs.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import * as signalR from "@microsoft/signalr";
import { MessagePackHubProtocol } from "@microsoft/signalr-protocol-msgpack";
import { env, stoppedAfterEach } from "./support/suite.mjs";

const APP_URL = env("APP_URL");
const PROXY_URL = env("PROXY_URL");
const KEEPALIVE_APP_URL = env("KEEPALIVE_APP_URL");
const TEST_TIMEOUT_MS = 30_000;
const TRANSPORTS = ["WebSockets", "ServerSentEvents", "LongPolling"];

const open = stoppedAfterEach();

function build(url, options = {}, protocol = undefined) {
  let builder = new signalR.HubConnectionBuilder()
    .withUrl(url, options)
    .configureLogging(signalR.LogLevel.Warning);
  if (protocol) builder = builder.withHubProtocol(protocol);
  const connection = builder.build();
  open.push(connection);
  return connection;
}

async function started(url, options = {}, protocol = undefined) {
  const connection = build(url, options, protocol);
  await connection.start();
  return connection;
}

// One raw HTTP exchange; `node:http` rather than fetch so that headers a
// browser would set (Origin) go out exactly as given.
function request(method, url, headers = {}, body = undefined) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      const chunks = [];
      res.on("data", (chunk) => chunks.push(chunk));
      res.on("end", () =>
        resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }),
      );
    });
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

async function appToken() {
  const response = await request("GET", `${APP_URL}/generateJwtToken`);
  assert.equal(response.status, 200, response.body);
  assert.equal(response.body.split(".").length, 3, `not a JWT: ${response.body}`);
  return response.body;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

describe("negotiate redirects", () => {
  test("a redirect without a token leads through the app's negotiate, and numRedirects grows", { timeout: TEST_TIMEOUT_MS }, async () => {
    const url = `${APP_URL}/redirect?baseUrl=${encodeURIComponent(APP_URL)}`;
    const first = await started(url);
    const second = await started(url);
    const one = await first.invoke("GetNumRedirects");
    const two = await second.invoke("GetNumRedirects");
    assert.equal(typeof one, "number");
    assert.ok(two > one, `numRedirects should grow: ${one} then ${two}`);
    assert.equal(await first.invoke("Echo", "redirected"), "redirected");
    assert.equal(await second.invoke("GetCallerConnectionId"), second.connectionId);
  });

  test("a redirect with {url, accessToken} goes straight to the proxy, and numRedirects grows", { timeout: TEST_TIMEOUT_MS }, async () => {
    const raw = await request("POST", `${APP_URL}/redirect/negotiate?withToken=true&negotiateVersion=1`);
    assert.equal(raw.status, 200, raw.body);
    const answer = JSON.parse(raw.body);
    assert.ok(answer.url.startsWith(`${PROXY_URL}/client/`), `redirect should lead to the proxy: ${answer.url}`);
    assert.equal(answer.accessToken.split(".").length, 3);

    const url = `${APP_URL}/redirect?withToken=true`;
    const first = await started(url);
    const second = await started(url);
    const one = await first.invoke("GetNumRedirects");
    const two = await second.invoke("GetNumRedirects");
    const rawCount = Number(new URL(answer.url).searchParams.get("numRedirects"));
    assert.ok(one > rawCount, `numRedirects should grow past the raw call's ${rawCount}: ${one}`);
    assert.ok(two > one, `numRedirects should grow: ${one} then ${two}`);
  });

  test("a reconnect after a redirect negotiates through the redirect again", { timeout: TEST_TIMEOUT_MS }, async () => {
    const reconnecting = new signalR.HubConnectionBuilder()
      .withUrl(`${APP_URL}/redirect?baseUrl=${encodeURIComponent(APP_URL)}`)
      .withAutomaticReconnect([0])
      .configureLogging(signalR.LogLevel.Warning)
      .build();
    open.push(reconnecting);
    const back = new Promise((resolve) => reconnecting.onreconnected(resolve));
    await reconnecting.start();
    const before = await reconnecting.invoke("GetNumRedirects");
    const firstId = reconnecting.connectionId;
    // What the client does when the server goes quiet: drop and reconnect.
    reconnecting.serverTimeout();
    const newId = await back;
    assert.notEqual(newId, firstId);
    assert.equal(await reconnecting.invoke("GetCallerConnectionId"), newId);
    const after = await reconnecting.invoke("GetNumRedirects");
    assert.ok(after > before, `the reconnect should have been redirected again: ${before} then ${after}`);
  });

  test("a failed negotiate surfaces the server's status and body", { timeout: TEST_TIMEOUT_MS }, async () => {
    const connection = build(`${APP_URL}/bad-negotiate`);
    await assert.rejects(connection.start(), (error) => {
      assert.match(error.message, /^Failed to complete negotiation with the server: /);
      assert.match(error.message, /Some response from server/);
      assert.match(error.message, /Status code '400'/);
      return true;
    });
    assert.equal(connection.state, signalR.HubConnectionState.Disconnected);
  });

  test("negotiate sets the test cookies, the expired one already expired", { timeout: TEST_TIMEOUT_MS }, async () => {
    const response = await request("POST", `${APP_URL}/testhub/negotiate?negotiateVersion=1`);
    assert.equal(response.status, 200, response.body);
    const cookies = response.headers["set-cookie"] ?? [];
    assert.ok(cookies.some((c) => c.startsWith("testCookie=testValue")), JSON.stringify(cookies));
    assert.ok(cookies.some((c) => c.startsWith("testCookie2=testValue2")), JSON.stringify(cookies));
    const expired = cookies.find((c) => c.startsWith("expiredCookie="));
    assert.ok(expired, JSON.stringify(cookies));
    const expires = /Expires=([^;]+)/i.exec(expired)?.[1];
    assert.ok(expires && Date.parse(expires) < Date.now(), `expiredCookie should be expired: ${expired}`);
  });
});

describe("authorizedhub", () => {
  for (const transport of TRANSPORTS) {
    test(`connects over ${transport} with an app token as user testuser`, { timeout: TEST_TIMEOUT_MS }, async () => {
      const token = await appToken();
      const connection = await started(`${APP_URL}/authorizedhub`, {
        transport: signalR.HttpTransportType[transport],
        accessTokenFactory: () => token,
      });
      assert.equal(await connection.invoke("Echo", "你好，世界！"), "你好，世界！");
      assert.equal(await connection.invoke("GetUserId"), "testuser");
      assert.equal(await connection.invoke("GetActiveTransportName"), transport);
    });
  }

  test("connects with an async token factory", { timeout: TEST_TIMEOUT_MS }, async () => {
    const connection = await started(`${APP_URL}/authorizedhub`, { accessTokenFactory: () => appToken() });
    assert.equal(await connection.invoke("GetUserId"), "testuser");
  });

  test("is refused without a token, with a foreign token and with an expired one", { timeout: TEST_TIMEOUT_MS }, async () => {
    const anonymous = build(`${APP_URL}/authorizedhub`);
    await assert.rejects(anonymous.start(), /Status code '401'/);

    // A proxy client token is not an app token.
    const proxyToken = JSON.parse((await request("POST", `${APP_URL}/testhub/negotiate?negotiateVersion=1`)).body).accessToken;
    const foreign = build(`${APP_URL}/authorizedhub`, { accessTokenFactory: () => proxyToken });
    await assert.rejects(foreign.start(), /Status code '401'/);

    const token = await appToken();
    const bearer = { authorization: `Bearer ${token}` };
    const fresh = await request("POST", `${APP_URL}/authorizedhub/negotiate?negotiateVersion=1`, bearer);
    assert.equal(fresh.status, 200, fresh.body);
    // App tokens live five seconds.
    await sleep(6_500);
    const stale = await request("POST", `${APP_URL}/authorizedhub/negotiate?negotiateVersion=1`, bearer);
    assert.equal(stale.status, 401, stale.body);
  });
});

describe("transports", () => {
  for (const transport of TRANSPORTS) {
    test(`GetActiveTransportName over ${transport}`, { timeout: TEST_TIMEOUT_MS }, async () => {
      const connection = await started(`${APP_URL}/testhub`, { transport: signalR.HttpTransportType[transport] });
      assert.equal(await connection.invoke("GetActiveTransportName"), transport);
    });
  }

  test("the proxy lists no WebSockets for testhub-nowebsockets, and all three for testhub", { timeout: TEST_TIMEOUT_MS }, async () => {
    const listed = async (hub) => {
      const redirect = JSON.parse((await request("POST", `${APP_URL}/${hub}/negotiate?negotiateVersion=1`)).body);
      const url = new URL(redirect.url);
      const negotiate = `${url.origin}${url.pathname.replace(/\/$/, "")}/negotiate${url.search}&negotiateVersion=1`;
      const response = await request("POST", negotiate, { authorization: `Bearer ${redirect.accessToken}` });
      assert.equal(response.status, 200, response.body);
      return JSON.parse(response.body).availableTransports.map((t) => t.transport).sort();
    };
    assert.deepEqual(await listed("testhub-nowebsockets"), ["LongPolling", "ServerSentEvents"]);
    assert.deepEqual(await listed("testhub"), ["LongPolling", "ServerSentEvents", "WebSockets"]);
  });

  test("testhub-nowebsockets: JSON falls back to server-sent events", { timeout: TEST_TIMEOUT_MS }, async () => {
    const connection = await started(`${APP_URL}/testhub-nowebsockets`);
    assert.equal(await connection.invoke("GetActiveTransportName"), "ServerSentEvents");
    assert.equal(await connection.invoke("Echo", "no sockets"), "no sockets");
  });

  test("testhub-nowebsockets: MessagePack skips server-sent events for long polling", { timeout: TEST_TIMEOUT_MS }, async () => {
    const connection = await started(`${APP_URL}/testhub-nowebsockets`, {}, new MessagePackHubProtocol());
    assert.equal(await connection.invoke("GetActiveTransportName"), "LongPolling");
  });

  test("testhub-nowebsockets: a client that insists on WebSockets cannot connect", { timeout: TEST_TIMEOUT_MS }, async () => {
    const connection = build(`${APP_URL}/testhub-nowebsockets`, { transport: signalR.HttpTransportType.WebSockets });
    // The proxy lists only SSE and long polling, which this client refuses.
    await assert.rejects(connection.start(), (error) => {
      assert.match(error.message, /Unable to connect to the server with any of the available transports/);
      assert.doesNotMatch(error.message, /WebSockets/);
      return true;
    });
  });

  test("server calls, structural objects and complex objects round-trip", { timeout: TEST_TIMEOUT_MS }, async () => {
    const connection = build(`${APP_URL}/testhub`);
    const message = new Promise((resolve) => connection.on("mEssage", resolve));
    const custom = new Promise((resolve) => connection.on("CustomObject", resolve));
    await connection.start();
    await connection.invoke("InvokeWithString", "你好 SignalR！");
    assert.equal(await message, "你好 SignalR！");
    await connection.send("SendCustomObject", { Name: "test", Value: 42 });
    assert.deepEqual(await custom, { Name: "test", Value: 42 });
    const complex = await connection.invoke("SendComplexObject");
    assert.deepEqual(complex, {
      String: "hello world",
      IntArray: [1, 2, 3],
      ByteArray: "AQID",
      Guid: "00010203-0405-0607-0706-050403020100",
      DateTime: "2000-01-01T00:00:00Z",
    });
    assert.deepEqual(await connection.invoke("EchoComplexObject", complex), complex);
    // The app server reads the time and writes it back in UTC, fraction kept.
    const later = { ...complex, ByteArray: "aGVsbG8=", DateTime: "2002-04-01T12:20:15.25+02:00" };
    assert.deepEqual(await connection.invoke("EchoComplexObject", later), { ...later, DateTime: "2002-04-01T10:20:15.25Z" });
  });

  for (const transport of ["WebSockets", "LongPolling"]) {
    test(`over MessagePack (${transport}) complex objects carry bytes as bin and times as timestamps`, { timeout: TEST_TIMEOUT_MS }, async () => {
      const connection = await started(
        `${APP_URL}/testhub`,
        { transport: signalR.HttpTransportType[transport] },
        new MessagePackHubProtocol(),
      );
      const complex = await connection.invoke("SendComplexObject");
      assert.deepEqual({ ...complex, ByteArray: [...complex.ByteArray] }, {
        String: "hello world",
        IntArray: [1, 2, 3],
        ByteArray: [1, 2, 3],
        Guid: "00010203-0405-0607-0706-050403020100",
        DateTime: new Date(Date.UTC(2000, 0, 1)),
      });
      assert.ok(complex.ByteArray instanceof Uint8Array, "ByteArray should arrive as a Uint8Array");
      const sent = {
        String: "Hello, World!",
        IntArray: [1, 2, 3, 0xff],
        ByteArray: new Uint8Array([0x68, 0x65, 0x6c, 0x6c, 0x6f]),
        Guid: "00010203-0405-0607-0706-050403020100",
        // Milliseconds need the 8-byte timestamp form; a date before 1970 the 12-byte one.
        DateTime: new Date(Date.UTC(2002, 3, 1, 10, 20, 15, 250)),
      };
      for (const value of [sent, { ...sent, DateTime: new Date(Date.UTC(1969, 6, 20, 20, 17, 40)) }]) {
        const echoed = await connection.invoke("EchoComplexObject", value);
        assert.ok(echoed.ByteArray instanceof Uint8Array, "ByteArray should come back as a Uint8Array");
        assert.deepEqual({ ...echoed, ByteArray: [...echoed.ByteArray] }, { ...value, ByteArray: [...value.ByteArray] });
      }
    });
  }

  for (const transport of TRANSPORTS) {
    test(`the user agent reaches the hub over ${transport}`, { timeout: TEST_TIMEOUT_MS }, async () => {
      const connection = await started(`${APP_URL}/testhub`, { transport: signalR.HttpTransportType[transport] });
      const agent = await connection.invoke("GetHeader", "User-Agent");
      assert.match(agent ?? "", /^Microsoft SignalR\/\d+\.\d+ \(/, `User-Agent over ${transport}: ${agent}`);
    });

    test(`a User-Agent set by the application wins over ${transport}`, { timeout: TEST_TIMEOUT_MS }, async () => {
      const connection = await started(`${APP_URL}/testhub`, {
        transport: signalR.HttpTransportType[transport],
        headers: { "User-Agent": "Custom Agent" },
      });
      assert.equal(await connection.invoke("GetHeader", "user-agent"), "Custom Agent");
    });
  }
});

describe("CORS at the proxy", () => {
  test("a preflight is answered 204 with the origin, method, headers and credentials echoed", { timeout: TEST_TIMEOUT_MS }, async () => {
    const origin = "http://page.example.test:3000";
    const response = await request("OPTIONS", `${PROXY_URL}/client/negotiate?hub=testhub&negotiateVersion=1`, {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization,x-requested-with,x-signalr-user-agent",
    });
    assert.equal(response.status, 204, response.body);
    assert.equal(response.headers["access-control-allow-origin"], origin);
    assert.equal(response.headers["access-control-allow-credentials"], "true");
    assert.match(response.headers["access-control-allow-methods"] ?? "", /POST/);
    const allowed = (response.headers["access-control-allow-headers"] ?? "").toLowerCase();
    for (const name of ["authorization", "x-requested-with", "x-signalr-user-agent"]) {
      assert.ok(allowed.includes(name), `${name} not allowed: ${allowed}`);
    }
  });

  test("a negotiate with an Origin gets the origin and credentials back", { timeout: TEST_TIMEOUT_MS }, async () => {
    const origin = "http://page.example.test:3000";
    const redirect = JSON.parse((await request("POST", `${APP_URL}/testhub/negotiate?negotiateVersion=1`)).body);
    const response = await request("POST", `${PROXY_URL}/client/negotiate?hub=testhub&negotiateVersion=1`, {
      origin,
      authorization: `Bearer ${redirect.accessToken}`,
    });
    assert.equal(response.status, 200, response.body);
    assert.equal(response.headers["access-control-allow-origin"], origin);
    assert.equal(response.headers["access-control-allow-credentials"], "true");
  });
});

describe("keep-alive (proxy pings every 1 s, drops clients silent for 3 s)", () => {
  for (const transport of TRANSPORTS) {
    test(`a quiet client stays connected for 5 s over ${transport}`, { timeout: TEST_TIMEOUT_MS }, async () => {
      const connection = new signalR.HubConnectionBuilder()
        .withUrl(`${KEEPALIVE_APP_URL}/testhub`, { transport: signalR.HttpTransportType[transport] })
        // The client pings often enough for the proxy's 3 s timeout, and gives
        // up on the proxy after 2.5 s without a message: only the proxy's 1 s
        // pings keep it connected.
        .withKeepAliveInterval(1_000)
        .withServerTimeout(2_500)
        .configureLogging(signalR.LogLevel.Warning)
        .build();
      open.push(connection);
      let closed;
      connection.onclose((error) => {
        closed = error ?? new Error("closed without an error");
      });
      await connection.start();
      await sleep(5_000);
      assert.equal(closed, undefined, `closed while quiet: ${closed?.message}`);
      assert.equal(connection.state, signalR.HubConnectionState.Connected);
      assert.equal(await connection.invoke("Echo", "still here"), "still here");
    });
  }

  for (const transport of ["WebSockets", "ServerSentEvents"]) {
    test(`the proxy drops a client that stays silent past 3 s over ${transport}`, { timeout: TEST_TIMEOUT_MS }, async () => {
      // The client's own pings come every 15 s by default: too late.
      const connection = await started(`${KEEPALIVE_APP_URL}/testhub`, { transport: signalR.HttpTransportType[transport] });
      const startedAt = Date.now();
      const closed = await Promise.race([
        new Promise((resolve) => connection.onclose(() => resolve(true))),
        sleep(10_000).then(() => false),
      ]);
      const after = Date.now() - startedAt;
      assert.ok(closed, "the proxy should have closed a client silent for 10 s");
      assert.ok(after >= 2_500, `closed after ${after} ms, before the 3 s client timeout`);
    });

    test(`a client with a too short server timeout notices the silence over ${transport}`, { timeout: TEST_TIMEOUT_MS }, async () => {
      const connection = await started(`${KEEPALIVE_APP_URL}/testhub`, { transport: signalR.HttpTransportType[transport] });
      const closed = new Promise((resolve) => connection.onclose(resolve));
      // Shorter than the 1 s ping interval: the timer must fire.
      connection.serverTimeoutInMilliseconds = 300;
      await connection.invoke("Echo", "");
      const error = await closed;
      assert.match(error?.message ?? "", /Server timeout elapsed without receiving a message from the server/);
    });
  }

  test("a client with a server timeout just above the ping interval sees pings arrive", { timeout: TEST_TIMEOUT_MS }, async () => {
    const connection = new signalR.HubConnectionBuilder()
      .withUrl(`${KEEPALIVE_APP_URL}/testhub`, { transport: signalR.HttpTransportType.WebSockets })
      .withKeepAliveInterval(1_000)
      .withServerTimeout(1_600)
      .configureLogging(signalR.LogLevel.Warning)
      .build();
    open.push(connection);
    let closed;
    connection.onclose((error) => {
      closed = error ?? new Error("closed without an error");
    });
    await connection.start();
    await sleep(5_000);
    assert.equal(closed, undefined, `closed while quiet: ${closed?.message}`);
  });
});
