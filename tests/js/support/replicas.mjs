// Helpers shared by the suites that run several proxies behind a balancer
// (scaleout.test.mjs, drain.test.mjs): clients connect with WebSockets and
// skipNegotiation, using a token the testhub app server mints for the
// proxies' shared public URL, so any proxy (or the balancer) accepts them.

import assert from "node:assert/strict";
import * as signalR from "@microsoft/signalr";

export { env } from "./suite.mjs";

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` every 20 ms; throws naming `what` after `waitMs`. */
export async function until(what, check, waitMs = 10_000) {
  const deadline = Date.now() + waitMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${waitMs} ms`);
    await sleep(20);
  }
}

/** A client token for `user` from the testhub at `appUrl`. */
export async function token(appUrl, user) {
  const response = await fetch(`${appUrl}/token?user=${encodeURIComponent(user)}`);
  assert.equal(response.status, 200, "GET /token");
  return (await response.text()).trim();
}

/**
 * A started connection to hub `testhub` at `base` (a proxy or the
 * balancer) as `user`; with `reconnect`, automatic reconnect retries at
 * once and then within a few seconds.
 */
export async function start(appUrl, base, user, { reconnect = false, logLevel = signalR.LogLevel.Warning } = {}) {
  const accessToken = await token(appUrl, user);
  let builder = new signalR.HubConnectionBuilder()
    .withUrl(`${base}/client/?hub=testhub`, {
      skipNegotiation: true,
      transport: signalR.HttpTransportType.WebSockets,
      accessTokenFactory: () => accessToken,
    })
    .configureLogging(logLevel);
  if (reconnect) builder = builder.withAutomaticReconnect([0, 100, 250, 500, 1000, 1000, 2000, 2000, 2000]);
  const connection = builder.build();
  await connection.start();
  return connection;
}
