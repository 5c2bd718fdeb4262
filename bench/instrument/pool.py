"""Pool instrumentation for any SQLAlchemy async engine: checkout wait, hold time, gauges, per route.

Apps create their engine with ``poolclass=TimedAsyncPool`` and call ``instrument(engine)`` (and
``tag_statements(engine)``); ``PoolEndpoint`` serves ``PoolMetrics.snapshot()`` to the collector.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, Pool

from bench.instrument.asgi import current_route
from bench.instrument.histogram import Histogram
from bench.instrument.loop import LoopLag

log = logging.getLogger("bench.instrument.pool")

SCHEMA = "scopebench.pool/1"


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
        data: dict[str, Any] = {
            "schema": SCHEMA,
            "time": time.time(),
            "timed_checkout": self.timed,
            "gauges": self._gauges(),
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

    def _gauges(self) -> dict[str, Any]:
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
        return gauges


# Per-checkout bookkeeping lives in context variables: the pool is shared by every task, and
# SQLAlchemy runs the pool code in a greenlet that inherits the calling task's context.
_in_checkout: contextvars.ContextVar[bool] = contextvars.ContextVar("bench_in_checkout", default=False)
_connect_spent: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar(
    "bench_connect_spent", default=None
)


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
