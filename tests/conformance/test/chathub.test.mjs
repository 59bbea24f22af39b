// ChatHub (/chathub): broadcast, groups, users, connections, benchmarks methods, Disconnect, over
// every transport × protocol (Server-Sent Events × MessagePack excluded).
//
// Absence of a message is proven with a sentinel: after the call under test has completed, one
// client invokes Broadcast(SENTINEL, token); messages to one connection are delivered in order, so
// whatever the call under test sent to a client arrives before that client's sentinel.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { useServer } from "../lib/server.mjs";
import {
    TRANSPORT_PROTOCOLS, VARIANTS, TEST_TIMEOUT, buildHubConnection, closed, fetchToken, Inbox, nonce, useConnectionCleanup,
    withTimeout, WAIT_MS,
} from "../lib/hub.mjs";

const server = useServer();
useConnectionCleanup();

const opts = { timeout: TEST_TIMEOUT };
const CHAT_METHODS = ["Send", "GroupMessage", "UserMessage", "Direct", "Measure"];
const SENTINEL = "__sentinel__";

/**
 * Starts a ChatHub client that records every chat client method call. The user is `user` (query)
 * or the name identifier of `token`; through the relay a skipNegotiation client gets the relay's
 * URL and token for that user from the app server (buildHubConnection()).
 */
async function chatClient({ protocol = "json", skipNegotiation = false, transport = "WebSockets", user, token } = {}) {
    const url = `${server.url}/chathub${user ? `?user=${encodeURIComponent(user)}` : ""}`;
    const options = { protocol, skipNegotiation, transport };
    if (token) {
        options.accessTokenFactory = () => token;
    }
    const connection = await buildHubConnection(url, options);
    const inbox = new Inbox(connection, CHAT_METHODS);
    await withTimeout(connection.start(), WAIT_MS, `start() of ${url}`);
    return { connection, inbox, id: connection.connectionId };
}

async function chatClients(n, options) {
    const clients = [];
    for (let i = 0; i < n; i++) {
        clients.push(await chatClient(options));
    }
    return clients;
}

/**
 * Broadcasts a sentinel from `sender` and waits for it at every client. Returns, per client, the
 * calls received before the sentinel whose arguments mention `marker` (the test's nonce).
 */
async function flush(sender, clients, marker) {
    const token = nonce("sentinel");
    await sender.connection.invoke("Broadcast", SENTINEL, token);
    return await Promise.all(clients.map(async (client, i) => {
        const { before } = await client.inbox.takeUntil(
            (item) => item.method === "Send" && item.args[0] === SENTINEL && item.args[1] === token,
            WAIT_MS, `the sentinel at client #${i}`);
        return before.filter((item) => JSON.stringify(item.args).includes(marker));
    }));
}

const call = (method, ...args) => ({ method, args });

for (const { transport, protocol, name } of TRANSPORT_PROTOCOLS) {
    describe(`ChatHub over ${name}`, () => {
        it("Broadcast reaches every client, the caller included", opts, async () => {
            const n = nonce();
            const [a, b, c] = await chatClients(3, { protocol, transport, transport });
            await a.connection.invoke("Broadcast", "alice", `hello ${n}`);
            const logs = await flush(a, [a, b, c], n);
            for (const log of logs) {
                assert.deepEqual(log, [call("Send", "alice", `hello ${n}`)]);
            }
        });

        it("BroadcastOthers reaches everyone but the caller", opts, async () => {
            const n = nonce();
            const [a, b, c] = await chatClients(3, { protocol, transport, transport });
            await a.connection.invoke("BroadcastOthers", "alice", `others ${n}`);
            const [logA, logB, logC] = await flush(a, [a, b, c], n);
            assert.deepEqual(logA, [], "the caller must not receive BroadcastOthers");
            assert.deepEqual(logB, [call("Send", "alice", `others ${n}`)]);
            assert.deepEqual(logC, [call("Send", "alice", `others ${n}`)]);
        });

        it("JoinGroup / SendToGroup / LeaveGroup", opts, async () => {
            const n = nonce();
            const group = `room-${n}`;
            const [a, b, c] = await chatClients(3, { protocol, transport, transport });
            await a.connection.invoke("JoinGroup", group);
            await b.connection.invoke("JoinGroup", group);

            // a non-member may send to the group
            await c.connection.invoke("SendToGroup", group, `first ${n}`);
            let [logA, logB, logC] = await flush(c, [a, b, c], n);
            assert.deepEqual(logA, [call("GroupMessage", group, `first ${n}`)]);
            assert.deepEqual(logB, [call("GroupMessage", group, `first ${n}`)]);
            assert.deepEqual(logC, [], "a non-member must not receive group messages");

            await b.connection.invoke("LeaveGroup", group);
            await c.connection.invoke("SendToGroup", group, `second ${n}`);
            [logA, logB, logC] = await flush(c, [a, b, c], n);
            assert.deepEqual(logA, [call("GroupMessage", group, `second ${n}`)]);
            assert.deepEqual(logB, [], "a client that left the group must not receive its messages");
            assert.deepEqual(logC, []);
        });

        it("joining a group twice delivers group messages once", opts, async () => {
            const n = nonce();
            const group = `twice-${n}`;
            const [a] = await chatClients(1, { protocol, transport, transport });
            await a.connection.invoke("JoinGroup", group);
            await a.connection.invoke("JoinGroup", group);
            await a.connection.invoke("SendToGroup", group, `once ${n}`);
            const [logA] = await flush(a, [a], n);
            assert.deepEqual(logA, [call("GroupMessage", group, `once ${n}`)]);
        });

        it("group names are case-sensitive", opts, async () => {
            const n = nonce();
            const [a, b] = await chatClients(2, { protocol, transport, transport });
            await a.connection.invoke("JoinGroup", `Room-${n}`);
            await b.connection.invoke("SendToGroup", `room-${n}`, `lower ${n}`);
            await b.connection.invoke("SendToGroup", `Room-${n}`, `exact ${n}`);
            const [logA] = await flush(b, [a], n);
            assert.deepEqual(logA, [call("GroupMessage", `Room-${n}`, `exact ${n}`)]);
        });

        it("SendToOthersInGroup skips the caller", opts, async () => {
            const n = nonce();
            const group = `others-${n}`;
            const [a, b, c] = await chatClients(3, { protocol, transport, transport });
            await a.connection.invoke("JoinGroup", group);
            await b.connection.invoke("JoinGroup", group);
            await a.connection.invoke("SendToOthersInGroup", group, `msg ${n}`);
            const [logA, logB, logC] = await flush(a, [a, b, c], n);
            assert.deepEqual(logA, [], "the caller must not receive SendToOthersInGroup");
            assert.deepEqual(logB, [call("GroupMessage", group, `msg ${n}`)]);
            assert.deepEqual(logC, [], "a non-member must not receive group messages");
        });

        it("SendToGroupExcept skips the excluded connection", opts, async () => {
            const n = nonce();
            const group = `except-${n}`;
            const [a, b, c] = await chatClients(3, { protocol, transport, transport });
            await a.connection.invoke("JoinGroup", group);
            await b.connection.invoke("JoinGroup", group);
            await c.connection.invoke("JoinGroup", group);
            await c.connection.invoke("SendToGroupExcept", group, b.id, `msg ${n}`);
            const [logA, logB, logC] = await flush(c, [a, b, c], n);
            assert.deepEqual(logA, [call("GroupMessage", group, `msg ${n}`)]);
            assert.deepEqual(logB, [], "the excluded connection must not receive the message");
            assert.deepEqual(logC, [call("GroupMessage", group, `msg ${n}`)]);
        });

        it("SendToGroups delivers GroupMessage(\"*\", msg) once per connection", opts, async () => {
            const n = nonce();
            const g1 = `g1-${n}`;
            const g2 = `g2-${n}`;
            const g3 = `g3-${n}`;
            const [a, b, c] = await chatClients(3, { protocol, transport, transport });
            await a.connection.invoke("JoinGroup", g1);
            await a.connection.invoke("JoinGroup", g2);
            await b.connection.invoke("JoinGroup", g2);
            await c.connection.invoke("JoinGroup", g3);
            await c.connection.invoke("SendToGroups", [g1, g2], `multi ${n}`);
            const [logA, logB, logC] = await flush(c, [a, b, c], n);
            assert.deepEqual(logA, [call("GroupMessage", "*", `multi ${n}`)], "member of two listed groups gets it exactly once");
            assert.deepEqual(logB, [call("GroupMessage", "*", `multi ${n}`)]);
            assert.deepEqual(logC, [], "a member of an unlisted group must not receive it");
        });

        it("SendToUser reaches every connection of a user given by ?user=", opts, async () => {
            const n = nonce();
            const alice = `alice-${n}`;
            const a1 = await chatClient({ protocol, transport, user: alice });
            const a2 = await chatClient({ protocol, transport, user: alice });
            const bob = await chatClient({ protocol, transport, user: `bob-${n}` });
            const anon = await chatClient({ protocol, transport, transport });
            await bob.connection.invoke("SendToUser", alice, `to alice ${n}`);
            const [log1, log2, logBob, logAnon] = await flush(bob, [a1, a2, bob, anon], n);
            assert.deepEqual(log1, [call("UserMessage", `to alice ${n}`)]);
            assert.deepEqual(log2, [call("UserMessage", `to alice ${n}`)]);
            assert.deepEqual(logBob, []);
            assert.deepEqual(logAnon, []);
        });

        it("user ids are case-sensitive", opts, async () => {
            const n = nonce();
            const a = await chatClient({ protocol, transport, user: `Alice-${n}` });
            const b = await chatClient({ protocol, transport, transport });
            await b.connection.invoke("SendToUser", `alice-${n}`, `lower ${n}`);
            await b.connection.invoke("SendToUser", `Alice-${n}`, `exact ${n}`);
            const [logA] = await flush(b, [a], n);
            assert.deepEqual(logA, [call("UserMessage", `exact ${n}`)]);
        });

        it("SendToUser reaches a user identified by a bearer token from /generateJwtToken/{user}", opts, async () => {
            const n = nonce();
            const carol = `carol-${n}`;
            const token = await fetchToken(server.url, carol);
            const c1 = await chatClient({ protocol, transport, token });
            const other = await chatClient({ protocol, transport, transport });
            await other.connection.invoke("SendToUser", carol, `to carol ${n}`);
            const [logC, logOther] = await flush(other, [c1, other], n);
            assert.deepEqual(logC, [call("UserMessage", `to carol ${n}`)]);
            assert.deepEqual(logOther, []);
        });

        it("the bearer token's user wins over the ?user= query", opts, async () => {
            const n = nonce();
            const tokenUser = `token-${n}`;
            const queryUser = `query-${n}`;
            const token = await fetchToken(server.url, tokenUser);
            const both = await chatClient({ protocol, transport, token, user: queryUser });
            const other = await chatClient({ protocol, transport, transport });
            await other.connection.invoke("SendToUser", queryUser, `by query ${n}`);
            await other.connection.invoke("SendToUser", tokenUser, `by token ${n}`);
            const [log] = await flush(other, [both], n);
            assert.deepEqual(log, [call("UserMessage", `by token ${n}`)]);
        });

        it("SendToUsers reaches every listed user", opts, async () => {
            const n = nonce();
            const alice = await chatClient({ protocol, transport, user: `alice-${n}` });
            const bob = await chatClient({ protocol, transport, token: await fetchToken(server.url, `bob-${n}`) });
            const carol = await chatClient({ protocol, transport, user: `carol-${n}` });
            await carol.connection.invoke("SendToUsers", [`alice-${n}`, `bob-${n}`], `to many ${n}`);
            const [logA, logB, logC] = await flush(carol, [alice, bob, carol], n);
            assert.deepEqual(logA, [call("UserMessage", `to many ${n}`)]);
            assert.deepEqual(logB, [call("UserMessage", `to many ${n}`)]);
            assert.deepEqual(logC, []);
        });

        it("SendToConnection reaches only that connection", opts, async () => {
            const n = nonce();
            const [a, b, c] = await chatClients(3, { protocol, transport, transport });
            assert.ok(b.id, "negotiated connections have a connectionId");
            await a.connection.invoke("SendToConnection", b.id, `direct ${n}`);
            const [logA, logB, logC] = await flush(a, [a, b, c], n);
            assert.deepEqual(logA, []);
            assert.deepEqual(logB, [call("Direct", `direct ${n}`)]);
            assert.deepEqual(logC, []);
        });

        it("SendToConnection to an unknown connection id is a no-op", opts, async () => {
            const n = nonce();
            const [a, b] = await chatClients(2, { protocol, transport, transport });
            await a.connection.invoke("SendToConnection", `no-such-connection-${n}`, `lost ${n}`);
            const [logA, logB] = await flush(a, [a, b], n);
            assert.deepEqual(logA, []);
            assert.deepEqual(logB, []);
        });

        it("SendToConnections reaches exactly the listed connections", opts, async () => {
            const n = nonce();
            const [a, b, c] = await chatClients(3, { protocol, transport, transport });
            await b.connection.invoke("SendToConnections", [a.id, c.id], `some ${n}`);
            const [logA, logB, logC] = await flush(b, [a, b, c], n);
            assert.deepEqual(logA, [call("Direct", `some ${n}`)]);
            assert.deepEqual(logB, []);
            assert.deepEqual(logC, [call("Direct", `some ${n}`)]);
        });

        it("SendToAllExcept skips the excluded connections", opts, async () => {
            const n = nonce();
            const [a, b, c] = await chatClients(3, { protocol, transport, transport });
            await a.connection.invoke("SendToAllExcept", [a.id, b.id], `except ${n}`);
            const [logA, logB, logC] = await flush(a, [a, b, c], n);
            assert.deepEqual(logA, []);
            assert.deepEqual(logB, []);
            assert.deepEqual(logC, [call("Send", "*", `except ${n}`)]);
        });

        it("Echo(ticks, payload) returns [ticks, payload]", opts, async () => {
            const [a] = await chatClients(1, { protocol, transport, transport });
            const ticks = 1234567890123;
            assert.deepEqual(await a.connection.invoke("Echo", ticks, "payload ✓"), [ticks, "payload ✓"]);
            assert.deepEqual(await a.connection.invoke("Echo", 0, ""), [0, ""]);
        });

        it("EchoMeasure calls Measure(ticks, payload) on the caller only", opts, async () => {
            const n = nonce();
            const [a, b] = await chatClients(2, { protocol, transport, transport });
            await a.connection.invoke("EchoMeasure", 42, `measure ${n}`);
            const [logA, logB] = await flush(a, [a, b], n);
            assert.deepEqual(logA, [call("Measure", 42, `measure ${n}`)]);
            assert.deepEqual(logB, []);
        });

        it("BroadcastMeasure calls Measure(ticks, payload) on every client", opts, async () => {
            const n = nonce();
            const [a, b, c] = await chatClients(3, { protocol, transport, transport });
            await b.connection.invoke("BroadcastMeasure", 7, `all ${n}`);
            const logs = await flush(b, [a, b, c], n);
            for (const log of logs) {
                assert.deepEqual(log, [call("Measure", 7, `all ${n}`)]);
            }
        });

        it("GroupMeasure calls Measure(ticks, payload) on group members", opts, async () => {
            const n = nonce();
            const group = `measure-${n}`;
            const [a, b, c] = await chatClients(3, { protocol, transport, transport });
            await a.connection.invoke("JoinGroup", group);
            await b.connection.invoke("JoinGroup", group);
            await c.connection.invoke("GroupMeasure", group, 99, `group ${n}`);
            const [logA, logB, logC] = await flush(c, [a, b, c], n);
            assert.deepEqual(logA, [call("Measure", 99, `group ${n}`)]);
            assert.deepEqual(logB, [call("Measure", 99, `group ${n}`)]);
            assert.deepEqual(logC, []);
        });

        it("Disconnect() closes the caller's connection cleanly; others stay connected", opts, async () => {
            const n = nonce();
            const [a, b] = await chatClients(2, { protocol, transport, transport });
            const aClosed = closed(a.connection);
            a.connection.invoke("Disconnect").catch(() => {
                // the connection may close before the completion arrives
            });
            const error = await withTimeout(aClosed, WAIT_MS, "onclose after Disconnect()");
            assert.strictEqual(error, undefined,
                `the server should close gracefully (Close message / WebSocket 1000), got: ${error}`);
            await b.connection.invoke("Broadcast", "b", `still here ${n}`);
            const [logB] = await flush(b, [b], n);
            assert.deepEqual(logB, [call("Send", "b", `still here ${n}`)]);
        });

        it("a disconnected group member is dropped from the group", opts, async () => {
            const n = nonce();
            const group = `leaving-${n}`;
            const [a, b, c] = await chatClients(3, { protocol, transport, transport });
            await a.connection.invoke("JoinGroup", group);
            await b.connection.invoke("JoinGroup", group);
            await withTimeout(a.connection.stop(), WAIT_MS, "stop()");
            await c.connection.invoke("SendToGroup", group, `after stop ${n}`);
            const [logB, logC] = await flush(c, [b, c], n);
            assert.deepEqual(logB, [call("GroupMessage", group, `after stop ${n}`)]);
            assert.deepEqual(logC, []);
        });
    });
}

describe("ChatHub with mixed clients", () => {
    it("Broadcast reaches JSON, MessagePack and skipNegotiation clients alike", opts, async () => {
        const n = nonce();
        const json = await chatClient({ protocol: "json" });
        const msgpack = await chatClient({ protocol: "messagepack" });
        const skipped = await chatClient({ protocol: "json", skipNegotiation: true });
        const skippedMsgpack = await chatClient({ protocol: "messagepack", skipNegotiation: true });
        const all = [json, msgpack, skipped, skippedMsgpack];
        await msgpack.connection.invoke("Broadcast", "mixed ✓", `payload 你好 ${n}`);
        const logs = await flush(json, all, n);
        for (const log of logs) {
            assert.deepEqual(log, [call("Send", "mixed ✓", `payload 你好 ${n}`)]);
        }
    });

    it("a group with JSON and MessagePack members gets the message in both protocols", opts, async () => {
        const n = nonce();
        const group = `mixed-${n}`;
        const json = await chatClient({ protocol: "json" });
        const msgpack = await chatClient({ protocol: "messagepack", skipNegotiation: true });
        await json.connection.invoke("JoinGroup", group);
        await msgpack.connection.invoke("JoinGroup", group);
        await json.connection.invoke("SendToGroup", group, `both ${n}`);
        const logs = await flush(json, [json, msgpack], n);
        for (const log of logs) {
            assert.deepEqual(log, [call("GroupMessage", group, `both ${n}`)]);
        }
    });

    it("SendToUser reaches skipNegotiation clients of a user given by ?user= or a bearer token", opts, async () => {
        // Through the relay the user goes with the relay's token the app server handed out.
        const n = nonce();
        const dave = `dave-${n}`;
        const byQuery = await chatClient({ protocol: "json", skipNegotiation: true, user: dave });
        const byToken = await chatClient({ protocol: "messagepack", skipNegotiation: true, token: await fetchToken(server.url, dave) });
        const other = await chatClient({ protocol: "json", skipNegotiation: true, user: `erin-${n}` });
        await other.connection.invoke("SendToUser", dave, `to dave ${n}`);
        const [logQuery, logToken, logOther] = await flush(other, [byQuery, byToken, other], n);
        assert.deepEqual(logQuery, [call("UserMessage", `to dave ${n}`)]);
        assert.deepEqual(logToken, [call("UserMessage", `to dave ${n}`)]);
        assert.deepEqual(logOther, []);
    });

    it("SendToConnection reaches a connection by the id the client got from negotiate", opts, async () => {
        const n = nonce();
        const sender = await chatClient({ protocol: "messagepack" });
        const target = await chatClient({ protocol: "json" });
        await sender.connection.invoke("SendToConnection", target.id, `cross ${n}`);
        const [log] = await flush(sender, [target], n);
        assert.deepEqual(log, [call("Direct", `cross ${n}`)]);
    });
    it("Broadcast, groups and SendToConnection reach clients on every transport × protocol alike", opts, async () => {
        const n = nonce();
        const group = `every-${n}`;
        const clients = [];
        for (const variant of VARIANTS) {
            clients.push(await chatClient(variant));
        }
        const [sender] = clients;
        await clients[clients.length - 1].connection.invoke("Broadcast", "every ✓", `all 你好 ${n}`);
        let logs = await flush(sender, clients, n);
        logs.forEach((log, i) => assert.deepEqual(log, [call("Send", "every ✓", `all 你好 ${n}`)], VARIANTS[i].name));

        for (const client of clients) {
            await client.connection.invoke("JoinGroup", group);
        }
        await clients[1].connection.invoke("SendToGroup", group, `group ${n}`);
        logs = await flush(sender, clients, n);
        logs.forEach((log, i) => assert.deepEqual(log, [call("GroupMessage", group, `group ${n}`)], VARIANTS[i].name));

        const withIds = clients.filter((client) => client.id);
        for (const target of withIds) {
            await clients[clients.length - 1].connection.invoke("SendToConnection", target.id, `direct ${n}`);
        }
        logs = await flush(sender, withIds, n);
        logs.forEach((log) => assert.deepEqual(log, [call("Direct", `direct ${n}`)]));
    });
});
