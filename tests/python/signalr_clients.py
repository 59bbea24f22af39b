"""Small synchronous facades over the third-party Python SignalR clients.

The tests talk to the conformance server through two independent libraries:

* ``signalrcore`` 1.0.2 (threads, stdlib sockets): negotiates *without*
  ``negotiateVersion`` (so the server answers version 0 and the ``connectionId``
  doubles as the transport ``id``), sends handshake ``version: 0`` when the
  protocol is chosen through ``HubProtocolEncoding`` (as done here), always
  sends an ``invocationId`` and copies its HTTP headers into every hub
  message's ``headers``.
* ``pysignalr`` 1.3.3 (asyncio, ``websockets``/``aiohttp``): WebSockets only,
  also negotiates version 0, handshake ``version: 1``.

Both are wrapped in the same blocking API (``start``/``invoke``/``on``/``stop``)
so every scenario runs unchanged against each library x hub protocol x
transport combination.  Every wait is bounded (``DEFAULT_TIMEOUT``).

Library quirks handled here (client-side, not server behaviour):

* signalrcore reports a failed invocation only through the connection-wide
  ``on_error`` callback (with the ``CompletionMessage``); the per-call
  ``on_invocation`` callback is called for successful completions only.
* signalrcore's ``stop()`` closes its socket while its receive thread is
  blocked in ``recv()``; on Linux that neither wakes the thread nor sends a
  FIN, so ``stop()`` hangs until the server sends something (up to a keep-alive
  interval).  ``SignalrcoreHubClient.stop`` therefore shuts the socket down
  first.
* signalrcore's long-polling client (1.0.2) has three bugs, the first two
  patched here by ``_patch_signalrcore_long_polling`` (client code only; the
  wire traffic is then what a fixed client sends):

  - a poll response holding several records (``Message`` and the
    ``Completion`` of ``InvokeWithString``, or a handshake answer followed by
    a message) is delivered one record per poll: the rest waits in its buffer
    until the *next* poll returns data (up to the 90 s poll timeout).  The
    patch hands every complete record of the buffer to the protocol at once
    (the protocol parsers already split on the record separator).
  - polls are sent without the connection's headers, so on ``/authorizedhub``
    every poll is answered 401 and the client polls in a tight loop.  The
    patch sends the connection headers (``Authorization``, user headers) on
    polls too, as the TypeScript client does.
  - MessagePack over long polling cannot work: the transport never marks
    itself binary (it always uses the text client, which looks for 0x1E
    record separators in the VarInt-framed data), and the binary client's
    constructor raises ``TypeError``.  That combination is therefore not run
    (``LIBRARY_UNSUPPORTED``).

* pysignalr's ``access_token_factory`` is only applied after negotiation (in
  its WebSocket handshake step), so its first negotiate is always sent without
  a token.  The token is passed as an ``Authorization`` header instead, which
  the library sends on negotiate and on the WebSocket upgrade.
* pysignalr's ``run()`` reconnects forever and has no stop method.  Merely
  cancelling it leaves its WebSocket to be closed by an async-generator
  finalizer with code 1011 (internal error).  ``PysignalrHubClient.stop``
  closes the WebSocket normally (1000) and makes the library's close callback
  end ``run()`` instead of reconnecting.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
import time
import urllib.error
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

DEFAULT_TIMEOUT = 10.0

# Every transport; each library runs on those it supports (LIBRARY_TRANSPORTS):
# signalrcore on all three, pysignalr on WebSockets only.
TRANSPORTS = ("WebSockets", "ServerSentEvents", "LongPolling")

LIBRARIES = ("signalrcore", "pysignalr")
PROTOCOLS = ("json", "messagepack")

# Which library supports which transport.
LIBRARY_TRANSPORTS = {
    "signalrcore": ("WebSockets", "ServerSentEvents", "LongPolling"),
    "pysignalr": ("WebSockets",),
}

# (library, protocol, transport) combinations a library cannot do at all
# (client bugs, see the module docstring).
LIBRARY_UNSUPPORTED = {
    ("signalrcore", "messagepack", "LongPolling"),
}


@dataclass(frozen=True)
class ClientConfig:
    library: str  # "signalrcore" | "pysignalr"
    protocol: str  # "json" | "messagepack"
    transport: str = "WebSockets"

    @property
    def id(self) -> str:
        return f"{self.library}-{self.protocol}-{self.transport}"


def all_client_configs() -> list[ClientConfig]:
    configs = []
    for transport in TRANSPORTS:
        for library in LIBRARIES:
            if transport not in LIBRARY_TRANSPORTS[library]:
                continue
            for protocol in PROTOCOLS:
                if transport == "ServerSentEvents" and protocol == "messagepack":
                    continue  # SSE is a text-only transport
                if (library, protocol, transport) in LIBRARY_UNSUPPORTED:
                    continue
                configs.append(ClientConfig(library, protocol, transport))
    return configs


class ConnectionFailed(Exception):
    """The client could not connect (negotiate, upgrade or handshake failed)."""

    def __init__(self, message: str, status: Optional[int] = None):
        super().__init__(message)
        self.status = status


class HubInvocationError(Exception):
    """The server completed an invocation with an error."""

    def __init__(self, method: str, error: str):
        super().__init__(f"invocation of {method!r} failed: {error}")
        self.method = method
        self.error = error


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class MessageSink:
    """Collects the argument lists the server sends to one client method."""

    def __init__(self, target: str):
        self.target = target
        self._items: list[list[Any]] = []
        self._cond = threading.Condition()

    def push(self, arguments: Any) -> None:
        with self._cond:
            self._items.append(list(arguments) if arguments is not None else None)
            self._cond.notify_all()

    def received(self) -> list[list[Any]]:
        with self._cond:
            return list(self._items)

    def wait_for(
        self,
        predicate: Callable[[list[Any]], bool] = lambda _: True,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> list[Any]:
        """Returns the first received argument list matching ``predicate``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for item in self._items:
                    if predicate(item):
                        return item
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"client method {self.target!r} was not called with the "
                        f"expected arguments within {timeout:.0f} s; calls "
                        f"received: {self._items!r}"
                    )
                self._cond.wait(remaining)

    def assert_not_called(
        self,
        predicate: Callable[[list[Any]], bool] = lambda _: True,
        within: float = 0.5,
    ) -> None:
        """Waits ``within`` seconds and checks no matching call arrived."""
        deadline = time.monotonic() + within
        with self._cond:
            while True:
                matching = [item for item in self._items if predicate(item)]
                if matching:
                    raise AssertionError(
                        f"client method {self.target!r} was unexpectedly called "
                        f"with {matching!r}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(remaining)


class HubClient:
    """The blocking API the tests use."""

    config: ClientConfig
    url: str

    def start(self, timeout: float = DEFAULT_TIMEOUT) -> "HubClient":
        raise NotImplementedError

    def on(self, target: str) -> MessageSink:
        raise NotImplementedError

    def invoke(self, method: str, arguments: list, timeout: float = DEFAULT_TIMEOUT) -> Any:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.config.id} {self.url}>"


TokenArg = Optional[Union[str, Callable[[], str]]]


# --------------------------------------------------------------------------
# signalrcore
# --------------------------------------------------------------------------


_signalrcore_patched = False


def _patch_signalrcore_long_polling() -> None:
    """Fixes two client-side bugs of signalrcore 1.0.2's long polling (see the
    module docstring).  Idempotent."""
    global _signalrcore_patched
    if _signalrcore_patched:
        return
    from signalrcore.transport.long_polling.long_polling_client import LongPollingBaseClient

    def _append(self, frame):
        # Every complete record at once (without the last separator, as the
        # original returns them); an incomplete tail stays buffered.
        self._buffer += frame or b""
        idx = self._buffer.rfind(self._byte_separator)
        if idx < 0:
            return None
        complete, self._buffer = self._buffer[:idx], self._buffer[idx + 1:]
        return complete

    original_recv_frame = LongPollingBaseClient._recv_frame

    def _recv_frame(self):
        # Polls carry the connection's headers (Authorization, user headers).
        for name, value in (self.headers or {}).items():
            self._receive_headers.setdefault(name, value)
        return original_recv_frame(self)

    LongPollingBaseClient._append = _append
    LongPollingBaseClient._recv_frame = _recv_frame
    _signalrcore_patched = True


class SignalrcoreHubClient(HubClient):
    def __init__(self, config: ClientConfig, url: str, token: TokenArg = None,
                 headers: Optional[dict] = None):
        from signalrcore.hub_connection_builder import HubConnectionBuilder
        from signalrcore.types import HttpTransportType, HubProtocolEncoding

        if (config.library, config.protocol, config.transport) in LIBRARY_UNSUPPORTED:
            raise ValueError(f"signalrcore cannot do {config.id}")
        _patch_signalrcore_long_polling()

        self.config = config
        self.url = url
        options: dict[str, Any] = {"transport": HttpTransportType(config.transport)}
        if headers:
            options["headers"] = dict(headers)
        if token is not None:
            options["access_token_factory"] = token if callable(token) else (lambda: token)
        builder = HubConnectionBuilder().with_url(url, options=options)
        # Choosing the protocol by encoding (not by a protocol instance) lets
        # signalrcore build it from the negotiate response, as a plain user of
        # the library would: handshake version = negotiate version = 0.
        builder.with_hub_protocol(
            HubProtocolEncoding.text if config.protocol == "json" else HubProtocolEncoding.binary
        )
        self._conn = builder.build()
        self._opened = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._pending: dict[str, concurrent.futures.Future] = {}
        self._sinks: dict[str, MessageSink] = {}
        self.stray_errors: list[Any] = []
        self._conn.on_open(self._opened.set)
        self._conn.on_close(self._closed.set)
        self._conn.on_error(self._on_error)

    def _on_error(self, message: Any) -> None:
        invocation_id = getattr(message, "invocation_id", None)
        with self._lock:
            future = self._pending.pop(invocation_id, None)
        if future is not None:
            future.set_exception(_CompletionError(getattr(message, "error", None)))
        else:
            self.stray_errors.append(message)

    def start(self, timeout: float = DEFAULT_TIMEOUT) -> "SignalrcoreHubClient":
        try:
            self._conn.start()
        except urllib.error.HTTPError as e:
            raise ConnectionFailed(
                f"signalrcore: negotiate failed with HTTP {e.code}", status=e.code
            ) from e
        except Exception as e:
            raise ConnectionFailed(f"signalrcore: start failed: {e!r}") from e
        deadline = time.monotonic() + timeout
        while not self._opened.wait(0.02):
            transport = self._conn.transport
            if self._closed.is_set() or transport is None or transport.is_disconnected():
                raise ConnectionFailed(
                    "signalrcore: connection closed before the handshake completed"
                )
            if time.monotonic() > deadline:
                raise ConnectionFailed(
                    f"signalrcore: no handshake response within {timeout:.0f} s"
                )
        return self

    def on(self, target: str) -> MessageSink:
        sink = self._sinks.get(target)
        if sink is None:
            sink = self._sinks[target] = MessageSink(target)
            self._conn.on(target, sink.push)
        return sink

    def invoke(self, method: str, arguments: list, timeout: float = DEFAULT_TIMEOUT) -> Any:
        invocation_id = str(uuid.uuid4())
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            self._pending[invocation_id] = future

        def on_completion(message: Any) -> None:
            with self._lock:
                self._pending.pop(invocation_id, None)
            if not future.done():
                future.set_result(message.result)

        self._conn.invoke(method, list(arguments), on_invocation=on_completion,
                          invocation_id=invocation_id)
        return _await_completion(future, method, timeout)

    def stop(self) -> None:
        transport = self._conn.transport
        if transport is None:
            return
        sock = getattr(getattr(transport, "_client", None), "sock", None)
        if sock is not None:
            # Wakes the receive thread (see the module docstring) and lets the
            # server see the TCP close.
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        try:
            self._conn.stop()
        except Exception:
            pass
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass


# --------------------------------------------------------------------------
# pysignalr
# --------------------------------------------------------------------------


class PysignalrHubClient(HubClient):
    def __init__(self, config: ClientConfig, url: str, token: TokenArg = None,
                 headers: Optional[dict] = None):
        if config.transport != "WebSockets":
            raise ValueError("pysignalr supports WebSockets only")
        self.config = config
        self.url = url
        self._token = token
        self._headers = dict(headers or {})
        self._sinks: dict[str, MessageSink] = {}
        self.stray_errors: list[Any] = []
        self._task: Optional[asyncio.Task] = None
        self._stopping = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"pysignalr {config.id}", daemon=True
        )
        self._thread.start()
        self._client = self._call(self._create(), timeout=DEFAULT_TIMEOUT)

    def _call(self, coro, timeout: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    async def _create(self):
        from pysignalr.client import SignalRClient
        from pysignalr.protocol.json import JSONProtocol
        from pysignalr.protocol.messagepack import MessagepackProtocol

        headers = dict(self._headers)
        if self._token is not None:
            token = self._token() if callable(self._token) else self._token
            headers["Authorization"] = f"Bearer {token}"
        protocol = JSONProtocol() if self.config.protocol == "json" else MessagepackProtocol()
        client = SignalRClient(self.url, protocol=protocol, headers=headers)
        self._opened = asyncio.Event()

        async def on_open() -> None:
            self._opened.set()

        async def on_close() -> None:
            # Called when the socket closes, before pysignalr reconnects.
            if self._stopping:
                raise _Stopped()

        async def on_error(message: Any) -> None:
            # Per-invocation errors are handled by the invocation callback,
            # which pysignalr calls after this one.
            pass

        client.on_open(on_open)
        client.on_close(on_close)
        client.on_error(on_error)
        return client

    async def _start(self, timeout: float) -> None:
        self._task = asyncio.ensure_future(self._client.run())
        opened = asyncio.ensure_future(self._opened.wait())
        done, _ = await asyncio.wait({self._task, opened}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            opened.cancel()
            error = self._task.exception()
            raise _pysignalr_connection_failed(error)
        if opened not in done:
            opened.cancel()
            raise ConnectionFailed(f"pysignalr: not connected within {timeout:.0f} s")

    def start(self, timeout: float = DEFAULT_TIMEOUT) -> "PysignalrHubClient":
        self._call(self._start(timeout), timeout=timeout + 5)
        return self

    def on(self, target: str) -> MessageSink:
        sink = self._sinks.get(target)
        if sink is None:
            sink = self._sinks[target] = MessageSink(target)

            async def handler(arguments: Any) -> None:
                sink.push(arguments)

            self._client.on(target, handler)
        return sink

    async def _invoke(self, method: str, arguments: list, timeout: float) -> Any:
        completion: asyncio.Future = self._loop.create_future()

        async def on_completion(message: Any) -> None:
            if not completion.done():
                completion.set_result(message)

        await self._client.send(method, list(arguments), on_invocation=on_completion)
        return await asyncio.wait_for(completion, timeout)

    def invoke(self, method: str, arguments: list, timeout: float = DEFAULT_TIMEOUT) -> Any:
        try:
            message = self._call(self._invoke(method, arguments, timeout), timeout=timeout + 2)
        except (asyncio.TimeoutError, concurrent.futures.TimeoutError, TimeoutError):
            raise AssertionError(
                f"no completion for invocation of {method!r} within {timeout:.0f} s"
            ) from None
        if message.error:
            raise HubInvocationError(method, message.error)
        return message.result

    async def _stop(self) -> None:
        self._stopping = True
        task = self._task
        ws = getattr(self._client._transport, "_ws", None)
        if ws is not None and task is not None and not task.done():
            # Normal closure (1000); run() then ends through on_close.
            try:
                await asyncio.wait_for(ws.close(), 5)
            except BaseException:
                pass
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(task, 5)  # cancels it on timeout
            except BaseException:
                pass
        if task is not None and task.done() and not task.cancelled():
            task.exception()  # retrieved: _Stopped, or the reason it ended
        current = asyncio.current_task()
        leftovers = [t for t in asyncio.all_tasks() if t is not current]
        for t in leftovers:
            t.cancel()
        if leftovers:
            await asyncio.wait(leftovers, timeout=5)
        try:
            await asyncio.wait_for(self._loop.shutdown_asyncgens(), 5)
        except BaseException:
            pass

    def stop(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._call(self._stop(), timeout=15)
        except BaseException:
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()


def _pysignalr_connection_failed(error: Optional[BaseException]) -> ConnectionFailed:
    from pysignalr import exceptions

    if isinstance(error, exceptions.AuthorizationError):
        # pysignalr raises AuthorizationError exactly for a 401 negotiate.
        failure = ConnectionFailed("pysignalr: negotiate failed with HTTP 401", status=401)
    elif isinstance(error, exceptions.ConnectionError):
        failure = ConnectionFailed(
            f"pysignalr: negotiate failed with HTTP {error.status}", status=error.status
        )
    else:
        failure = ConnectionFailed(f"pysignalr: connection failed: {error!r}")
    failure.__cause__ = error
    return failure


# --------------------------------------------------------------------------


class _Stopped(Exception):
    """Ends pysignalr's run() loop from its close callback."""


class _CompletionError(Exception):
    def __init__(self, error: Any):
        super().__init__(error)
        self.error = error


def _await_completion(future: concurrent.futures.Future, method: str, timeout: float) -> Any:
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        raise AssertionError(
            f"no completion for invocation of {method!r} within {timeout:.0f} s"
        ) from None
    except _CompletionError as e:
        raise HubInvocationError(method, e.error) from None


def create_client(config: ClientConfig, url: str, token: TokenArg = None,
                  headers: Optional[dict] = None) -> HubClient:
    if config.library == "signalrcore":
        return SignalrcoreHubClient(config, url, token=token, headers=headers)
    if config.library == "pysignalr":
        return PysignalrHubClient(config, url, token=token, headers=headers)
    raise ValueError(f"unknown client library {config.library!r}")
