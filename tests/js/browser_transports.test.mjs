// The official browser bundle in headless Chromium over each transport:
// a page on its own origin (served by this script) negotiates with the
// testhub app server, follows the redirect to the proxy, invokes Echo and
// receives a server call, over WebSockets, server-sent events and long
// polling in turn; and with WebSockets broken in the page, the client falls
// back to another transport.
//
// Environment: APP_URL (the testhub app server), PAGE_PORT (the loopback
// port this script serves the page on; the proxy must allow its origin).
// Run by tests/tests/browser_transports.rs.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { env } from "./support/suite.mjs";

const APP_URL = env("APP_URL");
const PAGE_PORT = Number(env("PAGE_PORT"));
const PAGE_URL = `http://127.0.0.1:${PAGE_PORT}/`;
const BUNDLE = fileURLToPath(
  new URL("./node_modules/@microsoft/signalr/dist/browser/signalr.js", import.meta.url),
);
const LAUNCH = {
  executablePath: "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-quic",
    "--disable-component-update",
    "--disable-sync",
  ],
};
const TEST_TIMEOUT_MS = 60_000;

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>transports</title>
<script src="/signalr.js"></script></head>
<body><p id="status">loaded</p></body></html>`;

let server;
let browser;

before(async () => {
  const bundle = await readFile(BUNDLE);
  server = http.createServer((request, response) => {
    const path = new URL(request.url, PAGE_URL).pathname;
    if (path === "/") {
      response.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      response.end(PAGE);
    } else if (path === "/signalr.js") {
      response.writeHead(200, { "content-type": "text/javascript; charset=utf-8" });
      response.end(bundle);
    } else if (path === "/favicon.ico") {
      response.writeHead(204);
      response.end();
    } else {
      response.writeHead(404);
      response.end();
    }
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(PAGE_PORT, "127.0.0.1", resolve);
  });
  browser = await chromium.launch(LAUNCH);
});

after(async () => {
  await browser?.close();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve()));
});

// A fresh tab on the page, with its errors echoed to the report.
async function openPage(label) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("pageerror", (error) => console.log(`[${label}] page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") console.log(`[${label}] console error: ${message.text()}`);
  });
  page.on("requestfailed", (request) => {
    // Stopping a connection aborts its open SSE stream or poll: expected.
    if (request.failure()?.errorText === "net::ERR_ABORTED") return;
    console.log(`[${label}] request failed: ${request.url()} (${request.failure()?.errorText})`);
  });
  await page.goto(PAGE_URL);
  await page.waitForFunction(() => typeof window.signalR === "object");
  return page;
}

for (const transport of ["WebSockets", "ServerSentEvents", "LongPolling"]) {
  test(`Chromium connects over ${transport}, invokes Echo and receives a server call`, { timeout: TEST_TIMEOUT_MS }, async () => {
    const page = await openPage(transport);
    try {
      const outcome = await page.evaluate(
        async ({ appUrl, transport }) => {
          const connection = new signalR.HubConnectionBuilder()
            .withUrl(`${appUrl}/testhub`, { transport: signalR.HttpTransportType[transport] })
            .configureLogging(signalR.LogLevel.Warning)
            .build();
          const called = new Promise((resolve, reject) => {
            connection.on("Message", resolve);
            setTimeout(() => reject(new Error("no Message call within 10 s")), 10_000);
          });
          await connection.start();
          try {
            const echo = await connection.invoke("Echo", "你好 from Chromium");
            const active = await connection.invoke("GetActiveTransportName");
            await connection.invoke("InvokeWithString", `server call over ${transport}`);
            const message = await called;
            return { echo, active, message, connectionId: connection.connectionId };
          } finally {
            await connection.stop();
          }
        },
        { appUrl: APP_URL, transport },
      );
      assert.equal(outcome.echo, "你好 from Chromium");
      assert.equal(outcome.active, transport);
      assert.equal(outcome.message, `server call over ${transport}`);
      assert.ok(outcome.connectionId, "the client should know its connection id");
    } finally {
      await page.context().close();
    }
  });
}

test("Chromium falls back from a failing WebSocket to another transport", { timeout: TEST_TIMEOUT_MS }, async () => {
  const page = await openPage("fallback");
  try {
    const active = await page.evaluate(async (appUrl) => {
      // A browser whose WebSockets are broken: constructing one throws.
      window.WebSocket = function () {
        throw new Error("WebSockets are broken here");
      };
      const connection = new signalR.HubConnectionBuilder()
        .withUrl(`${appUrl}/testhub`)
        .configureLogging(signalR.LogLevel.Error)
        .build();
      await connection.start();
      try {
        return await connection.invoke("GetActiveTransportName");
      } finally {
        await connection.stop();
      }
    }, APP_URL);
    assert.ok(["ServerSentEvents", "LongPolling"].includes(active), `fell back to ${active}`);
  } finally {
    await page.context().close();
  }
});
