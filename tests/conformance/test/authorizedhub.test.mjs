// /authorizedhub: bearer-token authentication (header or access_token query), 401 without.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { LogLevel } from "@microsoft/signalr";
import { useServer } from "../lib/server.mjs";
import { SERVICE_MODE, VARIANTS, TEST_TIMEOUT, buildConnection, connect, fetchToken, rejection, useConnectionCleanup, withTimeout, WAIT_MS } from "../lib/hub.mjs";
import { assertJsonCompletion, negotiate, RawSocket, RS, UpgradeRefused } from "../lib/raw.mjs";

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

for (const variant of VARIANTS) {
    const { protocol, skipNegotiation, transport } = variant;
    describe(`/authorizedhub over ${variant.name}`, () => {
        it("start() without a token fails with 401", opts, async () => {
            const c = buildConnection(`${server.url}/authorizedhub`, { protocol, skipNegotiation, transport, logLevel: LogLevel.None });
            const err = await rejection(withTimeout(c.start(), WAIT_MS, "start()"), "start()");
            if (skipNegotiation) {
                // No negotiate: the refused upgrade surfaces as the client's generic WebSocket error.
                assert.match(err.message, /^WebSocket failed to connect\./);
            } else {
                assert.equal(err.message, UNAUTHORIZED_NEGOTIATE);
            }
        });

        it("start() with an invalid token fails", opts, async () => {
            const c = buildConnection(`${server.url}/authorizedhub`, {
                protocol, skipNegotiation, transport, logLevel: LogLevel.None, accessTokenFactory: () => "invalid.token.value",
            });
            const err = await rejection(withTimeout(c.start(), WAIT_MS, "start()"), "start()");
            if (skipNegotiation) {
                assert.match(err.message, /^WebSocket failed to connect\./);
            } else {
                assert.equal(err.message, UNAUTHORIZED_NEGOTIATE);
            }
        });

        it("Echo works with a token from /generateJwtToken (accessTokenFactory)", opts, async () => {
            const c = await connect(`${server.url}/authorizedhub`, {
                protocol, skipNegotiation, transport, accessTokenFactory: () => fetchToken(server.url),
            });
            const message = "你好，世界！";
            assert.equal(await c.invoke("Echo", message), message);
        });
    });
}
