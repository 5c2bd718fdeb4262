"""The ASGI endpoint that serves a pool's metrics (``GET /_bench/pool``): JSON, or Prometheus text.

Apps mount ``PoolEndpoint`` at ``ENDPOINT_PATH``; the harness's collector and Prometheus scrapers read it.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from bench.instrument.asgi import Receive, Scope, Send
from bench.instrument.prometheus import prometheus_text
from bench.instrument.shared import served

if TYPE_CHECKING:  # for annotations: the pool module brings SQLAlchemy's asyncio layer
    from bench.instrument.poolmetrics import PoolMetrics

ENDPOINT_PATH = "/_bench/pool"
_ROUTE_FIELDS = ("use_time_by_route", "wait_time_by_route", "hold_open_s_by_route", "hold_sites")


class PoolEndpoint:
    """ASGI endpoint serving the pool metrics: JSON by default (``?hist=0`` leaves out histograms, ``?routes=0``
    only the per-route ones and the hold sites), Prometheus text with ``?format=prometheus``. With a ``token``,
    requests must carry it as ``Authorization: Bearer <token>`` (401 otherwise): real services mount this.
    """

    def __init__(
        self,
        metrics: Callable[[], PoolMetrics | None],
        token: str | None = None,
        pool_name: str = "default",
        shared_dir: str | None = None,
    ) -> None:
        self.metrics = metrics
        self.token = token
        self.pool_name = pool_name
        # With several worker processes, each writes its snapshot here and any of them serves the sum.
        self.shared_dir = shared_dir

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status, content_type, body = self._answer(scope)
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _answer(self, scope: Scope) -> tuple[int, bytes, bytes]:
        json_type = b"application/json"
        if self.token and not self._authorized(scope):
            return 401, json_type, b'{"error": "missing or wrong bearer token"}'
        metrics = self.metrics()
        if metrics is None:
            return 503, json_type, b'{"error": "pool not ready"}'
        query = scope.get("query_string", b"")
        prometheus = b"format=prometheus" in query
        histograms = prometheus or b"hist=0" not in query
        routes = prometheus or b"routes=0" not in query
        if self.shared_dir:
            snapshot = served(metrics, self.shared_dir, histograms)
            if snapshot is not None and not routes:
                for key in _ROUTE_FIELDS:
                    snapshot.pop(key, None)
        else:  # built without the per-route figures, not built and dropped: the app's CPU is what is saved
            snapshot = metrics.snapshot(histograms, routes)
        if snapshot is None:
            return 503, json_type, b'{"error": "no snapshots yet"}'
        if prometheus:
            # The same figures as the JSON view: with several workers, their sum, not the answering one's.
            return 200, b"text/plain; version=0.0.4; charset=utf-8", prometheus_text(snapshot, self.pool_name).encode()
        return 200, json_type, json.dumps(snapshot).encode()

    def _authorized(self, scope: Scope) -> bool:
        expected = f"Bearer {self.token}".encode()
        headers = dict(scope.get("headers") or [])
        return hmac.compare_digest(headers.get(b"authorization", b""), expected)
