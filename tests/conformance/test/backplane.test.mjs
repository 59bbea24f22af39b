// Self-hosted hubs on three app servers sharing one real redis-server (the Redis backplane,
// ASP.NET Core's channels and envelope), through the official client: broadcasts, others,
// groups, users, connection sends and client results across servers; garbage on the
// channels; Redis killed and started again.

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { buildConnection, delay, eventually, stopAll, useConnectionCleanup, withTimeout } from "../lib/hub.mjs";
import { startBackplaneServer } from "../lib/cluster.mjs";
import { restartRedis, startRedis } from "../lib/redis.mjs";
import { SPREAD_USERS, allGet, chatClient, got, sendsReachEveryone } from "../lib/spread-clients.mjs";

const TIMEOUT = 60_000;
useConnectionCleanup();

describe("the Redis backplane with three app servers", { timeout: 5 * TIMEOUT }, () => {
    const processes = [];
    after(async () => {
        await stopAll();
        await Promise.all(processes.map((p) => p.kill()));
    });

    test("all, others, groups, users, connections and client results cross servers; garbage and a Redis restart are survived", { timeout: 2 * TIMEOUT }, async () => {
        let redis = await startRedis();
        processes.push(redis);
        const servers = [];
        for (const name of ["bp-a", "bp-b", "bp-c"]) {
            const server = await startBackplaneServer(redis.url, name);
            processes.push(server);
            servers.push(server);
        }
        const [a, b, c] = servers;
        const clients = [];
        for (const [i, server] of [a, a, b, b, c, c].entries()) {
            clients.push(await chatClient(server, SPREAD_USERS[i]));
        }
        // A first send also waits for every server's subscriptions to be in force.
        await eventually(async () => {
            await clients[0].connection.invoke("Broadcast", "a", "hello");
            await delay(200);
            return clients.every((client) => got(client, "Send", "hello"));
        }, 15_000, "a first broadcast to reach every server");

        await sendsReachEveryone(clients);

        // Client results: a TestHub client of C, asked through A.
        const answering = buildConnection(`${c.url}/testhub`);
        answering.on("Result", () => 42);
        await withTimeout(answering.start(), 10_000, "TestHub start()");
        await eventually(async () => (await (await fetch(`${a.url}/clientresult/${answering.connectionId}`)).text()) === "42", 10_000, "a client result across servers");
        assert.equal(await (await fetch(`${b.url}/clientresult/nobody`)).text(), "Connection 'nobody' does not exist.");

        // Garbage on the channels is dropped and logged; everything goes on.
        redis.cli("PUBLISH", "ChatHub:all", "not msgpack");
        redis.cli("PUBLISH", "ChatHub:internal:groups", "\u0095\u0001");
        redis.cli("PUBLISH", "ChatHub:group:g", "");
        await clients[1].connection.invoke("Broadcast", "a", "after garbage");
        await allGet(clients, "Send", "after garbage", "broadcast after garbage");
        await eventually(() => servers.every((s) => /dropped a backplane message/.test(s.stderr)), 5_000, "the garbage to be logged");
        assert.ok(servers.every((s) => !s.hasExited), "no server went down");

        // Redis killed and started again on its port: the servers subscribe again by themselves.
        redis = await restartRedis(redis, processes);
        let seq = 0;
        await eventually(async () => {
            const text = `after the restart ${seq++}`;
            try {
                await clients[0].connection.invoke("SendToGroup", "g", text);
            } catch {
                return false;
            }
            await delay(300);
            return got(clients[2], "GroupMessage", text) && got(clients[5], "GroupMessage", text);
        }, 30_000, "a group send to reach every member after Redis came back");
        await clients[3].connection.invoke("SendToGroup", "g", "once back");
        await allGet([clients[2], clients[5]], "GroupMessage", "once back", "group send once back");
    });
});
