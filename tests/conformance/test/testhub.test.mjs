// TestHub (/testhub) through the official client, over every transport × protocol (Server-Sent
// Events × MessagePack excluded: SSE is text only), WebSockets also with skipNegotiation.
// Invocations, server → client calls, errors, headers and cookies, streaming in both directions,
// client results, restart and automatic reconnect.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { HubConnectionState, Subject as SignalRSubject } from "@microsoft/signalr";
import { Subject as RxSubject } from "rxjs";
import { useServer } from "../lib/server.mjs";
import {
    VARIANTS, TEST_TIMEOUT, buildHubConnection, closed, collectStream, connect, delay, getUserAgentHeader,
    httpGet, Inbox, rejection, useConnectionCleanup, withTimeout, WAIT_MS,
} from "../lib/hub.mjs";

const server = useServer();
useConnectionCleanup();

const opts = { timeout: TEST_TIMEOUT };
const GUID = "00010203-0405-0607-0706-050403020100";

/** "message" with one random letter upper-cased (client handler names are case-insensitive). */
function randomCase(name) {
    const i = Math.floor(Math.random() * name.length);
    return name.slice(0, i) + name[i].toUpperCase() + name.slice(i + 1);
}

function bytes(value) {
    assert.ok(value instanceof Uint8Array, `expected a Uint8Array, got ${Object.prototype.toString.call(value)} ${JSON.stringify(value)}`);
    return Array.from(value);
}

for (const variant of VARIANTS) {
    const { protocol, skipNegotiation, transport } = variant;
    const hubUrl = (query = "") => `${server.url}/testhub${query}`;
    const base = { protocol, skipNegotiation, transport };
    // Through the relay, a skipNegotiation client is given the relay's URL and token (resolveHub()).
    const build = (extra = {}, query = "") => buildHubConnection(hubUrl(query), { ...base, ...extra });
    const open = (extra = {}, query = "") => connect(hubUrl(query), { ...base, ...extra });

    describe(`TestHub over ${variant.name}`, () => {
        it("Echo returns a CJK string unchanged", opts, async () => {
            const c = await open();
            const message = "你好，世界！";
            assert.equal(await c.invoke("Echo", message), message);
        });

        it("Echo returns emoji and other non-BMP characters unchanged", opts, async () => {
            const c = await open();
            const message = "😀 🎉 👩‍👩‍👧 𝄞 Ünïcödé ✓ \u2028 \"quoted\" \\ \t";
            assert.equal(await c.invoke("Echo", message), message);
        });

        it("Echo returns an empty string (not null)", opts, async () => {
            const c = await open();
            assert.equal(await c.invoke("Echo", ""), "");
        });

        it("Echo returns a 20 000-character string", opts, async () => {
            const c = await open();
            const message = "0123456789abcdefghij".repeat(1000);
            assert.equal(await c.invoke("Echo", message), message);
        });

        it("concurrent invocations each get their own result", opts, async () => {
            const c = await open();
            const inputs = Array.from({ length: 20 }, (_, i) => `msg-${i}`);
            const results = await Promise.all(inputs.map((m) => c.invoke("Echo", m)));
            assert.deepEqual(results, inputs);
        });

        it("hub method names are case-insensitive (echo, ECHO, eCHo)", opts, async () => {
            const c = await open();
            assert.equal(await c.invoke("echo", "lower"), "lower");
            assert.equal(await c.invoke("ECHO", "upper"), "upper");
            assert.equal(await c.invoke("eCHo", "mixed"), "mixed");
        });

        if (skipNegotiation) {
            it("connectionId is null on the client; GetCallerConnectionId still returns an id", opts, async () => {
                const c = await build();
                assert.equal(c.connectionId, null);
                await withTimeout(c.start(), WAIT_MS, "start()");
                assert.equal(c.connectionId, null);
                const id = await c.invoke("GetCallerConnectionId");
                assert.equal(typeof id, "string");
                assert.ok(id.length > 0, "server-side connection id must not be empty");
            });
        } else {
            it("GetCallerConnectionId equals connection.connectionId", opts, async () => {
                const c = await build();
                assert.equal(c.connectionId, null);
                await withTimeout(c.start(), WAIT_MS, "start()");
                assert.equal(typeof c.connectionId, "string");
                assert.ok(c.connectionId.length > 0);
                assert.equal(await c.invoke("GetCallerConnectionId"), c.connectionId);
            });
        }

        it("two connections get different connection ids", opts, async () => {
            const a = await open();
            const b = await open();
            const idA = await a.invoke("GetCallerConnectionId");
            const idB = await b.invoke("GetCallerConnectionId");
            assert.notEqual(idA, idB);
        });

        it("GetNumRedirects returns 0 without a numRedirects query", opts, async () => {
            const c = await open();
            assert.equal(await c.invoke("GetNumRedirects"), 0);
        });

        it("GetNumRedirects reads numRedirects from the hub URL query", opts, async () => {
            const c = await open({}, "?numRedirects=7");
            assert.equal(await c.invoke("GetNumRedirects"), 7);
        });

        it("ThrowException rejects with the exact detailed error", opts, async () => {
            const c = await open();
            const err = await rejection(c.invoke("ThrowException", "An error occurred."), "invoke('ThrowException')");
            assert.equal(err.message,
                "An unexpected error occurred invoking 'ThrowException' on the server. InvalidOperationException: An error occurred.");
            // The connection survives a failed invocation.
            assert.equal(await c.invoke("Echo", "still alive"), "still alive");
        });

        it("InvokeWithString calls the client's Message handler (handler names case-insensitive)", opts, async () => {
            const c = await build();
            const lower = [];
            const mixed = [];
            c.on("message", (m) => lower.push(m));
            const received = new Promise((resolve) => c.on(randomCase("message"), (m) => {
                mixed.push(m);
                resolve(m);
            }));
            await withTimeout(c.start(), WAIT_MS, "start()");
            const message = "你好 SignalR！";
            await c.invoke("InvokeWithString", message);
            assert.equal(await withTimeout(received, WAIT_MS, "Message"), message);
            assert.deepEqual(lower, [message]);
            assert.deepEqual(mixed, [message]);
        });

        it("send() (fire and forget) of InvokeWithString still delivers Message", opts, async () => {
            const c = await build();
            const inbox = new Inbox(c, ["Message"]);
            await withTimeout(c.start(), WAIT_MS, "start()");
            const sent = await c.send("InvokeWithString", "fire and forget");
            assert.equal(sent, undefined);
            assert.deepEqual(await inbox.next("Message"), ["fire and forget"]);
        });

        it("send() of an unknown method is silently ignored", opts, async () => {
            const c = await open();
            const closedPromise = closed(c);
            await c.send("NoSuchMethodForSend", "x");
            assert.equal(await c.invoke("Echo", "after"), "after");
            assert.equal(c.state, HubConnectionState.Connected);
            const raced = await Promise.race([closedPromise.then(() => "closed"), Promise.resolve("open")]);
            assert.equal(raced, "open");
        });

        it("SendCustomObject calls CustomObject with the same PascalCase object", opts, async () => {
            const c = await build();
            const inbox = new Inbox(c, ["CustomObject"]);
            await withTimeout(c.start(), WAIT_MS, "start()");
            await c.invoke("SendCustomObject", { Name: "test", Value: 42 });
            const [obj] = await inbox.next("CustomObject");
            assert.deepEqual(obj, { Name: "test", Value: 42 });
        });

        it("void methods (InvokeWithString, SendCustomObject) resolve invoke() with null, as ASP.NET Core does", opts, async () => {
            // ASP.NET Core completes a void/Task hub method with CompletionMessage.WithResult(id, null)
            // (DefaultHubDispatcher), so the client resolves null, the same as for a null return.
            const c = await open();
            assert.strictEqual(await c.invoke("InvokeWithString", "x"), null, "InvokeWithString");
            assert.strictEqual(await c.invoke("SendCustomObject", { Name: "n", Value: 1 }), null, "SendCustomObject");
            assert.strictEqual(await c.invoke("GetHeader", "X-Not-Sent-Header"), null, "GetHeader of a missing header");
        });

        it(`GetActiveTransportName returns "${transport}"`, opts, async () => {
            const c = await open();
            assert.equal(await c.invoke("GetActiveTransportName"), transport);
        });

        it("EchoComplexObject round-trips a complex object", opts, async () => {
            const c = await open();
            if (protocol === "json") {
                const obj = {
                    String: "Hello, World!",
                    IntArray: [1, 2, 3, 255],
                    ByteArray: "aGVsbG8=",
                    Guid: GUID,
                    DateTime: "2002-04-01T10:20:15Z",
                };
                assert.deepEqual(await c.invoke("EchoComplexObject", obj), obj);
            } else {
                const date = new Date(Date.UTC(2002, 3, 1, 10, 20, 15));
                const obj = {
                    String: "Hello, World!",
                    IntArray: [1, 2, 3, 255],
                    ByteArray: new Uint8Array([0x68, 0x65, 0x6c, 0x6c, 0x6f]),
                    Guid: GUID,
                    DateTime: date,
                };
                const value = await c.invoke("EchoComplexObject", obj);
                assert.deepEqual(Object.keys(value).sort(), Object.keys(obj).sort());
                assert.equal(value.String, obj.String);
                assert.deepEqual(value.IntArray, obj.IntArray);
                assert.deepEqual(bytes(value.ByteArray), [0x68, 0x65, 0x6c, 0x6c, 0x6f]);
                assert.equal(value.Guid, GUID);
                assert.ok(value.DateTime instanceof Date, `DateTime must come back as a timestamp (Date), got ${JSON.stringify(value.DateTime)}`);
                assert.equal(value.DateTime.getTime(), date.getTime());
            }
        });

        it("SendComplexObject returns the contract's object", opts, async () => {
            const c = await open();
            const value = await c.invoke("SendComplexObject");
            if (protocol === "json") {
                assert.deepEqual(value, {
                    String: "hello world",
                    IntArray: [1, 2, 3],
                    ByteArray: "AQID",
                    Guid: GUID,
                    DateTime: "2000-01-01T00:00:00Z",
                });
            } else {
                assert.deepEqual(Object.keys(value).sort(), ["ByteArray", "DateTime", "Guid", "IntArray", "String"]);
                assert.equal(value.String, "hello world");
                assert.deepEqual(value.IntArray, [1, 2, 3]);
                assert.deepEqual(bytes(value.ByteArray), [1, 2, 3]);
                assert.equal(value.Guid, GUID);
                assert.ok(value.DateTime instanceof Date, `DateTime must be a MessagePack timestamp (Date), got ${JSON.stringify(value.DateTime)}`);
                assert.equal(value.DateTime.toISOString(), "2000-01-01T00:00:00.000Z");
            }
        });

        it("GetHeader returns a custom header passed in the withUrl options", opts, async () => {
            const c = await open({ headers: { "X-HEADER": "VALUE" } });
            assert.equal(await c.invoke("GetHeader", "X-HEADER"), "VALUE");
            // header names are case-insensitive
            assert.equal(await c.invoke("GetHeader", "x-header"), "VALUE");
        });

        it("GetHeader returns the client's User-Agent", opts, async () => {
            const c = await open();
            const [name, value] = getUserAgentHeader();
            assert.equal(name, "User-Agent");
            assert.equal(await c.invoke("GetHeader", name), value);
        });

        it("user headers overwrite the library's User-Agent", opts, async () => {
            const c = await open({ headers: { "User-Agent": "Custom Agent", "X-HEADER": "VALUE" } });
            assert.equal(await c.invoke("GetHeader", "User-Agent"), "Custom Agent");
            assert.equal(await c.invoke("GetHeader", "X-HEADER"), "VALUE");
        });

        it("GetHeader of a missing header returns null", opts, async () => {
            const c = await open();
            assert.strictEqual(await c.invoke("GetHeader", "X-Not-Sent-Header"), null);
        });

        if (skipNegotiation) {
            it("GetCookie returns null for testCookie (no negotiate, so no cookie)", opts, async () => {
                const c = await open();
                assert.strictEqual(await c.invoke("GetCookie", "testCookie"), null);
            });
        } else {
            it("GetCookie returns the cookies set by negotiate", opts, async () => {
                const c = await open();
                assert.equal(await c.invoke("GetCookie", "testCookie"), "testValue");
                assert.equal(await c.invoke("GetCookie", "testCookie2"), "testValue2");
            });
        }

        it("GetCookie of the expired cookie returns null", opts, async () => {
            const c = await open();
            assert.strictEqual(await c.invoke("GetCookie", "expiredCookie"), null);
        });

        it("GetContentTypeHeader returns null (the Node client's connecting request has no Content-Type)", opts, async () => {
            // The hub sees the request that established the transport: the WebSocket upgrade, the
            // SSE GET or (long polling) the first poll, none of which has a body in Node.
            const c = await open();
            assert.strictEqual(await c.invoke("GetContentTypeHeader"), null);
        });

        it("GetUserIdentifier returns null without a token", opts, async () => {
            const c = await open();
            assert.strictEqual(await c.invoke("GetUserIdentifier"), null);
        });

        it("invoking an unknown method rejects with the method name", opts, async (t) => {
            const c = await open();
            const err = await rejection(c.invoke("NoSuchMethod", "x"), "invoke('NoSuchMethod')");
            const expected = "Failed to invoke 'NoSuchMethod' due to an error on the server. HubException: Method does not exist.";
            const legacy = "Unknown hub method 'NoSuchMethod'";
            t.diagnostic(`unknown-method error text: ${JSON.stringify(err.message)}` +
                (err.message === expected ? " (matches ASP.NET Core with detailed errors)" : ""));
            assert.ok(err.message === expected || err.message === legacy,
                `unexpected error text ${JSON.stringify(err.message)}; expected ${JSON.stringify(expected)}`);
            assert.equal(await c.invoke("Echo", "still alive"), "still alive");
        });

        it("invoking with the wrong argument count rejects with a binding error", opts, async (t) => {
            const c = await open();
            const err = await rejection(c.invoke("Echo", "a", "b"), "invoke('Echo', 'a', 'b')");
            t.diagnostic(`binding error text: ${JSON.stringify(err.message)}`);
            assert.ok(err.message.startsWith("Failed to invoke 'Echo' due to an error on the server."),
                `unexpected error text ${JSON.stringify(err.message)}`);
            const err0 = await rejection(c.invoke("Echo"), "invoke('Echo')");
            assert.ok(err0.message.startsWith("Failed to invoke 'Echo' due to an error on the server."),
                `unexpected error text ${JSON.stringify(err0.message)}`);
            assert.equal(await c.invoke("Echo", "still alive"), "still alive");
        });

        it("stop() closes cleanly (onclose without error) and the connection can be restarted", opts, async () => {
            const c = await build();
            const closes = [];
            c.onclose((e) => closes.push(e));
            await withTimeout(c.start(), WAIT_MS, "start()");
            assert.equal(await c.invoke("Echo", "first"), "first");
            await withTimeout(c.stop(), WAIT_MS, "stop()");
            assert.equal(c.state, HubConnectionState.Disconnected);
            assert.equal(c.connectionId, null);
            assert.deepEqual(closes, [undefined]);
            await withTimeout(c.start(), WAIT_MS, "second start()");
            assert.equal(await c.invoke("Echo", "second"), "second");
            await withTimeout(c.stop(), WAIT_MS, "second stop()");
            assert.deepEqual(closes, [undefined, undefined]);
        });
        it("handlers stay registered across a restart (server calls reach them after the second start)", opts, async () => {
            const c = await build();
            const inbox = new Inbox(c, ["Message"]);
            await withTimeout(c.start(), WAIT_MS, "start()");
            const firstId = c.connectionId;
            await c.invoke("InvokeWithString", "before restart");
            assert.deepEqual(await inbox.next("Message"), ["before restart"]);
            await withTimeout(c.stop(), WAIT_MS, "stop()");
            await withTimeout(c.start(), WAIT_MS, "second start()");
            if (!skipNegotiation) {
                assert.notEqual(c.connectionId, firstId, "a restarted connection negotiates a new connection id");
                assert.equal(await c.invoke("GetCallerConnectionId"), c.connectionId);
            }
            await c.invoke("InvokeWithString", "after restart");
            assert.deepEqual(await inbox.next("Message"), ["after restart"]);
        });

        it("200 sends in a burst call Message in order, each exactly once", opts, async () => {
            const c = await build();
            const inbox = new Inbox(c, ["Message"]);
            await withTimeout(c.start(), WAIT_MS, "start()");
            const n = 200;
            await Promise.all(Array.from({ length: n }, (_, i) => c.send("InvokeWithString", `m${i}`)));
            await inbox.takeUntil((item) => item.args[0] === `m${n - 1}`, WAIT_MS, `Message m${n - 1}`)
                .then(({ before, match }) => {
                    const got = [...before, match].map((item) => item.args[0]);
                    assert.deepEqual(got, Array.from({ length: n }, (_, i) => `m${i}`));
                });
            // nothing after the last one
            assert.equal(await c.invoke("Echo", "sync"), "sync");
            assert.deepEqual(inbox.items, []);
        });

        // ---- server-to-client streaming ----

        it("stream('Stream') yields \"a\", \"b\", \"c\" and completes", opts, async () => {
            const c = await open();
            const { items, error } = await withTimeout(collectStream(c, "Stream"), WAIT_MS, "stream('Stream')");
            assert.equal(error, undefined, `stream errored: ${error}`);
            assert.deepEqual(items, ["a", "b", "c"]);
        });

        it("two concurrent streams each get all their items", opts, async () => {
            const c = await open();
            const results = await withTimeout(Promise.all([
                collectStream(c, "Stream"), collectStream(c, "stream"), collectStream(c, "EmptyStream"),
            ]), WAIT_MS, "three streams");
            assert.deepEqual(results, [
                { items: ["a", "b", "c"], error: undefined },
                { items: ["a", "b", "c"], error: undefined },
                { items: [], error: undefined },
            ]);
        });

        it("stream('EmptyStream') completes without items", opts, async () => {
            const c = await open();
            const { items, error } = await withTimeout(collectStream(c, "EmptyStream"), WAIT_MS, "stream('EmptyStream')");
            assert.equal(error, undefined, `stream errored: ${error}`);
            assert.deepEqual(items, []);
        });

        it("stream('StreamThrowException') fails with the exact detailed error and no items", opts, async () => {
            const c = await open();
            const { items, error } = await withTimeout(
                collectStream(c, "StreamThrowException", "An error occurred."), WAIT_MS, "stream('StreamThrowException')");
            assert.ok(error, "the stream must fail");
            assert.equal(error.message,
                "An unexpected error occurred invoking 'StreamThrowException' on the server. InvalidOperationException: An error occurred.");
            assert.deepEqual(items, []);
            assert.equal(await c.invoke("Echo", "still alive"), "still alive");
        });

        it("invoke() of a streaming method (Stream, EmptyStream) rejects with the non-streaming-invocation error", opts, async () => {
            const c = await open();
            for (const method of ["Stream", "EmptyStream"]) {
                const err = await rejection(c.invoke(method), `invoke('${method}')`);
                assert.equal(err.message,
                    `The client attempted to invoke the streaming '${method}' method with a non-streaming invocation.`);
            }
            assert.equal(await c.invoke("Echo", "still alive"), "still alive");
        });

        it("stream() of a non-streaming method (Echo) fails with the streaming-invocation error", opts, async () => {
            const c = await open();
            const { items, error } = await withTimeout(collectStream(c, "Echo", "42"), WAIT_MS, "stream('Echo')");
            assert.ok(error, "the stream must fail");
            assert.equal(error.message,
                "The client attempted to invoke the non-streaming 'Echo' method with a streaming invocation.");
            assert.deepEqual(items, []);
            assert.equal(await c.invoke("Echo", "still alive"), "still alive");
        });

        it("disposing an InfiniteStream subscription at once makes the server call StreamCanceled", opts, async () => {
            const c = await build();
            const inbox = new Inbox(c, ["StreamCanceled"]);
            await withTimeout(c.start(), WAIT_MS, "start()");
            const events = [];
            const subscription = c.stream("InfiniteStream").subscribe({
                next: (item) => events.push(["next", item]),
                complete: () => events.push(["complete"]),
                error: (e) => events.push(["error", e.message]),
            });
            subscription.dispose();
            assert.deepEqual(await inbox.next("StreamCanceled"), []);
            assert.deepEqual(events, []);
            assert.equal(await c.invoke("Echo", "still alive"), "still alive");
        });

        it("disposing a running InfiniteStream subscription makes the server call StreamCanceled once", opts, async () => {
            const c = await build();
            const inbox = new Inbox(c, ["StreamCanceled", "Message"]);
            await withTimeout(c.start(), WAIT_MS, "start()");
            const events = [];
            const subscription = c.stream("InfiniteStream").subscribe({
                next: (item) => events.push(["next", item]),
                complete: () => events.push(["complete"]),
                error: (e) => events.push(["error", e.message]),
            });
            // The stream runs in the background: other invocations are served meanwhile.
            assert.equal(await c.invoke("Echo", "while streaming"), "while streaming");
            await delay(200);
            assert.deepEqual(inbox.items, [], "StreamCanceled before the cancellation");
            subscription.dispose();
            assert.deepEqual(await inbox.next("StreamCanceled"), []);
            // exactly once: a later server call arrives with nothing before it
            await c.invoke("InvokeWithString", "after cancel");
            const { before } = await inbox.takeUntil((i) => i.method === "Message", WAIT_MS, "Message");
            assert.deepEqual(before, [], "StreamCanceled must be called only once");
            assert.deepEqual(events, []);
        });

        // ---- client-to-server (upload) streaming ----

        it("StreamingConcat of a signalR.Subject (\"a\", \"b\", \"c\") returns \"abc\"", opts, async () => {
            const c = await open();
            const subject = new SignalRSubject();
            const result = c.invoke("StreamingConcat", subject);
            subject.next("a");
            subject.next("b");
            subject.next("c");
            subject.complete();
            assert.equal(await withTimeout(result, WAIT_MS, "StreamingConcat"), "abc");
        });

        it("StreamingConcat of an rxjs Subject returns the concatenation", opts, async () => {
            const c = await open();
            const subject = new RxSubject();
            const result = c.invoke("StreamingConcat", subject.asObservable());
            subject.next("Hello ");
            subject.next("world");
            subject.next("!");
            subject.complete();
            assert.equal(await withTimeout(result, WAIT_MS, "StreamingConcat"), "Hello world!");
        });

        it("StreamingConcat of items sent over time, Unicode included, keeps their order", opts, async () => {
            const c = await open();
            const subject = new SignalRSubject();
            const result = c.invoke("StreamingConcat", subject);
            const parts = ["你好", "，", "😀", " ", "SignalR", "✓"];
            for (const part of parts) {
                await delay(20);
                subject.next(part);
            }
            subject.complete();
            assert.equal(await withTimeout(result, WAIT_MS, "StreamingConcat"), parts.join(""));
        });

        it("StreamingConcat of 300 items (more than the server's stream buffer) returns them all", opts, async () => {
            const c = await open();
            const subject = new SignalRSubject();
            const result = c.invoke("StreamingConcat", subject);
            const parts = Array.from({ length: 300 }, (_, i) => `${i},`);
            for (const part of parts) {
                subject.next(part);
            }
            subject.complete();
            assert.equal(await withTimeout(result, WAIT_MS, "StreamingConcat"), parts.join(""));
        });

        it("StreamingConcat of an empty stream returns \"\"", opts, async () => {
            const c = await open();
            const subject = new SignalRSubject();
            const result = c.invoke("StreamingConcat", subject);
            subject.complete();
            assert.equal(await withTimeout(result, WAIT_MS, "StreamingConcat"), "");
        });

        it("two concurrent StreamingConcat uploads do not mix their items", opts, async () => {
            const c = await open();
            const s1 = new SignalRSubject();
            const s2 = new SignalRSubject();
            const r1 = c.invoke("StreamingConcat", s1);
            const r2 = c.invoke("StreamingConcat", s2);
            for (let i = 0; i < 5; i++) {
                s1.next(`a${i}`);
                s2.next(`b${i}`);
            }
            s2.complete();
            s1.complete();
            assert.deepEqual(await withTimeout(Promise.all([r1, r2]), WAIT_MS, "two StreamingConcat"),
                ["a0a1a2a3a4", "b0b1b2b3b4"]);
        });

        it("an upload stream ending with an error rejects StreamingConcat with HubException: <error>", opts, async () => {
            const c = await open();
            const subject = new SignalRSubject();
            const result = c.invoke("StreamingConcat", subject);
            subject.next("a");
            subject.next("b");
            subject.error(new Error("Something bad"));
            const err = await rejection(withTimeout(result, WAIT_MS, "StreamingConcat"), "invoke('StreamingConcat')");
            assert.equal(err.message,
                "An unexpected error occurred invoking 'StreamingConcat' on the server. HubException: Something bad");
            assert.equal(await c.invoke("Echo", "still alive"), "still alive");
        });

        it("an rxjs upload stream ending with an error rejects StreamingConcat the same way", opts, async () => {
            const c = await open();
            const subject = new RxSubject();
            const result = c.invoke("StreamingConcat", subject.asObservable());
            subject.next("Hello ");
            subject.next("world");
            subject.next("!");
            subject.error(new Error("Something bad"));
            const err = await rejection(withTimeout(result, WAIT_MS, "StreamingConcat"), "invoke('StreamingConcat')");
            assert.equal(err.message,
                "An unexpected error occurred invoking 'StreamingConcat' on the server. HubException: Something bad");
        });

        // ---- client results (GET /clientresult/{connectionId}) ----

        /** Starts a connection with the given Result handlers; returns it and its server-side id. */
        async function resultClient(...handlers) {
            const c = await build();
            for (const handler of handlers) {
                c.on("Result", handler);
            }
            await withTimeout(c.start(), WAIT_MS, "start()");
            const id = await c.invoke("GetCallerConnectionId");
            return { c, id };
        }

        async function clientResult(id) {
            const res = await withTimeout(httpGet(`${server.url}/clientresult/${encodeURIComponent(id)}`),
                WAIT_MS, "GET /clientresult");
            assert.equal(res.status, 200, `GET /clientresult answered ${res.status}: ${res.text}`);
            return res.text;
        }

        it("a client result: /clientresult returns the handler's value \"10\"", opts, async () => {
            const calls = [];
            const { c, id } = await resultClient((...args) => {
                calls.push(args);
                return 10;
            });
            assert.equal(await clientResult(id), "10");
            assert.deepEqual(calls, [[]], "Result is called once, without arguments");
            // the connection keeps working, and can answer again
            assert.equal(await c.invoke("Echo", "still alive"), "still alive");
            assert.equal(await clientResult(id), "10");
        });

        it("a client result from an async handler (a promise) is awaited", opts, async () => {
            const { id } = await resultClient(async () => {
                await delay(100);
                return 42;
            });
            assert.equal(await clientResult(id), "42");
        });

        it("an error thrown by the client's handler is the /clientresult body (\"Error: from callback\")", opts, async () => {
            const { c, id } = await resultClient(() => {
                throw new Error("from callback");
            });
            assert.equal(await clientResult(id), "Error: from callback");
            assert.equal(await c.invoke("Echo", "still alive"), "still alive");
        });

        it("without a Result handler, /clientresult returns \"Client didn't provide a result.\"", opts, async () => {
            const { c, id } = await resultClient();
            assert.equal(await clientResult(id), "Client didn't provide a result.");
            assert.equal(await c.invoke("Echo", "still alive"), "still alive");
        });

        it("two handlers both returning a value: \"Client provided multiple results.\"", opts, async () => {
            const { id } = await resultClient(() => 1, () => 2);
            assert.equal(await clientResult(id), "Client provided multiple results.");
        });

        it("concurrent client results on two connections go to the right client", opts, async () => {
            const a = await resultClient(() => 1);
            const b = await resultClient(() => 2);
            assert.deepEqual(await Promise.all([clientResult(a.id), clientResult(b.id), clientResult(a.id)]), ["1", "2", "1"]);
        });

        // ---- automatic reconnect ----

        it("withAutomaticReconnect: a lost connection reconnects (new negotiate, new connection id)", opts, async () => {
            const c = await build({ automaticReconnect: [0, 200, 1000] });
            const reconnecting = new Promise((resolve) => c.onreconnecting(resolve));
            const reconnected = new Promise((resolve) => c.onreconnected(resolve));
            await withTimeout(c.start(), WAIT_MS, "start()");
            const firstId = c.connectionId;
            // Induce a reconnect as the upstream functional tests do.
            c.serverTimeout();
            await withTimeout(reconnecting, WAIT_MS, "onreconnecting");
            const newId = await withTimeout(reconnected, WAIT_MS, "onreconnected");
            if (skipNegotiation) {
                assert.equal(newId, undefined);
            } else {
                assert.equal(typeof newId, "string");
                assert.notEqual(newId, firstId, "a plain reconnect negotiates a new connection");
                assert.equal(await c.invoke("GetCallerConnectionId"), newId);
            }
            assert.equal(c.state, HubConnectionState.Connected);
            assert.equal(await c.invoke("Echo", "after reconnect"), "after reconnect");
        });
    });
}
