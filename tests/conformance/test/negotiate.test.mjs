// The negotiate endpoint over raw HTTP (fetch), and WebSocket connects with its results.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { useServer } from "../lib/server.mjs";
import { TEST_TIMEOUT } from "../lib/hub.mjs";
import { assertJsonCompletion, negotiate, RawSocket, RS, UpgradeRefused } from "../lib/raw.mjs";
import { rejection } from "../lib/hub.mjs";

const server = useServer();
const opts = { timeout: TEST_TIMEOUT };

const URL_SAFE = /^[A-Za-z0-9_-]+$/;

function setCookies(headers) {
    return headers.getSetCookie();
}

function findCookie(list, name) {
    return list.find((c) => c.startsWith(`${name}=`));
}

/** Opens a WebSocket to /testhub with the given query, does a JSON handshake and one Echo. */
async function handshakeAndEcho(query) {
    const ws = await RawSocket.open(`${server.wsUrl}/testhub${query}`);
    try {
        const hs = await ws.handshake("json", 1);
        assert.equal(hs.data.toString("utf8"), "{}" + RS);
        await ws.sendJson({ type: 1, invocationId: "1", target: "Echo", arguments: ["via id"] });
        assertJsonCompletion(assert, await ws.nextJson(), "1", "via id");
        return ws;
    } catch (err) {
        ws.terminate();
        throw err;
    }
}

describe("negotiate", () => {
    it("POST /testhub/negotiate?negotiateVersion=1 answers the version 1 form", opts, async (t) => {
        const res = await negotiate(server.url, "/testhub");
        assert.equal(res.status, 200, res.text);
        assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
        const body = res.json;
        assert.ok(body && typeof body === "object", `not JSON: ${res.text}`);
        assert.equal(body.negotiateVersion, 1);
        assert.equal(typeof body.connectionId, "string");
        assert.equal(typeof body.connectionToken, "string");
        assert.ok(body.connectionId.length > 0);
        assert.ok(body.connectionToken.length > 0);
        assert.notEqual(body.connectionToken, body.connectionId, "connectionToken must differ from connectionId");
        // the client appends ?id=<token> without encoding it
        assert.match(body.connectionToken, URL_SAFE);
        assert.match(body.connectionId, URL_SAFE);
        assert.ok(!("ProtocolVersion" in body), "ProtocolVersion makes the TS client abort (legacy ASP.NET SignalR)");
        assert.ok(!("error" in body), `unexpected error: ${res.text}`);
        assert.ok(!("url" in body), `unexpected redirect: ${res.text}`);
        assert.notEqual(body.useStatefulReconnect, true, "stateful reconnect was not requested");
        assert.ok(Array.isArray(body.availableTransports));
        const names = body.availableTransports.map((tr) => tr.transport);
        t.diagnostic(`availableTransports: ${JSON.stringify(body.availableTransports)}`);
        assert.equal(new Set(names).size, names.length, `duplicate transports: ${JSON.stringify(names)}`);
        const byName = Object.fromEntries(body.availableTransports.map((tr) => [tr.transport, tr.transferFormats]));
        assert.deepEqual(byName.WebSockets, ["Text", "Binary"]);
        // Server-Sent Events and long polling are covered by a later suite; when listed, their
        // transfer formats must be right (SSE is text only).
        if ("ServerSentEvents" in byName) {
            assert.deepEqual(byName.ServerSentEvents, ["Text"]);
        }
        if ("LongPolling" in byName) {
            assert.deepEqual(byName.LongPolling, ["Text", "Binary"]);
        }
        for (const name of names) {
            assert.ok(["WebSockets", "ServerSentEvents", "LongPolling"].includes(name), `unknown transport ${name}`);
        }
    });

    it("negotiate sets testCookie, testCookie2 and an already-expired expiredCookie", opts, async () => {
        const res = await negotiate(server.url, "/testhub");
        assert.equal(res.status, 200);
        const cookies = setCookies(res.headers);
        const c1 = findCookie(cookies, "testCookie");
        const c2 = findCookie(cookies, "testCookie2");
        const expired = findCookie(cookies, "expiredCookie");
        assert.ok(c1, `no testCookie in ${JSON.stringify(cookies)}`);
        assert.ok(c2, `no testCookie2 in ${JSON.stringify(cookies)}`);
        assert.ok(expired, `no expiredCookie in ${JSON.stringify(cookies)}`);
        assert.equal(c1.split(";")[0], "testCookie=testValue");
        assert.equal(c2.split(";")[0], "testCookie2=testValue2");
        const attrs = Object.fromEntries(expired.split(";").slice(1).map((a) => {
            const [k, ...v] = a.trim().split("=");
            return [k.toLowerCase(), v.join("=")];
        }));
        const expiresInPast = attrs.expires !== undefined && Date.parse(attrs.expires) < Date.now();
        const maxAgeNonPositive = attrs["max-age"] !== undefined && Number(attrs["max-age"]) <= 0;
        assert.ok(expiresInPast || maxAgeNonPositive, `expiredCookie is not expired: ${expired}`);
    });

    it("each negotiate creates a new connection", opts, async () => {
        const a = await negotiate(server.url, "/testhub");
        const b = await negotiate(server.url, "/testhub");
        assert.notEqual(a.json.connectionId, b.json.connectionId);
        assert.notEqual(a.json.connectionToken, b.json.connectionToken);
    });

    it("POST without negotiateVersion answers the version 0 form (no connectionToken)", opts, async () => {
        const res = await negotiate(server.url, "/testhub", { query: "" });
        assert.equal(res.status, 200, res.text);
        const body = res.json;
        assert.equal(typeof body.connectionId, "string");
        assert.ok(body.connectionId.length > 0);
        assert.ok(!("connectionToken" in body), `version 0 must not include connectionToken: ${res.text}`);
        assert.ok(body.negotiateVersion === undefined || body.negotiateVersion === 0,
            `negotiateVersion must be 0 (or absent): ${res.text}`);
        const byName = Object.fromEntries(body.availableTransports.map((t) => [t.transport, t.transferFormats]));
        assert.deepEqual(byName.WebSockets, ["Text", "Binary"]);
    });

    it("a negotiateVersion above the server's is answered with version 1", opts, async () => {
        const res = await negotiate(server.url, "/testhub", { query: "?negotiateVersion=5" });
        assert.equal(res.status, 200, res.text);
        assert.equal(res.json.negotiateVersion, 1);
        assert.equal(typeof res.json.connectionToken, "string");
    });

    it("a non-integer negotiateVersion is answered with the error form (HTTP 200)", opts, async () => {
        const res = await negotiate(server.url, "/testhub", { query: "?negotiateVersion=abc" });
        assert.equal(res.status, 200, res.text);
        assert.deepEqual(res.json, { error: "The client requested a non-integer protocol version." });
    });

    it("GET /testhub/negotiate answers 405", opts, async () => {
        const res = await negotiate(server.url, "/testhub", { method: "GET" });
        assert.equal(res.status, 405);
    });

    it("hub paths are case-insensitive (POST /TestHub/negotiate)", opts, async () => {
        const res = await negotiate(server.url, "/TestHub");
        assert.equal(res.status, 200, res.text);
        assert.equal(res.json.negotiateVersion, 1);
        assert.equal(typeof res.json.connectionId, "string");
    });

    it("POST /chathub/negotiate and /echo/negotiate work too", opts, async () => {
        for (const path of ["/chathub", "/echo"]) {
            const res = await negotiate(server.url, path);
            assert.equal(res.status, 200, `${path}: ${res.text}`);
            assert.equal(res.json.negotiateVersion, 1, path);
            assert.equal(typeof res.json.connectionToken, "string", path);
        }
    });

    it("a version 1 connectionToken is accepted as ?id= on the WebSocket", opts, async () => {
        const res = await negotiate(server.url, "/testhub");
        const ws = await handshakeAndEcho(`?id=${res.json.connectionToken}`);
        await ws.send(JSON.stringify({ type: 1, invocationId: "2", target: "GetCallerConnectionId", arguments: [] }) + RS);
        assertJsonCompletion(assert, await ws.nextJson(), "2", res.json.connectionId);
        await ws.close();
    });

    it("a version 0 connectionId is accepted as ?id= on the WebSocket", opts, async () => {
        const res = await negotiate(server.url, "/testhub", { query: "" });
        const ws = await handshakeAndEcho(`?id=${res.json.connectionId}`);
        await ws.close();
    });

    it("a version 1 connectionId (not the token) is refused as ?id= with 404", opts, async () => {
        const res = await negotiate(server.url, "/testhub");
        const err = await rejection(RawSocket.open(`${server.wsUrl}/testhub?id=${res.json.connectionId}`), "WebSocket open");
        assert.ok(err instanceof UpgradeRefused, `expected an HTTP refusal, got ${err}`);
        assert.equal(err.statusCode, 404);
    });

    it("an unknown ?id= is refused with 404", opts, async () => {
        const err = await rejection(RawSocket.open(`${server.wsUrl}/testhub?id=doesNotExist123`), "WebSocket open");
        assert.ok(err instanceof UpgradeRefused, `expected an HTTP refusal, got ${err}`);
        assert.equal(err.statusCode, 404);
    });

    it("a second WebSocket for an id that already has one is refused with 409", opts, async () => {
        const res = await negotiate(server.url, "/testhub");
        const first = await handshakeAndEcho(`?id=${res.json.connectionToken}`);
        try {
            const err = await rejection(RawSocket.open(`${server.wsUrl}/testhub?id=${res.json.connectionToken}`), "second WebSocket open");
            assert.ok(err instanceof UpgradeRefused, `expected an HTTP refusal, got ${err}`);
            assert.equal(err.statusCode, 409);
            // the first socket is unaffected
            await first.sendJson({ type: 1, invocationId: "9", target: "Echo", arguments: ["first"] });
            assertJsonCompletion(assert, await first.nextJson(), "9", "first");
        } finally {
            await first.close();
        }
    });
});
