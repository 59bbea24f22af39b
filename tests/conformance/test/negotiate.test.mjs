// The negotiate endpoint over raw HTTP (fetch), and WebSocket connects with its results. In
// service mode the hub's negotiate and WebSockets are the relay's (reached through the app
// server's redirect, see hubEndpoint()), and the redirect itself is checked too.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { useServer } from "../lib/server.mjs";
import { SERVICE_MODE, TEST_TIMEOUT } from "../lib/hub.mjs";
import { assertJsonCompletion, http, hubEndpoint, negotiate, RawSocket, RS, UpgradeRefused } from "../lib/raw.mjs";
import { rejection } from "../lib/hub.mjs";

const server = useServer();
const opts = { timeout: TEST_TIMEOUT };

/** How to reach /testhub (self-hosted: the server; service mode: the relay, with its token). */
const testhub = () => hubEndpoint(server.url, "/testhub");

const URL_SAFE = /^[A-Za-z0-9_-]+$/;

function setCookies(headers) {
    return headers.getSetCookie();
}

function findCookie(list, name) {
    return list.find((c) => c.startsWith(`${name}=`));
}

/** Opens a WebSocket to the hub with `?id=<id>`, does a JSON handshake and one Echo. */
async function handshakeAndEcho(hub, id) {
    const ws = await RawSocket.open(hub.wsUrl(id));
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
        const res = await (await testhub()).negotiate();
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

    // The app server's own negotiate, in service mode the redirect: clients keep its cookies for
    // the hub's requests (the relay forwards them), so it sets them in both modes.
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
        const hub = await testhub();
        const a = await hub.negotiate();
        const b = await hub.negotiate();
        assert.notEqual(a.json.connectionId, b.json.connectionId);
        assert.notEqual(a.json.connectionToken, b.json.connectionToken);
    });

    it("POST without negotiateVersion answers the version 0 form (no connectionToken)", opts, async () => {
        const res = await (await testhub()).negotiate({ query: "" });
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
        const res = await (await testhub()).negotiate({ query: "negotiateVersion=5" });
        assert.equal(res.status, 200, res.text);
        assert.equal(res.json.negotiateVersion, 1);
        assert.equal(typeof res.json.connectionToken, "string");
    });

    it("a non-integer negotiateVersion is answered with the error form (HTTP 200)", opts, async () => {
        const res = await (await testhub()).negotiate({ query: "negotiateVersion=abc" });
        assert.equal(res.status, 200, res.text);
        assert.deepEqual(res.json, { error: "The client requested a non-integer protocol version." });
    });

    it("GET /testhub/negotiate answers 405", opts, async () => {
        const res = await (await testhub()).negotiate({ method: "GET" });
        assert.equal(res.status, 405);
    });

    it("hub paths are case-insensitive (POST /TestHub/negotiate)", opts, async () => {
        const res = await (await hubEndpoint(server.url, "/TestHub")).negotiate();
        assert.equal(res.status, 200, res.text);
        assert.equal(res.json.negotiateVersion, 1);
        assert.equal(typeof res.json.connectionId, "string");
    });

    it("POST /chathub/negotiate works too", opts, async () => {
        const res = await (await hubEndpoint(server.url, "/chathub")).negotiate();
        assert.equal(res.status, 200, res.text);
        assert.equal(res.json.negotiateVersion, 1);
        assert.equal(typeof res.json.connectionToken, "string");
    });

    // /echo is the app server's own raw connection, never behind the relay: self-hosted only.
    if (!SERVICE_MODE) {
        it("POST /echo/negotiate works too", opts, async () => {
            const res = await negotiate(server.url, "/echo");
            assert.equal(res.status, 200, res.text);
            assert.equal(res.json.negotiateVersion, 1);
            assert.equal(typeof res.json.connectionToken, "string");
        });
    }

    it("a version 1 connectionToken is accepted as ?id= on the WebSocket", opts, async () => {
        const hub = await testhub();
        const res = await hub.negotiate();
        const ws = await handshakeAndEcho(hub, res.json.connectionToken);
        await ws.send(JSON.stringify({ type: 1, invocationId: "2", target: "GetCallerConnectionId", arguments: [] }) + RS);
        assertJsonCompletion(assert, await ws.nextJson(), "2", res.json.connectionId);
        await ws.close();
    });

    it("a version 0 connectionId is accepted as ?id= on the WebSocket", opts, async () => {
        const hub = await testhub();
        const res = await hub.negotiate({ query: "" });
        const ws = await handshakeAndEcho(hub, res.json.connectionId);
        await ws.close();
    });

    it("a version 1 connectionId (not the token) is refused as ?id= with 404", opts, async () => {
        const hub = await testhub();
        const res = await hub.negotiate();
        const err = await rejection(RawSocket.open(hub.wsUrl(res.json.connectionId)), "WebSocket open");
        assert.ok(err instanceof UpgradeRefused, `expected an HTTP refusal, got ${err}`);
        assert.equal(err.statusCode, 404);
    });

    it("an unknown ?id= is refused with 404", opts, async () => {
        const hub = await testhub();
        const err = await rejection(RawSocket.open(hub.wsUrl("doesNotExist123")), "WebSocket open");
        assert.ok(err instanceof UpgradeRefused, `expected an HTTP refusal, got ${err}`);
        assert.equal(err.statusCode, 404);
    });

    it("a second WebSocket for an id that already has one is refused with 409", opts, async () => {
        const hub = await testhub();
        const res = await hub.negotiate();
        const first = await handshakeAndEcho(hub, res.json.connectionToken);
        try {
            const err = await rejection(RawSocket.open(hub.wsUrl(res.json.connectionToken)), "second WebSocket open");
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

// Service mode: the app server's negotiate answers a redirect to the relay (Azure SignalR's
// form), and the relay wants the token that comes with it.
if (SERVICE_MODE) {
    describe("negotiate redirect to the relay (service mode)", () => {
        /** The relay's base URL from `Endpoint=` in CONFORMANCE_SERVER_ARGS, if it is there. */
        const relayUrl = /(?:^|[\s;])Endpoint=([^;\s]+)/.exec(process.env.CONFORMANCE_SERVER_ARGS ?? "")?.[1]?.replace(/\/+$/, "");

        for (const hubName of ["testhub", "chathub"]) {
            it(`POST /${hubName}/negotiate answers {url: <relay>/client/?hub=${hubName}, accessToken}`, opts, async () => {
                const res = await negotiate(server.url, `/${hubName}`);
                assert.equal(res.status, 200, res.text);
                assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
                const body = res.json;
                assert.ok(body && typeof body === "object", `not JSON: ${res.text}`);
                assert.equal(typeof body.url, "string", `no url: ${res.text}`);
                assert.match(body.url, new RegExp(`^https?://[^/?#]+/client/\\?hub=${hubName}(&|$)`), body.url);
                if (relayUrl) {
                    assert.ok(body.url.startsWith(`${relayUrl}/client/?`), `${body.url} does not point at the relay ${relayUrl}`);
                }
                assert.equal(typeof body.accessToken, "string", `no accessToken: ${res.text}`);
                const parts = body.accessToken.split(".");
                assert.equal(parts.length, 3, `not a JWT: ${body.accessToken}`);
                const claims = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
                assert.ok(typeof claims.exp === "number" && claims.exp * 1000 > Date.now(), `expired or no exp: ${JSON.stringify(claims)}`);
                // the connection is the relay's to create
                assert.ok(!("connectionId" in body), `a redirect has no connectionId: ${res.text}`);
                assert.ok(!("connectionToken" in body), `a redirect has no connectionToken: ${res.text}`);
                assert.ok(!("error" in body), `unexpected error: ${res.text}`);
            });
        }

        it("the relay answers negotiate and WebSockets without its token with 401", opts, async () => {
            const hub = await testhub();
            const bare = await http("POST", hub.negotiateUrl());
            assert.equal(bare.status, 401);
            const forged = await hub.negotiate({ headers: { Authorization: "Bearer not-a-jwt" } });
            assert.equal(forged.status, 401);
            const res = await hub.negotiate();
            assert.equal(res.status, 200, res.text);
            const err = await rejection(RawSocket.open(hub.wsUrl(res.json.connectionToken, { token: false })), "WebSocket open");
            assert.ok(err instanceof UpgradeRefused, `expected an HTTP refusal, got ${err}`);
            assert.equal(err.statusCode, 401);
        });
    });
}
