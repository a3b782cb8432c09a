// The chat example in headless Chromium: two tabs, one sends, both see it.
//
// Environment: CHAT_URL (the chat app server's page). Optional:
// CHAT_SCREENSHOT, a PNG path to save the first tab to at the end.
// Run by tests/tests/browser_chat.rs.

import { test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const CHAT_URL = process.env.CHAT_URL;
if (!CHAT_URL) throw new Error("CHAT_URL must be set");

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
const WAIT_MS = 15_000;

// A tab of its own (separate browser context, like a second user), loaded
// and connected; page errors and console errors are echoed to the report.
async function openChat(browser, label) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("pageerror", (error) => console.log(`[${label}] page error: ${error.message}`));
  page.on("console", (message) => {
    // Failed loads are reported with their URL below.
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      console.log(`[${label}] console error: ${message.text()}`);
    }
  });
  page.on("response", (response) => {
    if (response.status() >= 400) console.log(`[${label}] ${response.status()} for ${response.url()}`);
  });
  page.on("requestfailed", (request) => {
    console.log(`[${label}] request failed: ${request.url()} (${request.failure()?.errorText})`);
  });
  await page.goto(CHAT_URL);
  await page.waitForFunction(
    () => /(^|[^a-z])connected/i.test(document.querySelector("#status")?.textContent ?? ""),
    null,
    { timeout: WAIT_MS },
  );
  return page;
}

async function say(page, name, message) {
  await page.fill("#name", name);
  await page.fill("#message", message);
  await page.click("#send");
}

async function seen(page, text) {
  await page.locator("#messages li", { hasText: text }).first().waitFor({ timeout: WAIT_MS });
}

async function messages(page) {
  return (await page.locator("#messages li").allTextContents()).map((text) => text.trim());
}

test("two Chromium tabs chat through the proxy", { timeout: 90_000 }, async () => {
  const browser = await chromium.launch(LAUNCH);
  try {
    const alice = await openChat(browser, "alice");
    const bob = await openChat(browser, "bob");

    await say(alice, "alice", "hello from alice");
    await seen(alice, "alice: hello from alice");
    await seen(bob, "alice: hello from alice");

    await say(bob, "bob", "hi alice");
    await seen(alice, "bob: hi alice");
    await seen(bob, "bob: hi alice");

    const expected = ["alice: hello from alice", "bob: hi alice"];
    assert.deepEqual(await messages(alice), expected);
    assert.deepEqual(await messages(bob), expected);

    if (process.env.CHAT_SCREENSHOT) {
      await alice.screenshot({ path: process.env.CHAT_SCREENSHOT, fullPage: true });
    }
  } finally {
    await browser.close();
  }
});
