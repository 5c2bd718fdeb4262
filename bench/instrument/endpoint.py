"""The ASGI endpoint that serves a pool's metrics (``GET /_bench/pool``): JSON, or Prometheus text.

Apps mount ``PoolEndpoint`` at ``ENDPOINT_PATH``; the harness's collector and Prometheus scrapers read it.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from pathlib import Path

from bench.instrument.asgi import Receive, Scope, Send
from bench.instrument.pool import PoolMetrics
from bench.instrument.prometheus import prometheus_text
from bench.instrument.shared import read_merged

ENDPOINT_PATH = "/_bench/pool"


class PoolEndpoint:
    """ASGI endpoint serving the pool metrics: JSON by default (``?hist=0`` leaves out histograms),
    Prometheus text with ``?format=prometheus``. With a ``token``, requests must carry it as
    ``Authorization: Bearer <token>`` (401 otherwise): real services mount this.
    """

    def __init__(self, metrics: Callable[[], PoolMetrics | None], token: str | None = None,
                 pool_name: str = "default", shared_dir: str | None = None) -> None:
        self.metrics = metrics
        self.token = token
        self.pool_name = pool_name
        # With several worker processes, each writes its snapshot here and any of them serves the sum.
        self.shared_dir = shared_dir

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = scope.get("query_string", b"")
        metrics = self.metrics()
        content_type = b"application/json"
        if self.token and not self._authorized(scope):
            status, body = 401, b'{"error": "missing or wrong bearer token"}'
        elif metrics is None:
            status, body = 503, b'{"error": "pool not ready"}'
        elif b"format=prometheus" in query:
            status, body = 200, prometheus_text(metrics, self.pool_name).encode()
            content_type = b"text/plain; version=0.0.4; charset=utf-8"
        elif self.shared_dir:
            merged = read_merged(Path(self.shared_dir))
            status, body = (200, json.dumps(merged).encode()) if merged else (503, b'{"error": "no snapshots yet"}')
        else:
            status, body = 200, json.dumps(metrics.snapshot(b"hist=0" not in query)).encode()
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _authorized(self, scope: Scope) -> bool:
        expected = f"Bearer {self.token}".encode()
        headers = dict(scope.get("headers") or [])
        return hmac.compare_digest(headers.get(b"authorization", b""), expected)
