"""TestHub (/testhub) with every client library x hub protocol x transport."""

import pytest

from signalr_clients import HubInvocationError, unique

THROW_EXCEPTION_ERROR = (
    "An unexpected error occurred invoking 'ThrowException' on the server. "
    "InvalidOperationException: An error occurred."
)


def test_echo(connect):
    client = connect("/testhub")
    message = "Hello, 世界! " + unique("echo")
    assert client.invoke("Echo", [message]) == message


def test_invoke_with_string_calls_client_method_message(connect):
    client = connect("/testhub")
    calls = client.on("Message")
    message = unique("message")
    # InvokeWithString is a void method: its completion carries no result.
    assert client.invoke("InvokeWithString", [message]) is None
    assert calls.wait_for(lambda args: args == [message]) == [message]


def test_send_custom_object_calls_client_method_custom_object(connect):
    client = connect("/testhub")
    calls = client.on("CustomObject")
    obj = {"Name": "x", "Value": 1}
    client.invoke("SendCustomObject", [obj])
    assert calls.wait_for() == [obj]


def test_throw_exception_reports_detailed_error(connect):
    client = connect("/testhub")
    with pytest.raises(HubInvocationError) as excinfo:
        client.invoke("ThrowException", ["An error occurred."])
    assert excinfo.value.error == THROW_EXCEPTION_ERROR
    # A failed invocation does not affect the connection.
    assert client.invoke("Echo", ["still connected"]) == "still connected"


def test_get_active_transport_name(connect, client_config):
    client = connect("/testhub")
    assert client.invoke("GetActiveTransportName", []) == client_config.transport


def test_get_header_returns_custom_header(connect):
    """Headers given to the client reach the request the hub sees (the
    WebSocket upgrade, the SSE GET or the first long poll)."""
    client = connect("/testhub", headers={"X-HEADER": "VALUE"})
    assert client.invoke("GetHeader", ["X-HEADER"]) == "VALUE"
    assert client.invoke("GetHeader", ["x-header"]) == "VALUE"
    assert client.invoke("GetHeader", ["X-Not-Sent-Header"]) is None


def test_many_server_calls_arrive_in_order(connect):
    """Several client-method calls in a row (batched into one long-poll
    response or SSE event on those transports) all arrive, in order."""
    client = connect("/testhub")
    calls = client.on("Message")
    messages = [unique(f"m{i}") for i in range(20)]
    for message in messages:
        client.invoke("InvokeWithString", [message])
    calls.wait_for(lambda args: args == [messages[-1]])
    assert [args[0] for args in calls.received()] == messages
