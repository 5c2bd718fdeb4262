"""Pool instrumentation for any SQLAlchemy async engine: checkout wait, hold time, gauges, per route.

Apps create their engine with ``poolclass=TimedAsyncPool``, call ``instrument(engine)`` and mount
``PoolEndpoint`` plus ``RouteTagMiddleware``; the collector reads ``GET /_bench/pool``.
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, Pool

log = logging.getLogger("bench.instrument.pool")

SCHEMA = "scopebench.pool/1"
ENDPOINT_PATH = "/_bench/pool"

# Relative bucket width of the histograms: percentiles are exact to within half of it (0.5%).
_GROWTH = 1.01
_LOG_GROWTH = math.log(_GROWTH)
_MIN_S = 1e-6

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Histogram:
    """Log-bucketed histogram of durations in seconds: mergeable, bounded memory, 0.5% accuracy."""

    __slots__ = ("buckets", "count", "max", "total")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def record(self, seconds: float) -> None:
        index = -1 if seconds < _MIN_S else int(math.log(seconds / _MIN_S) / _LOG_GROWTH)
        self.buckets[index] = self.buckets.get(index, 0) + 1
        self.count += 1
        self.total += seconds
        self.max = max(self.max, seconds)

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "sum_s": self.total,
            "max_s": self.max,
            "buckets": {str(k): v for k, v in sorted(self.buckets.items())},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Histogram:
        hist = cls()
        hist.buckets = {int(k): int(v) for k, v in data.get("buckets", {}).items()}
        hist.count = int(data.get("count", 0))
        hist.total = float(data.get("sum_s", 0.0))
        hist.max = float(data.get("max_s", 0.0))
        return hist

    def merge(self, other: Histogram) -> None:
        for k, v in other.buckets.items():
            self.buckets[k] = self.buckets.get(k, 0) + v
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)

    def minus(self, earlier: Histogram) -> Histogram:
        """The observations recorded since ``earlier`` (a previous snapshot of this histogram)."""
        delta = Histogram()
        for k, v in self.buckets.items():
            d = v - earlier.buckets.get(k, 0)
            if d > 0:
                delta.buckets[k] = d
        delta.count = self.count - earlier.count
        delta.total = self.total - earlier.total
        delta.max = self.max
        return delta

    def percentile(self, q: float) -> float:
        """The q-th percentile (0..100) in seconds; 0.0 when empty."""
        if self.count == 0:
            return 0.0
        rank = max(1, math.ceil(q / 100.0 * self.count))
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                if index < 0:
                    return 0.0
                low = _MIN_S * _GROWTH**index
                return min(low * (1 + _GROWTH) / 2, self.max)
        return self.max

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0


@dataclass
class PoolMetrics:
    """Counters and histograms of one pool, named after the OpenTelemetry DB client conventions."""

    pool: Pool | None = None
    wait: Histogram = field(default_factory=Histogram)
    create: Histogram = field(default_factory=Histogram)
    use: Histogram = field(default_factory=Histogram)
    use_by_route: dict[str, Histogram] = field(default_factory=dict)
    wait_by_route: dict[str, Histogram] = field(default_factory=dict)
    timeouts: int = 0
    cancelled: int = 0
    checkouts: int = 0
    connections_opened: int = 0
    invalidated: int = 0
    pending: int = 0
    pending_max: int = 0
    checked_out: int = 0
    checked_out_max: int = 0
    started_at: float = field(default_factory=time.time)
    timed: bool = False
    loop: LoopLag | None = None  # event-loop lag and CPU, when the app runs a LoopLag monitor

    def snapshot(self, histograms: bool = True) -> dict[str, Any]:
        pool = self.pool
        gauges: dict[str, Any] = {"checked_out": self.checked_out, "pending": self.pending}
        if isinstance(pool, AsyncAdaptedQueuePool):
            # The pool's own count also drops when the GC reclaims a leaked connection (no checkin
            # event fires then), so it is the truthful gauge where there is one.
            gauges.update(
                checked_out=pool.checkedout(),
                size=pool.size(),
                checked_in=pool.checkedin(),
                overflow=pool.overflow(),
                max_overflow=pool._max_overflow,
                timeout_s=pool.timeout(),
            )
        data: dict[str, Any] = {
            "schema": SCHEMA,
            "time": time.time(),
            "timed_checkout": self.timed,
            "gauges": gauges,
            "counters": {
                "checkouts": self.checkouts,
                "timeouts": self.timeouts,
                "cancelled": self.cancelled,
                "connections_opened": self.connections_opened,
                "invalidated": self.invalidated,
                "pending_max": self.pending_max,
                "checked_out_max": self.checked_out_max,
            },
        }
        if histograms:
            data["wait_time"] = self.wait.to_json()
            data["create_time"] = self.create.to_json()
            data["use_time"] = self.use.to_json()
            data["use_time_by_route"] = {k: h.to_json() for k, h in sorted(self.use_by_route.items())}
            data["wait_time_by_route"] = {k: h.to_json() for k, h in sorted(self.wait_by_route.items())}
        if self.loop is not None:
            data["loop"] = self.loop.to_json(histograms)
        return data


@dataclass
class LoopLag:
    """How late a periodic ``asyncio.sleep`` wakes up (event-loop lag), and the process's CPU time.

    A busy loop delays every coroutine, holders of pool connections included: without this figure a
    CPU-bound app looks like a starved pool. The app runs ``run()`` as a task in its lifespan.
    """

    period_s: float = 0.01
    lag: Histogram = field(default_factory=Histogram)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.period_s)
            self.lag.record(max(0.0, loop.time() - start - self.period_s))

    def to_json(self, histograms: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {"period_s": self.period_s, "cpu_s": time.process_time(), "ticks": self.lag.count}
        if histograms:
            data["lag"] = self.lag.to_json()
        return data


# Per-checkout bookkeeping lives in context variables: the pool is shared by every task, and
# SQLAlchemy runs the pool code in a greenlet that inherits the calling task's context.
_in_checkout: contextvars.ContextVar[bool] = contextvars.ContextVar("bench_in_checkout", default=False)
_connect_spent: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar(
    "bench_connect_spent", default=None
)
_request_scope: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("bench_request_scope", default=None)


class TimedAsyncPool(AsyncAdaptedQueuePool):
    """AsyncAdaptedQueuePool that times the queue wait of each checkout, apart from connect time.

    No pool event fires when a checkout starts, so the outermost ``_do_get`` is timed (it recurses)
    and time spent in ``_create_connection`` is subtracted. Observer errors never escape: a failing
    observer inside checkout would leak the connection it was handing out.
    """

    bench_metrics: PoolMetrics | None = None

    def _do_get(self) -> ConnectionPoolEntry:
        metrics = self.bench_metrics
        if metrics is None or _in_checkout.get():
            return super()._do_get()
        token = _in_checkout.set(True)
        spent = [0.0]
        spent_token = _connect_spent.set(spent)
        metrics.pending += 1
        metrics.pending_max = max(metrics.pending_max, metrics.pending)
        start = time.perf_counter()
        outcome = "ok"
        try:
            return super()._do_get()
        except exc.TimeoutError:
            outcome = "timeout"
            raise
        except BaseException:
            outcome = "error"
            raise
        finally:
            elapsed = time.perf_counter() - start
            _connect_spent.reset(spent_token)
            _in_checkout.reset(token)
            _record_wait(metrics, max(0.0, elapsed - spent[0]), outcome)

    def _create_connection(self) -> ConnectionPoolEntry:
        spent = _connect_spent.get()
        start = time.perf_counter()
        try:
            return super()._create_connection()
        finally:
            elapsed = time.perf_counter() - start
            if spent is not None:
                spent[0] += elapsed
            if self.bench_metrics is not None:
                _safely(self.bench_metrics.create.record, elapsed)


def _record_wait(metrics: PoolMetrics, wait_s: float, outcome: str) -> None:
    try:
        metrics.pending -= 1
        metrics.wait.record(wait_s)
        # Which route waited: an innocent read route queues behind the culprits that hold the pool.
        route = current_route()
        hist = metrics.wait_by_route.get(route)
        if hist is None:
            hist = metrics.wait_by_route[route] = Histogram()
        hist.record(wait_s)
        if outcome == "timeout":
            metrics.timeouts += 1
        elif outcome == "error":
            metrics.cancelled += 1
    except Exception:  # pragma: no cover - an observer must never break a checkout
        log.exception("pool wait observer failed")


def _safely(fn: Callable[..., None], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:  # pragma: no cover - an observer must never break a checkout
        log.exception("pool observer failed")


def current_route() -> str:
    """The route template of the request running in this context ("-" outside a request)."""
    scope = _request_scope.get()
    if scope is None:
        return "-"
    route = scope.get("route")
    path = getattr(route, "path", None) or scope.get("path", "-")
    return f"{scope.get('method', 'WS') if scope.get('type') == 'http' else 'WS'} {path}"


def tag_statements(engine: AsyncEngine) -> None:
    """Prefix every statement with ``/* route: GET /items/{item_id} */`` so the database's own view
    (pg_stat_activity.query of a connection idle in transaction) names the route holding it."""

    @event.listens_for(engine.sync_engine, "before_cursor_execute", retval=True)
    def _tag(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> Any:
        route = current_route()
        if route == "-":
            return statement, parameters
        return f"/* route: {route.replace('*/', '* /')} */ {statement}", parameters


def instrument(engine: AsyncEngine) -> PoolMetrics:
    """Attach metrics to an engine's pool; waits are timed when the pool is a ``TimedAsyncPool``."""
    pool = engine.sync_engine.pool
    metrics = PoolMetrics(pool=pool, timed=isinstance(pool, TimedAsyncPool))
    if isinstance(pool, TimedAsyncPool):
        pool.bench_metrics = metrics

    @event.listens_for(pool, "connect")
    def _on_connect(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
        metrics.connections_opened += 1

    @event.listens_for(pool, "checkout")
    def _on_checkout(dbapi_conn: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        record.info["bench_checkout"] = (time.perf_counter(), current_route())
        metrics.checkouts += 1
        metrics.checked_out += 1
        metrics.checked_out_max = max(metrics.checked_out_max, metrics.checked_out)

    @event.listens_for(pool, "checkin")
    def _on_checkin(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
        _safely(_close_hold, metrics, record)

    @event.listens_for(pool, "invalidate")
    def _on_invalidate(dbapi_conn: Any, record: ConnectionPoolEntry, exception: BaseException | None) -> None:
        metrics.invalidated += 1

    return metrics


def _close_hold(metrics: PoolMetrics, record: ConnectionPoolEntry) -> None:
    started = record.info.pop("bench_checkout", None)
    if started is None:
        return
    at, route = started
    held = time.perf_counter() - at
    metrics.checked_out -= 1
    metrics.use.record(held)
    hist = metrics.use_by_route.get(route)
    if hist is None:
        hist = metrics.use_by_route[route] = Histogram()
    hist.record(held)


class RouteTagMiddleware:
    """Pure ASGI middleware: makes the request's route visible to the pool observers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        token = _request_scope.set(scope)
        try:
            await self.app(scope, receive, send)
        finally:
            _request_scope.reset(token)


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
            from bench.instrument.prometheus import prometheus_text

            status, body = 200, prometheus_text(metrics, self.pool_name).encode()
            content_type = b"text/plain; version=0.0.4; charset=utf-8"
        elif self.shared_dir:
            from pathlib import Path

            from bench.instrument.shared import read_merged

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
