// Server-Sent Events and long polling over raw HTTP (fetch): status codes, headers and bodies as
// ASP.NET Core's HttpConnectionDispatcher / transports produce them. In service mode every case
// runs against the relay's transports (reached through the app server's redirect, with the
// relay's token as access_token, see hubEndpoint()).

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { useServer } from "../lib/server.mjs";
import { delay, rejection, TEST_TIMEOUT, WAIT_MS, withTimeout } from "../lib/hub.mjs";
import {
    assertJsonCompletion, frameMsgpack, http, hubEndpoint, parseVarIntFrame, RawSocket, RS, SseStream, UpgradeRefused,
} from "../lib/raw.mjs";
import { decode as msgpackDecode } from "@msgpack/msgpack";

const server = useServer();
const opts = { timeout: TEST_TIMEOUT };

const HANDSHAKE_JSON = JSON.stringify({ protocol: "json", version: 1 }) + RS;
const HANDSHAKE_MSGPACK = JSON.stringify({ protocol: "messagepack", version: 1 }) + RS;
const SSE_MSGPACK_ERROR = "Cannot use the 'messagepack' protocol on the current transport. The transport does not support 'Binary' transfer format.";

const record = (obj) => JSON.stringify(obj) + RS;

/** Splits a body of JSON records; returns the parsed messages (pings dropped). */
function jsonRecords(text) {
    assert.ok(text.endsWith(RS), `body does not end with a record separator: ${JSON.stringify(text)}`);
    return text.split(RS).slice(0, -1).map((r) => JSON.parse(r)).filter((m) => m.type !== 6);
}

/** How to reach the hub at `path` (self-hosted: the server; service mode: the relay). */
const hubAt = (path = "/testhub") => hubEndpoint(server.url, path);

/**
 * Negotiates a connection to the hub at `path`; returns its token, id, transport URL
 * (`?id=<token>`, plus the relay's access_token in service mode) and the hub endpoint.
 */
async function newConnection(path = "/testhub") {
    const hub = await hubAt(path);
    const res = await hub.negotiate();
    assert.equal(res.status, 200, res.text);
    const token = res.json.connectionToken;
    return { token, id: res.json.connectionId, url: hub.connectionUrl(token), hub };
}

/** POSTs a send body (string or bytes) and checks the 200. */
async function post(url, body) {
    const res = await http("POST", url, { body });
    assert.equal(res.status, 200, `POST answered ${res.status}: ${res.text}`);
    return res;
}

/** Polls until a non-empty 200 body arrives (empty 200s are allowed in between). */
async function pollData(url, ms = WAIT_MS) {
    const deadline = Date.now() + ms;
    for (;;) {
        const res = await withTimeout(http("GET", url), ms, "a long poll");
        assert.equal(res.status, 200, `poll answered ${res.status}: ${res.text}`);
        if (res.bytes.length > 0) {
            return res;
        }
        assert.ok(Date.now() < deadline, "no data within the deadline");
    }
}

describe("Server-Sent Events over raw HTTP", () => {
    it("the SSE response has the event-stream headers and starts with a comment line at once", opts, async () => {
        const { url } = await newConnection();
        const sse = await SseStream.open(url);
        try {
            assert.equal(sse.status, 200);
            assert.match(sse.headers.get("content-type") ?? "", /^text\/event-stream/);
            assert.match(sse.headers.get("cache-control") ?? "", /no-cache/);
            const first = await sse.firstBytes(2000);
            assert.ok(first.startsWith(":"), `the response should start with a comment (":\\r\\n"), got ${JSON.stringify(first)}`);
        } finally {
            sse.close();
        }
    });

    it("handshake and Echo: POSTed records come back as data events", opts, async () => {
        const { url, id } = await newConnection();
        const sse = await SseStream.open(url);
        try {
            await post(url, HANDSHAKE_JSON);
            assert.equal(await sse.nextEvent(), "{}" + RS);
            await post(url, record({ type: 1, invocationId: "1", target: "Echo", arguments: ["über SSE ✓"] }));
            assertJsonCompletion(assert, JSON.parse((await sse.nextEvent()).slice(0, -1)), "1", "über SSE ✓");
            await post(url, record({ type: 1, invocationId: "2", target: "GetActiveTransportName", arguments: [] })
                + record({ type: 1, invocationId: "3", target: "GetCallerConnectionId", arguments: [] }));
            const messages = [];
            while (messages.length < 2) {
                messages.push(...jsonRecords(await sse.nextEvent()));
            }
            assertJsonCompletion(assert, messages[0], "2", "ServerSentEvents");
            assertJsonCompletion(assert, messages[1], "3", id);
        } finally {
            sse.close();
        }
    });

    it("a MessagePack handshake over SSE is refused with the transfer-format error", opts, async () => {
        const { url } = await newConnection();
        const sse = await SseStream.open(url);
        try {
            await post(url, HANDSHAKE_MSGPACK);
            const event = await sse.nextEvent();
            assert.ok(event.endsWith(RS), `not a handshake record: ${JSON.stringify(event)}`);
            assert.deepEqual(JSON.parse(event.slice(0, -1)), { error: SSE_MSGPACK_ERROR });
            await sse.end();
        } finally {
            sse.close();
        }
    });

    it("an SSE GET without an id answers 400, with an unknown id 404", opts, async () => {
        const hub = await hubAt();
        const noId = await http("GET", hub.connectionUrl(), { headers: { Accept: "text/event-stream" } });
        assert.equal(noId.status, 400);
        assert.equal(noId.text, "Connection ID required");
        const unknown = await http("GET", hub.connectionUrl("doesNotExist123"), { headers: { Accept: "text/event-stream" } });
        assert.equal(unknown.status, 404);
        assert.equal(unknown.text, "No Connection with that ID");
    });

    it("DELETE on an SSE connection answers 400", opts, async () => {
        const { url } = await newConnection();
        const sse = await SseStream.open(url);
        try {
            await post(url, HANDSHAKE_JSON);
            assert.equal(await sse.nextEvent(), "{}" + RS);
            const res = await http("DELETE", url);
            assert.equal(res.status, 400);
            assert.equal(res.text, "Cannot terminate this connection using the DELETE endpoint.");
        } finally {
            sse.close();
        }
    });

    it("a long poll on an SSE connection answers 400 (no transport change mid-connection)", opts, async () => {
        const { url } = await newConnection();
        const sse = await SseStream.open(url);
        try {
            await sse.firstBytes();
            const res = await http("GET", url);
            assert.equal(res.status, 400);
            assert.equal(res.text, "Cannot change transports mid-connection");
        } finally {
            sse.close();
        }
    });

    it("SSE works on /testhub-nowebsockets", opts, async () => {
        const { url } = await newConnection("/testhub-nowebsockets");
        const sse = await SseStream.open(url);
        try {
            await post(url, HANDSHAKE_JSON + record({ type: 1, invocationId: "1", target: "GetActiveTransportName", arguments: [] }));
            const messages = [];
            while (messages.length < 1) {
                const event = await sse.nextEvent();
                if (messages.length === 0 && event.startsWith("{}" + RS)) {
                    const rest = event.slice(3);
                    if (rest) {
                        messages.push(...jsonRecords(rest));
                    }
                    continue;
                }
                messages.push(...jsonRecords(event));
            }
            assertJsonCompletion(assert, messages[0], "1", "ServerSentEvents");
        } finally {
            sse.close();
        }
    });
});

describe("long polling over raw HTTP", () => {
    it("the first poll answers 200 with an empty body at once; the handshake answer comes with the next poll", opts, async () => {
        const { url } = await newConnection();
        const first = await withTimeout(http("GET", url), 2000, "the first poll");
        assert.equal(first.status, 200);
        assert.equal(first.bytes.length, 0, `the first poll must be empty, got ${JSON.stringify(first.text)}`);
        assert.ok(first.ms < 1500, `the first poll took ${first.ms} ms`);
        await post(url, HANDSHAKE_JSON);
        const second = await pollData(url);
        assert.equal(second.text, "{}" + RS);
        assert.match(second.headers.get("content-type") ?? "", /^application\/octet-stream/);
        await post(url, record({ type: 1, invocationId: "1", target: "GetActiveTransportName", arguments: [] }));
        const third = await pollData(url);
        const [completion] = jsonRecords(third.text);
        assertJsonCompletion(assert, completion, "1", "LongPolling");
        await http("DELETE", url);
    });

    it("a handshake POSTed before the first poll is kept (signalrcore does this)", opts, async () => {
        const { url } = await newConnection();
        await post(url, HANDSHAKE_JSON);
        const first = await withTimeout(http("GET", url), 2000, "the first poll");
        assert.equal(first.status, 200);
        let text = first.text;
        if (text === "") {
            text = (await pollData(url)).text;
        }
        assert.equal(text, "{}" + RS);
        await http("DELETE", url);
    });

    it("records of one POST and of several server messages are batched and kept in order", opts, async () => {
        const { url } = await newConnection();
        await http("GET", url);
        await post(url, HANDSHAKE_JSON);
        assert.equal((await pollData(url)).text, "{}" + RS);
        await post(url, record({ type: 1, target: "InvokeWithString", arguments: ["m1"] })
            + record({ type: 1, target: "InvokeWithString", arguments: ["m2"] })
            + record({ type: 1, invocationId: "7", target: "Echo", arguments: ["last"] }));
        await delay(100);
        const messages = [];
        while (messages.length < 3) {
            messages.push(...jsonRecords((await pollData(url)).text));
        }
        assert.deepEqual(messages.slice(0, 2).map((m) => [m.type, m.target, m.arguments]),
            [[1, "Message", ["m1"]], [1, "Message", ["m2"]]]);
        assertJsonCompletion(assert, messages[2], "7", "last");
        await http("DELETE", url);
    });

    it("MessagePack over long polling: binary poll bodies of VarInt-framed messages", opts, async () => {
        const { url } = await newConnection();
        await http("GET", url);
        await post(url, HANDSHAKE_MSGPACK);
        assert.equal((await pollData(url)).text, "{}" + RS);
        await post(url, frameMsgpack([1, {}, "1", "Echo", ["bin ✓"]]));
        let bytes = (await pollData(url)).bytes;
        const messages = [];
        for (;;) {
            const frame = parseVarIntFrame(bytes);
            if (!frame) {
                break;
            }
            messages.push(msgpackDecode(frame.body));
            bytes = bytes.subarray(frame.end);
        }
        assert.equal(bytes.length, 0, "the poll body must hold whole messages");
        const completions = messages.filter((m) => m[0] === 3);
        assert.deepEqual(completions, [[3, {}, "1", 3, "bin ✓"]]);
        await http("DELETE", url);
    });

    it("a new poll ends the pending one with 204", opts, async () => {
        const { url } = await newConnection();
        await http("GET", url);
        await post(url, HANDSHAKE_JSON);
        assert.equal((await pollData(url)).text, "{}" + RS);
        const pending = http("GET", url);
        await delay(200);
        const newer = http("GET", url);
        const old = await withTimeout(pending, 2000, "the superseded poll");
        assert.equal(old.status, 204);
        await post(url, record({ type: 1, invocationId: "1", target: "Echo", arguments: ["to the newer poll"] }));
        const res = await withTimeout(newer, WAIT_MS, "the newer poll");
        assert.equal(res.status, 200);
        assertJsonCompletion(assert, jsonRecords(res.text)[0], "1", "to the newer poll");
        await http("DELETE", url);
    });

    it("DELETE answers 202, ends the pending poll with 204, and the connection is gone (404)", opts, async () => {
        const { url } = await newConnection();
        await http("GET", url);
        await post(url, HANDSHAKE_JSON);
        assert.equal((await pollData(url)).text, "{}" + RS);
        const pending = http("GET", url);
        await delay(200);
        const del = await withTimeout(http("DELETE", url), 2000, "DELETE");
        assert.equal(del.status, 202, `DELETE answered ${del.status}: ${del.text}`);
        const poll = await withTimeout(pending, 2000, "the pending poll after DELETE");
        assert.equal(poll.status, 204, `the pending poll answered ${poll.status}: ${JSON.stringify(poll.text)}`);
        await delay(100);
        const after = await http("GET", url);
        assert.equal(after.status, 404, `a poll after DELETE answered ${after.status}: ${after.text}`);
        const send = await http("POST", url, { body: record({ type: 1, target: "Echo", arguments: ["x"] }) });
        assert.equal(send.status, 404, `a POST after DELETE answered ${send.status}: ${send.text}`);
    });

    it("DELETE of an unknown id answers 404, without an id 400", opts, async () => {
        const hub = await hubAt();
        const unknown = await http("DELETE", hub.connectionUrl("doesNotExist123"));
        assert.equal(unknown.status, 404);
        const noId = await http("DELETE", hub.connectionUrl());
        assert.equal(noId.status, 400);
    });

    it("a poll or POST without an id answers 400 \"Connection ID required\"", opts, async () => {
        const hub = await hubAt();
        const poll = await http("GET", hub.connectionUrl());
        assert.equal(poll.status, 400);
        assert.equal(poll.text, "Connection ID required");
        const send = await http("POST", hub.connectionUrl(), { body: HANDSHAKE_JSON });
        assert.equal(send.status, 400);
        assert.equal(send.text, "Connection ID required");
    });
});

describe("transport restrictions over raw HTTP", () => {
    it("negotiate of /testhub lists WebSockets, ServerSentEvents, LongPolling in this order", opts, async () => {
        const res = await (await hubAt()).negotiate();
        assert.deepEqual(res.json.availableTransports, [
            { transport: "WebSockets", transferFormats: ["Text", "Binary"] },
            { transport: "ServerSentEvents", transferFormats: ["Text"] },
            { transport: "LongPolling", transferFormats: ["Text", "Binary"] },
        ]);
    });

    it("negotiate of /testhub-nowebsockets lists only ServerSentEvents and LongPolling", opts, async () => {
        const res = await (await hubAt("/testhub-nowebsockets")).negotiate();
        assert.equal(res.status, 200, res.text);
        assert.deepEqual(res.json.availableTransports, [
            { transport: "ServerSentEvents", transferFormats: ["Text"] },
            { transport: "LongPolling", transferFormats: ["Text", "Binary"] },
        ]);
    });

    it("a WebSocket to /testhub-nowebsockets is refused with 404", opts, async () => {
        // no id: a connection made on the upgrade (the relay makes one too, given its token)
        const hub = await hubAt("/testhub-nowebsockets");
        const err = await rejection(RawSocket.open(hub.wsUrl()), "WebSocket open");
        assert.ok(err instanceof UpgradeRefused, `expected an HTTP refusal, got ${err}`);
        assert.equal(err.statusCode, 404);
        assert.equal(err.body, "WebSockets transport not supported by this end point type");
    });

    it("a WebSocket with a negotiated id of /testhub-nowebsockets is refused with 404", opts, async () => {
        const { token, hub } = await newConnection("/testhub-nowebsockets");
        const err = await rejection(RawSocket.open(hub.wsUrl(token)), "WebSocket open");
        assert.ok(err instanceof UpgradeRefused, `expected an HTTP refusal, got ${err}`);
        assert.equal(err.statusCode, 404);
    });

    it("POST to a WebSocket connection answers 405", opts, async () => {
        const { token, url, hub } = await newConnection();
        const ws = await RawSocket.open(hub.wsUrl(token));
        try {
            assert.equal((await ws.handshake("json", 1)).data.toString("utf8"), "{}" + RS);
            const res = await http("POST", url, { body: record({ type: 1, invocationId: "1", target: "Echo", arguments: ["x"] }) });
            assert.equal(res.status, 405);
            assert.equal(res.text, "POST requests are not allowed for WebSocket connections.");
        } finally {
            await ws.close();
        }
    });

    it("PUT on the hub path answers 405", opts, async () => {
        const { url } = await newConnection();
        const res = await http("PUT", url, { body: "x" });
        assert.equal(res.status, 405);
    });
});
