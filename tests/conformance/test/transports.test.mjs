// Transport selection, negotiate redirects, long-polling shutdown and the raw /echo connection,
// through the official client.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { HttpTransportType, HubConnectionState, LogLevel, NullLogger, TransferFormat } from "@microsoft/signalr";
import { useServer } from "../lib/server.mjs";
import {
    PROTOCOLS, RecordingHttpClient, TRANSPORTS, TRANSPORT_PROTOCOLS, TEST_TIMEOUT, buildConnection, closed, connect, delay,
    rejection, useConnectionCleanup, withTimeout, WAIT_MS,
} from "../lib/hub.mjs";
import { http } from "../lib/raw.mjs";

const require = createRequire(import.meta.url);
const { HttpConnection } = require("@microsoft/signalr/dist/cjs/HttpConnection.js");

const server = useServer();
useConnectionCleanup();

const opts = { timeout: TEST_TIMEOUT };

describe("transport selection", () => {
    it("starting a MessagePack connection with the Server-Sent Events transport fails (SSE is text only)", opts, async () => {
        const c = buildConnection(`${server.url}/testhub`, {
            protocol: "messagepack", transport: "ServerSentEvents", logLevel: LogLevel.None,
        });
        const err = await rejection(withTimeout(c.start(), WAIT_MS, "start()"), "start()");
        // The client refuses because negotiate lists ServerSentEvents with the Text format only.
        assert.match(err.message, /'ServerSentEvents' does not support Binary/, err.message);
        assert.equal(c.state, HubConnectionState.Disconnected);
    });

    for (const protocol of PROTOCOLS) {
        it(`without a transport option the client uses WebSockets on /testhub (${protocol})`, opts, async () => {
            const c = await connect(`${server.url}/testhub`, { protocol, transport: null });
            assert.equal(await c.invoke("GetActiveTransportName"), "WebSockets");
        });
    }

    it("MessagePack on /testhub-nowebsockets falls back past Server-Sent Events to LongPolling", opts, async () => {
        const c = await connect(`${server.url}/testhub-nowebsockets`, { protocol: "messagepack", transport: null });
        assert.equal(await c.invoke("GetActiveTransportName"), "LongPolling");
        assert.equal(await c.invoke("Echo", "via LP ✓"), "via LP ✓");
    });

    it("JSON on /testhub-nowebsockets uses Server-Sent Events", opts, async () => {
        const c = await connect(`${server.url}/testhub-nowebsockets`, { protocol: "json", transport: null });
        assert.equal(await c.invoke("GetActiveTransportName"), "ServerSentEvents");
    });

    for (const { transport, protocol, name } of TRANSPORT_PROTOCOLS.filter((v) => v.transport !== "WebSockets")) {
        it(`/testhub-nowebsockets works over ${name}`, opts, async () => {
            const c = await connect(`${server.url}/testhub-nowebsockets`, { protocol, transport });
            assert.equal(await c.invoke("GetActiveTransportName"), transport);
            assert.equal(await c.invoke("Echo", "你好"), "你好");
            assert.equal(await c.invoke("GetCallerConnectionId"), c.connectionId);
        });
    }

    it("WebSockets only on /testhub-nowebsockets fails to start", opts, async () => {
        const c = buildConnection(`${server.url}/testhub-nowebsockets`, { transport: "WebSockets", logLevel: LogLevel.None });
        const err = await rejection(withTimeout(c.start(), WAIT_MS, "start()"), "start()");
        assert.match(err.message, /^Unable to connect to the server with any of the available transports\./, err.message);
        assert.doesNotMatch(err.message, /WebSockets failed/, "the server must not offer WebSockets there");
    });

    it("a WebSockets + long polling client on /testhub-nowebsockets falls back to long polling", opts, async () => {
        const c = await connect(`${server.url}/testhub-nowebsockets`, {
            transport: HttpTransportType.WebSockets | HttpTransportType.LongPolling,
        });
        assert.equal(await c.invoke("GetActiveTransportName"), "LongPolling");
    });
});

describe("negotiate redirects (POST /redirect/negotiate)", () => {
    const redirectUrl = () => `${server.url}/redirect?baseUrl=${encodeURIComponent(server.url)}`;

    it("POST /redirect/negotiate answers {url: B/testHub?numRedirects=n} with n counting up", opts, async () => {
        const first = await http("POST", `${server.url}/redirect/negotiate?baseUrl=${encodeURIComponent(server.url)}&negotiateVersion=1`);
        assert.equal(first.status, 200, first.text);
        const a = JSON.parse(first.text);
        const m = /^(.*)\/testHub\?numRedirects=(\d+)$/.exec(a.url);
        assert.ok(m, `unexpected redirect url ${a.url}`);
        assert.equal(m[1], server.url);
        const second = JSON.parse((await http("POST", `${server.url}/redirect/negotiate?baseUrl=${encodeURIComponent(server.url)}`)).text);
        const n2 = Number(/numRedirects=(\d+)$/.exec(second.url)[1]);
        assert.ok(Number(m[2]) >= 1);
        assert.ok(n2 > Number(m[2]), `the counter must increase: ${a.url} then ${second.url}`);
    });

    for (const { transport, protocol, name } of TRANSPORT_PROTOCOLS) {
        it(`a connection through /redirect lands on TestHub with numRedirects over ${name}`, opts, async () => {
            const a = await connect(redirectUrl(), { protocol, transport });
            const n1 = await a.invoke("GetNumRedirects");
            assert.ok(Number.isInteger(n1) && n1 >= 1, `GetNumRedirects = ${n1}`);
            assert.equal(await a.invoke("GetActiveTransportName"), transport);
            assert.equal(await a.invoke("GetCallerConnectionId"), a.connectionId);
            const b = await connect(redirectUrl(), { protocol, transport });
            const n2 = await b.invoke("GetNumRedirects");
            assert.ok(n2 > n1, `a second redirect must count higher (${n1} then ${n2})`);
            // the cookies of the redirected negotiate reach the hub too
            assert.equal(await b.invoke("GetCookie", "testCookie"), "testValue");
        });
    }

    it("automatic reconnect after a redirect negotiates through /redirect again", opts, async () => {
        const c = buildConnection(redirectUrl(), { transport: null, automaticReconnect: [0, 200, 1000] });
        const reconnected = new Promise((resolve) => c.onreconnected(resolve));
        await withTimeout(c.start(), WAIT_MS, "start()");
        const before = await c.invoke("GetNumRedirects");
        const firstId = c.connectionId;
        c.serverTimeout();
        const newId = await withTimeout(reconnected, WAIT_MS, "onreconnected");
        assert.notEqual(newId, firstId);
        assert.equal(await c.invoke("GetCallerConnectionId"), newId);
        const after = await c.invoke("GetNumRedirects");
        assert.ok(after > before, `GetNumRedirects after the reconnect (${after}) must exceed ${before}`);
    });
});

describe("long polling shutdown", () => {
    for (const protocol of PROTOCOLS) {
        it(`stop() sends DELETE (202), the poll ends and onclose fires promptly without error (${protocol})`, opts, async () => {
            const client = new RecordingHttpClient();
            const c = buildConnection(`${server.url}/testhub`, { protocol, transport: "LongPolling", httpClient: client });
            const closedPromise = closed(c);
            await withTimeout(c.start(), WAIT_MS, "start()");
            assert.equal(await c.invoke("Echo", "x"), "x");
            await delay(100); // let a poll be pending
            const polls = client.log.filter((e) => e.method === "GET");
            assert.ok(polls.length >= 2, `expected a pending poll, requests: ${JSON.stringify(client.log.map((e) => e.method))}`);
            const stopStart = Date.now();
            await withTimeout(c.stop(), 3000, "stop()");
            const error = await withTimeout(closedPromise, 1000, "onclose");
            assert.strictEqual(error, undefined, `onclose error: ${error}`);
            assert.ok(Date.now() - stopStart < 2000, `stop() took ${Date.now() - stopStart} ms`);
            const deletes = client.log.filter((e) => e.method === "DELETE");
            assert.equal(deletes.length, 1, "exactly one DELETE");
            await deletes[0].promise;
            assert.equal(deletes[0].status, 202, `DELETE answered ${deletes[0].status} (${deletes[0].error})`);
            const pollUrl = new URL(polls[polls.length - 1].url);
            const deleteUrl = new URL(deletes[0].url);
            assert.equal(deleteUrl.pathname, pollUrl.pathname);
            assert.equal(deleteUrl.searchParams.get("id"), pollUrl.searchParams.get("id"));
            // every poll has ended
            await withTimeout(Promise.all(polls.map((p) => p.promise)), 2000, "all polls to end");
            // and the connection is gone on the server
            const after = await http("GET", `${server.url}/testhub?id=${encodeURIComponent(deleteUrl.searchParams.get("id"))}`);
            assert.equal(after.status, 404, `a poll after stop() answered ${after.status}`);
        });
    }

    it("stop() while a poll is idle on the server does not wait for the poll timeout", opts, async () => {
        const c = buildConnection(`${server.url}/testhub`, { transport: "LongPolling" });
        await withTimeout(c.start(), WAIT_MS, "start()");
        await delay(500);
        const start = Date.now();
        await withTimeout(c.stop(), 3000, "stop()");
        assert.ok(Date.now() - start < 2000, `stop() took ${Date.now() - start} ms`);
        assert.equal(c.state, HubConnectionState.Disconnected);
    });
});

/** Starts a raw HttpConnection to /echo; returns it with a queue of received messages. */
async function echoConnection(transport, format, extra = {}) {
    const connection = new HttpConnection(`${server.url}/echo`, {
        transport: HttpTransportType[transport], logger: NullLogger.instance, ...extra,
    });
    const received = [];
    const waiters = [];
    connection.onreceive = (data) => {
        received.push(data);
        waiters.splice(0).forEach((w) => w());
    };
    const closes = [];
    connection.onclose = (e) => closes.push(e);
    await withTimeout(connection.start(format), WAIT_MS, "HttpConnection.start()");
    /** Waits until the received data, concatenated, has `length` characters/bytes. */
    const receive = (length, binary) => withTimeout(new Promise((resolve) => {
        const check = () => {
            const joined = binary
                ? Buffer.concat(received.map((d) => Buffer.from(d)))
                : received.join("");
            if (joined.length >= length) {
                received.length = 0;
                resolve(joined);
            } else {
                waiters.push(check);
            }
        };
        check();
    }), WAIT_MS, "echoed data");
    return { connection, receive, closes };
}

// /echo is the app server's own raw connection, never behind the relay: reached directly in both modes.
describe("raw /echo through HttpConnection", () => {
    for (const transport of TRANSPORTS) {
        it(`echoes text over ${transport}`, opts, async () => {
            const { connection, receive, closes } = await echoConnection(transport, TransferFormat.Text);
            try {
                for (const message of ["Hello World", "你好，世界！ 😀", "x".repeat(5000)]) {
                    await connection.send(message);
                    assert.equal(await receive(message.length, false), message);
                }
            } finally {
                await withTimeout(connection.stop(), WAIT_MS, "HttpConnection.stop()");
            }
            assert.deepEqual(closes, [undefined]);
        });

        if (transport === "ServerSentEvents") {
            it("refuses the Binary transfer format over ServerSentEvents (negotiate lists Text only)", opts, async () => {
                const connection = new HttpConnection(`${server.url}/echo`, {
                    transport: HttpTransportType.ServerSentEvents, logger: NullLogger.instance,
                });
                const err = await rejection(withTimeout(connection.start(TransferFormat.Binary), WAIT_MS, "start()"), "start()");
                assert.match(err.message, /'ServerSentEvents' does not support Binary/);
            });
        } else {
            it(`echoes binary data over ${transport}`, opts, async () => {
                const { connection, receive } = await echoConnection(transport, TransferFormat.Binary);
                try {
                    const bytes = new Uint8Array(Array.from({ length: 512 }, (_, i) => i % 256));
                    await connection.send(bytes.buffer);
                    const echoed = await receive(bytes.length, true);
                    assert.deepEqual([...echoed], [...bytes]);
                } finally {
                    await withTimeout(connection.stop(), WAIT_MS, "HttpConnection.stop()");
                }
            });
        }
    }

    it("echoes text over WebSockets with skipNegotiation", opts, async () => {
        const { connection, receive } = await echoConnection("WebSockets", TransferFormat.Text, { skipNegotiation: true });
        try {
            assert.equal(connection.connectionId, undefined);
            await connection.send("no negotiate");
            assert.equal(await receive("no negotiate".length, false), "no negotiate");
        } finally {
            await withTimeout(connection.stop(), WAIT_MS, "HttpConnection.stop()");
        }
    });
});
