// A relay cluster: three switchboard-service nodes sharing one real redis-server, two app
// servers in service mode that dial only the first node, and official clients spread over the
// nodes by negotiate. Broadcasts, others, groups, users, connection sends, existence checks,
// group adds and client results across nodes; stateful reconnect; sticky routing and a graceful shutdown that
// moves clients on every node; a stopped node announced offline; garbage on the cluster's channels; a node
// killed (SIGKILL) under continuous traffic; Redis killed and started again; Redis stalled
// (SIGSTOP).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { buildConnection, countingWebSocket, delay, eventually, RecordingHttpClient, stopAll, useConnectionCleanup, withTimeout } from "../lib/hub.mjs";
import { relayClients, relayServerConnections, startAppServer, startRelay } from "../lib/cluster.mjs";
import { restartRedis, startRedis } from "../lib/redis.mjs";
import { SPREAD_USERS, allGet, chatClient, got, sendsReachEveryone } from "../lib/spread-clients.mjs";

const TIMEOUT = 60_000;
const NODE_TIMEOUT_SECS = 2;
useConnectionCleanup();

/** The node each client lands on: the one whose client count went up. */
async function landed(nodes, hub, before) {
    let node = null;
    await eventually(async () => {
        const now = await Promise.all(nodes.map((n) => relayClients(n, hub)));
        const index = now.findIndex((count, i) => count > before[i]);
        node = index >= 0 ? nodes[index] : null;
        return node !== null;
    }, 5_000, "a new client to show on a node");
    return node;
}

describe("a relay cluster of three nodes on Redis", { timeout: 8 * TIMEOUT }, () => {
    const processes = [];
    let redis;
    let nodes;
    let servers;
    let n1;

    /** The nodes' client counts of `hub` once they stay the same for 200 ms (clients that left are gone). */
    async function settledCounts(hub) {
        let last = null;
        for (let i = 0; i < 50; i++) {
            const counts = await Promise.all(nodes.filter((n) => !n.hasExited).map((n) => relayClients(n, hub)));
            if (last && counts.every((c, j) => c === last[j])) {
                return counts;
            }
            last = counts;
            await delay(200);
        }
        return last;
    }

    /** A started ChatHub client (negotiating at app server `server`), with an Inbox and its node. */
    async function chatClientOnSomeNode(server, user, options = {}) {
        const before = await settledCounts("chathub");
        const httpClient = new RecordingHttpClient();
        const client = await chatClient(server, user, { httpClient, ...options });
        // The app server, the node it names, and at most one node that node sends the client on to.
        const negotiates = httpClient.log.filter((e) => new URL(e.url).pathname.endsWith("/negotiate"));
        assert.ok(negotiates.length <= 3, `negotiated ${negotiates.length} times: ${negotiates.map((e) => e.url).join(", ")}`);
        const node = await landed(nodes.filter((n) => !n.hasExited), "chathub", before);
        return { ...client, node: node.name, where: node.name };
    }

    before(async () => {
        redis = await startRedis();
        processes.push(redis);
        nodes = [];
        for (const nodeId of ["n1", "n2", "n3"]) {
            const node = await startRelay({ redis: redis.url, nodeId, nodeTimeoutSecs: NODE_TIMEOUT_SECS, key: nodes[0]?.key });
            processes.push(node);
            nodes.push(node);
        }
        n1 = nodes[0];
        servers = [];
        for (const name of ["s1", "s2"]) {
            const server = await startAppServer(n1, name);
            processes.push(server);
            servers.push(server);
        }
        // Each node asks the app servers (through n1, where they are) for a connection of its own.
        await eventually(async () => {
            for (const node of nodes) {
                for (const hub of ["chathub", "testhub"]) {
                    if (await relayServerConnections(node, hub) < 2) {
                        return false;
                    }
                }
            }
            // …and every node has heard so from the others' heartbeats.
            for (const node of nodes) {
                const health = await (await fetch(`${node.url}/api/health`)).json();
                const served = (peer, hub) => (peer.hubs[hub] ?? []).length === 2;
                if (health.peers.length !== 2 || !health.peers.every((p) => served(p, "chathub") && served(p, "testhub"))) {
                    return false;
                }
            }
            return true;
        }, 20_000, "both app servers to reach every node");
    });

    after(async () => {
        await stopAll();
        for (const p of processes) {
            try {
                p.proc.kill("SIGCONT");
            } catch {
                // gone
            }
        }
        await Promise.all(processes.map((p) => p.kill()));
    });

    test("every node knows the others, and says so in /api/health and /metrics", async () => {
        for (const node of nodes) {
            const health = await (await fetch(`${node.url}/api/health`)).json();
            assert.equal(health.status, "ok");
            assert.equal(health.redis, "up");
            assert.deepEqual(health.peers.map((p) => p.id).sort(), ["n1", "n2", "n3"].filter((id) => id !== node.name));
            const metrics = await (await fetch(`${node.url}/metrics`)).text();
            assert.match(metrics, /^switchboard_cluster_peers 2$/m);
            assert.match(metrics, /^switchboard_cluster_redis_up 1$/m);
        }
        const forwarded = await (await fetch(`${n1.url}/metrics`)).text();
        const count = Number(/^switchboard_cluster_forwarded_server_connections (\d+)$/m.exec(forwarded)[1]);
        assert.ok(count >= 4, `n1 forwards the other nodes' server connections (${count})`);
    });

    test("all, others, groups, users and connection sends reach clients on every node", { timeout: 2 * TIMEOUT }, async () => {
        const clients = [];
        for (let i = 0; i < 6; i++) {
            clients.push(await chatClientOnSomeNode(servers[i % 2], SPREAD_USERS[i]));
        }
        const used = new Set(clients.map((c) => c.node));
        assert.equal(used.size, 3, `negotiate spreads clients over the nodes: ${clients.map((c) => c.node)}`);

        await sendsReachEveryone(clients);
        await Promise.all(clients.map((c) => c.connection.stop()));
    });

    test("existence checks, group adds and client results cross nodes", { timeout: TIMEOUT }, async () => {
        const clients = [];
        for (let i = 0; i < 4; i++) {
            const before = await settledCounts("testhub");
            const connection = buildConnection(`${servers[i % 2].url}/testhub`);
            connection.on("Result", () => 42);
            await withTimeout(connection.start(), 10_000, "TestHub start()");
            clients.push({ connection, node: (await landed(nodes, "testhub", before)).name });
        }
        assert.ok(new Set(clients.map((c) => c.node)).size >= 2, `TestHub clients on several nodes: ${clients.map((c) => c.node)}`);
        const get = async (server, path) => (await fetch(`${server.url}${path}`)).text();
        for (const client of clients) {
            for (const server of servers) {
                assert.equal(await get(server, `/exists/connection/${client.connection.connectionId}`), "true", `a client on ${client.node}, asked through ${server.name}`);
            }
        }
        assert.equal(await get(servers[0], "/exists/connection/nobody"), "false");
        // An app server adds connections on every node to a group (each acknowledged by its node).
        for (const client of clients) {
            const added = await fetch(`${servers[1].url}/groups/cluster-group/${client.connection.connectionId}`, { method: "POST" });
            assert.equal(added.status, 200, `the group add for a client on ${client.node}: ${await added.text()}`);
        }
        assert.equal(await get(servers[0], "/exists/group/cluster-group"), "true");
        assert.equal(await get(servers[0], "/exists/group/no-such-group"), "false");
        // A client result, asked through the app server that holds the client, on any node.
        for (const client of clients) {
            const answers = await Promise.all(servers.map((server) => get(server, `/clientresult/${client.connection.connectionId}`)));
            assert.ok(answers.includes("42"), `a client result from ${client.node}: ${answers}`);
        }
        await Promise.all(clients.map((c) => c.connection.stop()));
    });

    test("stateful reconnect on any node: dropped WebSockets lose nothing", { timeout: TIMEOUT }, async () => {
        const clients = [];
        for (let i = 0; i < 3; i++) {
            const before = await settledCounts("testhub");
            const { CountingWebSocket, opened, sockets } = countingWebSocket();
            const connection = buildConnection(`${servers[i % 2].url}/testhub`, {
                statefulReconnect: true,
                httpOptions: { WebSocket: CountingWebSocket },
            });
            const received = [];
            const reconnecting = [];
            connection.on("Message", (m) => received.push(m));
            connection.onreconnecting((e) => reconnecting.push(e));
            await withTimeout(connection.start(), 10_000, "a stateful TestHub start()");
            assert.equal(connection.connection.features.reconnect, true, "stateful reconnect offered through the cluster");
            const node = (await landed(nodes, "testhub", before)).name;
            clients.push({ connection, received, reconnecting, opened, sockets, node, id: connection.connectionId });
        }
        const MESSAGES = 150;
        await Promise.all(clients.map(async (client) => {
            for (let k = 1; k <= MESSAGES; k++) {
                await client.connection.send("InvokeWithString", String(k));
                if (k % 50 === 0) {
                    // A network failure: the client's side of the socket goes without a close.
                    client.sockets.at(-1).terminate();
                    await delay(50);
                }
            }
        }));
        for (const client of clients) {
            await eventually(() => client.received.length >= MESSAGES, 15_000, `every message on ${client.node} (got ${client.received.length}, sockets ${client.opened.join(" ")}, state ${client.connection.state})`);
            assert.deepEqual(client.received, Array.from({ length: MESSAGES }, (_, k) => String(k + 1)), `in order, once, on ${client.node}`);
            assert.equal(client.connection.connectionId, client.id, "the same connection");
            assert.deepEqual(client.reconnecting, [], "no reconnect that loses the connection");
            assert.ok(client.opened.length >= 3, `a new WebSocket after each drop on ${client.node}: ${client.opened.length}`);
            assert.equal(new Set(client.opened.map((u) => new URL(u).host)).size, 1, "every WebSocket to the same node");
        }
        await Promise.all(clients.map((c) => c.connection.stop()));
    });

    test("garbage on the cluster's channels is dropped and logged", async () => {
        const a = await chatClientOnSomeNode(servers[0], "g1");
        const b = await chatClientOnSomeNode(servers[1], "g2");
        redis.cli("PUBLISH", "switchboard:cluster", "not a cluster message");
        redis.cli("PUBLISH", "switchboard:cluster", "\u0001\u0009\u0001");
        redis.cli("PUBLISH", "switchboard:node:n2", "");
        redis.cli("SET", "switchboard:registry:n9", "{not json");
        redis.cli("SADD", "switchboard:nodes", "n9");
        await a.connection.invoke("Broadcast", "a", "after garbage");
        await allGet([a, b], "Send", "after garbage", "a broadcast after garbage");
        await eventually(() => nodes.every((n) => /dropped a cluster message/.test(n.stderr)), 5_000, "the garbage to be logged");
        assert.ok(nodes.every((n) => !n.hasExited), "no node went down");
        redis.cli("DEL", "switchboard:registry:n9");
        await Promise.all([a, b].map((c) => c.connection.stop()));
    });

    test("Redis stalled (SIGSTOP): traffic that needs no other node goes on; then the cluster resumes", { timeout: TIMEOUT }, async () => {
        const clients = [];
        for (let i = 0; i < 3; i++) {
            clients.push(await chatClientOnSomeNode(servers[i % 2], `stall${i}`));
        }
        redis.proc.kill("SIGSTOP");
        try {
            const started = Date.now();
            for (let i = 0; i < 10; i++) {
                for (const client of clients) {
                    const [, payload] = await withTimeout(client.connection.invoke("Echo", i, `echo ${i}`), 2_000, `an echo on ${client.node} while Redis is stalled`);
                    assert.equal(payload, `echo ${i}`);
                }
            }
            assert.ok(Date.now() - started < 10_000);
            await delay(NODE_TIMEOUT_SECS * 1000 + 500);
        } finally {
            redis.proc.kill("SIGCONT");
        }
        // Nobody was found dead, and cross-node traffic works again.
        let seq = 0;
        await eventually(async () => {
            const text = `after the stall ${seq++}`;
            await clients[0].connection.invoke("Broadcast", "a", text);
            await delay(300);
            return clients.every((client) => got(client, "Send", text));
        }, 20_000, "a broadcast across nodes after the stall");
        for (const node of nodes) {
            assert.doesNotMatch(node.stderr, /stopped beating/, `${node.name} found nobody dead`);
            assert.doesNotMatch(node.stderr, /another relay uses this node id/, `${node.name} saw no twin`);
        }
        await Promise.all(clients.map((c) => c.connection.stop()));
    });

    test("Redis killed and started again: the cluster recovers by itself", { timeout: TIMEOUT }, async () => {
        const members = [];
        for (let i = 0; i < 4; i++) {
            const member = await chatClientOnSomeNode(servers[i % 2], `restart${i}`);
            await member.connection.invoke("JoinGroup", "after-restart");
            members.push(member);
        }
        redis = await restartRedis(redis, processes);
        let seq = 0;
        await eventually(async () => {
            const text = `after the restart ${seq++}`;
            await members[0].connection.invoke("SendToGroup", "after-restart", text);
            await delay(300);
            return members.every((member) => got(member, "GroupMessage", text));
        }, 30_000, "a group send to reach every member after Redis came back");
        await eventually(async () => {
            for (const node of nodes) {
                const health = await (await fetch(`${node.url}/api/health`)).json();
                if (health.redis !== "up" || health.peers.length !== 2) {
                    return false;
                }
            }
            return true;
        }, 10_000, "every node back in the registry");
        await Promise.all(members.map((c) => c.connection.stop()));
    });

    test("sticky routing and a graceful shutdown with migration (SIGINT) on every node", { timeout: 2 * TIMEOUT }, async () => {
        const movingFrom = await startAppServer(n1, "m-a", {
            Azure__SignalR__ServerStickyMode: "Preferred",
            Azure__SignalR__GracefulShutdown__Mode: "MigrateClients",
        });
        processes.push(movingFrom);
        await eventually(async () => {
            for (const node of nodes.slice(1)) {
                const health = await (await fetch(`${node.url}/api/health`)).json();
                if (!health.peers.every((p) => (p.hubs.chathub ?? []).includes("m-a"))) {
                    return false;
                }
            }
            const health = await (await fetch(`${n1.url}/api/health`)).json();
            return health.peers.every((p) => (p.hubs.chathub ?? []).includes("m-a"));
        }, 20_000, "m-a to reach every node");
        const clients = [];
        for (let i = 0; i < 9; i++) {
            clients.push(await chatClientOnSomeNode(movingFrom, `mover${i}`));
        }
        assert.equal(new Set(clients.map((c) => c.node)).size, 3, `clients on every node: ${clients.map((c) => c.node)}`);
        for (const client of clients) {
            assert.equal(await client.connection.invoke("GetServerName"), "m-a", `sticky on ${client.node}`);
        }
        const BROADCASTS = 120;
        const received = clients.map(() => []);
        clients.forEach((client, i) => client.connection.on("Send", (name, message) => {
            if (name === "seq") {
                received[i].push(Number(message));
            }
        }));
        for (let k = 1; k <= BROADCASTS; k++) {
            await clients[0].connection.invoke("Broadcast", "seq", String(k));
            if (k === 30) {
                movingFrom.signal("SIGINT");
            }
        }
        const { code } = await movingFrom.exit(30_000);
        assert.equal(code, 0, "m-a exits once its clients have moved");
        for (const client of clients) {
            const name = await client.connection.invoke("GetServerName");
            assert.ok(name === "s1" || name === "s2", `moved on ${client.node}: ${name}`);
        }
        const expected = Array.from({ length: BROADCASTS }, (_, k) => k + 1);
        await eventually(() => received.every((r) => r.length >= BROADCASTS), 10_000, "the last broadcasts");
        received.forEach((r, i) => assert.deepEqual(r, expected, `every broadcast once, in order, on ${clients[i].node}`));
        await Promise.all(clients.map((c) => c.connection.stop()));
    });

    test("a node that stops beating (SIGSTOP) is announced offline: the app servers drop its clients, and only those", { timeout: TIMEOUT }, async () => {
        const clients = [];
        for (let i = 0; i < 6; i++) {
            clients.push(await chatClientOnSomeNode(servers[i % 2], `frozen${i}`));
        }
        const n3 = nodes[2];
        const onN3 = clients.filter((c) => c.node === "n3").length;
        assert.ok(onN3 > 0 && onN3 < clients.length, `clients on n3 and elsewhere: ${clients.map((c) => c.node)}`);
        const disconnected = async () => {
            const stats = await Promise.all(servers.map(async (s) => (await fetch(`${s.url}/stats`)).json()));
            return stats.reduce((sum, s) => sum + s.disconnected, 0);
        };
        let before = await disconnected();
        await eventually(async () => {
            const now = await disconnected();
            const settled = now === before;
            before = now;
            return settled;
        }, 10_000, "the app servers' counts to settle");
        n3.proc.kill("SIGSTOP");
        try {
            // Its sockets stay open (it is only stopped): only the offline ping can do this.
            await eventually(async () => await disconnected() - before >= onN3, 15_000, "the app servers to drop n3's clients");
            await delay(500);
            assert.equal(await disconnected() - before, onN3, "only n3's clients were dropped");
            assert.match(n1.stderr, /stopped beating/);
        } finally {
            n3.proc.kill("SIGCONT");
        }
        await eventually(async () => {
            const health = await (await fetch(`${n1.url}/api/health`)).json();
            return health.peers.some((p) => p.id === "n3");
        }, 15_000, "n3 back in the cluster once it beats again");
        await Promise.all(clients.map((c) => c.connection.stop()));
    });

    test("a node killed (SIGKILL) under traffic: the others' clients lose nothing, its clients reconnect to the others", { timeout: 2 * TIMEOUT }, async () => {
        const reconnect = Array.from({ length: 20 }, () => 500);
        const clients = [];
        for (let i = 0; i < 9; i++) {
            clients.push(await chatClientOnSomeNode(servers[i % 2], `kill${i}`, { automaticReconnect: reconnect }));
        }
        const n3 = nodes[2];
        const sender = clients.find((c) => c.node === "n1");
        const onN3 = clients.filter((c) => c.node === "n3");
        const survivors = clients.filter((c) => c.node !== "n3");
        assert.ok(sender && onN3.length > 0, `clients on n1 and n3: ${clients.map((c) => c.node)}`);
        const reconnected = onN3.map((c) => new Promise((resolve) => c.connection.onreconnected(resolve)));
        let sent = 0;
        let sending = true;
        const traffic = (async () => {
            while (sending && sent < 400) {
                await sender.connection.invoke("Broadcast", "n1", `tick ${sent}`);
                sent++;
                await delay(20);
            }
        })();
        await delay(1_000);
        await n3.kill();
        await delay(2_000);
        sending = false;
        await traffic;
        const last = `tick ${sent - 1}`;
        await allGet(survivors, "Send", last, "the last tick");
        for (const client of survivors) {
            const ticks = client.inbox.items.filter((item) => item.method === "Send" && item.args[1].startsWith("tick ")).map((item) => item.args[1]);
            assert.deepEqual(ticks, Array.from({ length: sent }, (_, i) => `tick ${i}`), `every tick, in order, on ${client.node}`);
        }
        await withTimeout(Promise.all(reconnected), 30_000, "n3's clients to reconnect");
        await eventually(async () => {
            const health = await (await fetch(`${n1.url}/api/health`)).json();
            return health.peers.length === 1 && health.peers[0].id === "n2";
        }, 10_000, "n1 to find n3 dead");
        const [onN1, onN2] = await Promise.all([relayClients(n1, "chathub"), relayClients(nodes[1], "chathub")]);
        assert.equal(onN1 + onN2, clients.length, "every client is on n1 or n2 now");
        await sender.connection.invoke("Broadcast", "n1", "after the loss");
        await allGet(clients, "Send", "after the loss", "a broadcast after n3 died");
    });

    test("a second node with a taken node id is told so in the logs", { timeout: TIMEOUT }, async () => {
        const twin = await startRelay({ redis: redis.url, nodeId: "n2", nodeTimeoutSecs: NODE_TIMEOUT_SECS, key: n1.key });
        processes.push(twin);
        const warning = /another relay uses this node id/;
        await eventually(() => warning.test(twin.stderr) || warning.test(nodes[1].stderr), 10_000, "the warning");
        await twin.kill();
    });
});
