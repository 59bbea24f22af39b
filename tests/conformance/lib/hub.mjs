// Helpers around the official @microsoft/signalr client.

import { afterEach } from "node:test";
import { createRequire } from "node:module";
import {
    DefaultHttpClient, HttpClient, HttpTransportType, HubConnectionBuilder, HubConnectionState, LogLevel, NullLogger,
} from "@microsoft/signalr";
import { MessagePackHubProtocol } from "@microsoft/signalr-protocol-msgpack";
import WebSocket from "ws";
import { DEBUG } from "./server.mjs";
// raw.mjs imports this module too; neither uses the other's bindings while it loads.
import { redirectedEndpoint } from "./raw.mjs";

const require = createRequire(import.meta.url);
/** [headerName, headerValue] of the client's default user agent header (Node: "User-Agent"). */
export const { getUserAgentHeader } = require("@microsoft/signalr/dist/cjs/Utils.js");

/** Default per-test timeout (ms). */
export const TEST_TIMEOUT = 10_000;
/** Default time to wait for one expected message (ms). */
export const WAIT_MS = 5_000;

export const PROTOCOLS = ["json", "messagepack"];
export const TRANSPORTS = ["WebSockets", "ServerSentEvents", "LongPolling"];

/** transport × protocol, without Server-Sent Events × MessagePack (SSE is a text-only transport). */
export const TRANSPORT_PROTOCOLS = TRANSPORTS.flatMap((transport) => PROTOCOLS
    .filter((protocol) => !(transport === "ServerSentEvents" && protocol === "messagepack"))
    .map((protocol) => ({ transport, protocol, name: `${transport}, ${protocol}` })));

/**
 * Whether the server under test runs its hubs through a relay (service mode): negotiate then
 * redirects clients to the relay, and a skipNegotiation client first gets the relay's hub URL
 * and token from the app server (`resolveHub()`). Set by the test script with
 * SWITCHBOARD_MODE=service.
 */
export const SERVICE_MODE = process.env.SWITCHBOARD_MODE === "service";

/**
 * transport × protocol × skipNegotiation (skipNegotiation only exists for WebSockets), without
 * Server-Sent Events × MessagePack. The same list in both modes: build its connections with
 * `buildHubConnection()` or `connect()`, which take skipNegotiation through the relay too.
 */
export const VARIANTS = TRANSPORT_PROTOCOLS.flatMap(({ transport, protocol }) =>
    (transport === "WebSockets" ? [false, true] : [false]).map((skipNegotiation) => ({
        transport,
        protocol,
        skipNegotiation,
        name: `${transport}, ${protocol}, ${skipNegotiation ? "skipNegotiation" : "negotiate"}`,
    })));

/** HttpTransportType of a transport name ("WebSockets", ...) or the enum value itself. */
export function transportType(transport) {
    if (typeof transport === "number") {
        return transport;
    }
    const value = HttpTransportType[transport];
    if (typeof value !== "number") {
        throw new Error(`unknown transport ${transport}`);
    }
    return value;
}

const openConnections = new Set();

/**
 * Builds (does not start) a HubConnection to `url` as given. With skipNegotiation in service
 * mode the client must be given the relay's URL and token: use buildHubConnection() then.
 * @param {string} url full hub URL
 * @param {{protocol?: string, skipNegotiation?: boolean, transport?: number | string,
 *          accessTokenFactory?: () => string | Promise<string>, headers?: Record<string,string>,
 *          httpClient?: object, statefulReconnect?: boolean | object,
 *          automaticReconnect?: boolean | number[], httpOptions?: object, logLevel?: number}} [options]
 *   `transport` is an HttpTransportType value or name, or null for the client's default (every
 *   transport the server offers, in its order); `statefulReconnect` calls
 *   withStatefulReconnect() (an object is passed on as its options); `automaticReconnect` calls
 *   withAutomaticReconnect() (an array is passed on as the retry delays); `httpOptions` are extra
 *   IHttpConnectionOptions (e.g. a `WebSocket` constructor).
 */
export function buildConnection(url, options = {}) {
    const {
        protocol = "json",
        skipNegotiation = false,
        transport = HttpTransportType.WebSockets,
        accessTokenFactory,
        headers,
        httpClient,
        statefulReconnect,
        automaticReconnect,
        httpOptions: extraHttpOptions,
        logLevel = LogLevel.Warning,
    } = options;
    const httpOptions = { skipNegotiation, logMessageContent: DEBUG, ...extraHttpOptions };
    if (transport !== null) {
        httpOptions.transport = transportType(transport);
    }
    if (accessTokenFactory) {
        httpOptions.accessTokenFactory = accessTokenFactory;
    }
    if (headers) {
        httpOptions.headers = headers;
    }
    if (httpClient) {
        httpOptions.httpClient = httpClient;
    }
    let builder = new HubConnectionBuilder()
        .withUrl(url, httpOptions)
        .configureLogging(DEBUG ? LogLevel.Trace : logLevel);
    if (protocol === "messagepack") {
        builder = builder.withHubProtocol(new MessagePackHubProtocol());
    } else if (protocol !== "json") {
        throw new Error(`unknown protocol ${protocol}`);
    }
    if (statefulReconnect) {
        builder = typeof statefulReconnect === "object"
            ? builder.withStatefulReconnect(statefulReconnect)
            : builder.withStatefulReconnect();
    }
    if (automaticReconnect) {
        builder = Array.isArray(automaticReconnect)
            ? builder.withAutomaticReconnect(automaticReconnect)
            : builder.withAutomaticReconnect();
    }
    const connection = builder.build();
    openConnections.add(connection);
    return connection;
}

/**
 * The URL and buildConnection() options to reach the hub at `url` with. Unchanged self-hosted,
 * and through the relay when the client negotiates (negotiate redirects it). Through the relay
 * with skipNegotiation, the client cannot learn the relay's URL and token by itself: it gets
 * them as an app would hand them out. This POSTs the app server's negotiate with what the
 * client's own negotiate would carry (`Authorization: Bearer` from `accessTokenFactory`, so the
 * relay's token carries the user's claims; the `headers`), reads `url` and `accessToken` from
 * the redirect, and returns the relay's hub URL with an `accessTokenFactory` returning the
 * relay's token.
 * @param {string} url full hub URL at the server under test (may have a query string)
 * @param {object} [options] buildConnection() options
 * @returns {Promise<{url: string, options: object}>}
 */
export async function resolveHub(url, options = {}) {
    if (!SERVICE_MODE || !options.skipNegotiation) {
        return { url, options };
    }
    const bearer = options.accessTokenFactory ? await options.accessTokenFactory() : undefined;
    const relay = await redirectedEndpoint(url, { accessToken: bearer, headers: options.headers });
    return { url: relay.url, options: { ...options, accessTokenFactory: () => relay.accessToken } };
}

/**
 * Builds (does not start) a HubConnection for any variant: buildConnection() after
 * resolveHub(), so skipNegotiation works through the relay too. Self-hosted the same as
 * buildConnection().
 * @param {string} url full hub URL
 * @param {object} [options] buildConnection() options
 * @returns {Promise<HubConnection>}
 */
export async function buildHubConnection(url, options = {}) {
    const resolved = await resolveHub(url, options);
    return buildConnection(resolved.url, resolved.options);
}

/** Builds (see buildHubConnection) and starts a HubConnection. */
export async function connect(url, options = {}) {
    const connection = await buildHubConnection(url, options);
    await withTimeout(connection.start(), WAIT_MS, `start() of ${url}`);
    return connection;
}

/** Stops every connection built by this module that is still open. */
export async function stopAll() {
    const connections = [...openConnections];
    openConnections.clear();
    await Promise.all(connections.map(async (c) => {
        if (c.state !== HubConnectionState.Disconnected) {
            try {
                await withTimeout(c.stop(), WAIT_MS, "stop()");
            } catch {
                // best effort
            }
        }
    }));
}

/** Registers an afterEach hook that stops all connections the test left open. */
export function useConnectionCleanup() {
    afterEach(stopAll);
}

/** Rejects with a descriptive error if `promise` does not settle within `ms`. */
export function withTimeout(promise, ms, what) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Waits until `check()` (may be async) is true, polling every 100 ms; fails naming `what` after `ms`. */
export async function eventually(check, ms, what) {
    const deadline = Date.now() + ms;
    for (;;) {
        if (await check()) {
            return;
        }
        if (Date.now() > deadline) {
            throw new Error(`timed out after ${ms} ms waiting for ${what}`);
        }
        await delay(100);
    }
}

export function delay(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Returns a promise for the first onclose of the connection: resolves with the error argument. */
export function closed(connection) {
    return new Promise((resolve) => connection.onclose((error) => resolve(error)));
}

/** Awaits a promise that must reject; returns the rejection reason. */
export async function rejection(promise, what = "promise") {
    try {
        const value = await promise;
        throw new RejectionExpected(`${what} resolved with ${JSON.stringify(value)} but a rejection was expected`);
    } catch (err) {
        if (err instanceof RejectionExpected) {
            throw err;
        }
        return err;
    }
}

class RejectionExpected extends Error {}

/**
 * Records client-method calls of a connection, in arrival order, across several method names.
 * Each record is `{ method, args }` where `method` is the name given to the constructor.
 */
export class Inbox {
    constructor(connection, methods) {
        this.items = [];
        this.waiters = [];
        for (const method of methods) {
            connection.on(method, (...args) => {
                this.items.push({ method, args });
                this._wake();
            });
        }
    }

    _wake() {
        for (const waiter of [...this.waiters]) {
            waiter();
        }
    }

    /**
     * Waits until a record matching `predicate` has arrived; removes and returns every record up to
     * and including it (`{ before, match }`).
     */
    async takeUntil(predicate, ms = WAIT_MS, what = "a matching client call") {
        const find = () => this.items.findIndex(predicate);
        let index = find();
        if (index < 0) {
            let wake;
            const arrived = new Promise((resolve) => {
                wake = () => {
                    if (find() >= 0) {
                        resolve();
                    }
                };
                this.waiters.push(wake);
            });
            try {
                await withTimeout(arrived, ms, `${what} (received so far: ${JSON.stringify(this.items)})`);
            } finally {
                this.waiters = this.waiters.filter((w) => w !== wake);
            }
            index = find();
        }
        const taken = this.items.splice(0, index + 1);
        return { before: taken.slice(0, -1), match: taken[taken.length - 1] };
    }

    /** Waits until a record matching `predicate` has arrived, keeping every record; returns it. */
    async waitFor(predicate, ms = WAIT_MS, what = "a matching client call") {
        const found = () => this.items.find(predicate);
        if (found()) {
            return found();
        }
        let wake;
        const arrived = new Promise((resolve) => {
            wake = () => {
                if (found()) {
                    resolve();
                }
            };
            this.waiters.push(wake);
        });
        try {
            await withTimeout(arrived, ms, what);
        } finally {
            this.waiters = this.waiters.filter((w) => w !== wake);
        }
        return found();
    }

    /** Waits for the next call of `method` (skipping and keeping nothing else); returns its args. */
    async next(method, ms = WAIT_MS) {
        const { match } = await this.takeUntil((i) => i.method === method, ms, `a call of client method '${method}'`);
        return match.args;
    }
}

/** A unique token for one test, to tell its messages from anyone else's. */
let nonceCounter = 0;
export function nonce(prefix = "t") {
    nonceCounter += 1;
    return `${prefix}-${process.pid}-${Date.now().toString(36)}-${nonceCounter}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Fetches a bearer token from the server's token endpoint. */
export async function fetchToken(baseUrl, user) {
    const url = user === undefined ? `${baseUrl}/generateJwtToken` : `${baseUrl}/generateJwtToken/${encodeURIComponent(user)}`;
    const res = await fetch(url);
    const body = await res.text();
    if (res.status !== 200) {
        throw new Error(`GET ${url} answered ${res.status}: ${body}`);
    }
    if (body.length === 0) {
        throw new Error(`GET ${url} returned an empty token`);
    }
    return body;
}

/**
 * Subscribes to `connection.stream(method, ...args)` and resolves, when the stream ends, with
 * `{ items, error }` (`error` undefined when it completed normally).
 */
export function collectStream(connection, method, ...args) {
    return new Promise((resolve) => {
        const items = [];
        connection.stream(method, ...args).subscribe({
            next: (item) => items.push(item),
            complete: () => resolve({ items, error: undefined }),
            error: (error) => resolve({ items, error }),
        });
    });
}

/** GET `url`; returns { status, text }. */
export async function httpGet(url) {
    const res = await fetch(url);
    return { status: res.status, text: await res.text() };
}

/**
 * The `ws` WebSocket (for `httpOptions.WebSocket`), counting the sockets a client opens and the
 * URLs it opens them with: {CountingWebSocket, opened, sockets}.
 */
export function countingWebSocket() {
    const opened = [];
    const sockets = [];
    class CountingWebSocket extends WebSocket {
        constructor(url, ...rest) {
            super(url, ...rest);
            opened.push(String(url));
            sockets.push(this);
        }
    }
    return { CountingWebSocket, opened, sockets };
}

/** An HttpClient (for the `httpClient` option) that records every request and its outcome. */
export class RecordingHttpClient extends HttpClient {
    constructor() {
        super();
        this.inner = new DefaultHttpClient(NullLogger.instance);
        /** { method, url, start, promise, status?, content?, error?, end? } per request */
        this.log = [];
    }

    send(request) {
        const entry = { method: request.method, url: request.url, start: Date.now() };
        this.log.push(entry);
        const promise = this.inner.send(request);
        entry.promise = promise.then(
            (res) => Object.assign(entry, { status: res.statusCode, content: res.content, end: Date.now() }),
            (err) => Object.assign(entry, { error: err, status: err.statusCode, end: Date.now() }),
        );
        return promise;
    }

    getCookieString(url) {
        return this.inner.getCookieString(url);
    }
}
