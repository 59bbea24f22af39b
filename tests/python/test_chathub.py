"""ChatHub (/chathub): broadcast, groups and users across several connections."""

from signalr_clients import unique
from signalr_clients import all_client_configs


def test_broadcast_reaches_every_client(connect):
    sender = connect("/chathub")
    receiver = connect("/chathub")
    sender_calls = sender.on("Send")
    receiver_calls = receiver.on("Send")
    name, message = "alice", unique("broadcast")

    sender.invoke("Broadcast", [name, message])

    assert sender_calls.wait_for(lambda args: args == [name, message]) == [name, message]
    assert receiver_calls.wait_for(lambda args: args == [name, message]) == [name, message]


def test_send_to_group_reaches_members_only(connect):
    member = connect("/chathub")
    outsider = connect("/chathub")
    member_calls = member.on("GroupMessage")
    outsider_calls = outsider.on("GroupMessage")
    group, message = unique("group"), unique("group-message")

    member.invoke("JoinGroup", [group])
    # Sent by a connection that is not in the group itself.
    outsider.invoke("SendToGroup", [group, message])

    assert member_calls.wait_for(lambda args: args == [group, message]) == [group, message]
    outsider_calls.assert_not_called(lambda args: args and args[0] == group, within=0.5)


def test_send_to_user_reaches_that_users_connection(connect):
    bob = connect("/chathub", query={"user": "bob"})
    sender = connect("/chathub")
    bob_calls = bob.on("UserMessage")
    sender_calls = sender.on("UserMessage")
    message = unique("user-message")

    sender.invoke("SendToUser", ["bob", message])

    assert bob_calls.wait_for(lambda args: args == [message]) == [message]
    sender_calls.assert_not_called(lambda args: args == [message], within=0.5)


def test_broadcast_across_libraries_and_protocols(hub_clients):
    """One connection of every client configuration on the same hub: a single
    Broadcast is delivered to each in its own hub protocol."""
    clients = [hub_clients.connect(config, "/chathub") for config in all_client_configs()]
    sinks = [client.on("Send") for client in clients]
    name, message = "mixed", unique("mixed-broadcast")

    clients[-1].invoke("Broadcast", [name, message])

    missed = []
    for client, sink in zip(clients, sinks):
        try:
            sink.wait_for(lambda args: args == [name, message])
        except AssertionError as e:
            missed.append(f"{client.config.id}: {e}")
    assert not missed, "Broadcast not delivered to:\n" + "\n".join(missed)
