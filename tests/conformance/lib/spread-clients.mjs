// ChatHub clients spread over several servers (app servers sharing a backplane, or relay
// nodes of a cluster), and the multi-client cases that must reach each one wherever it is.

import assert from "node:assert/strict";
import { buildConnection, Inbox, withTimeout } from "./hub.mjs";

/** The users of the six clients the cases take: two connections of `shared`, one each of the others. */
export const SPREAD_USERS = ["shared", "user1", "user2", "user3", "shared", "user5"];

/**
 * A started ChatHub client of `server` as user `user`, recording its client-method calls;
 * `where` names where it is, for failure messages.
 */
export async function chatClient(server, user, options = {}) {
    const connection = buildConnection(`${server.url}/chathub?user=${encodeURIComponent(user)}`, options);
    const inbox = new Inbox(connection, ["Send", "GroupMessage", "UserMessage", "Direct"]);
    await withTimeout(connection.start(), 10_000, `start() at ${server.name}`);
    return { connection, inbox, user, where: server.name };
}

/** Waits for each client to get a call of `method` whose last argument is `text`. */
export async function allGet(clients, method, text, what) {
    await Promise.all(clients.map((client) => client.inbox.waitFor(
        (item) => item.method === method && item.args.at(-1) === text,
        10_000,
        `${what}: ${client.user} at ${client.where}`,
    )));
}

/** Whether the client got a call of `method` whose last argument is `text`. */
export function got(client, method, text) {
    return client.inbox.items.some((item) => item.method === method && item.args.at(-1) === text);
}

/**
 * All, others, groups (with others and a leave), a user, users, connections, all-except, the
 * order of one sender's messages to a connection, and that nothing reached a client it must
 * not, nor anything twice: on six clients whose users are {@link SPREAD_USERS}.
 */
export async function sendsReachEveryone(clients) {
    await clients[2].connection.invoke("Broadcast", "b", "to all");
    await allGet(clients, "Send", "to all", "broadcast");
    await clients[3].connection.invoke("BroadcastOthers", "b", "to the others");
    await allGet(clients.filter((_, i) => i !== 3), "Send", "to the others", "others");

    const members = [clients[1], clients[2], clients[5]];
    for (const member of members) {
        await member.connection.invoke("JoinGroup", "g");
    }
    await clients[0].connection.invoke("SendToGroup", "g", "to the group");
    await allGet(members, "GroupMessage", "to the group", "group send");
    await clients[5].connection.invoke("SendToOthersInGroup", "g", "to the other members");
    await allGet([clients[1], clients[2]], "GroupMessage", "to the other members", "others in group");
    await members[0].connection.invoke("LeaveGroup", "g");
    await clients[4].connection.invoke("SendToGroup", "g", "after a leave");
    await allGet([clients[2], clients[5]], "GroupMessage", "after a leave", "group send after a leave");

    await clients[3].connection.invoke("SendToUser", "shared", "to the user");
    await allGet([clients[0], clients[4]], "UserMessage", "to the user", "user send");
    await clients[1].connection.invoke("SendToUsers", ["shared", "user5"], "to the users");
    await allGet([clients[0], clients[4], clients[5]], "UserMessage", "to the users", "users send");

    await clients[0].connection.invoke("SendToConnection", clients[5].connection.connectionId, "direct");
    await clients[0].connection.invoke("SendToConnections", [clients[2].connection.connectionId, clients[3].connection.connectionId], "directs");
    await allGet([clients[5]], "Direct", "direct", "connection send");
    await allGet([clients[2], clients[3]], "Direct", "directs", "connection sends");

    const excluded = [clients[1].connection.connectionId, clients[4].connection.connectionId];
    await clients[2].connection.invoke("SendToAllExcept", excluded, "all but two");
    await allGet([clients[0], clients[2], clients[3], clients[5]], "Send", "all but two", "all except");

    // In order: one sender's messages to a connection elsewhere.
    for (let i = 0; i < 50; i++) {
        await clients[0].connection.send("SendToConnection", clients[5].connection.connectionId, `seq ${i}`);
    }
    await allGet([clients[5]], "Direct", "seq 49", "the last of a sequence");
    const sequence = clients[5].inbox.items.filter((item) => item.method === "Direct" && item.args[0].startsWith("seq "));
    assert.deepEqual(sequence.map((item) => item.args[0]), Array.from({ length: 50 }, (_, i) => `seq ${i}`));

    // Nothing reached those it must not (a last broadcast fences the checks), nor anyone twice.
    await clients[0].connection.invoke("Broadcast", "a", "fence");
    await allGet(clients, "Send", "fence", "fence");
    assert.ok(!got(clients[3], "Send", "to the others"), "the caller of BroadcastOthers");
    assert.ok(!got(clients[0], "GroupMessage", "to the group"), "a non-member");
    assert.ok(!got(clients[5], "GroupMessage", "to the other members"), "the caller of SendToOthersInGroup");
    assert.ok(!got(clients[1], "GroupMessage", "after a leave"), "a member that left");
    assert.ok(!got(clients[1], "Send", "all but two") && !got(clients[4], "Send", "all but two"), "the excluded");
    assert.ok(!got(clients[1], "UserMessage", "to the user"), "another user");
    for (const client of clients) {
        const broadcasts = client.inbox.items.filter((item) => item.method === "Send" && item.args.at(-1) === "to all");
        assert.equal(broadcasts.length, 1, `${client.user} at ${client.where} got the broadcast once`);
    }
}
