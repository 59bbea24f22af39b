"""AuthorizedHub (/authorizedhub): bearer tokens from GET /generateJwtToken."""

import urllib.error
import urllib.request

import pytest

from signalr_clients import ClientConfig, ConnectionFailed, unique


def test_echo_with_bearer_token(connect, token_factory):
    client = connect("/authorizedhub", token=token_factory())
    message = unique("authorized")
    assert client.invoke("Echo", [message]) == message


def test_connection_without_token_fails_with_401(hub_clients, client_config):
    client = hub_clients.create(client_config, "/authorizedhub")
    with pytest.raises(ConnectionFailed) as excinfo:
        client.start()
    assert excinfo.value.status == 401, str(excinfo.value)


def test_token_in_access_token_query(hub_clients, token_factory):
    """The token may also travel as the ``access_token`` query parameter
    (what browsers do); the client keeps it on negotiate and on the upgrade."""
    client = hub_clients.connect(
        ClientConfig("signalrcore", "json"),
        "/authorizedhub",
        query={"access_token": token_factory()},
    )
    message = unique("query-token")
    assert client.invoke("Echo", [message]) == message


def test_negotiate_without_token_is_401_with_empty_body(server_url):
    request = urllib.request.Request(
        server_url + "/authorizedhub/negotiate?negotiateVersion=1", method="POST", data=b""
    )
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(request, timeout=10)
    assert excinfo.value.code == 401
    assert excinfo.value.read() == b""
