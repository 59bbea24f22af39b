// A raw WebSocket client (package `ws`) that records frames and parses hub-protocol records,
// a raw Server-Sent Events reader, and the way a raw client reaches a hub (self-hosted or
// through the relay).

import WebSocket from "ws";
import { decode as msgpackDecode, encode as msgpackEncode } from "@msgpack/msgpack";
import { SERVICE_MODE, WAIT_MS, withTimeout } from "./hub.mjs";

export const RS = "\x1e";

/** Error for a refused WebSocket upgrade: carries the HTTP status and body. */
export class UpgradeRefused extends Error {
    constructor(statusCode, body) {
        super(`WebSocket upgrade refused with HTTP ${statusCode}: ${JSON.stringify(body)}`);
        this.statusCode = statusCode;
        this.body = body;
    }
}

export class RawSocket {
    /**
     * Opens a WebSocket. Rejects with UpgradeRefused when the server answers the upgrade with a
     * non-101 status.
     */
    static open(url, { headers } = {}) {
        return withTimeout(new Promise((resolve, reject) => {
            const ws = new WebSocket(url, { headers });
            const raw = new RawSocket(ws);
            ws.on("open", () => resolve(raw));
            ws.on("unexpected-response", (req, res) => {
                // The refusal ends the request, not the connection (HTTP/1.1 keep-alive), and
                // req.destroy() no longer closes it then: close the socket itself, or it keeps
                // this process alive as long as the server lives (the relay outlives a test file).
                const socket = req.socket;
                const chunks = [];
                res.on("data", (c) => chunks.push(c));
                res.on("end", () => {
                    reject(new UpgradeRefused(res.statusCode, Buffer.concat(chunks).toString("utf8")));
                    req.destroy();
                    socket?.destroy();
                });
                res.on("error", () => {
                    reject(new UpgradeRefused(res.statusCode, ""));
                    socket?.destroy();
                });
            });
            ws.on("error", (err) => reject(err));
        }), WAIT_MS, `WebSocket open of ${url}`);
    }

    constructor(ws) {
        this.ws = ws;
        /** Received frames: { data: Buffer, binary: boolean } */
        this.frames = [];
        this.waiters = [];
        this.text = "";
        this.bytes = Buffer.alloc(0);
        this.closeInfo = null;
        this.closed = new Promise((resolve) => {
            ws.on("close", (code, reason) => {
                this.closeInfo = { code, reason: reason ? reason.toString() : "" };
                resolve(this.closeInfo);
                this._wake();
            });
        });
        // ws 7: text frames arrive as strings, binary frames as Buffers.
        ws.on("message", (data) => {
            const binary = typeof data !== "string";
            this.frames.push({ data: binary ? Buffer.from(data) : Buffer.from(data, "utf8"), binary });
            this._wake();
        });
        ws.on("error", () => {
            // surfaced through "close"
        });
    }

    _wake() {
        for (const waiter of [...this.waiters]) {
            waiter();
        }
    }

    async _waitFor(check, ms, what) {
        let result = check();
        if (result !== undefined) {
            return result;
        }
        let wake;
        let settled = false;
        const unregister = () => {
            settled = true;
            this.waiters = this.waiters.filter((w) => w !== wake);
        };
        const done = new Promise((resolve, reject) => {
            wake = () => {
                // `check` consumes input: never run it again once this wait is over.
                if (settled) {
                    return;
                }
                try {
                    const r = check();
                    if (r !== undefined) {
                        unregister();
                        resolve(r);
                    } else if (this.closeInfo) {
                        unregister();
                        reject(new Error(`socket closed (code ${this.closeInfo.code}, reason ${JSON.stringify(this.closeInfo.reason)}) while waiting for ${what}`));
                    }
                } catch (err) {
                    unregister();
                    reject(err);
                }
            };
            this.waiters.push(wake);
            wake();
        });
        try {
            return await withTimeout(done, ms, what);
        } finally {
            unregister();
        }
    }

    /** Next raw frame: { data: Buffer, binary: boolean }. */
    nextFrame(ms = WAIT_MS) {
        return this._waitFor(() => this.frames.shift(), ms, "a WebSocket frame");
    }

    send(data, { binary = false } = {}) {
        return new Promise((resolve, reject) => {
            this.ws.send(data, { binary }, (err) => (err ? reject(err) : resolve()));
        });
    }

    /** Sends JSON records (objects or preformatted strings), all in one text frame. */
    sendJson(...records) {
        const text = records.map((r) => (typeof r === "string" ? r : JSON.stringify(r)) + RS).join("");
        return this.send(text);
    }

    /** Sends MessagePack hub messages (arrays), VarInt-framed, all in one binary frame. */
    sendMsgpack(...messages) {
        return this.send(Buffer.concat(messages.map(frameMsgpack)), { binary: true });
    }

    /** Sends the handshake request and returns the raw handshake response frame. */
    async handshake(protocol = "json", version = 1) {
        await this.send(JSON.stringify({ protocol, version }) + RS);
        return await this.nextFrame();
    }

    /**
     * Next JSON hub-protocol record (parsed). Records may be split or batched across frames.
     * Pings (type 6) are skipped unless `keepPings`.
     */
    nextJson(ms = WAIT_MS, { keepPings = false } = {}) {
        return this._waitFor(() => {
            for (;;) {
                const idx = this.text.indexOf(RS);
                if (idx >= 0) {
                    const record = this.text.slice(0, idx);
                    this.text = this.text.slice(idx + 1);
                    const msg = JSON.parse(record);
                    if (!keepPings && msg.type === 6) {
                        continue;
                    }
                    return msg;
                }
                const frame = this.frames.shift();
                if (!frame) {
                    return undefined;
                }
                this.text += frame.data.toString("utf8");
            }
        }, ms, "a JSON hub message");
    }

    /**
     * Next MessagePack hub message (decoded array) and the `binary` flag of the frame it came in.
     * Pings ([6]) are skipped unless `keepPings`.
     */
    nextMsgpack(ms = WAIT_MS, { keepPings = false } = {}) {
        return this._waitFor(() => {
            for (;;) {
                const parsed = parseVarIntFrame(this.bytes);
                if (parsed) {
                    this.bytes = this.bytes.subarray(parsed.end);
                    const msg = msgpackDecode(parsed.body);
                    if (!keepPings && Array.isArray(msg) && msg[0] === 6) {
                        continue;
                    }
                    return { msg, binary: this.lastBinary };
                }
                const frame = this.frames.shift();
                if (!frame) {
                    return undefined;
                }
                this.lastBinary = frame.binary;
                this.bytes = Buffer.concat([this.bytes, frame.data]);
            }
        }, ms, "a MessagePack hub message");
    }

    /** Resolves once no frame has arrived for `ms`; returns the frames received meanwhile. */
    async quiet(ms = 300) {
        await new Promise((resolve) => setTimeout(resolve, ms));
        return this.frames.splice(0);
    }

    close(code = 1000, reason) {
        try {
            this.ws.close(code, reason);
        } catch {
            // ignore
        }
        return withTimeout(this.closed, WAIT_MS, "the close handshake");
    }

    terminate() {
        this.ws.terminate();
    }
}

/** Encodes one MessagePack hub message with its VarInt length prefix. */
export function frameMsgpack(message) {
    const body = Buffer.from(msgpackEncode(message));
    const prefix = [];
    let len = body.length;
    do {
        let byte = len & 0x7f;
        len >>>= 7;
        if (len > 0) {
            byte |= 0x80;
        }
        prefix.push(byte);
    } while (len > 0);
    return Buffer.concat([Buffer.from(prefix), body]);
}

/** Parses one VarInt-prefixed record from the start of `buf`; undefined if incomplete. */
export function parseVarIntFrame(buf) {
    let len = 0;
    let shift = 0;
    let i = 0;
    for (;;) {
        if (i >= buf.length) {
            return undefined;
        }
        if (i >= 5) {
            throw new Error("VarInt length prefix longer than 5 bytes");
        }
        const byte = buf[i];
        len |= (byte & 0x7f) << shift;
        shift += 7;
        i += 1;
        if ((byte & 0x80) === 0) {
            break;
        }
    }
    if (buf.length < i + len) {
        return undefined;
    }
    return { body: buf.subarray(i, i + len), end: i + len };
}

/**
 * POSTs a negotiate request to the server itself (`${baseUrl}${path}/negotiate${query}`; in
 * service mode that is the app server's negotiate, which answers a redirect); returns
 * { status, headers, text, json }. To negotiate with whatever serves the hub, use
 * `hubEndpoint(...).negotiate()`.
 */
export async function negotiate(baseUrl, path, { query = "?negotiateVersion=1", method = "POST", headers } = {}) {
    return await fetchJson(`${baseUrl}${path}/negotiate${query}`, { method, headers });
}

/** One request; returns { status, headers, text, json } (json undefined if the body is not JSON). */
async function fetchJson(url, init) {
    const res = await fetch(url, init);
    const text = await res.text();
    let json;
    try {
        json = JSON.parse(text);
    } catch {
        json = undefined;
    }
    return { status: res.status, headers: res.headers, text, json };
}

/** Appends `query` ("a=1&b=2", no leading "?" or "&"; empty for none) to `url`, after "?" or "&". */
export function appendQuery(url, query) {
    if (!query) {
        return url;
    }
    return `${url}${url.includes("?") ? "&" : "?"}${query}`;
}

/**
 * How a raw client reaches one hub. Self-hosted, `url` is the server's hub URL
 * (`http://127.0.0.1:P/testhub`) and there is no token; in service mode, `url` is the relay's
 * hub URL from the app server's negotiate redirect (`http://127.0.0.1:R/client/?hub=testhub&…`)
 * and `accessToken` the relay's token that comes with it. Build one with `hubEndpoint()`.
 */
export class HubEndpoint {
    /**
     * @param {string} url the hub URL (may already have a query string)
     * @param {string} [accessToken] the token the hub's server wants (the relay's), if any
     */
    constructor(url, accessToken) {
        this.url = url;
        this.accessToken = accessToken;
    }

    /**
     * The negotiate URL: `/negotiate` goes at the end of the path, before the hub URL's own
     * query; `query` ("negotiateVersion=1", or "" for none) is appended after it.
     */
    negotiateUrl(query = "negotiateVersion=1") {
        const at = this.url.indexOf("?");
        const [path, search] = at < 0 ? [this.url, ""] : [this.url.slice(0, at), this.url.slice(at)];
        return appendQuery(`${path.replace(/\/+$/, "")}/negotiate${search}`, query);
    }

    /**
     * POSTs (or `method`s) the hub's negotiate, with `Authorization: Bearer <token>` when the
     * hub needs a token (unless `headers` sets Authorization itself); returns
     * { status, headers, text, json }.
     * @param {{query?: string, method?: string, headers?: Record<string,string>}} [options]
     *   `query` as for negotiateUrl()
     */
    negotiate({ query = "negotiateVersion=1", method = "POST", headers } = {}) {
        return fetchJson(this.negotiateUrl(query), { method, headers: { ...this.authHeaders(), ...headers } });
    }

    /** `{ Authorization: "Bearer <token>" }` when the hub needs a token, else `{}`. */
    authHeaders() {
        return this.accessToken === undefined ? {} : { Authorization: `Bearer ${this.accessToken}` };
    }

    /**
     * The transport URL of a connection: the hub URL plus `id=<id>` (left out when `id` is
     * undefined) and, when the hub needs a token, `access_token=<token>` (left out when
     * `token` is false).
     */
    connectionUrl(id, { token = true } = {}) {
        const params = [];
        if (id !== undefined) {
            params.push(`id=${id}`);
        }
        if (token && this.accessToken !== undefined) {
            params.push(`access_token=${encodeURIComponent(this.accessToken)}`);
        }
        return appendQuery(this.url, params.join("&"));
    }

    /** connectionUrl() with the ws: scheme, for WebSockets. */
    wsUrl(id, options) {
        return this.connectionUrl(id, options).replace(/^http/, "ws");
    }
}

/**
 * How to reach the hub at `path` (e.g. "/testhub") of the server at `baseUrl`. Self-hosted:
 * `baseUrl + path`. In service mode: the relay's hub URL and token from the app server's
 * negotiate redirect (`redirectedEndpoint()`).
 * @returns {Promise<HubEndpoint>}
 */
export async function hubEndpoint(baseUrl, path) {
    if (!SERVICE_MODE) {
        return new HubEndpoint(`${baseUrl}${path}`);
    }
    return await redirectedEndpoint(`${baseUrl}${path}`);
}

/**
 * Follows the negotiate redirect of the app server whose hub URL is `url` (service mode): POSTs
 * its negotiate, which must answer `{url, accessToken}`, and returns the relay's hub URL with
 * that token.
 * @param {string} url the app server's hub URL (may have a query string, which the redirect keeps)
 * @param {{accessToken?: string, headers?: Record<string,string>}} [options] `accessToken`: the
 *   app's bearer token (for hubs that need one), sent as `Authorization: Bearer`; `headers`: more
 *   request headers
 * @returns {Promise<HubEndpoint>}
 */
export async function redirectedEndpoint(url, { accessToken, headers } = {}) {
    const app = new HubEndpoint(url, accessToken);
    const res = await app.negotiate({ headers });
    const { url: relayUrl, accessToken: relayToken } = res.json ?? {};
    if (res.status !== 200 || typeof relayUrl !== "string" || typeof relayToken !== "string") {
        throw new Error(`POST ${app.negotiateUrl()} did not answer a redirect with a token: HTTP ${res.status} ${res.text}`);
    }
    return new HubEndpoint(relayUrl, relayToken);
}

/**
 * Opens a raw WebSocket to the hub at `path` (no handshake yet). Self-hosted, without
 * negotiating (the server creates the connection on the upgrade); in service mode, the relay
 * needs a negotiated connection and its token: negotiates with the relay first and opens
 * `?…&id=<connectionToken>&access_token=<token>`.
 * @returns {Promise<RawSocket>}
 */
export async function openHubSocket(baseUrl, path) {
    if (!SERVICE_MODE) {
        return await RawSocket.open(`${baseUrl.replace(/^http/, "ws")}${path}`);
    }
    const endpoint = await hubEndpoint(baseUrl, path);
    const res = await endpoint.negotiate();
    if (res.status !== 200 || typeof res.json?.connectionToken !== "string") {
        throw new Error(`negotiate at ${endpoint.negotiateUrl()} answered HTTP ${res.status}: ${res.text}`);
    }
    return await RawSocket.open(endpoint.wsUrl(res.json.connectionToken));
}

/** Asserts a JSON Completion with a result (extra properties such as `headers` are tolerated). */
export function assertJsonCompletion(assert, msg, invocationId, result) {
    assert.equal(msg.type, 3, `expected a Completion, got ${JSON.stringify(msg)}`);
    assert.equal(msg.invocationId, invocationId, `wrong invocationId in ${JSON.stringify(msg)}`);
    assert.ok(msg.error === undefined || msg.error === null, `unexpected error in ${JSON.stringify(msg)}`);
    assert.ok("result" in msg, `Completion without a result: ${JSON.stringify(msg)}`);
    assert.deepEqual(msg.result, result);
}

/**
 * A raw Server-Sent Events reader over fetch: records the raw text and the `data` of every event
 * (several `data:` lines of one event joined with "\n", as EventSource does).
 */
export class SseStream {
    /** GETs `url` with `Accept: text/event-stream`; resolves once the response headers arrived. */
    static async open(url, { headers } = {}) {
        const abort = new AbortController();
        const res = await withTimeout(fetch(url, {
            headers: { Accept: "text/event-stream", ...headers },
            signal: abort.signal,
        }), WAIT_MS, `SSE GET ${url}`);
        return new SseStream(res, abort);
    }

    constructor(res, abort) {
        this.status = res.status;
        this.headers = res.headers;
        this.abort = abort;
        this.raw = "";
        this.events = [];
        this.ended = false;
        this.waiters = [];
        this._pending = "";
        this.done = this._pump(res);
    }

    async _pump(res) {
        const decoder = new TextDecoder();
        try {
            for await (const chunk of res.body) {
                const text = decoder.decode(chunk, { stream: true });
                this.raw += text;
                this._pending += text;
                this._parse();
                this._wake();
            }
        } catch {
            // aborted
        }
        this.ended = true;
        this._wake();
    }

    _parse() {
        for (;;) {
            const m = /\r?\n\r?\n/.exec(this._pending);
            if (!m) {
                return;
            }
            const block = this._pending.slice(0, m.index);
            this._pending = this._pending.slice(m.index + m[0].length);
            const data = block.split(/\r?\n/)
                .filter((line) => line.startsWith("data:"))
                .map((line) => line.slice(5).replace(/^ /, ""));
            if (data.length > 0) {
                this.events.push(data.join("\n"));
            }
        }
    }

    _wake() {
        for (const waiter of [...this.waiters]) {
            waiter();
        }
    }

    _waitFor(check, ms, what) {
        return withTimeout(new Promise((resolve, reject) => {
            const wake = () => {
                const r = check();
                if (r !== undefined) {
                    this.waiters = this.waiters.filter((w) => w !== wake);
                    resolve(r);
                } else if (this.ended) {
                    this.waiters = this.waiters.filter((w) => w !== wake);
                    reject(new Error(`the SSE response ended while waiting for ${what} (raw: ${JSON.stringify(this.raw)})`));
                }
            };
            this.waiters.push(wake);
            wake();
        }), ms, what);
    }

    /** The data of the next event. */
    nextEvent(ms = WAIT_MS) {
        return this._waitFor(() => this.events.shift(), ms, "an SSE event");
    }

    /** Waits until the raw text is non-empty; returns it. */
    firstBytes(ms = WAIT_MS) {
        return this._waitFor(() => (this.raw.length > 0 ? this.raw : undefined), ms, "the first bytes of the SSE response");
    }

    /** Resolves when the server ends the response. */
    end(ms = WAIT_MS) {
        return withTimeout(this.done, ms, "the end of the SSE response");
    }

    close() {
        this.abort.abort();
    }
}

/** One HTTP request with fetch; returns { status, headers, text, bytes, ms } (ms = duration). */
export async function http(method, url, { body, headers, signal } = {}) {
    const start = Date.now();
    const res = await fetch(url, { method, body, headers, signal });
    const bytes = Buffer.from(await res.arrayBuffer());
    return { status: res.status, headers: res.headers, bytes, text: bytes.toString("utf8"), ms: Date.now() - start };
}
