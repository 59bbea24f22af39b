// Conformance in a real browser: the official @microsoft/signalr browser client
// (and its MessagePack protocol) in headless Chromium, against the conformance
// server (contract: docs/CONFORMANCE.md).
//
// The page is the server's own `/stats` document, so the hubs are on the same
// origin and no CORS is involved; the official browser bundles from this
// package's node_modules are injected into it with page.addScriptTag, and the
// scenarios run inside the page through lib/page-harness.js.
//
// Runs: JSON and MessagePack over WebSockets (the browser's default, no
// transport forced), JSON over Server-Sent Events, MessagePack over long
// polling. Each run has its own browser context (a fresh "tab") with three
// connections: one to /testhub and two to /chathub ("a" and "b"). The tests in
// a run go in order and share those connections.

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import { launchChromium, openUserPage } from "../lib/browser.mjs";
import { signalrBrowserJs, signalrMsgpackBrowserJs, startConformanceServer } from "../lib/server.mjs";

const HARNESS_JS = join(dirname(fileURLToPath(import.meta.url)), "..", "lib", "page-harness.js");
const WAIT_MS = 10_000;
const HUB_PATHS = ["/testhub", "/chathub"];

const RUNS = [
  { id: "json-ws", protocol: "json", transport: null, expectTransport: "WebSockets" },
  { id: "msgpack-ws", protocol: "messagepack", transport: null, expectTransport: "WebSockets" },
  { id: "json-sse", protocol: "json", transport: "ServerSentEvents", expectTransport: "ServerSentEvents" },
  { id: "msgpack-lp", protocol: "messagepack", transport: "LongPolling", expectTransport: "LongPolling" },
];

describe("conformance server in Chromium", { timeout: 300_000 }, () => {
  let server;
  let browser;

  // As in chat.test.mjs: setup is a test, so a missing binary or browser is a
  // failed test rather than a cancelled hook, and later tests point back at it.
  let ready = false;
  const requireServer = () => assert.ok(ready, "setup failed: see the first test's error");

  after(async () => {
    await browser?.close().catch(() => {});
    await server?.stop();
  });

  test("conformance server starts and Chromium launches", async () => {
    server = await startConformanceServer();
    browser = await launchChromium();
    const stats = await getStats(server);
    assert.equal(typeof stats.connected, "number", `/stats: ${JSON.stringify(stats)}`);
    assert.equal(typeof stats.disconnected, "number", `/stats: ${JSON.stringify(stats)}`);
    ready = true;
  });

  for (const run of RUNS) {
    const label = `${run.protocol} over ${run.transport ?? "WebSockets (browser default)"}`;

    describe(label, () => {
      let user; // { context, page, log } from openUserPage
      let wire; // what the page sent to the hubs, as seen by the browser
      let statsBefore;
      let runReady = false;
      const requireRun = () => {
        requireServer();
        assert.ok(runReady, `setup of run ${run.id} failed: see its first test's error`);
      };
      const inPage = (fn, arg) => evaluate(user, fn, arg);
      const invoke = (name, method, ...args) =>
        inPage((a) => window.harness.invoke(a), { name, method, args, timeoutMs: WAIT_MS });
      const waitForLog = (name, count) =>
        inPage((a) => window.harness.waitForLog(a), { name, count, timeoutMs: WAIT_MS });
      const log = (name) => inPage((n) => window.harness.log(n), name);
      const clearLogs = () => inPage(() => window.harness.clearLogs());

      after(async () => {
        await user?.context.close().catch(() => {});
      });

      test("page at /stats loads the official bundles and connects to /testhub and twice to /chathub", async () => {
        requireServer();
        statsBefore = await getStats(server);
        user = await openUserPage(browser, run.id);
        wire = recordWire(user.page, run.protocol);
        const { page } = user;

        const res = await page.goto(`${server.url}/stats`, { timeout: WAIT_MS });
        assert.equal(res.status(), 200, "GET /stats");
        assert.match(res.headers()["content-type"] ?? "", /^application\/json/, "content type of /stats");
        await page.addScriptTag({ path: signalrBrowserJs() });
        if (run.protocol === "messagepack") await page.addScriptTag({ path: signalrMsgpackBrowserJs() });
        await page.addScriptTag({ path: HARNESS_JS });
        const globals = await inPage(() => window.harness.globals());
        assert.equal(globals.signalR, "object", "signalr.min.js did not define window.signalR");
        assert.equal(globals.HubConnectionBuilder, "function", "signalR.HubConnectionBuilder missing");
        if (run.protocol === "messagepack") {
          assert.equal(
            globals.MessagePackHubProtocol,
            "function",
            "signalr-protocol-msgpack.min.js did not define signalR.protocols.msgpack.MessagePackHubProtocol",
          );
        }

        const started = {};
        for (const [name, path] of [["test", "/testhub"], ["a", "/chathub"], ["b", "/chathub"]]) {
          started[name] = await inPage((a) => window.harness.connect(a), {
            name,
            path,
            protocol: run.protocol,
            transport: run.transport,
            timeoutMs: WAIT_MS,
          });
          assert.equal(started[name].state, "Connected", `${name} (${path}) after start`);
          assert.equal(started[name].protocol, run.protocol, `${name} (${path}) protocol`);
          assert.ok(started[name].connectionId, `${name} (${path}) has no connection id`);
        }
        const ids = Object.values(started).map((s) => s.connectionId);
        assert.equal(new Set(ids).size, ids.length, `connection ids are not distinct: ${JSON.stringify(ids)}`);

        // ChatHub's OnConnected ran for both chat connections.
        await waitForStats(server, (s) => s.connected === statsBefore.connected + 2, `connected = ${statsBefore.connected} + 2`);
        runReady = true;
      });

      test("Echo returns ASCII text unchanged", async () => {
        requireRun();
        for (const s of ["hello", "Hello, World! 0123456789 ~`!@#$%^&*()_+-={}[]|:;'<>?,./"]) {
          assert.equal(await invoke("test", "Echo", s), s);
        }
      });

      test("Echo returns non-ASCII text unchanged, code point by code point", async () => {
        requireRun();
        const texts = [
          "héllo 你好 👋",
          "Zoë Ørsted",
          "e\u0301 שלום 𝄞 ½ — «ok»",
          "Ελληνικά Кириллица العربية हिन्दी 日本語 한국어",
          "\u00a0\u2028\u2029\ufeff\ufffd",
        ];
        for (const s of texts) {
          const got = await invoke("test", "Echo", s);
          assert.deepEqual([...got], [...s], `Echo(${JSON.stringify(s)})`);
        }
      });

      test("Echo returns empty, control-character, quote and long strings unchanged", async () => {
        requireRun();
        const texts = [
          "",
          'quotes " and \\ backslash / slash',
          "tab\t newline\n return\r",
          "record separator \u001e inside",
          "nul \u0000 and \u0001 \u001f \u007f",
          // Long, but under the default 32 KB maximum receive message size
          // (the reference server's default, which the server enforces too).
          "x".repeat(20_000) + "é",
        ];
        for (const s of texts) {
          const got = await invoke("test", "Echo", s);
          assert.equal(typeof got, "string", `Echo(${JSON.stringify(s.slice(0, 40))}) returned ${typeof got}`);
          assert.ok(got === s, `Echo(${JSON.stringify(s.slice(0, 40))}): got ${JSON.stringify(got.slice(0, 80))} (length ${got.length}, want ${s.length})`);
        }
      });

      test(`GetActiveTransportName is ${run.expectTransport}`, async () => {
        requireRun();
        assert.equal(await invoke("test", "GetActiveTransportName"), run.expectTransport);
        // The browser's side of it: which WebSockets the page opened.
        const socketPaths = wire.sockets.map((u) => new URL(u).pathname).sort();
        if (run.expectTransport === "WebSockets") {
          assert.deepEqual(socketPaths, ["/chathub", "/chathub", "/testhub"], "WebSockets the page opened");
        } else {
          assert.deepEqual(socketPaths, [], "the page opened WebSockets although another transport was chosen");
        }
      });

      test("server stream Stream yields a, b, c and completes", async () => {
        requireRun();
        const result = await inPage((a) => window.harness.stream(a), {
          name: "test",
          method: "Stream",
          args: [],
          timeoutMs: WAIT_MS,
        });
        assert.deepEqual(result, { items: ["a", "b", "c"], completed: true, error: null });
      });

      test("InvokeWithString calls client method Message on the caller", async () => {
        requireRun();
        await clearLogs();
        const msg = "Grüße from the browser 👋";
        await invoke("test", "InvokeWithString", msg);
        assert.deepEqual(await waitForLog("test", 1), [["Message", msg]]);
        // Only the caller: the chat connections got nothing.
        assert.deepEqual(await log("a"), [], "chat connection a");
        assert.deepEqual(await log("b"), [], "chat connection b");
      });

      test("SendToGroup reaches the member only (a Broadcast sentinel proves the non-member got nothing)", async () => {
        requireRun();
        await clearLogs();
        const group = `room-${run.id}`;
        const fromOutside = `to ${group} from b (not a member) ü`;
        const fromInside = `to ${group} from a (a member) 你好`;
        const sentinel = `sentinel ${run.id}`;

        await invoke("a", "JoinGroup", group);
        await invoke("b", "SendToGroup", group, fromOutside);
        await waitForLog("a", 1);
        await invoke("a", "SendToGroup", group, fromInside);
        await waitForLog("a", 2);
        // Calls to one connection arrive in order, so once b has the sentinel
        // it would already have any group message wrongly sent to it.
        await invoke("a", "Broadcast", "sentinel", sentinel);
        const logA = await waitForLog("a", 3);
        const logB = await waitForLog("b", 1);

        assert.deepEqual(
          logA,
          [
            ["GroupMessage", group, fromOutside],
            ["GroupMessage", group, fromInside],
            ["Send", "sentinel", sentinel],
          ],
          "member a",
        );
        assert.deepEqual(logB, [["Send", "sentinel", sentinel]], "non-member b");
      });

      test("Broadcast reaches both chat connections, and not the /testhub connection", async () => {
        requireRun();
        await clearLogs();
        await invoke("b", "Broadcast", "bob", "hello everyone — ça va? 🎉");
        const want = [["Send", "bob", "hello everyone — ça va? 🎉"]];
        assert.deepEqual(await waitForLog("a", 1), want, "chat connection a");
        assert.deepEqual(await waitForLog("b", 1), want, "chat connection b (the caller)");

        // Another hub's clients are not "all clients" of ChatHub: the
        // /testhub connection's next call is the sentinel, nothing before it.
        await invoke("test", "InvokeWithString", "sentinel");
        assert.deepEqual(await waitForLog("test", 1), [["Message", "sentinel"]], "/testhub connection");
        assert.deepEqual(await log("a"), want, "chat connection a afterwards");
        assert.deepEqual(await log("b"), want, "chat connection b afterwards");
      });

      test(`what the browser sent is ${run.protocol} (handshake and hub messages)`, () => {
        requireRun();
        checkWire(wire, run.protocol);
      });

      test("no page errors, console errors or warnings, error responses or failed requests while connected", () => {
        requireRun();
        assertClean(user, wire, { failedRequests: true });
      });

      test("all three connections stop cleanly and ChatHub's OnDisconnected runs for both", async () => {
        requireRun();
        const firstStopExchange = wire.exchanges.length;
        for (const name of ["test", "a", "b"]) {
          const { state, log: calls } = await inPage((a) => window.harness.stop(a), { name, timeoutMs: WAIT_MS });
          assert.equal(state, "Disconnected", `${name} after stop`);
          assert.deepEqual(calls.at(-1), ["(closed)", null], `${name} closed with an error: ${JSON.stringify(calls)}`);
        }
        await waitForStats(
          server,
          (s) => s.disconnected === statsBefore.disconnected + 2,
          `disconnected = ${statsBefore.disconnected} + 2`,
        );
        // stop() sends a Close message without waiting for it (best effort)
        // while it tears the transport down; let those POSTs finish.
        const deadline = Date.now() + WAIT_MS;
        while (wire.pending.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        assert.equal(wire.pending.size, 0, `POSTs to the hubs still unanswered ${WAIT_MS} ms after stop\n${describeExchanges(wire)}`);

        // Over Server-Sent Events and long polling that Close POST races the
        // end of the event stream or the DELETE, and a server that has already
        // dropped the connection answers 404, as the reference server does.
        // That 404 (and only for a body of nothing but Close messages) is
        // expected; stopping also aborts the pending poll or event stream on
        // the client side, which Chromium reports as a failed request.
        const tolerated404s = wire.exchanges
          .slice(firstStopExchange)
          .filter((e) => e.method === "POST" && e.outcome === 404 && e.types?.length > 0 && e.types.every((t) => t === 7))
          .map((e) => e.url);
        if (run.expectTransport === "WebSockets") assert.deepEqual(tolerated404s, []);
        assertClean(user, wire, { failedRequests: false, tolerated404s });
      });
    });
  }
});

/** page.evaluate with the page's diagnostics attached to any error. */
async function evaluate(user, fn, arg) {
  try {
    return await user.page.evaluate(fn, arg);
  } catch (err) {
    throw new Error(`${err.message}\n${diagnostics(user)}`, { cause: err });
  }
}

function diagnostics({ log }) {
  return [
    `page ${log.name}:`,
    `  console=${JSON.stringify(log.console)}`,
    `  pageErrors=${JSON.stringify(log.pageErrors)}`,
    `  failedRequests=${JSON.stringify(log.failedRequests)}`,
    `  badResponses=${JSON.stringify(log.badResponses)}`,
  ].join("\n");
}

function assertClean(user, wire, { failedRequests, tolerated404s = [] }) {
  const { log } = user;
  const http = `\n${describeExchanges(wire)}`;
  // Take out one console line and one bad-response line per tolerated 404.
  const consoleLines = log.console.slice();
  const badResponses = log.badResponses.slice();
  for (const url of tolerated404s) {
    const c = consoleLines.findIndex((l) => l.includes("status of 404") && l.endsWith(`(${url})`));
    if (c >= 0) consoleLines.splice(c, 1);
    const b = badResponses.indexOf(`404 ${url}`);
    if (b >= 0) badResponses.splice(b, 1);
  }
  assert.deepEqual(log.pageErrors, [], `page ${log.name} threw${http}`);
  assert.deepEqual(consoleLines, [], `page ${log.name} logged errors or warnings${http}`);
  assert.deepEqual(badResponses, [], `page ${log.name} got error responses${http}`);
  if (failedRequests) assert.deepEqual(log.failedRequests, [], `page ${log.name} had failed requests${http}`);
}

async function getStats(server) {
  const res = await fetch(`${server.url}/stats`, { signal: AbortSignal.timeout(WAIT_MS) });
  assert.equal(res.status, 200, "GET /stats");
  return res.json();
}

async function waitForStats(server, ok, what) {
  const deadline = Date.now() + WAIT_MS;
  let stats;
  for (;;) {
    stats = await getStats(server);
    if (ok(stats)) return stats;
    if (Date.now() > deadline) assert.fail(`/stats did not reach ${what} within ${WAIT_MS} ms: ${JSON.stringify(stats)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Records, as the browser reports them, the WebSockets the page opens and every
 * payload it sends to a hub: WebSocket frames, and the bodies of POSTs to a hub
 * URL (Server-Sent Events and long polling send that way; negotiate is
 * excluded by its path). `exchanges` lists every HTTP request to a hub path
 * with its outcome and, for POSTs, the hub message types of its body.
 */
function recordWire(page, protocol) {
  const wire = { sockets: [], sent: [], exchanges: [], pending: new Set() };
  const isHub = (req) => HUB_PATHS.includes(new URL(req.url()).pathname);
  const exchange = new Map(); // request -> its entry in wire.exchanges
  page.on("websocket", (ws) => {
    wire.sockets.push(ws.url());
    ws.on("framesent", ({ payload }) => {
      const text = typeof payload === "string";
      wire.sent.push({ url: ws.url(), bytes: text ? Buffer.from(payload, "utf8") : Buffer.from(payload), frame: text ? "text" : "binary" });
    });
  });
  page.on("request", (req) => {
    if (!isHub(req)) return;
    const entry = { method: req.method(), url: req.url(), outcome: "pending", types: null };
    if (req.method() === "POST") {
      const bytes = req.postDataBuffer() ?? Buffer.alloc(0);
      wire.sent.push({ url: req.url(), bytes, frame: null });
      entry.types = messageTypesOrNull(bytes, protocol);
      wire.pending.add(req);
    }
    exchange.set(req, entry);
    wire.exchanges.push(entry);
  });
  const settle = (req, outcome) => {
    const entry = exchange.get(req);
    if (entry) entry.outcome = outcome;
    wire.pending.delete(req);
  };
  page.on("requestfinished", async (req) => {
    const res = await req.response().catch(() => null);
    settle(req, res ? res.status() : "no response");
  });
  page.on("requestfailed", (req) => settle(req, `failed (${req.failure()?.errorText})`));
  return wire;
}

/** Hub message types in a POST body, or null when it is not hub messages (the handshake). */
function messageTypesOrNull(bytes, protocol) {
  try {
    return protocol === "json" ? jsonRecordTypes(bytes, "") : msgpackMessageTypes(bytes, "");
  } catch {
    return null;
  }
}

function describeExchanges(wire, last = 15) {
  const lines = wire.exchanges.slice(-last).map((e) => {
    const path = new URL(e.url).pathname;
    return `${e.method} ${path} -> ${e.outcome}${e.types ? ` (message types ${e.types.join(",")})` : ""}`;
  });
  return `last HTTP exchanges with the hubs:\n  ${lines.join("\n  ")}`;
}

/**
 * Checks that every connection's first payload is the handshake naming
 * `protocol`, and that the hub messages after it are in that protocol's
 * framing: JSON text records ending in 0x1E, or MessagePack messages with a
 * varint length prefix (binary frames over WebSockets).
 */
function checkWire(wire, protocol) {
  const byConnection = new Map();
  for (const entry of wire.sent) {
    const u = new URL(entry.url);
    const key = `${u.pathname}?id=${u.searchParams.get("id")}`;
    if (!byConnection.has(key)) byConnection.set(key, []);
    byConnection.get(key).push(entry);
  }
  assert.equal(byConnection.size, 3, `payloads were sent on ${byConnection.size} connections: ${[...byConnection.keys()]}`);

  let hubMessages = 0;
  for (const [key, entries] of byConnection) {
    const [handshake, ...rest] = entries;
    const text = handshake.bytes.toString("utf8");
    assert.ok(text.endsWith("\u001e"), `${key}: handshake does not end with 0x1E: ${JSON.stringify(text)}`);
    assert.deepEqual(JSON.parse(text.slice(0, -1)), { protocol, version: 1 }, `${key}: handshake`);
    for (const entry of rest) {
      const what = `${key}: payload ${entry.bytes.toString("hex").slice(0, 80)}`;
      const types = protocol === "json" ? jsonRecordTypes(entry.bytes, what) : msgpackMessageTypes(entry.bytes, what);
      hubMessages += types.length;
      if (entry.frame) {
        assert.equal(entry.frame, protocol === "json" ? "text" : "binary", `${what}: WebSocket frame type`);
      }
    }
  }
  // The runs invoke several methods on every connection.
  assert.ok(hubMessages >= 6, `only ${hubMessages} hub messages were seen on the wire`);
}

function jsonRecordTypes(bytes, what) {
  const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  assert.ok(text.endsWith("\u001e"), `${what}: JSON payload does not end with 0x1E`);
  return text
    .split("\u001e")
    .slice(0, -1)
    .map((record) => {
      const msg = JSON.parse(record);
      assert.equal(typeof msg.type, "number", `${what}: JSON record without a numeric type: ${record}`);
      return msg.type;
    });
}

function msgpackMessageTypes(bytes, what) {
  const types = [];
  let i = 0;
  while (i < bytes.length) {
    // Length prefix: unsigned LEB128, at most 5 bytes.
    let length = 0;
    let shift = 0;
    let b;
    do {
      assert.ok(i < bytes.length && shift <= 28, `${what}: bad length prefix at byte ${i}`);
      b = bytes[i++];
      length |= (b & 0x7f) << shift;
      shift += 7;
    } while (b & 0x80);
    assert.ok(length > 0 && i + length <= bytes.length, `${what}: length ${length} at byte ${i} overruns the payload`);
    const first = bytes[i];
    // Every hub message is a MessagePack array whose first element is the type
    // (small, so a positive fixint).
    const isArray = (first & 0xf0) === 0x90 || first === 0xdc || first === 0xdd;
    assert.ok(isArray, `${what}: message at byte ${i} is not a MessagePack array (0x${first.toString(16)})`);
    const typeAt = (first & 0xf0) === 0x90 ? i + 1 : first === 0xdc ? i + 3 : i + 5;
    const type = bytes[typeAt];
    assert.ok(type >= 1 && type <= 8, `${what}: message type ${type} at byte ${typeAt}`);
    types.push(type);
    i += length;
  }
  return types;
}
