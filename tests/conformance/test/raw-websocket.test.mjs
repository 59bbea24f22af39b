// Raw WebSocket (package `ws`) against /echo and /testhub, without the SignalR client:
// handshake, framing, batching/splitting of records, MessagePack framing. In service mode the
// /testhub cases run through the relay (negotiated there, see openHubSocket()).

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { useServer } from "../lib/server.mjs";
import { SERVICE_MODE, TEST_TIMEOUT } from "../lib/hub.mjs";
import { assertJsonCompletion, frameMsgpack, openHubSocket, RawSocket, RS } from "../lib/raw.mjs";

const server = useServer();
const opts = { timeout: TEST_TIMEOUT };

/** Opens a raw WebSocket to the hub at `path` (see openHubSocket) and runs `fn` with it. */
async function withSocket(path, fn) {
    const ws = await openHubSocket(server.url, path);
    try {
        return await fn(ws);
    } finally {
        if (!ws.closeInfo) {
            ws.terminate();
        }
    }
}

/** Opens /testhub and completes a JSON handshake. */
async function jsonHub(fn) {
    return withSocket("/testhub", async (ws) => {
        const hs = await ws.handshake("json", 1);
        assert.equal(hs.data.toString("utf8"), "{}" + RS);
        return await fn(ws);
    });
}

const invocation = (id, target, ...args) => {
    const msg = { type: 1, target, arguments: args };
    if (id !== undefined) {
        msg.invocationId = id;
    }
    return msg;
};

// /echo is the app server's own raw connection, never behind the relay: self-hosted only.
if (!SERVICE_MODE) {
    describe("raw WebSocket /echo", () => {
        it("echoes a text frame and closes with 1000", opts, async () => {
            const ws = await RawSocket.open(`${server.wsUrl}/echo`);
            await ws.send("hello");
            const frame = await ws.nextFrame();
            assert.equal(frame.data.toString("utf8"), "hello");
            assert.equal(frame.binary, false, "a text frame should be echoed as text");
            const { code } = await ws.close(1000);
            assert.equal(code, 1000);
        });

        it("echoes binary bytes", opts, async () => {
            const ws = await RawSocket.open(`${server.wsUrl}/echo`);
            const payload = Buffer.from([0x01, 0x02, 0x03, 0x41, 0x42, 0x7f]);
            await ws.send(payload, { binary: true });
            const frame = await ws.nextFrame();
            assert.deepEqual([...frame.data], [...payload]);
            const { code } = await ws.close(1000);
            assert.equal(code, 1000);
        });

        it("echoes several frames in order", opts, async () => {
            const ws = await RawSocket.open(`${server.wsUrl}/echo`);
            const sent = ["one", "two", "three", "ünïcödé 你好"];
            for (const s of sent) {
                await ws.send(s);
            }
            let received = "";
            const expected = sent.join("");
            while (received.length < expected.length) {
                received += (await ws.nextFrame()).data.toString("utf8");
            }
            assert.equal(received, expected);
            const { code } = await ws.close(1000);
            assert.equal(code, 1000);
        });
    });
}

describe("raw WebSocket /testhub, JSON", () => {
    it("handshake {\"protocol\":\"json\",\"version\":1} is answered with exactly {}\\x1e", opts, async () => {
        await withSocket("/testhub", async (ws) => {
            const frame = await ws.handshake("json", 1);
            assert.equal(frame.binary, false, "the JSON handshake response comes in a text frame");
            assert.equal(frame.data.toString("utf8"), "{}" + RS);
        });
    });

    it("handshake version 0 is accepted", opts, async () => {
        await withSocket("/testhub", async (ws) => {
            const frame = await ws.handshake("json", 0);
            assert.equal(frame.data.toString("utf8"), "{}" + RS);
            await ws.sendJson(invocation("1", "Echo", "v0"));
            assertJsonCompletion(assert, await ws.nextJson(), "1", "v0");
        });
    });

    it("an unsupported protocol gets the exact handshake error and the connection closes", opts, async () => {
        await withSocket("/testhub", async (ws) => {
            const frame = await ws.handshake("foo", 1);
            assert.equal(frame.data.toString("utf8"), "{\"error\":\"The protocol 'foo' is not supported.\"}" + RS);
            const { code } = await ws.closed;
            assert.ok(typeof code === "number", "the server closes the socket");
        });
    });

    it("an unsupported protocol version gets the exact handshake error", opts, async () => {
        await withSocket("/testhub", async (ws) => {
            const frame = await ws.handshake("json", 3);
            assert.equal(frame.data.toString("utf8"),
                "{\"error\":\"The server does not support version 3 of the 'json' protocol.\"}" + RS);
            const { code } = await ws.closed;
            assert.ok(typeof code === "number", "the server closes the socket");
        });
    });

    it("Echo invocation gets a Completion with the result", opts, async () => {
        await jsonHub(async (ws) => {
            await ws.sendJson(invocation("1", "Echo", "x"));
            const msg = await ws.nextJson();
            assertJsonCompletion(assert, msg, "1", "x");
        });
    });

    it("property order does not matter (type last, as the TS client sends it)", opts, async () => {
        await jsonHub(async (ws) => {
            await ws.sendJson('{"target":"Echo","arguments":["ordered"],"invocationId":"0","type":1}');
            assertJsonCompletion(assert, await ws.nextJson(), "0", "ordered");
        });
    });

    it("a void method completes with an explicit null result, like a null return", opts, async () => {
        await jsonHub(async (ws) => {
            await ws.sendJson(invocation("1", "InvokeWithString", "hi"));
            // Message("hi") invocation then a void Completion
            const first = await ws.nextJson();
            assert.equal(first.type, 1);
            assert.equal(first.target, "Message");
            assert.deepEqual(first.arguments, ["hi"]);
            assert.ok(!("invocationId" in first) || first.invocationId === null, "server-to-client send has no invocationId");
            const completion = await ws.nextJson();
            assert.equal(completion.type, 3);
            assert.equal(completion.invocationId, "1");
            // ASP.NET Core writes CompletionMessage.WithResult(id, null) for void methods.
            assertJsonCompletion(assert, completion, "1", null);

            await ws.sendJson(invocation("2", "GetHeader", "X-Not-There"));
            const nullResult = await ws.nextJson();
            assertJsonCompletion(assert, nullResult, "2", null);
        });
    });

    it("two messages in one frame are both answered", opts, async () => {
        await jsonHub(async (ws) => {
            await ws.sendJson(invocation("1", "Echo", "first"), invocation("2", "Echo", "second"));
            const a = await ws.nextJson();
            const b = await ws.nextJson();
            const byId = Object.fromEntries([a, b].map((m) => [m.invocationId, m]));
            assertJsonCompletion(assert, byId["1"], "1", "first");
            assertJsonCompletion(assert, byId["2"], "2", "second");
        });
    });

    it("handshake and a first invocation in the same frame are both processed", opts, async () => {
        await withSocket("/testhub", async (ws) => {
            await ws.send(JSON.stringify({ protocol: "json", version: 1 }) + RS + JSON.stringify(invocation("1", "Echo", "early")) + RS);
            const first = await ws.nextJson(undefined, { keepPings: true });
            assert.deepEqual(first, {}, "the handshake response comes first");
            assertJsonCompletion(assert, await ws.nextJson(), "1", "early");
        });
    });

    it("a message split across two frames is answered once", opts, async () => {
        await jsonHub(async (ws) => {
            const text = JSON.stringify(invocation("1", "Echo", "split 你好")) + RS;
            // cut inside the record (the first 20 characters are ASCII, so both halves are valid UTF-8)
            await ws.send(text.slice(0, 20));
            await ws.send(text.slice(20));
            assertJsonCompletion(assert, await ws.nextJson(), "1", "split 你好");
            // exactly once: the next message is the answer to the next invocation
            await ws.sendJson(invocation("2", "Echo", "next"));
            assertJsonCompletion(assert, await ws.nextJson(), "2", "next");
        });
    });

    it("an invocation without invocationId gets no Completion", opts, async () => {
        await jsonHub(async (ws) => {
            await ws.sendJson(invocation(undefined, "Echo", "no reply"));
            await ws.sendJson(invocation(undefined, "NoSuchMethod", "no error either"));
            await ws.sendJson(invocation(undefined, "ThrowException", "nor here"));
            await ws.sendJson(invocation("2", "Echo", "reply"));
            const msg = await ws.nextJson();
            assertJsonCompletion(assert, msg, "2", "reply");
        });
    });

    it("unknown properties and \"error\":null are ignored", opts, async () => {
        await jsonHub(async (ws) => {
            await ws.sendJson('{"type":1,"target":"Echo","arguments":["x"],"invocationId":"1","error":null,"unknownProp":5}');
            assertJsonCompletion(assert, await ws.nextJson(), "1", "x");
        });
    });

    it("message headers are accepted", opts, async () => {
        await jsonHub(async (ws) => {
            await ws.sendJson({ type: 1, headers: { a: "b" }, invocationId: "1", target: "Echo", arguments: ["with headers"] });
            assertJsonCompletion(assert, await ws.nextJson(), "1", "with headers");
        });
    });

    it("unknown message types are ignored", opts, async () => {
        await jsonHub(async (ws) => {
            await ws.sendJson({ type: 99, whatever: true }, invocation("1", "Echo", "after unknown"));
            assertJsonCompletion(assert, await ws.nextJson(), "1", "after unknown");
        });
    });

    it("a Ping from the client is accepted", opts, async () => {
        await jsonHub(async (ws) => {
            await ws.sendJson({ type: 6 }, invocation("1", "Echo", "after ping"));
            assertJsonCompletion(assert, await ws.nextJson(), "1", "after ping");
        });
    });

    it("a Close message from the client ends the connection with WebSocket close 1000", opts, async () => {
        await jsonHub(async (ws) => {
            await ws.sendJson({ type: 7 });
            const { code } = await ws.closed;
            assert.equal(code, 1000);
        });
    });

    it("an unknown method invoked with an id gets an error Completion", opts, async () => {
        await jsonHub(async (ws) => {
            await ws.sendJson(invocation("1", "NoSuchMethod"));
            const msg = await ws.nextJson();
            assert.equal(msg.type, 3);
            assert.equal(msg.invocationId, "1");
            assert.ok(!("result" in msg), JSON.stringify(msg));
            assert.equal(typeof msg.error, "string");
            assert.match(msg.error, /NoSuchMethod/);
        });
    });
});

describe("raw WebSocket /testhub, MessagePack", () => {
    async function msgpackHub(fn) {
        return withSocket("/testhub", async (ws) => {
            const hs = await ws.handshake("messagepack", 1);
            assert.equal(hs.data.toString("utf8"), "{}" + RS);
            return await fn(ws);
        });
    }

    it("handshake then a binary Invocation gets a binary Completion", opts, async () => {
        await msgpackHub(async (ws) => {
            await ws.sendMsgpack([1, {}, "1", "Echo", ["x"]]);
            const { msg, binary } = await ws.nextMsgpack();
            assert.equal(binary, true, "MessagePack messages travel in binary frames");
            assert.deepEqual(msg, [3, {}, "1", 3, "x"]);
        });
    });

    it("a void method completes with result kind 3 + nil, like a null return", opts, async () => {
        await msgpackHub(async (ws) => {
            await ws.sendMsgpack([1, {}, "1", "InvokeWithString", ["hi"]]);
            const { msg: sent } = await ws.nextMsgpack();
            assert.equal(sent[0], 1);
            assert.equal(sent[2], null, "server-to-client send has a nil invocationId");
            assert.equal(sent[3], "Message");
            assert.deepEqual(sent[4], ["hi"]);
            const { msg: completion } = await ws.nextMsgpack();
            assert.deepEqual(completion, [3, {}, "1", 3, null]);

            await ws.sendMsgpack([1, {}, "2", "GetHeader", ["X-Not-There"]]);
            const { msg: nullResult } = await ws.nextMsgpack();
            assert.deepEqual(nullResult, [3, {}, "2", 3, null]);
        });
    });

    it("an error Completion has result kind 1 and the exact text", opts, async () => {
        await msgpackHub(async (ws) => {
            await ws.sendMsgpack([1, {}, "1", "ThrowException", ["An error occurred."]]);
            const { msg } = await ws.nextMsgpack();
            assert.deepEqual(msg, [3, {}, "1", 1,
                "An unexpected error occurred invoking 'ThrowException' on the server. InvalidOperationException: An error occurred."]);
        });
    });

    it("two framed messages in one WebSocket frame are both answered", opts, async () => {
        await msgpackHub(async (ws) => {
            await ws.sendMsgpack([1, {}, "1", "Echo", ["a"]], [1, {}, "2", "Echo", ["b"]]);
            const first = (await ws.nextMsgpack()).msg;
            const second = (await ws.nextMsgpack()).msg;
            const byId = Object.fromEntries([first, second].map((m) => [m[2], m]));
            assert.deepEqual(byId["1"], [3, {}, "1", 3, "a"]);
            assert.deepEqual(byId["2"], [3, {}, "2", 3, "b"]);
        });
    });

    it("a framed message split across two WebSocket frames is answered once", opts, async () => {
        await msgpackHub(async (ws) => {
            const framed = frameMsgpack([1, {}, "1", "Echo", ["split"]]);
            await ws.send(framed.subarray(0, 3), { binary: true });
            await ws.send(framed.subarray(3), { binary: true });
            assert.deepEqual((await ws.nextMsgpack()).msg, [3, {}, "1", 3, "split"]);
            await ws.sendMsgpack([1, {}, "2", "Echo", ["next"]]);
            assert.deepEqual((await ws.nextMsgpack()).msg, [3, {}, "2", 3, "next"]);
        });
    });

    it("a payload over 127 bytes (two-byte VarInt length) round-trips", opts, async () => {
        await msgpackHub(async (ws) => {
            const big = "x".repeat(5000);
            await ws.sendMsgpack([1, {}, "1", "Echo", [big]]);
            assert.deepEqual((await ws.nextMsgpack()).msg, [3, {}, "1", 3, big]);
        });
    });

    it("a 6-item Invocation (with empty streamIds) is accepted", opts, async () => {
        await msgpackHub(async (ws) => {
            await ws.sendMsgpack([1, {}, "1", "Echo", ["six"], []]);
            assert.deepEqual((await ws.nextMsgpack()).msg, [3, {}, "1", 3, "six"]);
        });
    });

    it("a non-blocking Invocation (nil id) gets no Completion", opts, async () => {
        await msgpackHub(async (ws) => {
            await ws.sendMsgpack([1, {}, null, "Echo", ["quiet"]], [1, {}, "2", "Echo", ["loud"]]);
            assert.deepEqual((await ws.nextMsgpack()).msg, [3, {}, "2", 3, "loud"]);
        });
    });

    it("a Ping from the client (0x91 0x06) is accepted", opts, async () => {
        await msgpackHub(async (ws) => {
            await ws.send(Buffer.concat([Buffer.from([0x02, 0x91, 0x06]), frameMsgpack([1, {}, "1", "Echo", ["pong"]])]), { binary: true });
            assert.deepEqual((await ws.nextMsgpack()).msg, [3, {}, "1", 3, "pong"]);
        });
    });
});
