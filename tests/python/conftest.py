"""Fixtures for the Python conformance suite.

The suite runs against the ``conformance-server`` binary (contract:
``/CONFORMANCE.md`` of the shared docs):

* ``SIGNALR_URL`` set: use that server (e.g. ``http://127.0.0.1:5000``).
* otherwise spawn ``$CONFORMANCE_SERVER_BIN`` (default
  ``<repo>/target/debug/conformance-server``) with ``--port 0`` plus the
  whitespace-separated ``$CONFORMANCE_SERVER_ARGS``, wait (max 20 s) for its
  ``Now listening on: http://127.0.0.1:<port>`` line, and stop it at the end.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Optional

import pytest

from signalr_clients import (
    ClientConfig,
    HubClient,
    TokenArg,
    all_client_configs,
    create_client,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SERVER_BIN = REPO_ROOT / "target" / "debug" / "conformance-server"
STARTUP_TIMEOUT = 20.0
LISTENING_LINE = re.compile(r"Now listening on: (http://127\.0\.0\.1:(\d+))")

_server_log_path: Optional[str] = None


def _tail(path: str, lines: int = 40) -> str:
    try:
        with open(path, "r", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


@pytest.fixture(scope="session")
def server_url():
    """Base URL (no trailing slash) of the conformance server."""
    global _server_log_path

    external = os.environ.get("SIGNALR_URL", "").strip()
    if external:
        yield external.rstrip("/")
        return

    binary = Path(os.environ.get("CONFORMANCE_SERVER_BIN", str(DEFAULT_SERVER_BIN)))
    if not binary.is_file():
        pytest.fail(
            f"conformance server binary not found at {binary}. Build it first with "
            f"`cargo build -p conformance-server` (from {REPO_ROOT}), or set "
            f"CONFORMANCE_SERVER_BIN to the binary, or SIGNALR_URL to a running server.",
            pytrace=False,
        )

    args = [str(binary), "--port", "0", *os.environ.get("CONFORMANCE_SERVER_ARGS", "").split()]
    log = tempfile.NamedTemporaryFile(
        prefix="conformance-server-", suffix=".log", delete=False
    )
    _server_log_path = log.name
    proc = subprocess.Popen(
        args,
        cwd=str(REPO_ROOT),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    found = threading.Event()
    state: dict = {"stdout": []}
    log_lock = threading.Lock()

    def pump(stream, name: str) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace")
            with log_lock:
                log.write(f"[{name}] {line}".encode())
                log.flush()
            if name == "stdout" and not found.is_set():
                state["stdout"].append(line)
                match = LISTENING_LINE.fullmatch(line.strip())
                if match:
                    state["url"] = match.group(1)
                    found.set()
        stream.close()

    pumps = [
        threading.Thread(target=pump, args=(proc.stdout, "stdout"), daemon=True),
        threading.Thread(target=pump, args=(proc.stderr, "stderr"), daemon=True),
    ]
    for t in pumps:
        t.start()

    def shutdown() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for t in pumps:
            t.join(2)
        log.close()

    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not found.wait(0.05):
        if proc.poll() is not None or time.monotonic() > deadline:
            reason = (
                f"exited with code {proc.returncode}"
                if proc.poll() is not None
                else f"did not print 'Now listening on: http://127.0.0.1:<port>' "
                f"within {STARTUP_TIMEOUT:.0f} s"
            )
            shutdown()
            pytest.fail(
                f"conformance server {' '.join(args)} {reason}.\n"
                f"stdout lines seen: {state['stdout']!r}\n"
                f"log tail ({_server_log_path}):\n{_tail(_server_log_path)}",
                pytrace=False,
            )

    try:
        yield state["url"]
    finally:
        shutdown()


def pytest_terminal_summary(terminalreporter):
    if _server_log_path:
        terminalreporter.write_line(f"conformance server log: {_server_log_path}")


# --------------------------------------------------------------------------


CLIENT_CONFIGS = all_client_configs()


@pytest.fixture(params=CLIENT_CONFIGS, ids=[c.id for c in CLIENT_CONFIGS])
def client_config(request) -> ClientConfig:
    """One client library x hub protocol x transport combination."""
    return request.param


class HubClients:
    """Creates connected clients and stops every one of them at teardown."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self._clients: list[HubClient] = []

    def url(self, path: str, query: Optional[dict] = None) -> str:
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        return url

    def create(self, config: ClientConfig, path: str, *, query: Optional[dict] = None,
               token: TokenArg = None, headers: Optional[dict] = None) -> HubClient:
        client = create_client(config, self.url(path, query), token=token, headers=headers)
        self._clients.append(client)
        return client

    def connect(self, config: ClientConfig, path: str, **kwargs) -> HubClient:
        return self.create(config, path, **kwargs).start()

    def stop_all(self) -> None:
        while self._clients:
            client = self._clients.pop()
            try:
                client.stop()
            except Exception:
                pass


@pytest.fixture
def hub_clients(server_url):
    clients = HubClients(server_url)
    try:
        yield clients
    finally:
        clients.stop_all()


@pytest.fixture
def connect(hub_clients, client_config):
    """``connect(path, query=None, token=None)`` -> a started client of the
    current ``client_config``; stopped automatically at teardown."""

    def _connect(path: str, **kwargs) -> HubClient:
        return hub_clients.connect(client_config, path, **kwargs)

    return _connect


def fetch_token(base_url: str, user: Optional[str] = None) -> str:
    """GET /generateJwtToken[/{user}] -> the token (response body)."""
    path = "/generateJwtToken" + (f"/{urllib.parse.quote(user)}" if user else "")
    with urllib.request.urlopen(base_url + path, timeout=10) as response:
        assert response.status == 200, f"GET {path} -> {response.status}"
        token = response.read().decode("utf-8").strip()
    assert token, f"GET {path} returned an empty body"
    return token


@pytest.fixture
def token_factory(server_url):
    return lambda user=None: fetch_token(server_url, user)
