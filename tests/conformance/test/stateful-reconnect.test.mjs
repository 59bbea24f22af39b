// Stateful reconnect (ASP.NET Core 8+) on /testhub over WebSockets, JSON and MessagePack.
//
// The client asks for it (withStatefulReconnect(): negotiate `useStatefulReconnect=true`, handshake
// version 2); the server offers it in negotiate. `GET /droptransport/{connectionId}` makes the
// server drop the connection's current WebSocket abruptly (no close handshake, as if the network
// failed) while the logical connection survives. The client then reconnects the same connection
// (same `id`, no new negotiate, no onreconnecting), and both sides send Sequence and replay what the
// peer has not acknowledged, dropping duplicates. Nothing may be lost or duplicated either way.
//
// Through the relay (SWITCHBOARD_MODE=service) the relay holds the client's socket, so the client
// side of it is destroyed instead; the relay keeps the client, tells the app server of the new
// socket, and the app server replays.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { HubConnectionState } from "@microsoft/signalr";
import { useServer } from "../lib/server.mjs";
import {
    PROTOCOLS, SERVICE_MODE, RecordingHttpClient, buildConnection, countingWebSocket, delay, useConnectionCleanup, withTimeout, WAIT_MS,
} from "../lib/hub.mjs";
import { http } from "../lib/raw.mjs";

const server = useServer();
useConnectionCleanup();

const opts = { timeout: 60_000 };
const MESSAGES = 300;
/** Negotiate requests per connection: one self-hosted; the app server's redirect and the relay's through the relay. */
const NEGOTIATES = SERVICE_MODE ? 2 : 1;
const DROP_AT = [75, 150, 225];

/** Starts a stateful-reconnect connection and checks that the server agreed to it. */
async function statefulClient(protocol) {
    const httpClient = new RecordingHttpClient();
    const { CountingWebSocket, opened, sockets } = countingWebSocket();
    const c = buildConnection(`${server.url}/testhub`, {
        protocol,
        transport: "WebSockets",
        statefulReconnect: true,
        httpClient,
        httpOptions: { WebSocket: CountingWebSocket },
    });
    const events = { reconnecting: [], reconnected: [], closes: [] };
    c.onreconnecting((e) => events.reconnecting.push(e));
    c.onreconnected((id) => events.reconnected.push(id));
    c.onclose((e) => events.closes.push(e));
    const received = [];
    c.on("Message", (m) => received.push(m));
    await withTimeout(c.start(), WAIT_MS, "start()");

    const negotiates = httpClient.log.filter((e) => e.method === "POST" && new URL(e.url).pathname.endsWith("/negotiate"));
    // Through the relay: the app server's negotiate redirects, the relay's negotiate answers.
    assert.equal(negotiates.length, NEGOTIATES);
    const last = negotiates[negotiates.length - 1];
    await last.promise;
    for (const negotiate of negotiates) {
        assert.equal(new URL(negotiate.url).searchParams.get("useStatefulReconnect"), "true",
            `the client asks for stateful reconnect: ${negotiate.url}`);
    }
    const body = JSON.parse(last.content);
    assert.equal(body.useStatefulReconnect, true,
        `the server must offer stateful reconnect on /testhub when asked; negotiate answered ${last.content}`);
    assert.equal(c.connection.features.reconnect, true, "the client did not enable stateful reconnect");
    return { c, httpClient, opened, sockets, events, received };
}

/**
 * Drops the connection's current WebSocket abruptly. Self-hosted, the server drops it
 * (`/droptransport`); through the relay, which holds the client's socket, the client's side
 * of the socket is destroyed without a close handshake (`ws`'s terminate()), as a network
 * failure would.
 */
async function dropTransport(connectionId, state) {
    if (SERVICE_MODE) {
        const socket = state.sockets[state.sockets.length - 1];
        assert.equal(socket.readyState, WebSocket.OPEN, "the current WebSocket must be open before it is dropped");
        socket.terminate();
        return;
    }
    const res = await http("GET", `${server.url}/droptransport/${encodeURIComponent(connectionId)}`);
    assert.equal(res.status, 200, `GET /droptransport/${connectionId} answered ${res.status}: ${res.text}`);
}

/** Waits until `received` has at least `n` items. */
async function receivedCount(received, n, ms) {
    const deadline = Date.now() + ms;
    while (received.length < n && Date.now() < deadline) {
        await delay(20);
    }
}

function assertExactSequence(received, n) {
    const expected = Array.from({ length: n }, (_, i) => String(i + 1));
    const seen = new Map();
    for (const m of received) {
        seen.set(m, (seen.get(m) ?? 0) + 1);
    }
    const missing = expected.filter((m) => !seen.has(m));
    const duplicated = [...seen].filter(([, count]) => count > 1).map(([m, count]) => `${m}×${count}`);
    assert.deepEqual({ missing, duplicated }, { missing: [], duplicated: [] },
        `received ${received.length} of ${n} Message calls`);
    assert.deepEqual(received, expected, "Message calls must arrive in order");
}

function assertSameConnection(state, connectionId) {
    const { c, httpClient, opened, events } = state;
    assert.equal(c.state, HubConnectionState.Connected);
    assert.equal(c.connectionId, connectionId, "the connection id must not change");
    assert.deepEqual(events.reconnecting, [], "onreconnecting must not fire for a stateful reconnect");
    assert.deepEqual(events.closes, [], "the connection must not close");
    const negotiates = httpClient.log.filter((e) => new URL(e.url).pathname.endsWith("/negotiate"));
    assert.equal(negotiates.length, NEGOTIATES, "a stateful reconnect does not negotiate again");
    assert.equal(opened.length, 1 + DROP_AT.length, `one WebSocket per drop plus the first: ${JSON.stringify(opened)}`);
    const ids = new Set(opened.map((u) => new URL(u).searchParams.get("id")));
    assert.equal(ids.size, 1, `every WebSocket must use the same id: ${JSON.stringify(opened)}`);
}

for (const protocol of PROTOCOLS) {
    describe(`stateful reconnect over WebSockets, ${protocol}`, () => {
        it(`${MESSAGES} InvokeWithString sends with ${DROP_AT.length} dropped transports: every Message exactly once, in order`, opts, async () => {
            const state = await statefulClient(protocol);
            const { c, received } = state;
            const connectionId = c.connectionId;
            assert.equal(typeof connectionId, "string");
            assert.equal(await c.invoke("GetCallerConnectionId"), connectionId);

            const drops = [];
            for (let n = 1; n <= MESSAGES; n++) {
                await withTimeout(c.send("InvokeWithString", String(n)), WAIT_MS, `send #${n}`);
                if (DROP_AT.includes(n)) {
                    drops.push(dropTransport(connectionId, state));
                }
                await delay(5);
            }
            await withTimeout(Promise.all(drops), WAIT_MS, "the /droptransport calls");
            await receivedCount(received, MESSAGES, 15_000);
            // anything duplicated would arrive before this round trip completes
            assert.equal(await withTimeout(c.invoke("Echo", "done"), WAIT_MS, "a final Echo"), "done");
            assertExactSequence(received, MESSAGES);
            assertSameConnection(state, connectionId);
            assert.equal(await c.invoke("GetCallerConnectionId"), connectionId);
        });

        it("the server's Acks on a socket held for seconds are read by the client, free its buffer, and a drop after them loses nothing", opts, async () => {
            const state = await statefulClient(protocol);
            const { c, received } = state;
            const connectionId = c.connectionId;
            for (let n = 1; n <= 10; n++) {
                await withTimeout(c.send("InvokeWithString", String(n)), WAIT_MS, `send #${n}`);
            }
            // The server acknowledges about once a second: let a few Acks go out on this socket.
            await delay(2500);
            assert.equal(c.state, HubConnectionState.Connected, "the connection survives the server's Acks");
            assert.equal(await withTimeout(c.invoke("Echo", "still"), WAIT_MS, "an Echo after the Acks"), "still");
            // More than the client buffers unacknowledged (100,000 bytes): only the server's Acks
            // let it go on sending.
            const big = "x".repeat(2048);
            for (let n = 1; n <= 60; n++) {
                assert.equal(await withTimeout(c.invoke("Echo", big), WAIT_MS, `Echo #${n} of 2 KB`), big);
            }
            await dropTransport(connectionId, state);
            for (let n = 11; n <= 20; n++) {
                await withTimeout(c.send("InvokeWithString", String(n)), WAIT_MS, `send #${n}`);
            }
            await receivedCount(received, 20, 15_000);
            assert.equal(await withTimeout(c.invoke("Echo", "done"), WAIT_MS, "a final Echo"), "done");
            assertExactSequence(received, 20);
            assert.deepEqual(state.events.closes, [], "the connection must not close");
            assert.equal(c.connectionId, connectionId);
        });

        it("invocations in flight across dropped transports each complete once with their own result", opts, async () => {
            const state = await statefulClient(protocol);
            const { c } = state;
            const connectionId = c.connectionId;
            const results = [];
            const drops = [];
            for (let n = 1; n <= 200; n++) {
                results.push(c.invoke("Echo", `e${n}`));
                if (n % 50 === 25 && drops.length < DROP_AT.length) {
                    drops.push(dropTransport(connectionId, state));
                }
                await delay(5);
            }
            await withTimeout(Promise.all(drops), WAIT_MS, "the /droptransport calls");
            const values = await withTimeout(Promise.all(results), 15_000, "all invocations");
            assert.deepEqual(values, Array.from({ length: 200 }, (_, i) => `e${i + 1}`));
            assertSameConnection(state, connectionId);
        });
    });
}
