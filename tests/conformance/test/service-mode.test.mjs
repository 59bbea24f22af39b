// Service mode with several app servers behind one relay, through the official client: which
// server a client lands on (ServerStickyMode), what a shutdown by a real signal does to the
// clients (GracefulShutdown.Mode), and what is left when an app server or the relay goes.
// Each test starts its own processes (see lib/cluster.mjs); it does not use the suite's
// single server.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { HubConnectionState } from "@microsoft/signalr";
import { buildConnection, closed, delay, eventually, rejection, stopAll, useConnectionCleanup, withTimeout } from "../lib/hub.mjs";
import { relayClients, startAppServer, startRelay } from "../lib/cluster.mjs";

const TIMEOUT = 60_000;
useConnectionCleanup();

/** Started connections to ChatHub, negotiating at `server`. */
async function clients(server, count, options = {}) {
    const started = [];
    for (let i = 0; i < count; i++) {
        const connection = buildConnection(`${server.url}/chathub`, options);
        connection.on("Send", () => {});
        await withTimeout(connection.start(), 10_000, `client ${i} start()`);
        started.push(connection);
    }
    return started;
}

/** How many of `connections` each app server serves, by GetServerName. */
async function spread(connections) {
    const counts = {};
    for (const connection of connections) {
        const name = await withTimeout(connection.invoke("GetServerName"), 10_000, "GetServerName");
        counts[name] = (counts[name] ?? 0) + 1;
    }
    return counts;
}

async function stats(server) {
    return await (await fetch(`${server.url}/stats`)).json();
}

const STICKY = (mode) => ({ Azure__SignalR__ServerStickyMode: mode });

describe("service mode with several app servers", { timeout: 10 * TIMEOUT }, () => {
    let relay;
    const servers = [];
    const server = async (name, env = {}) => {
        const started = await startAppServer(relay, name, env);
        servers.push(started);
        return started;
    };

    before(async () => {
        relay = await startRelay();
    });
    after(async () => {
        await stopAll();
        await Promise.all(servers.map((s) => s.kill()));
        await relay?.kill();
    });

    test("sticky Disabled: 30 clients are balanced across two servers", { timeout: TIMEOUT }, async () => {
        const a = await server("disabled-a");
        const b = await server("disabled-b");
        const connections = await clients(a, 30);
        assert.deepEqual(await spread(connections), { "disabled-a": 15, "disabled-b": 15 });
        await stopAll();
        await Promise.all([a.kill(), b.kill()]);
    });

    test("sticky Preferred: clients stay with the server they negotiated with", { timeout: TIMEOUT }, async () => {
        const a = await server("preferred-a", STICKY("Preferred"));
        const b = await server("preferred-b", STICKY("preferred"));
        assert.deepEqual(await spread(await clients(a, 30)), { "preferred-a": 30 });
        assert.deepEqual(await spread(await clients(b, 5, { protocol: "messagepack" })), { "preferred-b": 5 });
        await stopAll();
        await Promise.all([a.kill(), b.kill()]);
    });

    test("sticky Required: only its server; when that server is gone the client is refused", { timeout: TIMEOUT }, async () => {
        const a = await server("required-a", STICKY("Required"));
        const b = await server("required-b");
        const connections = await clients(a, 30, { transport: "LongPolling" });
        assert.deepEqual(await spread(connections), { "required-a": 30 });
        // A client that negotiated with A, connecting after A has gone.
        const negotiate = await fetch(`${a.url}/chathub/negotiate?negotiateVersion=1`, { method: "POST" });
        const redirect = await negotiate.json();
        assert.ok(redirect.url && redirect.accessToken, JSON.stringify(redirect));
        const dropped = connections.map((connection) => closed(connection));
        await a.kill();
        const errors = await withTimeout(Promise.all(dropped), 15_000, "the clients of the killed server to close");
        for (const error of errors) {
            assert.match(String(error), /ServerOffline/);
        }
        const late = buildConnection(redirect.url, {
            accessTokenFactory: () => redirect.accessToken,
            skipNegotiation: true,
        });
        const error = await rejection(late.start(), "start() of a client sticky to a server that is gone");
        assert.match(String(error), /The server which the client is sticky to is not found\./);
        assert.equal(late.state, HubConnectionState.Disconnected);
        await stopAll();
        await b.kill();
    });

    test("shutdown Off (SIGINT): the server exits at once, its clients are told and may reconnect", { timeout: TIMEOUT }, async () => {
        const a = await server("off-a");
        const connections = await clients(a, 10);
        const errors = connections.map((connection) => closed(connection));
        a.signal("SIGINT");
        const { code } = await a.exit(5_000);
        assert.equal(code, 0, "exit status");
        for (const error of await withTimeout(Promise.all(errors), 10_000, "the clients to close")) {
            assert.match(String(error), /ServerOffline/);
        }
        await eventually(async () => (await relayClients(relay, "chathub")) === 0, 5_000, "the relay to forget the clients");
    });

    test("shutdown WaitForClientsClose (SIGINT): clients stay served, new ones go elsewhere, then it exits", { timeout: TIMEOUT }, async () => {
        const a = await server("wait-a", {
            ...STICKY("Preferred"),
            Azure__SignalR__GracefulShutdown__Mode: "WaitForClientsClose",
            azure__signalr__gracefulshutdown__timeoutinseconds: "30",
        });
        const b = await server("wait-b");
        const connections = await clients(a, 10);
        assert.deepEqual(await spread(connections), { "wait-a": 10 });
        a.signal("SIGINT");
        await delay(1_500);
        assert.equal(a.hasExited, false, "the server waits for its clients");
        // Its clients are still served, broadcasts included.
        assert.deepEqual(await spread(connections), { "wait-a": 10 });
        const received = new Promise((resolve) => connections[9].on("Send", (name, message) => resolve(message)));
        await connections[0].invoke("Broadcast", "a", "still here");
        assert.equal(await withTimeout(received, 5_000, "the broadcast"), "still here");
        // A new client (even one that prefers A, negotiating there) goes to B.
        assert.deepEqual(await spread(await clients(a, 3)), { "wait-b": 3 });
        // Once its clients have gone, A exits.
        await Promise.all(connections.map((connection) => connection.stop()));
        const { code } = await a.exit(10_000);
        assert.equal(code, 0, "exit status");
        await stopAll();
        await b.kill();
    });

    test("shutdown WaitForClientsClose (SIGTERM) drops the clients left at the timeout", { timeout: TIMEOUT }, async () => {
        const a = await server("timeout-a", {
            Azure__SignalR__GracefulShutdown__Mode: "WaitForClientsClose",
            Azure__SignalR__GracefulShutdown__TimeoutInSeconds: "2",
        });
        const [connection] = await clients(a, 1, { protocol: "messagepack" });
        const error = closed(connection);
        const signalled = Date.now();
        a.signal("SIGTERM");
        const { code } = await a.exit(10_000);
        assert.equal(code, 0, "exit status");
        assert.ok(Date.now() - signalled >= 1_900, `it waited for the timeout (${Date.now() - signalled} ms)`);
        assert.match(String(await withTimeout(error, 10_000, "the client to close")), /ServerOffline/);
    });

    test("shutdown MigrateClients (SIGINT): every client moves, nothing lost, nothing twice, order kept", { timeout: 2 * TIMEOUT }, async () => {
        const a = await server("migrate-a", {
            ...STICKY("Preferred"),
            Azure__SignalR__GracefulShutdown__Mode: "MigrateClients",
        });
        const b = await server("migrate-b");
        const kinds = [
            { transport: "WebSockets", protocol: "json" },
            { transport: "WebSockets", protocol: "messagepack" },
            { transport: "LongPolling", protocol: "json" },
            { transport: "LongPolling", protocol: "messagepack" },
        ];
        const PER_KIND = Number(process.env.MIGRATE_CLIENTS_PER_KIND ?? 50);
        const connections = [];
        for (const kind of kinds) {
            connections.push(...await clients(a, PER_KIND, kind));
        }
        const total = connections.length;
        assert.deepEqual(await spread(connections), { "migrate-a": total });
        // Every client is in a group and records the broadcasts it gets, in order.
        const received = connections.map(() => []);
        connections.forEach((connection, i) => {
            connection.on("Send", (name, message) => {
                if (name === "seq") {
                    received[i].push(Number(message));
                }
            });
        });
        await Promise.all(connections.map((connection) => connection.invoke("JoinGroup", "movers")));
        const before = await stats(b);

        // Load through the move: each client invokes in a loop; one broadcasts numbered messages.
        let running = true;
        const answered = connections.map(() => 0);
        const loops = connections.map(async (connection, i) => {
            while (running) {
                const name = await connection.invoke("GetServerName");
                assert.ok(name === "migrate-a" || name === "migrate-b", name);
                answered[i]++;
            }
        });
        const BROADCASTS = 200;
        const broadcaster = (async () => {
            for (let k = 1; k <= BROADCASTS; k++) {
                await connections[0].invoke("Broadcast", "seq", String(k));
                if (k === 50) {
                    a.signal("SIGINT");
                }
            }
        })();
        await broadcaster;
        const { code } = await a.exit(30_000);
        assert.equal(code, 0, "the old server exits once its clients have moved");
        running = false;
        await Promise.all(loops);

        // Everyone is on B now, with the same connection, told where it came from.
        assert.deepEqual(await spread(connections), { "migrate-b": total });
        const migration = await connections[1].invoke("GetMigration");
        assert.deepEqual(migration, { From: "migrate-a", To: "migrate-b" });
        const after = await stats(b);
        assert.equal(after.migratedIn - before.migratedIn, total, JSON.stringify(after));
        assert.equal(after.connected - before.connected, total, JSON.stringify(after));
        assert.equal(await relayClients(relay, "chathub"), total, "the relay still holds every client");
        for (const count of answered) {
            assert.ok(count > 0, "every client was answered during the run");
        }
        // Every broadcast reached every client exactly once, in order.
        await eventually(() => received.every((r) => r.length >= BROADCASTS), 10_000, "the last broadcasts");
        const expected = Array.from({ length: BROADCASTS }, (_, k) => k + 1);
        received.forEach((r, i) => assert.deepEqual(r, expected, `client ${i} (${JSON.stringify(kinds[Math.floor(i / PER_KIND)])})`));
        // The group and the connection ids moved with them: B reaches them by both.
        const direct = new Promise((resolve) => connections[total - 1].on("Direct", resolve));
        await connections[0].invoke("SendToConnection", connections[total - 1].connectionId, "to you");
        assert.equal(await withTimeout(direct, 5_000, "a message to a moved connection"), "to you");
        const grouped = new Promise((resolve) => connections[2].on("GroupMessage", (group, message) => resolve(message)));
        await connections[3].invoke("SendToGroup", "movers", "still grouped");
        assert.equal(await withTimeout(grouped, 5_000, "a group message after the move"), "still grouped");
        await stopAll();
        await b.kill();
    });

    test("shutdown MigrateClients with stateful reconnect: every client moves and stays connected", { timeout: TIMEOUT }, async () => {
        const options = {
            ...STICKY("Preferred"),
            Azure__SignalR__GracefulShutdown__Mode: "MigrateClients",
            Azure__SignalR__AllowStatefulReconnects: "true",
        };
        const a = await server("stateful-a", options);
        const b = await server("stateful-b", { Azure__SignalR__AllowStatefulReconnects: "true" });
        const connections = [
            ...await clients(a, 5, { statefulReconnect: true }),
            ...await clients(a, 5, { statefulReconnect: true, protocol: "messagepack" }),
        ];
        assert.deepEqual(await spread(connections), { "stateful-a": 10 });
        const received = connections.map(() => []);
        connections.forEach((connection, i) => connection.on("Send", (name, message) => received[i].push(message)));
        a.signal("SIGINT");
        assert.equal((await a.exit(20_000)).code, 0);
        assert.deepEqual(await spread(connections), { "stateful-b": 10 });
        await connections[0].invoke("Broadcast", "x", "after the move");
        await eventually(() => received.every((r) => r.includes("after the move")), 5_000, "the broadcast after the move");
        for (const connection of connections) {
            assert.equal(connection.state, HubConnectionState.Connected);
        }
        await stopAll();
        await b.kill();
    });

    test("shutdown MigrateClients without another server waits for the clients instead", { timeout: TIMEOUT }, async () => {
        const a = await server("alone-a", {
            Azure__SignalR__GracefulShutdown__Mode: "MigrateClients",
            Azure__SignalR__GracefulShutdown__TimeoutInSeconds: "30",
        });
        const connections = await clients(a, 5);
        a.signal("SIGINT");
        await delay(1_500);
        assert.equal(a.hasExited, false, "nowhere to move them: it waits");
        assert.deepEqual(await spread(connections), { "alone-a": 5 });
        await Promise.all(connections.map((connection) => connection.stop()));
        assert.equal((await a.exit(10_000)).code, 0);
    });

    test("the relay going away: OnDisconnected runs for every relayed client", { timeout: TIMEOUT }, async () => {
        const own = await startRelay();
        const a = await startAppServer(own, "orphan-a");
        servers.push(a);
        try {
            await clients(a, 12, { transport: "ServerSentEvents" });
            assert.equal((await stats(a)).connected, 12);
            await own.kill();
            await eventually(async () => (await stats(a)).disconnected === 12, 10_000, "12 disconnects at the app server");
        } finally {
            await stopAll();
            await own.kill();
            await a.kill();
        }
    });
});
