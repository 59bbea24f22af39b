// TestHub (/testhub) through the official client, over WebSockets:
// protocol ∈ {json, messagepack} × skipNegotiation ∈ {false, true}.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { HubConnectionState } from "@microsoft/signalr";
import { useServer } from "../lib/server.mjs";
import {
    VARIANTS, TEST_TIMEOUT, buildConnection, closed, connect, getUserAgentHeader, Inbox, rejection,
    useConnectionCleanup, withTimeout, WAIT_MS,
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
    const { protocol, skipNegotiation } = variant;
    const hubUrl = (query = "") => `${server.url}/testhub${query}`;
    const open = (extra = {}, query = "") => connect(hubUrl(query), { protocol, skipNegotiation, ...extra });

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
                const c = buildConnection(hubUrl(), { protocol, skipNegotiation });
                assert.equal(c.connectionId, null);
                await withTimeout(c.start(), WAIT_MS, "start()");
                assert.equal(c.connectionId, null);
                const id = await c.invoke("GetCallerConnectionId");
                assert.equal(typeof id, "string");
                assert.ok(id.length > 0, "server-side connection id must not be empty");
            });
        } else {
            it("GetCallerConnectionId equals connection.connectionId", opts, async () => {
                const c = buildConnection(hubUrl(), { protocol, skipNegotiation });
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
            const c = buildConnection(hubUrl(), { protocol, skipNegotiation });
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
            const c = buildConnection(hubUrl(), { protocol, skipNegotiation });
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
            const c = buildConnection(hubUrl(), { protocol, skipNegotiation });
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

        it("GetActiveTransportName returns \"WebSockets\"", opts, async () => {
            const c = await open();
            assert.equal(await c.invoke("GetActiveTransportName"), "WebSockets");
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

        it("GetContentTypeHeader returns null for a WebSocket connection", opts, async () => {
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
            const c = buildConnection(hubUrl(), { protocol, skipNegotiation });
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
    });
}
