// End-to-end: the chat example's page, in a real (headless) Chromium, talking to
// the Switchboard server through the official @microsoft/signalr browser client.
//
// Two browser contexts stand for two users in two tabs. The tests run in order
// and share the pages: each one adds messages to the same conversation.

import assert from "node:assert/strict";
import { mkdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import { describePage, launchChromium, openUserPage } from "../lib/browser.mjs";
import { startChatServer } from "../lib/server.mjs";

const ARTIFACTS = join(dirname(fileURLToPath(import.meta.url)), "..", "artifacts");
const WAIT_MS = 10_000;

describe("chat example in Chromium", { timeout: 120_000 }, () => {
  let server;
  let browser;
  let alice; // page A
  let bob; // page B
  const expected = []; // the conversation both pages must show, in order

  // Setup runs as the first test rather than in a before() hook, so that a
  // missing binary or browser is counted as a failed test (a failed hook only
  // cancels the tests), and the tests after it fail fast with a pointer to it.
  let ready = false;
  const requireSetup = () => assert.ok(ready, "setup failed: see the first test's error");

  after(async () => {
    await browser?.close().catch(() => {});
    await server?.stop();
  });

  test("server starts, Chromium opens two pages, both load the local client and connect", async () => {
    server = await startChatServer();
    browser = await launchChromium();
    alice = await openUserPage(browser, "A");
    bob = await openUserPage(browser, "B");
    for (const user of [alice, bob]) {
      await user.page.goto(server.url, { timeout: WAIT_MS });
      await waitForConnected(user);
    }

    for (const user of [alice, bob]) {
      assert.equal(await user.page.title(), "Switchboard chat");
      assert.equal(await user.page.locator("#status").textContent(), "Connected");
      assert.equal(await user.page.locator("#send").isEnabled(), true, "Send stays disabled after connecting");
      // Everything came from this machine: the page and client script from the app, the
      // connection from the app's relay (embedded on loopback); nothing from a CDN.
      const foreign = user.log.requests.filter((u) => !u.startsWith("data:") && new URL(u).hostname !== "127.0.0.1");
      assert.deepEqual(foreign, [], `page ${user.log.name} requested other hosts`);
      assert.ok(
        user.log.requests.some((u) => new URL(u).pathname === "/client/negotiate"),
        `page ${user.log.name} did not go through the relay (the chat example runs in service mode)`,
      );
      assert.ok(
        user.log.requests.some((u) => new URL(u).pathname === "/lib/signalr.min.js"),
        `page ${user.log.name} did not load /lib/signalr.min.js`,
      );
      assert.deepEqual(user.log.pageErrors, [], `page ${user.log.name} threw`);
    }
    ready = true;
  });

  test("a message from alice reaches both pages, and bob's reply too", async () => {
    requireSetup();
    await send(alice, "alice", "Hi Bob, can you see this?");
    expected.push("alice: Hi Bob, can you see this?");
    await waitForConversation([alice, bob], expected);

    await send(bob, "bob", "Loud and clear, Alice.");
    expected.push("bob: Loud and clear, Alice.");
    await waitForConversation([alice, bob], expected);
  });

  test("non-ASCII text arrives intact", async () => {
    requireSetup();
    const text = "héllo 你好 👋";
    await send(alice, "alice", text);
    expected.push(`alice: ${text}`);
    await waitForConversation([alice, bob], expected);

    // Non-ASCII in the user name as well, plus combining marks, right-to-left
    // text and a character outside the BMP that is not an emoji.
    const user = "Zoë Ørsted";
    const reply = "e\u0301 שלום 𝄞 ½ — «ok»";
    await send(bob, user, reply);
    expected.push(`${user}: ${reply}`);
    await waitForConversation([alice, bob], expected);

    // Compare code point by code point, not just as rendered text.
    for (const u of [alice, bob]) {
      const items = await u.page.locator("#messages li").allTextContents();
      assert.deepEqual([...items.at(-2)], [...`alice: ${text}`]);
      assert.deepEqual([...items.at(-1)], [...`${user}: ${reply}`]);
    }
  });

  test("screenshot of page A after the exchange", async () => {
    requireSetup();
    mkdirSync(ARTIFACTS, { recursive: true });
    const file = join(ARTIFACTS, "chat.png");
    await alice.page.screenshot({ path: file, fullPage: true });
    assert.ok(statSync(file).size > 1_000, `${file} looks empty`);
    // What the screenshot shows: still connected, the whole conversation.
    assert.equal(await alice.page.locator("#status").textContent(), "Connected");
    assert.deepEqual(await alice.page.locator("#messages li").allTextContents(), expected);
    for (const u of [alice, bob]) {
      assert.deepEqual(u.log.pageErrors, [], `page ${u.log.name} threw`);
      assert.deepEqual(u.log.console, [], `page ${u.log.name} logged errors or warnings`);
      assert.deepEqual(u.log.badResponses, [], `page ${u.log.name} got error responses`);
      assert.deepEqual(u.log.failedRequests, [], `page ${u.log.name} had failed requests`);
    }
  });
});

async function waitForConnected(user) {
  try {
    await user.page.waitForFunction(
      () => document.getElementById("status")?.textContent === "Connected",
      null,
      { timeout: WAIT_MS },
    );
  } catch (err) {
    throw new Error(`page ${user.log.name} did not reach "Connected" within ${WAIT_MS} ms\n${await describePage(user)}`, {
      cause: err,
    });
  }
}

/** Types into the form the way a person would and submits it with the Send button. */
async function send(user, name, message) {
  const { page } = user;
  await page.locator("#user").fill(name);
  await page.locator("#message").fill(message);
  await page.locator("#send").click();
  // The page clears the message box once the hub invocation has completed.
  try {
    await page.waitForFunction(() => document.getElementById("message").value === "", null, { timeout: WAIT_MS });
  } catch (err) {
    throw new Error(`send from page ${user.log.name} did not complete within ${WAIT_MS} ms\n${await describePage(user)}`, {
      cause: err,
    });
  }
}

/** Waits until every page's message list is exactly `items`, in order. */
async function waitForConversation(users, items) {
  for (const user of users) {
    try {
      await user.page.waitForFunction(
        (want) => {
          const got = [...document.querySelectorAll("#messages li")].map((li) => li.textContent);
          return got.length === want.length && got.every((t, i) => t === want[i]);
        },
        items,
        { timeout: WAIT_MS },
      );
    } catch (err) {
      throw new Error(
        `page ${user.log.name} did not show ${JSON.stringify(items)} within ${WAIT_MS} ms\n${await describePage(user)}`,
        { cause: err },
      );
    }
  }
}
