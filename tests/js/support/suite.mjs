// What every suite starts with: its settings from the environment, and the
// connections its tests open, stopped after each test.

import { afterEach } from "node:test";

/** A required environment variable, without a trailing slash. */
export function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} must be set`);
  return value.replace(/\/$/, "");
}

/**
 * A list for the connections a test opens: each is stopped (with `stop`)
 * after the test, whatever its outcome.
 */
export function stoppedAfterEach(stop = (connection) => connection.stop()) {
  const open = [];
  afterEach(async () => {
    await Promise.allSettled(open.splice(0).map(stop));
  });
  return open;
}
