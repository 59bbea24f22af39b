// Self-hosted hubs on three app servers sharing one real redis-server (the Redis backplane,
// ASP.NET Core's channels and envelope), through the official client: broadcasts, others,
// groups, users, connection sends and client results across servers; garbage on the
// channels; Redis killed and started again.

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { buildConnection, delay, eventually, Inbox, stopAll, useConnectionCleanup, withTimeout } from "../lib/hub.mjs";
import { startBackplaneServer } from "../lib/cluster.mjs";
import { startRedis } from "../lib/redis.mjs";

const TIMEOUT = 60_000;
useConnectionCleanup();

/** A started ChatHub client of `server` as user `user`, with an Inbox. */
async function chatClient(server, user) {
    const connection = buildConnection(`${server.url}/chathub?user=${encodeURIComponent(user)}`);
    const inbox = new Inbox(connection, ["Send", "GroupMessage", "UserMessage", "Direct"]);
    await withTimeout(connection.start(), 10_000, `start() at ${server.name}`);
    return { connection, inbox, user, server: server.name };
}

/** Waits for each client to get a call of `method` whose last argument is `text`. */
async function allGet(clients, method, text, what) {
    await Promise.all(clients.map((client) => client.inbox.waitFor(
        (item) => item.method === method && item.args.at(-1) === text,
        10_000,
        `${what}: ${client.user} at ${client.server}`,
    )));
}

function got(client, method, text) {
    return client.inbox.items.some((item) => item.method === method && item.args.at(-1) === text);
}

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
            clients.push(await chatClient(server, i === 0 || i === 4 ? "shared" : `user${i}`));
        }
        // A first send also waits for every server's subscriptions to be in force.
        await eventually(async () => {
            await clients[0].connection.invoke("Broadcast", "a", "hello");
            await delay(200);
            return clients.every((client) => got(client, "Send", "hello"));
        }, 15_000, "a first broadcast to reach every server");

        await clients[2].connection.invoke("Broadcast", "b", "to all");
        await allGet(clients, "Send", "to all", "broadcast from B");

        await clients[3].connection.invoke("BroadcastOthers", "b", "to the others");
        await allGet(clients.filter((_, i) => i !== 3), "Send", "to the others", "others from B");

        const members = [clients[1], clients[2], clients[5]];
        for (const member of members) {
            await member.connection.invoke("JoinGroup", "g");
        }
        await clients[0].connection.invoke("SendToGroup", "g", "to the group");
        await allGet(members, "GroupMessage", "to the group", "group send from A");
        await clients[5].connection.invoke("SendToOthersInGroup", "g", "to the other members");
        await allGet([clients[1], clients[2]], "GroupMessage", "to the other members", "others in group from C");
        await members[0].connection.invoke("LeaveGroup", "g");
        await clients[4].connection.invoke("SendToGroup", "g", "after a leave");
        await allGet([clients[2], clients[5]], "GroupMessage", "after a leave", "group send after a leave");

        await clients[3].connection.invoke("SendToUser", "shared", "to the user");
        await allGet([clients[0], clients[4]], "UserMessage", "to the user", "user send from B");

        await clients[0].connection.invoke("SendToConnection", clients[5].connection.connectionId, "direct");
        await clients[0].connection.invoke("SendToConnections", [clients[2].connection.connectionId, clients[3].connection.connectionId], "directs");
        await allGet([clients[5]], "Direct", "direct", "connection send A to C");
        await allGet([clients[2], clients[3]], "Direct", "directs", "connection sends A to B");

        const excluded = [clients[1].connection.connectionId, clients[4].connection.connectionId];
        await clients[2].connection.invoke("SendToAllExcept", excluded, "all but two");
        await allGet([clients[0], clients[2], clients[3], clients[5]], "Send", "all but two", "all except");

        // Nothing reached those it must not (a last broadcast fences the checks).
        await clients[0].connection.invoke("Broadcast", "a", "fence");
        await allGet(clients, "Send", "fence", "fence");
        assert.ok(!got(clients[3], "Send", "to the others"), "the caller of BroadcastOthers");
        assert.ok(!got(clients[0], "GroupMessage", "to the group"), "a non-member");
        assert.ok(!got(clients[5], "GroupMessage", "to the other members"), "the caller of SendToOthersInGroup");
        assert.ok(!got(clients[1], "GroupMessage", "after a leave"), "a member that left");
        assert.ok(!got(clients[1], "Send", "all but two") && !got(clients[4], "Send", "all but two"), "the excluded");
        assert.ok(!got(clients[1], "UserMessage", "to the user"), "another user");

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
        const port = redis.port;
        await redis.kill();
        processes.splice(processes.indexOf(redis), 1);
        await delay(500);
        redis = await startRedis(port);
        processes.push(redis);
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
