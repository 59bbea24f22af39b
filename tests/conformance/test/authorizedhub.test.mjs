// /authorizedhub: bearer-token authentication (header or access_token query), 401 without.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { LogLevel } from "@microsoft/signalr";
import { useServer } from "../lib/server.mjs";
import { SERVICE_MODE, VARIANTS, TEST_TIMEOUT, buildConnection, connect, fetchToken, rejection, useConnectionCleanup, withTimeout, WAIT_MS } from "../lib/hub.mjs";
import { assertJsonCompletion, HubEndpoint, negotiate, RawSocket, redirectedEndpoint, RS, UpgradeRefused } from "../lib/raw.mjs";

const server = useServer();
useConnectionCleanup();

const opts = { timeout: TEST_TIMEOUT };
const UNAUTHORIZED_NEGOTIATE = "Failed to complete negotiation with the server: Error: Unauthorized: Status code '401'";

describe("/authorizedhub over raw HTTP", () => {
    it("POST /authorizedhub/negotiate without a token answers 401 with an empty body", opts, async () => {
        const res = await negotiate(server.url, "/authorizedhub");
        assert.equal(res.status, 401);
        assert.equal(res.text, "");
    });

    it("POST /authorizedhub/negotiate with an invalid token answers 401 with an empty body", opts, async () => {
        const res = await negotiate(server.url, "/authorizedhub", { headers: { Authorization: "Bearer not-a-jwt" } });
        assert.equal(res.status, 401);
        assert.equal(res.text, "");
    });

    it("POST /authorizedhub/negotiate with a token from /generateJwtToken answers 200", opts, async () => {
        const token = await fetchToken(server.url);
        const res = await negotiate(server.url, "/authorizedhub", { headers: { Authorization: `Bearer ${token}` } });
        assert.equal(res.status, 200, res.text);
        if (SERVICE_MODE) {
            // Service mode: a redirect to the relay with the relay's token.
            assert.equal(typeof res.json.url, "string");
            assert.match(res.json.url, /\/client\/\?hub=authorizedhub/);
            assert.equal(typeof res.json.accessToken, "string");
        } else {
            assert.equal(typeof res.json.connectionId, "string");
            assert.equal(typeof res.json.connectionToken, "string");
        }
    });

    it("GET /generateJwtToken returns a three-part JWT", opts, async () => {
        const token = await fetchToken(server.url);
        const parts = token.split(".");
        assert.equal(parts.length, 3, `not a JWT: ${token}`);
        const header = JSON.parse(Buffer.from(parts[0], "base64url").toString("utf8"));
        assert.equal(header.alg, "HS256");
    });

    it("a WebSocket upgrade without a token is refused with 401", opts, async () => {
        const err = await rejection(RawSocket.open(`${server.wsUrl}/authorizedhub`), "WebSocket open");
        assert.ok(err instanceof UpgradeRefused, `expected an HTTP refusal, got ${err}`);
        assert.equal(err.statusCode, 401);
    });

    it("a WebSocket with the token in the access_token query (browser style) works", opts, async () => {
        const token = await fetchToken(server.url);
        const ws = await RawSocket.open(`${server.wsUrl}/authorizedhub?access_token=${encodeURIComponent(token)}`);
        try {
            const hs = await ws.handshake("json", 1);
            assert.equal(hs.data.toString("utf8"), "{}" + RS);
            await ws.sendJson({ type: 1, invocationId: "1", target: "Echo", arguments: ["via query"] });
            assertJsonCompletion(assert, await ws.nextJson(), "1", "via query");
        } finally {
            await ws.close();
        }
    });
});

/**
 * Where a skipNegotiation client that presents `clientToken` (undefined: none) connects, and a
 * HubEndpoint with that URL and token to probe it raw. Self-hosted: the server's /authorizedhub.
 * In service mode: the relay's hub URL, as the app server's redirect hands it to a user with a
 * valid bearer token; the client then presents `clientToken` instead of the relay's token.
 * @returns {Promise<{url: string, probe: HubEndpoint}>}
 */
async function skipNegotiationTarget(clientToken) {
    let url = `${server.url}/authorizedhub`;
    if (SERVICE_MODE) {
        ({ url } = await redirectedEndpoint(url, { accessToken: await fetchToken(server.url) }));
    }
    return { url, probe: new HubEndpoint(url, clientToken) };
}

/** Asserts that the WebSocket upgrade of `endpoint` (its token in access_token, if any) is refused with 401. */
async function assertUpgradeRefused(endpoint) {
    const err = await rejection(RawSocket.open(endpoint.wsUrl()), "WebSocket open");
    assert.ok(err instanceof UpgradeRefused, `expected an HTTP refusal, got ${err}`);
    assert.equal(err.statusCode, 401, `${endpoint.url} without a valid token`);
}

for (const variant of VARIANTS) {
    const { protocol, skipNegotiation, transport } = variant;
    describe(`/authorizedhub over ${variant.name}`, () => {
        it("start() without a token fails with 401", opts, async () => {
            if (skipNegotiation) {
                // No negotiate: the client opens the hub's WebSocket (through the relay: the relay's
                // URL, without its token), whose refused upgrade (401) surfaces as the client's
                // generic WebSocket error.
                const { url, probe } = await skipNegotiationTarget(undefined);
                const c = buildConnection(url, { protocol, skipNegotiation, transport, logLevel: LogLevel.None });
                const err = await rejection(withTimeout(c.start(), WAIT_MS, "start()"), "start()");
                assert.match(err.message, /^WebSocket failed to connect\./);
                await assertUpgradeRefused(probe);
            } else {
                const c = buildConnection(`${server.url}/authorizedhub`, { protocol, skipNegotiation, transport, logLevel: LogLevel.None });
                const err = await rejection(withTimeout(c.start(), WAIT_MS, "start()"), "start()");
                assert.equal(err.message, UNAUTHORIZED_NEGOTIATE);
            }
        });

        it("start() with an invalid token fails", opts, async () => {
            const accessTokenFactory = () => "invalid.token.value";
            if (skipNegotiation) {
                // Through the relay, the relay's URL with an invalid token instead of the relay's.
                const { url, probe } = await skipNegotiationTarget(accessTokenFactory());
                const c = buildConnection(url, { protocol, skipNegotiation, transport, logLevel: LogLevel.None, accessTokenFactory });
                const err = await rejection(withTimeout(c.start(), WAIT_MS, "start()"), "start()");
                assert.match(err.message, /^WebSocket failed to connect\./);
                await assertUpgradeRefused(probe);
            } else {
                const c = buildConnection(`${server.url}/authorizedhub`, {
                    protocol, skipNegotiation, transport, logLevel: LogLevel.None, accessTokenFactory,
                });
                const err = await rejection(withTimeout(c.start(), WAIT_MS, "start()"), "start()");
                assert.equal(err.message, UNAUTHORIZED_NEGOTIATE);
            }
        });

        it("Echo works with a token from /generateJwtToken (accessTokenFactory)", opts, async () => {
            // Through the relay with skipNegotiation, the relay's token comes from the app
            // server's negotiate with this bearer token (connect() → resolveHub()).
            const c = await connect(`${server.url}/authorizedhub`, {
                protocol, skipNegotiation, transport, accessTokenFactory: () => fetchToken(server.url),
            });
            const message = "你好，世界！";
            assert.equal(await c.invoke("Echo", message), message);
        });
    });
}
