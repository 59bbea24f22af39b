// Service mode with several endpoints (relays) per app server, through the official client:
// where negotiate sends clients (primaries by free capacity, never a secondary), messages
// reaching clients on every relay, failover when a primary relay is killed (SIGKILL) and its
// return, endpoints added and removed at run time (POST /endpoints) under traffic, the
// ServiceScaleTimeout both ways, and configuration the Azure SDK refuses or accepts.
// Each test starts its own relays and app servers (lib/cluster.mjs).

import { after, afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { HubConnectionState } from "@microsoft/signalr";
import { buildConnection, delay, eventually, Inbox, stopAll, useConnectionCleanup, withTimeout } from "../lib/hub.mjs";
import {
    changeEndpoint, endpointsEnv, refusedAppServer, relayClients, relayServerConnections, startAppServer, startRelay,
} from "../lib/cluster.mjs";

const TIMEOUT = 90_000;
useConnectionCleanup();

const processes = [];
async function relay(options) {
    const started = await startRelay(options);
    processes.push(started);
    return started;
}
async function appServer(name, env) {
    const started = await startAppServer(null, name, env);
    processes.push(started);
    return started;
}
async function killAll() {
    await stopAll();
    await Promise.all(processes.splice(0).map((p) => p.kill()));
}
afterEach(killAll);
after(killAll);

/** Started ChatHub clients negotiating at `server`, each with an Inbox of what it gets. */
async function chatClients(server, count, options = {}) {
    const started = [];
    for (let i = 0; i < count; i++) {
        const user = options.user ? `?user=${encodeURIComponent(options.user(i))}` : "";
        const connection = buildConnection(`${server.url}/chathub${user}`, options);
        const inbox = new Inbox(connection, ["Send", "GroupMessage", "UserMessage", "Direct"]);
        await withTimeout(connection.start(), 10_000, `client ${i} of ${server.name} start()`);
        started.push({ connection, inbox });
    }
    return started;
}

/** The port of the relay an app server's negotiate sends a client to now. */
async function negotiatedPort(server, hub = "chathub") {
    const response = await fetch(`${server.url}/${hub}/negotiate?negotiateVersion=1`, { method: "POST" });
    const body = await response.json();
    assert.ok(body.url, `negotiate at ${server.name}: ${response.status} ${JSON.stringify(body)}`);
    return Number(new URL(body.url).port);
}

async function ports(server, times) {
    const seen = [];
    for (let i = 0; i < times; i++) {
        seen.push(await negotiatedPort(server));
    }
    return seen;
}

/** Waits for every inbox to hold a call of `method` whose last argument is `text`. */
async function allGet(clients, method, text, what) {
    await Promise.all(clients.map(({ inbox }, i) => inbox.waitFor(
        (item) => item.method === method && item.args.at(-1) === text,
        10_000,
        `${what}: client ${i}`,
    )));
}

describe("several service endpoints", { timeout: 10 * TIMEOUT }, () => {
    test("negotiate spreads clients over the primaries by free capacity; a secondary gets none", { timeout: TIMEOUT }, async () => {
        // 8 server connections at each: the small relay (capacity 9) weighs 1/9 free, the big
        // one (capacity 1000) 992/1000, so about 1 client in 10 goes to the small one; an
        // even split would overfill it (it refuses its tenth client).
        const small = await relay({ maxClientsPerHub: 9 });
        const big = await relay({ maxClientsPerHub: 1000 });
        const secondary = await relay({ maxClientsPerHub: 1000 });
        const a = await appServer("spread-a", {
            ...endpointsEnv([
                { name: "small", relay: small },
                { name: "big", relay: big },
                { name: "backup", relay: secondary, type: "secondary" },
            ]),
            Azure__SignalR__InitialHubServerConnectionCount: "8",
        });
        // The app server asks each endpoint for its status again the moment its last server
        // connection is up; that answer carries the capacity and all 8 server connections.
        await eventually(async () => (await relayServerConnections(small, "chathub")) === 8
            && (await relayServerConnections(big, "chathub")) === 8, 10_000, "8 server connections at each primary");
        await delay(500);
        await chatClients(a, 30);
        const [onSmall, onBig, onSecondary] = await Promise.all(
            [small, big, secondary].map((r) => relayClients(r, "chathub")),
        );
        assert.equal(onSmall + onBig, 30, `small ${onSmall}, big ${onBig}`);
        assert.ok(onSmall < onBig / 2, `clients follow free capacity: small ${onSmall}, big ${onBig}`);
        assert.equal(onSecondary, 0, "a secondary endpoint carries no clients");
    });

    test("broadcast, group, user, connection sends and client results reach clients on every relay", { timeout: TIMEOUT }, async () => {
        const east = await relay();
        const west = await relay();
        const backup = await relay();
        // A and B: two primaries and a secondary; C serves the secondary relay's own clients
        // (to the secondary it is a primary), so what A and B send there reaches them.
        const twoPrimaries = endpointsEnv([
            { name: "east", relay: east },
            { name: "west", relay: west },
            { name: "backup", relay: backup, type: "secondary" },
        ]);
        const a = await appServer("multi-a", twoPrimaries);
        const b = await appServer("multi-b", twoPrimaries);
        const c = await appServer("multi-c", endpointsEnv([{ name: "local", relay: backup }]));
        const viaA = await chatClients(a, 6, { user: (i) => (i === 0 ? "everywhere" : `a${i}`) });
        const viaB = await chatClients(b, 6, { user: (i) => (i === 0 ? "everywhere" : `b${i}`), protocol: "messagepack" });
        const viaC = await chatClients(c, 2, { user: (i) => (i === 0 ? "everywhere" : `c${i}`) });
        const everyone = [...viaA, ...viaB, ...viaC];
        const [onEast, onWest, onBackup] = await Promise.all([east, west, backup].map((r) => relayClients(r, "chathub")));
        assert.equal(onBackup, 2, "only C's clients are on the secondary relay");
        assert.equal(onEast + onWest, 12);
        assert.ok(onEast > 0 && onWest > 0, `clients on both primaries: east ${onEast}, west ${onWest}`);

        await viaA[1].connection.invoke("Broadcast", "a1", "to all");
        await allGet(everyone, "Send", "to all", "broadcast from A");

        for (const { connection } of everyone) {
            await connection.invoke("JoinGroup", "g");
        }
        await viaB[1].connection.invoke("SendToGroup", "g", "to the group");
        await allGet(everyone, "GroupMessage", "to the group", "group send from B");

        await viaA[2].connection.invoke("SendToUser", "everywhere", "to the user");
        await allGet([viaA[0], viaB[0], viaC[0]], "UserMessage", "to the user", "user send from A");

        // A connection send from B reaches a client of A on whichever relay it is.
        for (const target of viaA) {
            await viaB[2].connection.invoke("SendToConnection", target.connection.connectionId, `direct ${target.connection.connectionId}`);
        }
        await Promise.all(viaA.map(({ connection, inbox }) => inbox.waitFor(
            (item) => item.method === "Direct" && item.args[0] === `direct ${connection.connectionId}`,
            10_000,
            "a connection send from B",
        )));

        // Client results: TestHub clients of A, on both primaries.
        const testClients = [];
        for (let i = 0; i < 16; i++) {
            const connection = buildConnection(`${a.url}/testhub`);
            connection.on("Result", () => 40 + i);
            await withTimeout(connection.start(), 10_000, "TestHub start()");
            testClients.push(connection);
        }
        const testOnEast = await relayClients(east, "testhub");
        assert.ok(testOnEast > 0 && testOnEast < 16, `TestHub clients on both primaries (east ${testOnEast})`);
        // The relays spread the clients over A and B: each asks its own.
        const byName = { "multi-a": a, "multi-b": b };
        for (const [i, connection] of testClients.entries()) {
            const server = byName[await connection.invoke("GetServerName")];
            const body = await (await fetch(`${server.url}/clientresult/${connection.connectionId}`)).text();
            assert.equal(body, String(40 + i));
        }
    });

    test("a primary relay killed (SIGKILL): negotiate avoids it at once, its clients reconnect elsewhere, it is used again when back", { timeout: TIMEOUT }, async () => {
        const east = await relay();
        const west = await relay();
        const env = endpointsEnv([{ name: "east", relay: east }, { name: "west", relay: west }]);
        const a = await appServer("failover-a", env);
        const b = await appServer("failover-b", env);
        const clients = [
            ...await chatClients(a, 6, { automaticReconnect: [0, 500, 1000, 1000, 1000, 1000] }),
            ...await chatClients(b, 6, { automaticReconnect: [0, 500, 1000, 1000, 1000, 1000] }),
        ];
        const reconnecting = new Set();
        for (const [i, { connection }] of clients.entries()) {
            connection.onreconnecting(() => reconnecting.add(i));
        }
        const onEast = await relayClients(east, "chathub");
        assert.ok(onEast > 0 && onEast < 12, `clients on both relays (east ${onEast})`);

        await east.kill();
        await delay(300);
        for (const server of [a, b]) {
            assert.deepEqual(new Set(await ports(server, 10)), new Set([west.port]), `negotiate at ${server.name} avoids the dead relay`);
        }
        await eventually(async () => (await relayClients(west, "chathub")) === 12 && clients.every(({ connection }) => connection.state === HubConnectionState.Connected), 20_000, "every client connected through west");
        assert.equal(reconnecting.size, onEast, "only the dead relay's clients reconnected");

        await clients[0].connection.invoke("Broadcast", "x", "after the failover");
        await allGet(clients, "Send", "after the failover", "broadcast after the failover");

        // The relay comes back where it was: the app servers reconnect and send clients there again.
        const back = await relay({ port: east.port, key: east.key });
        for (const server of [a, b]) {
            await eventually(async () => (await negotiatedPort(server)) === back.port, 40_000, `${server.name} to use the returned relay`);
        }
        const late = await chatClients(a, 1);
        await clients[1].connection.invoke("Broadcast", "x", "with the relay back");
        await allGet([...clients, ...late], "Send", "with the relay back", "broadcast with the relay back");
    });

    test("an endpoint added and one removed at run time under continuous traffic; clients that stay lose nothing", { timeout: TIMEOUT }, async () => {
        const first = await relay();
        const second = await relay();
        const a = await appServer("scale-a", {
            ...endpointsEnv([{ name: "first", relay: first }]),
            Azure__SignalR__ServiceScaleTimeoutInSeconds: "20",
        });
        const reconnect = { automaticReconnect: [0, 200, 500, 1000, 1000, 1000] };
        const early = await chatClients(a, 3, reconnect);
        assert.equal(await relayClients(first, "chathub"), 3);

        // One app server: the new endpoint lists the same servers at once.
        let started = Date.now();
        assert.deepEqual(await changeEndpoint(a, "add", second, "primary", "second"), { status: 200, text: "" });
        assert.ok(Date.now() - started < 5_000, `the add converged at once (${Date.now() - started} ms)`);
        const late = await chatClients(a, 12, reconnect);
        const onSecond = await relayClients(second, "chathub");
        assert.ok(onSecond > 0, "the added endpoint takes clients");
        const everyone = [...early, ...late];
        const reconnected = new Set();
        for (const [i, { connection }] of everyone.entries()) {
            connection.onreconnecting(() => reconnected.add(i));
        }

        // Traffic: a broadcast every 20 ms from a client of the endpoint to be removed.
        const sender = early[0].connection;
        const delivered = [];
        let sending = true;
        const traffic = (async () => {
            for (let seq = 0; sending && seq < 1000; seq++) {
                try {
                    await sender.invoke("Broadcast", "seq", String(seq));
                    delivered.push(String(seq));
                } catch {
                    // Not sent while the sender moves; not counted.
                }
                await delay(20);
            }
        })();
        await delay(500);
        started = Date.now();
        assert.deepEqual(await changeEndpoint(a, "remove", first), { status: 200, text: "" });
        const removedIn = Date.now() - started;
        assert.ok(removedIn < 15_000, `the removal ended when its clients had gone (${removedIn} ms)`);
        await eventually(() => everyone.every(({ connection }) => connection.state === HubConnectionState.Connected), 15_000, "every client connected again");
        await delay(500);
        sending = false;
        await traffic;
        assert.equal(await relayClients(first, "chathub"), 0, "no client left on the removed endpoint");
        assert.equal(await relayClients(second, "chathub"), 15);
        assert.ok(delivered.length > 20, `traffic flowed (${delivered.length} broadcasts)`);

        // The clients on the endpoint that stayed got every broadcast that was sent.
        const stayed = everyone.filter((_, i) => !reconnected.has(i));
        assert.equal(stayed.length, onSecond, "the clients of the endpoint that stays did not move");
        const last = delivered.at(-1);
        await allGet(stayed, "Send", last, "the last broadcast");
        for (const [i, { inbox }] of stayed.entries()) {
            const got = new Set(inbox.items.filter((item) => item.method === "Send").map((item) => item.args[1]));
            const missing = delivered.filter((seq) => !got.has(seq));
            assert.deepEqual(missing, [], `client ${i} that stayed missed broadcasts`);
        }
        await late[0].connection.invoke("Broadcast", "x", "after the scale");
        await allGet(everyone, "Send", "after the scale", "broadcast after the scale");
    });

    test("ServiceScaleTimeout: an add waits for the servers to match, a removal for the clients to go, each at most the timeout", { timeout: TIMEOUT }, async () => {
        const first = await relay();
        const second = await relay();
        const env = {
            ...endpointsEnv([{ name: "first", relay: first }]),
            Azure__SignalR__ServiceScaleTimeoutInSeconds: "5",
        };
        const a = await appServer("timeout-a", env);
        const b = await appServer("timeout-b", env);
        const timed = async (work) => {
            const started = Date.now();
            const result = await work;
            return { ...result, ms: Date.now() - started };
        };

        // Only A knows the new relay: its servers ([A]) never match the first's ([A, B]).
        let added = await timed(changeEndpoint(a, "add", second));
        assert.equal(added.status, 200, added.text);
        assert.ok(added.ms >= 4_500 && added.ms < 9_000, `the add gave up at the timeout (${added.ms} ms)`);
        assert.ok((await ports(a, 20)).includes(second.port), "after the timeout the endpoint takes clients anyway");
        // With B too, both relays list A and B: B's add ends at once.
        added = await timed(changeEndpoint(b, "add", second));
        assert.equal(added.status, 200, added.text);
        assert.ok(added.ms < 4_000, `the add ended when the servers matched (${added.ms} ms)`);

        // Clients of B on the second relay keep it busy: A's removal waits out the timeout.
        await chatClients(b, 10);
        assert.ok((await relayClients(second, "chathub")) > 0);
        let removed = await timed(changeEndpoint(a, "remove", second));
        assert.equal(removed.status, 200, removed.text);
        assert.ok(removed.ms >= 4_500 && removed.ms < 9_000, `the removal gave up at the timeout (${removed.ms} ms)`);
        assert.ok((await relayClients(second, "chathub")) > 0, "B's clients are still there");
        // B's removal closes its clients there (fin:0): it ends as soon as they have gone.
        removed = await timed(changeEndpoint(b, "remove", second));
        assert.equal(removed.status, 200, removed.text);
        assert.ok(removed.ms < 4_000, `the removal ended when the clients had gone (${removed.ms} ms)`);
        assert.equal(await relayClients(second, "chathub"), 0);
        assert.deepEqual(new Set(await ports(b, 10)), new Set([first.port]));

        // The last primary endpoint stays, with the SDK's text.
        assert.deepEqual(await changeEndpoint(a, "remove", first), { status: 400, text: "No primary endpoint defined." });
        assert.deepEqual((await changeEndpoint(a, "remove", second)).status, 400);
    });

    test("configuration: the Azure SDK's texts for no primary and a bad connection string; unknown types and shared names are accepted", { timeout: TIMEOUT }, async () => {
        const east = await relay();
        const west = await relay();
        const noPrimary = await refusedAppServer("bad-a", endpointsEnv([{ name: "east", relay: east, type: "secondary" }]));
        assert.equal(noPrimary.code, 1);
        assert.match(noPrimary.stderr, /configuration error: No primary endpoint defined\./);
        const badString = await refusedAppServer("bad-b", {
            Azure__SignalR__ConnectionString__east__primary: "Endpoint=http://127.0.0.1;Port=1;Version=1.0;",
        });
        assert.equal(badString.code, 1);
        assert.match(badString.stderr, /configuration error: accesskey is required\./);

        // A type the SDK does not know is part of the name: a primary endpoint `east:tertiary`.
        const unknown = await appServer("odd-a", { Azure__SignalR__ConnectionString__east__tertiary: east.connectionString });
        assert.deepEqual(new Set(await ports(unknown, 5)), new Set([east.port]));
        // Two endpoints may share a name; the secondary one gets no clients.
        const shared = await appServer("odd-b", {
            Azure__SignalR__ConnectionString__east__primary: east.connectionString,
            Azure__SignalR__ConnectionString__east__secondary: west.connectionString,
        });
        assert.deepEqual(new Set(await ports(shared, 10)), new Set([east.port]));
        // Entries for one address are one endpoint, its primary entry kept.
        const same = await appServer("odd-c", {
            Azure__SignalR__ConnectionString__one__secondary: east.connectionString,
            Azure__SignalR__ConnectionString__two__primary: east.connectionString,
        });
        assert.deepEqual(new Set(await ports(same, 5)), new Set([east.port]));
        // A bad body or connection string for the run-time route.
        const refused = await changeEndpoint(same, "add", { connectionString: "Endpoint=http://127.0.0.1;Version=1.0;" });
        assert.deepEqual(refused, { status: 400, text: "accesskey is required." });
        assert.deepEqual((await changeEndpoint(same, "add", east)).status, 400, "an address already there");
    });
});
