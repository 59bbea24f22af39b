// GET /stats counts ChatHub OnConnected / OnDisconnected.
//
// When this file spawned its own server, the deltas must be exact; against a shared server
// (SIGNALR_URL) other clients may add to them, so only lower bounds are checked.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ownsServer, useServer } from "../lib/server.mjs";
import { buildConnection, connect, delay, TEST_TIMEOUT, TRANSPORT_PROTOCOLS, useConnectionCleanup, withTimeout, WAIT_MS } from "../lib/hub.mjs";

const server = useServer();
useConnectionCleanup();

const opts = { timeout: TEST_TIMEOUT };

async function stats() {
    const res = await fetch(`${server.url}/stats`);
    const text = await res.text();
    assert.equal(res.status, 200, `GET /stats answered ${res.status}: ${text}`);
    const body = JSON.parse(text);
    assert.deepEqual(Object.keys(body).sort(), ["connected", "disconnected", "migratedIn", "migratedOut"],
        `unexpected /stats body ${text}`);
    for (const key of ["connected", "disconnected", "migratedIn", "migratedOut"]) {
        assert.ok(Number.isInteger(body[key]) && body[key] >= 0, text);
    }
    return body;
}

/** Polls /stats until `done(stats)` holds (OnConnected/OnDisconnected may lag the client). */
async function statsUntil(done, what) {
    const deadline = Date.now() + WAIT_MS;
    let last = await stats();
    while (!done(last)) {
        if (Date.now() > deadline) {
            assert.fail(`timed out waiting for ${what}; last /stats = ${JSON.stringify(last)}`);
        }
        await delay(50);
        last = await stats();
    }
    return last;
}

const exact = ownsServer();
const matches = (actual, expected) => (exact ? actual === expected : actual >= expected);

describe("GET /stats", () => {
    it("answers {connected, disconnected, migratedIn, migratedOut} with integers", opts, async () => {
        await stats();
    });

    it("counts ChatHub connects and disconnects", opts, async () => {
        const before = await stats();
        const clients = [];
        // The third client skips negotiation (through the relay connect() hands it the relay's URL and token).
        for (const protocol of ["json", "messagepack", "json"]) {
            clients.push(await connect(`${server.url}/chathub`, { protocol, skipNegotiation: protocol === "json" && clients.length > 0 }));
        }
        const afterConnect = await statsUntil(
            (s) => matches(s.connected - before.connected, 3),
            "connected to grow by 3");
        assert.ok(matches(afterConnect.connected - before.connected, 3));
        // connections are still open: nothing new disconnected (on an own server)
        assert.ok(matches(afterConnect.disconnected - before.disconnected, 0),
            `disconnected changed while all clients were connected: ${JSON.stringify(before)} -> ${JSON.stringify(afterConnect)}`);

        for (const c of clients) {
            await withTimeout(c.stop(), WAIT_MS, "stop()");
        }
        const afterStop = await statsUntil(
            (s) => matches(s.disconnected - before.disconnected, 3),
            "disconnected to grow by 3");
        assert.ok(matches(afterStop.connected - before.connected, 3), "stopping must not change connected");
    });

    it("counts a server-side Disconnect() as a disconnect", opts, async () => {
        const before = await stats();
        const c = buildConnection(`${server.url}/chathub`);
        const closedPromise = new Promise((resolve) => c.onclose(resolve));
        await withTimeout(c.start(), WAIT_MS, "start()");
        await statsUntil((s) => matches(s.connected - before.connected, 1), "connected to grow by 1");
        c.invoke("Disconnect").catch(() => {});
        await withTimeout(closedPromise, WAIT_MS, "onclose");
        await statsUntil((s) => matches(s.disconnected - before.disconnected, 1), "disconnected to grow by 1");
    });

    it("TestHub connections are not counted", opts, async () => {
        const before = await stats();
        const c = await connect(`${server.url}/testhub`);
        assert.equal(await c.invoke("Echo", "x"), "x");
        await withTimeout(c.stop(), WAIT_MS, "stop()");
        await delay(200);
        const after = await stats();
        if (exact) {
            assert.deepEqual(after, before);
        } else {
            assert.ok(after.connected >= before.connected);
        }
    });
    for (const { transport, protocol, name } of TRANSPORT_PROTOCOLS) {
        it(`counts a connect and a stop() over ${name}`, opts, async () => {
            const before = await stats();
            const c = await connect(`${server.url}/chathub`, { protocol, transport });
            await statsUntil((s) => matches(s.connected - before.connected, 1), "connected to grow by 1");
            await withTimeout(c.stop(), WAIT_MS, "stop()");
            const after = await statsUntil((s) => matches(s.disconnected - before.disconnected, 1), "disconnected to grow by 1");
            assert.ok(matches(after.connected - before.connected, 1), `${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
        });

        it(`counts a server-side Disconnect() over ${name}`, opts, async () => {
            const before = await stats();
            const c = buildConnection(`${server.url}/chathub`, { protocol, transport });
            const closedPromise = new Promise((resolve) => c.onclose(resolve));
            await withTimeout(c.start(), WAIT_MS, "start()");
            c.invoke("Disconnect").catch(() => {});
            const error = await withTimeout(closedPromise, WAIT_MS, "onclose");
            assert.strictEqual(error, undefined, `Disconnect() should close cleanly, got: ${error}`);
            await statsUntil((s) => matches(s.disconnected - before.disconnected, 1), "disconnected to grow by 1");
        });
    }
});
