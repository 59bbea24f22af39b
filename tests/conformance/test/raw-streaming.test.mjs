// Streaming and client results on the wire (raw WebSocket to /testhub, JSON and MessagePack):
// StreamItem / Completion shapes, cancellation, upload streams with streamIds, and the
// server-to-client Invocation of GET /clientresult/{connectionId}. In service mode the sockets
// go through the relay (negotiated there, see openHubSocket()); /clientresult stays on the app
// server, which asks the client through the relay.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { useServer } from "../lib/server.mjs";
import { TEST_TIMEOUT, WAIT_MS, withTimeout } from "../lib/hub.mjs";
import { assertJsonCompletion, http, openHubSocket, RS } from "../lib/raw.mjs";

const server = useServer();
const opts = { timeout: TEST_TIMEOUT };

/** Opens /testhub (see openHubSocket), completes a JSON handshake and runs `fn` with the socket. */
async function jsonHub(fn) {
    const ws = await openHubSocket(server.url, "/testhub");
    try {
        const hs = await ws.handshake("json", 1);
        assert.equal(hs.data.toString("utf8"), "{}" + RS);
        return await fn(ws);
    } finally {
        if (!ws.closeInfo) {
            ws.terminate();
        }
    }
}

/** Opens /testhub, completes a MessagePack handshake and runs `fn` with the socket. */
async function msgpackHub(fn) {
    const ws = await openHubSocket(server.url, "/testhub");
    try {
        const hs = await ws.handshake("messagepack", 1);
        assert.equal(hs.data.toString("utf8"), "{}" + RS);
        return await fn(ws);
    } finally {
        if (!ws.closeInfo) {
            ws.terminate();
        }
    }
}

/** Reads JSON messages until `count` messages matching `keep` arrived; returns them. */
async function readJson(ws, count, keep = () => true) {
    const out = [];
    while (out.length < count) {
        const msg = await ws.nextJson();
        if (keep(msg)) {
            out.push(msg);
        }
    }
    return out;
}

function assertEmptyCompletion(msg, invocationId) {
    assert.equal(msg.type, 3, `expected a Completion, got ${JSON.stringify(msg)}`);
    assert.equal(msg.invocationId, invocationId);
    assert.ok(!("result" in msg), `a stream Completion carries no result: ${JSON.stringify(msg)}`);
    assert.ok(msg.error === undefined || msg.error === null, `unexpected error: ${JSON.stringify(msg)}`);
}

function assertErrorCompletion(msg, invocationId, error) {
    assert.equal(msg.type, 3, `expected a Completion, got ${JSON.stringify(msg)}`);
    assert.equal(msg.invocationId, invocationId);
    assert.equal(msg.error, error);
    assert.ok(!("result" in msg), `an error Completion carries no result: ${JSON.stringify(msg)}`);
}

describe("raw WebSocket streaming, JSON", () => {
    it("StreamInvocation of Stream: three StreamItems then a Completion without result", opts, async () => {
        await jsonHub(async (ws) => {
            await ws.sendJson({ type: 4, invocationId: "s", target: "Stream", arguments: [] });
            const messages = await readJson(ws, 4);
            assert.deepEqual(messages.slice(0, 3).map((m) => [m.type, m.invocationId, m.item]),
                [[2, "s", "a"], [2, "s", "b"], [2, "s", "c"]]);
            assertEmptyCompletion(messages[3], "s");
        });
    });

    it("StreamInvocation of EmptyStream: only a Completion", opts, async () => {
        await jsonHub(async (ws) => {
            await ws.sendJson({ type: 4, invocationId: "e", target: "EmptyStream", arguments: [] });
            assertEmptyCompletion(await ws.nextJson(), "e");
        });
    });

    it("StreamInvocation of StreamThrowException: an error Completion with the detailed error", opts, async () => {
        await jsonHub(async (ws) => {
            await ws.sendJson({ type: 4, invocationId: "x", target: "StreamThrowException", arguments: ["boom"] });
            assertErrorCompletion(await ws.nextJson(), "x",
                "An unexpected error occurred invoking 'StreamThrowException' on the server. InvalidOperationException: boom");
        });
    });

    it("StreamInvocation of a non-streaming method and Invocation of a streaming one are refused", opts, async () => {
        await jsonHub(async (ws) => {
            await ws.sendJson({ type: 4, invocationId: "1", target: "Echo", arguments: ["x"] });
            assertErrorCompletion(await ws.nextJson(), "1",
                "The client attempted to invoke the non-streaming 'Echo' method with a streaming invocation.");
            await ws.sendJson({ type: 1, invocationId: "2", target: "Stream", arguments: [] });
            assertErrorCompletion(await ws.nextJson(), "2",
                "The client attempted to invoke the streaming 'Stream' method with a non-streaming invocation.");
        });
    });

    it("CancelInvocation sent in the same frame as the StreamInvocation still cancels it: StreamCanceled is called", opts, async () => {
        // ASP.NET Core dispatches a connection's messages in order: the stream is registered (and
        // InfiniteStream's cancellation callback with it) before the CancelInvocation is read.
        await jsonHub(async (ws) => {
            await ws.sendJson(
                { type: 4, invocationId: "inf", target: "InfiniteStream", arguments: [] },
                { type: 5, invocationId: "inf" });
            const messages = await readJson(ws, 2);
            const canceled = messages.find((m) => m.type === 1);
            const completion = messages.find((m) => m.type === 3);
            assert.ok(canceled, `no StreamCanceled call; received ${JSON.stringify(messages)}`);
            assert.equal(canceled.target, "StreamCanceled");
            assert.deepEqual(canceled.arguments, []);
            assert.ok(completion, `no Completion; received ${JSON.stringify(messages)}`);
            assertEmptyCompletion(completion, "inf");
        });
    });

    it("CancelInvocation of a running InfiniteStream: StreamCanceled and a Completion without error", opts, async () => {
        await jsonHub(async (ws) => {
            await ws.sendJson({ type: 4, invocationId: "inf", target: "InfiniteStream", arguments: [] });
            await ws.sendJson({ type: 1, invocationId: "1", target: "Echo", arguments: ["meanwhile"] });
            assertJsonCompletion(assert, await ws.nextJson(), "1", "meanwhile");
            await ws.sendJson({ type: 5, invocationId: "inf" });
            const messages = await readJson(ws, 2);
            assert.ok(messages.some((m) => m.type === 1 && m.target === "StreamCanceled"), JSON.stringify(messages));
            assertEmptyCompletion(messages.find((m) => m.type === 3), "inf");
        });
    });

    it("a CancelInvocation of an unknown id is ignored", opts, async () => {
        await jsonHub(async (ws) => {
            await ws.sendJson({ type: 5, invocationId: "nope" });
            await ws.sendJson({ type: 1, invocationId: "1", target: "Echo", arguments: ["alive"] });
            assertJsonCompletion(assert, await ws.nextJson(), "1", "alive");
        });
    });

    it("a second stream with an invocation id in use is refused with \"Invocation ID '…' is already in use.\"", opts, async () => {
        await jsonHub(async (ws) => {
            await ws.sendJson({ type: 4, invocationId: "dup", target: "InfiniteStream", arguments: [] });
            await ws.sendJson({ type: 4, invocationId: "dup", target: "Stream", arguments: [] });
            assertErrorCompletion(await ws.nextJson(), "dup", "Invocation ID 'dup' is already in use.");
            await ws.sendJson({ type: 5, invocationId: "dup" });
            const messages = await readJson(ws, 2);
            assert.ok(messages.some((m) => m.type === 1 && m.target === "StreamCanceled"), JSON.stringify(messages));
        });
    });

    it("upload stream: Invocation with streamIds, StreamItems and a Completion for the stream", opts, async () => {
        await jsonHub(async (ws) => {
            await ws.sendJson({ type: 1, invocationId: "c", target: "StreamingConcat", arguments: [], streamIds: ["up"] });
            await ws.sendJson(
                { type: 2, invocationId: "up", item: "a" },
                { type: 2, invocationId: "up", item: "b" });
            await ws.sendJson({ type: 2, invocationId: "up", item: "c" }, { type: 3, invocationId: "up" });
            assertJsonCompletion(assert, await ws.nextJson(), "c", "abc");
        });
    });

    it("upload stream completed with an error fails the method with HubException: <error>", opts, async () => {
        await jsonHub(async (ws) => {
            await ws.sendJson({ type: 1, invocationId: "c", target: "StreamingConcat", arguments: [], streamIds: ["up"] });
            await ws.sendJson({ type: 2, invocationId: "up", item: "a" }, { type: 3, invocationId: "up", error: "Something bad" });
            assertErrorCompletion(await ws.nextJson(), "c",
                "An unexpected error occurred invoking 'StreamingConcat' on the server. HubException: Something bad");
        });
    });

    it("two upload streams of one connection are kept apart", opts, async () => {
        await jsonHub(async (ws) => {
            await ws.sendJson(
                { type: 1, invocationId: "1", target: "StreamingConcat", arguments: [], streamIds: ["p"] },
                { type: 1, invocationId: "2", target: "StreamingConcat", arguments: [], streamIds: ["q"] });
            await ws.sendJson(
                { type: 2, invocationId: "p", item: "p1" },
                { type: 2, invocationId: "q", item: "q1" },
                { type: 2, invocationId: "p", item: "p2" },
                { type: 3, invocationId: "q" },
                { type: 2, invocationId: "p", item: "p3" },
                { type: 3, invocationId: "p" });
            const messages = await readJson(ws, 2);
            const byId = Object.fromEntries(messages.map((m) => [m.invocationId, m]));
            assertJsonCompletion(assert, byId["1"], "1", "p1p2p3");
            assertJsonCompletion(assert, byId["2"], "2", "q1");
        });
    });
});

describe("raw WebSocket streaming, MessagePack", () => {
    it("StreamInvocation of Stream: [2,{},id,item] × 3 then [3,{},id,2] (void)", opts, async () => {
        await msgpackHub(async (ws) => {
            await ws.sendMsgpack([4, {}, "s", "Stream", []]);
            const messages = [];
            while (messages.length < 4) {
                messages.push((await ws.nextMsgpack()).msg);
            }
            assert.deepEqual(messages, [[2, {}, "s", "a"], [2, {}, "s", "b"], [2, {}, "s", "c"], [3, {}, "s", 2]]);
        });
    });

    it("StreamInvocation and CancelInvocation in one frame: StreamCanceled and a void Completion", opts, async () => {
        await msgpackHub(async (ws) => {
            await ws.sendMsgpack([4, {}, "inf", "InfiniteStream", []], [5, {}, "inf"]);
            const messages = [];
            while (messages.length < 2) {
                messages.push((await ws.nextMsgpack()).msg);
            }
            const canceled = messages.find((m) => m[0] === 1);
            assert.ok(canceled, `no StreamCanceled call; received ${JSON.stringify(messages)}`);
            assert.equal(canceled[3], "StreamCanceled");
            assert.deepEqual(messages.find((m) => m[0] === 3), [3, {}, "inf", 2]);
        });
    });

    it("upload stream with a 6-item Invocation carrying streamIds", opts, async () => {
        await msgpackHub(async (ws) => {
            await ws.sendMsgpack([1, {}, "c", "StreamingConcat", [], ["up"]]);
            await ws.sendMsgpack([2, {}, "up", "x"], [2, {}, "up", "y"], [3, {}, "up", 2]);
            assert.deepEqual((await ws.nextMsgpack()).msg, [3, {}, "c", 3, "xy"]);
        });
    });
});

describe("client results on the wire (GET /clientresult/{connectionId})", () => {
    async function connectionId(ws, json) {
        if (json) {
            await ws.sendJson({ type: 1, invocationId: "id", target: "GetCallerConnectionId", arguments: [] });
            return (await ws.nextJson()).result;
        }
        await ws.sendMsgpack([1, {}, "id", "GetCallerConnectionId", []]);
        return (await ws.nextMsgpack()).msg[4];
    }

    it("JSON: the server sends an Invocation with an id to Result; a result Completion becomes the body", opts, async () => {
        await jsonHub(async (ws) => {
            const id = await connectionId(ws, true);
            const body = http("GET", `${server.url}/clientresult/${encodeURIComponent(id)}`);
            const inv = await ws.nextJson();
            assert.equal(inv.type, 1);
            assert.equal(inv.target, "Result");
            assert.equal(typeof inv.invocationId, "string", `a client-result Invocation needs an id: ${JSON.stringify(inv)}`);
            await ws.sendJson({ type: 3, invocationId: inv.invocationId, result: 7 });
            const res = await withTimeout(body, WAIT_MS, "GET /clientresult");
            assert.equal(res.status, 200);
            assert.equal(res.text, "7");
        });
    });

    it("JSON: an error Completion becomes the body", opts, async () => {
        await jsonHub(async (ws) => {
            const id = await connectionId(ws, true);
            const body = http("GET", `${server.url}/clientresult/${encodeURIComponent(id)}`);
            const inv = await ws.nextJson();
            await ws.sendJson({ type: 3, invocationId: inv.invocationId, error: "nope from the client" });
            assert.equal((await withTimeout(body, WAIT_MS, "GET /clientresult")).text, "nope from the client");
        });
    });

    it("JSON: a stray Completion with an unknown id is ignored", opts, async () => {
        await jsonHub(async (ws) => {
            await ws.sendJson({ type: 3, invocationId: "s-unknown", result: 1 });
            await ws.sendJson({ type: 1, invocationId: "1", target: "Echo", arguments: ["alive"] });
            assertJsonCompletion(assert, await ws.nextJson(), "1", "alive");
        });
    });

    it("MessagePack: the Result Invocation answered with [3,{},id,3,11]", opts, async () => {
        await msgpackHub(async (ws) => {
            const id = await connectionId(ws, false);
            const body = http("GET", `${server.url}/clientresult/${encodeURIComponent(id)}`);
            const { msg: inv } = await ws.nextMsgpack();
            assert.equal(inv[0], 1);
            assert.equal(inv[3], "Result");
            assert.equal(typeof inv[2], "string");
            await ws.sendMsgpack([3, {}, inv[2], 3, 11]);
            assert.equal((await withTimeout(body, WAIT_MS, "GET /clientresult")).text, "11");
        });
    });

    it("a connection that closes while its result is pending: the body is an error, not a number", opts, async () => {
        const ws = await openHubSocket(server.url, "/testhub");
        await ws.handshake("json", 1);
        const id = await connectionId(ws, true);
        const body = http("GET", `${server.url}/clientresult/${encodeURIComponent(id)}`);
        await ws.nextJson();
        ws.terminate();
        const res = await withTimeout(body, WAIT_MS, "GET /clientresult after the client left");
        assert.ok(res.text.length > 0 && !/^-?\d+$/.test(res.text), `body ${JSON.stringify(res.text)}`);
    });
});

describe("server-to-client Invocations without arguments", () => {
    // .NET writes `"arguments":[]` (JSON) and an empty array plus the stream-id array (MessagePack,
    // always 6 items) for a SendAsync/InvokeAsync without arguments; null/nil is not an arguments
    // array, and stricter clients reject it.
    it("JSON: StreamCanceled and Result carry \"arguments\":[]", opts, async () => {
        await jsonHub(async (ws) => {
            await ws.sendJson({ type: 4, invocationId: "inf", target: "InfiniteStream", arguments: [] });
            await ws.sendJson({ type: 1, invocationId: "1", target: "GetCallerConnectionId", arguments: [] });
            const id = (await ws.nextJson()).result;
            await ws.sendJson({ type: 5, invocationId: "inf" });
            const [canceled] = await readJson(ws, 1, (m) => m.type === 1);
            assert.equal(canceled.target, "StreamCanceled");
            assert.deepEqual(canceled.arguments, [], `StreamCanceled: ${JSON.stringify(canceled)}`);
            const body = http("GET", `${server.url}/clientresult/${encodeURIComponent(id)}`);
            const [inv] = await readJson(ws, 1, (m) => m.type === 1);
            await ws.sendJson({ type: 3, invocationId: inv.invocationId, result: 1 });
            await withTimeout(body, WAIT_MS, "GET /clientresult");
            assert.equal(inv.target, "Result");
            assert.deepEqual(inv.arguments, [], `Result: ${JSON.stringify(inv)}`);
        });
    });

    it("MessagePack: StreamCanceled and Result are [1, {}, id|nil, target, [], []]", opts, async () => {
        await msgpackHub(async (ws) => {
            await ws.sendMsgpack([4, {}, "inf", "InfiniteStream", []]);
            await ws.sendMsgpack([1, {}, "1", "GetCallerConnectionId", []]);
            const id = (await ws.nextMsgpack()).msg[4];
            await ws.sendMsgpack([5, {}, "inf"]);
            let canceled;
            while (!canceled) {
                const { msg } = await ws.nextMsgpack();
                if (msg[0] === 1) {
                    canceled = msg;
                }
            }
            const body = http("GET", `${server.url}/clientresult/${encodeURIComponent(id)}`);
            let inv;
            while (!inv) {
                const { msg } = await ws.nextMsgpack();
                if (msg[0] === 1) {
                    inv = msg;
                }
            }
            await ws.sendMsgpack([3, {}, inv[2], 3, 1]);
            await withTimeout(body, WAIT_MS, "GET /clientresult");
            assert.deepEqual(canceled, [1, {}, null, "StreamCanceled", [], []]);
            assert.equal(typeof inv[2], "string");
            assert.deepEqual(inv, [1, {}, inv[2], "Result", [], []]);
        });
    });
});
