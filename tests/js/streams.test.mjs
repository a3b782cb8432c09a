// Streams both ways and client results with the official SignalR client
// under Node, for each hub protocol named in PROTOCOLS (default "json";
// "messagepack" uses @microsoft/signalr-protocol-msgpack).
//
// Environment: APP_URL (the testhub app server), optional PROTOCOLS and
// TRANSPORTS (comma-separated; transports as HttpTransportType names,
// default "WebSockets"). Run by tests/tests/js_client.rs.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as signalR from "@microsoft/signalr";
import { MessagePackHubProtocol } from "@microsoft/signalr-protocol-msgpack";
import { stoppedAfterEach } from "./support/suite.mjs";

const APP_URL = process.env.APP_URL?.replace(/\/$/, "");
if (!APP_URL) throw new Error("APP_URL must be set");
const PROTOCOLS = (process.env.PROTOCOLS || "json").split(",").filter(Boolean);
const TRANSPORTS = (process.env.TRANSPORTS || "WebSockets").split(",").filter(Boolean);
const TEST_TIMEOUT_MS = 30_000;
const WAIT_MS = 10_000;

const open = stoppedAfterEach();

async function connect(protocol, transport) {
  const builder = new signalR.HubConnectionBuilder()
    .withUrl(`${APP_URL}/testhub`, { transport: signalR.HttpTransportType[transport] })
    .configureLogging(signalR.LogLevel.Warning);
  if (protocol === "messagepack") builder.withHubProtocol(new MessagePackHubProtocol());
  const connection = builder.build();
  open.push(connection);
  await connection.start();
  return connection;
}

// Collects a stream until it completes or fails.
function collect(stream) {
  return new Promise((resolve, reject) => {
    const items = [];
    const timer = setTimeout(() => reject(new Error(`stream did not end within ${WAIT_MS} ms; got ${JSON.stringify(items)}`)), WAIT_MS);
    stream.subscribe({
      next: (item) => items.push(item),
      complete: () => {
        clearTimeout(timer);
        resolve(items);
      },
      error: (err) => {
        clearTimeout(timer);
        reject(err);
      },
    });
  });
}

function within(promise, what) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`${what} did not happen within ${WAIT_MS} ms`)), WAIT_MS)),
  ]);
}

for (const transport of TRANSPORTS) {
  for (const protocol of PROTOCOLS) {
    if (protocol === "messagepack" && transport === "ServerSentEvents") continue; // SSE is text only
    describe(`${transport} / ${protocol}`, { timeout: TEST_TIMEOUT_MS }, () => {
      test("a server stream delivers its items, then completes", async () => {
        const c = await connect(protocol, transport);
        assert.deepEqual(await collect(c.stream("Stream")), ["a", "b", "c"]);
        assert.deepEqual(await collect(c.stream("EmptyStream")), []);
      });

      test("a failing stream reports the server's error", async () => {
        const c = await connect(protocol, transport);
        await assert.rejects(collect(c.stream("StreamThrowException", "boom")), {
          message: "An unexpected error occurred invoking 'StreamThrowException' on the server. HubException: boom",
        });
      });

      test("cancelling a stream stops it on the app server", async () => {
        const c = await connect(protocol, transport);
        const canceled = new Promise((resolve) => c.on("StreamCanceled", () => resolve(true)));
        // InfiniteStream yields nothing until cancelled; the app server tells
        // the caller when the cancellation reached it.
        const subscription = c.stream("InfiniteStream").subscribe({ next: () => {}, complete: () => {}, error: () => {} });
        subscription.dispose();
        assert.equal(await within(canceled, "StreamCanceled"), true);
      });

      test("an upload stream reaches the hub method in order", async () => {
        const c = await connect(protocol, transport);
        const subject = new signalR.Subject();
        const result = c.invoke("StreamingConcat", subject);
        for (const part of ["a", "b", "c"]) subject.next(part);
        subject.complete();
        assert.equal(await within(result, "the concatenation"), "abc");
      });

      test("an upload stream the client ends with an error fails the method with the client's message", async () => {
        const c = await connect(protocol, transport);
        const subject = new signalR.Subject();
        const result = c.invoke("StreamingConcat", subject);
        subject.next("Hello ");
        subject.next("world");
        subject.error(new Error("Something bad"));
        await assert.rejects(within(result, "the failed concatenation"), {
          message: "An unexpected error occurred invoking 'StreamingConcat' on the server. HubException: Something bad",
        });
        // The connection is still usable afterwards.
        assert.equal(await c.invoke("Echo", "after"), "after");
      });

      test("invoking a streaming method without streaming is refused", async () => {
        const c = await connect(protocol, transport);
        await assert.rejects(
          c.invoke("Stream"),
          { message: "The client attempted to invoke the streaming 'Stream' method with a non-streaming invocation." },
        );
      });

      test("the app server gets a client result", async () => {
        const c = await connect(protocol, transport);
        c.on("Result", () => 42);
        const answer = await within(fetch(`${APP_URL}/clientresult/${c.connectionId}`), "the client result");
        assert.equal(await answer.text(), "42");
      });
    });
  }
}
