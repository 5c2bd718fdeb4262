"""Pool instrumentation for any SQLAlchemy async engine: checkout wait, connect and hold time, gauges, per route.

Apps create their engine with ``poolclass=TimedAsyncPool`` and call ``instrument(engine)``, which also tags
statements and finds the lines behind long holds (``holds``); ``PoolEndpoint`` serves ``PoolMetrics.snapshot()``
(``poolmetrics``).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, Pool, PoolProxiedConnection, QueuePool

from bench.instrument.asgi import current_route
from bench.instrument.histogram import Histogram
from bench.instrument.holds import HOLD_KEY, Hold, HoldSites
from bench.instrument.idletime import track_idle
from bench.instrument.poolmetrics import PoolMetrics
from bench.instrument.tags import tag_statements

log = logging.getLogger("bench.instrument.pool")


class _Checkout:
    """One ``TimedAsyncPool.connect`` under way: its route, read once for its wait and its hold, whether its outermost
    ``_do_get`` runs (QueuePool's recurses; a nested one is part of it), and the connect time spent in that so far."""

    __slots__ = ("getting", "route", "spent")

    def __init__(self, route: str) -> None:
        self.route = route
        self.getting = False
        self.spent = 0.0


# Per-checkout bookkeeping lives in a context variable: the pool is shared by every task, and SQLAlchemy runs the
# pool code in a greenlet that inherits the calling task's context. Set once per checkout, in ``connect``.
_checkout: contextvars.ContextVar[_Checkout | None] = contextvars.ContextVar("bench_checkout", default=None)

# Keys in a connection record's ``info``. SQLAlchemy clears ``info`` before it (re)opens the record's connection.
_HOLD = HOLD_KEY  # the checkout's ``Hold``: when, which route, the app's proxy, its task and frames
_CONNECT_AT = "bench_connect_at"  # perf_counter when the pool started opening this record's connection


class TimedAsyncPool(AsyncAdaptedQueuePool):
    """AsyncAdaptedQueuePool that times the queue wait of each checkout, apart from connect time, and opens and
    closes each hold itself.

    No pool event fires when a checkout starts, so the outermost ``_do_get`` is timed (it recurses)
    and the time spent in ``_create_connection`` is subtracted: the wait is the time until the pool
    handed over a connection slot. Reopening a slot's connection (after an invalidation, a recycle or
    a garbage-collector reclaim) happens after ``_do_get`` returns, so it was never in the wait; every
    connect, new or reopened, is timed apart by ``instrument`` (``create``). Observer errors never
    escape: a failing observer inside checkout would leak the connection it was handing out.

    Holds open in ``connect`` and close in ``_return_conn``, where SQLAlchemy fires the ``checkout`` and ``checkin``
    events (after the pool's own checkout work, and in ``_ConnectionRecord.checkin`` just before the slot goes
    back): the same moments, without the event dispatch, which costs each checkout a few µs, and the pool's slower
    checkout path that any ``checkout`` listener switches on. Other pools get the events (``_track_holds``).
    ``connect`` also reads the route once for the wait and the hold, and sets the checkout's context variable once.
    """

    bench_metrics: PoolMetrics | None = None

    def connect(self) -> PoolProxiedConnection:
        metrics = self.bench_metrics
        if metrics is None:
            return super().connect()
        checkout = _Checkout(current_route())
        token = _checkout.set(checkout)
        try:
            fairy = super().connect()
        finally:
            _checkout.reset(token)
        try:
            _open_hold(metrics, fairy._connection_record, fairy, checkout.route)
        except Exception:  # pragma: no cover - an observer must never break a checkout
            log.exception("pool checkout observer failed")
        return fairy

    def recreate(self) -> QueuePool:
        """``engine.dispose()`` puts a new pool in this one's place and carries its event listeners over; the
        instrumentation goes along too (the new pool's connects are timed, its gauges read), or every figure would
        stop at the dispose."""
        pool = super().recreate()
        metrics = self.bench_metrics
        if metrics is not None and isinstance(pool, TimedAsyncPool):
            pool.bench_metrics = metrics
            metrics.pool = pool
            _wrap_creator(pool, metrics)
        return pool

    def _return_conn(self, record: ConnectionPoolEntry) -> None:
        if self.bench_metrics is not None:
            _safely(_close_hold, self.bench_metrics, record)
        super()._return_conn(record)

    def _do_get(self) -> ConnectionPoolEntry:
        metrics = self.bench_metrics
        checkout = _checkout.get()
        if metrics is None or checkout is None or checkout.getting:
            return super()._do_get()
        checkout.getting = True
        metrics.pending += 1
        metrics.pending_max = max(metrics.pending_max, metrics.pending)
        start = time.perf_counter()
        outcome = "ok"
        try:
            return super()._do_get()
        except exc.TimeoutError:
            outcome = "timeout"
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except BaseException:
            # A failed connect: counted where every connect is, in ``_time_connects``, not as a cancellation.
            outcome = "error"
            raise
        finally:
            elapsed = time.perf_counter() - start
            checkout.getting = False
            _record_wait(metrics, max(0.0, elapsed - checkout.spent), outcome, checkout.route)

    def _create_connection(self) -> ConnectionPoolEntry:
        # Subtracted from the wait whether the connect succeeds or fails (a refused connect is not queueing).
        checkout = _checkout.get()
        start = time.perf_counter()
        try:
            return super()._create_connection()
        finally:
            if checkout is not None and checkout.getting:
                checkout.spent += time.perf_counter() - start


def _record_wait(metrics: PoolMetrics, wait_s: float, outcome: str, route: str) -> None:
    try:
        metrics.pending -= 1
        # Which route waited: an innocent read route queues behind the culprits that hold the pool.
        hist = metrics.wait_by_route.get(route)
        if hist is None:
            hist = metrics.wait_by_route[route] = Histogram()
        metrics.wait.record_both(hist, wait_s)
        if outcome == "timeout":
            metrics.timeouts += 1
        elif outcome == "cancelled":
            metrics.cancelled += 1
    except Exception:  # pragma: no cover - an observer must never break a checkout
        log.exception("pool wait observer failed")


def _safely(fn: Callable[..., None], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:  # pragma: no cover - an observer must never break a checkout
        log.exception("pool observer failed")


def instrument(engine: AsyncEngine, *, statement_tags: bool = True, long_hold_ms: float | None = 50.0,
               library: tuple[str, ...] = ()) -> PoolMetrics:
    """Attach metrics to an engine's pool; waits are timed when the pool is a ``TimedAsyncPool``.

    Call it after the engine is built and before its first connection: connect time includes the
    ``connect`` listeners registered before this call (the dialect's own set-up among them).
    ``statement_tags``: prefix statements with the route and the checkout line (``tag_statements``).
    ``long_hold_ms``: holds longer than this are traced to the app's lines (``holds``; None: never), by default
    the harness's idle-in-transaction threshold. ``library``: more packages whose frames are not the app's
    (a shared session helper, say), besides SQLAlchemy, the drivers, the ASGI stack and the standard library.
    """
    pool = engine.sync_engine.pool
    metrics = PoolMetrics(pool=pool, timed=isinstance(pool, TimedAsyncPool))
    if long_hold_ms is not None:
        metrics.sites = HoldSites(long_hold_ms / 1000.0, library)
        # One table of the holds still open, not two kept alike at every checkout and checkin: the sites keep
        # theirs, and the snapshot's gauges read it.
        metrics.open_holds = metrics.sites.open
    if isinstance(pool, TimedAsyncPool):
        pool.bench_metrics = metrics
    _time_connects(pool, metrics)
    _track_holds(pool, metrics)
    if statement_tags:
        tag_statements(engine)
    metrics.idle = track_idle(engine)

    @event.listens_for(pool, "invalidate")
    def _on_invalidate(dbapi_conn: Any, record: ConnectionPoolEntry, exception: BaseException | None) -> None:
        metrics.invalidated += 1
        if metrics.sites is not None:  # before the checkin that follows: the hold is still open
            _safely(metrics.sites.lost, record)

    return metrics


def _time_connects(pool: Pool, metrics: PoolMetrics) -> None:
    """Times every connection the pool opens: new ones in ``_do_get``, and the reopening of a slot whose
    connection was invalidated, recycled or reclaimed, which SQLAlchemy does in
    ``_ConnectionRecord.get_connection`` outside ``_do_get``. Both go through ``pool._invoke_creator``,
    which is also where a connect that raises is counted, in or out of a checkout's ``_do_get``.
    """
    _wrap_creator(pool, metrics)

    # Registered last, so the time runs to the end of the dialect's connect set-up. A connect that
    # fails opens nothing: it is a connect failure, in neither of these figures.
    @event.listens_for(pool, "connect")
    def _on_connect(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
        metrics.connections_opened += 1
        started = record.info.pop(_CONNECT_AT, None)
        if started is not None:
            _safely(metrics.create.record, time.perf_counter() - started)


def _wrap_creator(pool: Pool, metrics: PoolMetrics) -> None:
    creator = pool._invoke_creator

    def timed_creator(rec: ConnectionPoolEntry) -> DBAPIConnection:
        rec.info[_CONNECT_AT] = time.perf_counter()
        try:
            return creator(rec)
        except Exception:  # a cancellation is a BaseException: the checkout's outcome, not the server's answer
            rec.info.pop(_CONNECT_AT, None)
            metrics.connect_failures += 1
            raise
        except asyncio.CancelledError:
            # Reopening a slot's connection comes after ``_do_get``, whose outcome cannot see this one.
            checkout = _checkout.get()
            if checkout is None or not checkout.getting:
                metrics.cancelled += 1
            raise

    pool._invoke_creator = timed_creator


def _track_holds(pool: Pool, metrics: PoolMetrics) -> None:
    """Checkout to checkin, or to the detach that ends a hold without a checkin. A ``TimedAsyncPool`` opens and
    closes holds itself; any other pool through its ``checkout`` and ``checkin`` events."""
    if not isinstance(pool, TimedAsyncPool):

        @event.listens_for(pool, "checkout")
        def _on_checkout(dbapi_conn: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
            _safely(_open_hold, metrics, record, proxy, current_route())

        @event.listens_for(pool, "checkin")
        def _on_checkin(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
            _safely(_close_hold, metrics, record)

    # With an async dialect the garbage collector cannot check a leaked connection in (that needs the
    # event loop): SQLAlchemy's finalizer resets it (terminate only), detaches it from its slot and
    # terminates it. No checkin fires; the slot is free again at the detach.
    @event.listens_for(pool, "detach")
    def _on_detach(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
        _safely(_close_detached, metrics, record)


def _open_hold(metrics: PoolMetrics, record: ConnectionPoolEntry, proxy: Any, route: str) -> None:
    # The proxy is the app's handle on the connection: a reclaim is the collection of it, so the
    # detach that follows finds this reference dead. (A callback, as SQLAlchemy's own fairy_ref has,
    # makes Python clear the reference before it runs the proxy's finalizer.)
    at, ref = time.perf_counter(), weakref.ref(proxy, _ignore)
    hold = None
    if metrics.sites is not None:
        try:
            hold = metrics.sites.opened(record, at, route, ref)
        except Exception:  # pragma: no cover - an observer must never break a checkout
            log.exception("hold site observer failed")
    if hold is None:  # not looked for (or the sites failed): kept in the gauges' table here
        hold = metrics.open_holds[record] = Hold(at, route, ref, None)
    record.info[_HOLD] = hold
    metrics.checkouts += 1
    metrics.checked_out += 1
    if metrics.checked_out > metrics.checked_out_max:
        # A new peak, capped by the pool's own count of lent slots (which also holds slots still connecting),
        # where it keeps one: it can never pass pool_size + max_overflow.
        pool = metrics.pool
        lent = pool.checkedout() if isinstance(pool, QueuePool) else metrics.checked_out
        metrics.checked_out_max = min(metrics.checked_out, lent)


def _ignore(ref: weakref.ref[Any]) -> None:
    pass


def _close_detached(metrics: PoolMetrics, record: ConnectionPoolEntry) -> None:
    hold = record.info.get(_HOLD)
    if hold is None:
        return
    reclaimed = hold.proxy() is None
    if reclaimed:
        metrics.reclaimed += 1
    else:  # the app called detach() on a connection it still has
        metrics.detached += 1
    _close_hold(metrics, record, reclaimed)


def _close_hold(metrics: PoolMetrics, record: ConnectionPoolEntry, reclaimed: bool = False) -> None:
    hold: Hold | None = record.info.pop(_HOLD, None)
    if hold is None:
        return
    now = time.perf_counter()
    held = now - hold.at
    metrics.checked_out -= 1
    hist = metrics.use_by_route.get(hold.route)
    if hist is None:
        hist = metrics.use_by_route[hold.route] = Histogram()
    metrics.use.record_both(hist, held)
    if metrics.sites is not None:  # which takes it out of the table of open holds
        metrics.sites.closed(record, hold, now, reclaimed)
    else:
        metrics.open_holds.pop(record, None)
