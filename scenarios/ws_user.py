"""A Locust user for websockets, on the `websockets` package's sync client (cooperative under gevent).

Locustfiles import it (Locust puts the locustfile's folder on sys.path); each message round trip is one request event.
"""

from __future__ import annotations

import time
from typing import Any

from locust import User
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

# What a round trip or a connect can raise: server closes (1011 and others), refusals, timeouts.
FAILURES = (ConnectionClosed, InvalidHandshake, InvalidURI, TimeoutError, OSError)


class WebSocketUser(User):
    """Holds one socket and reports every ``round_trip`` as a request of type "WS" named ``name``.

    Subclasses set ``path`` (and ``name``, default ``"WS <path>"``, the route template the pool keys
    hold time by) and call ``round_trip`` from their tasks. A failed connect or round trip is a failure
    event and drops the socket; the next round trip connects again.
    """

    abstract = True
    path = "/"
    name = ""
    # Reconnect after this many round trips; 0 keeps one socket for the user's whole life.
    messages_per_connection = 0
    open_timeout_s = 10.0
    reply_timeout_s = 30.0

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self._socket: ClientConnection | None = None
        self._sent = 0

    @property
    def request_name(self) -> str:
        return self.name or f"WS {self.path}"

    def url(self) -> str:
        base = (self.host or "").rstrip("/")
        return "ws" + base[len("http"):] + self.path if base.startswith("http") else base + self.path

    def round_trip(self, message: str) -> str | None:
        """Send ``message``, wait for one reply and record the round trip; None when it failed."""
        socket = self._connected()
        if socket is None:
            return None
        started, clock = time.time(), time.perf_counter()
        try:
            socket.send(message)
            reply = socket.recv(timeout=self.reply_timeout_s)
        except FAILURES as err:
            self._record(started, clock, 0, err)
            self.disconnect()
            return None
        self._record(started, clock, len(reply), None)
        self._sent += 1
        if self.messages_per_connection and self._sent >= self.messages_per_connection:
            self.disconnect()
        return reply if isinstance(reply, str) else reply.decode("utf-8", "replace")

    def disconnect(self) -> None:
        socket, self._socket, self._sent = self._socket, None, 0
        if socket is not None:
            try:
                socket.close()
            except FAILURES:
                pass  # already gone; nothing left to release

    def on_stop(self) -> None:
        self.disconnect()

    def _connected(self) -> ClientConnection | None:
        # A refused or failed handshake is recorded under the same name: from the user's side it is a
        # message that could not be sent. Its time is the handshake's, kept out of round-trip latency.
        if self._socket is None:
            started, clock = time.time(), time.perf_counter()
            try:
                self._socket = connect(self.url(), open_timeout=self.open_timeout_s, close_timeout=1)
            except FAILURES as err:
                self._record(started, clock, 0, err)
        return self._socket

    def _record(self, started: float, clock: float, length: int, error: BaseException | None) -> None:
        self.environment.events.request.fire(
            request_type="WS",
            name=self.request_name,
            start_time=started,
            response_time=(time.perf_counter() - clock) * 1000,
            response_length=length,
            exception=error,
            context={},
        )
