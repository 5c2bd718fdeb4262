"""The pool figures at the ends of a connection's life, on a real pool and the real PostgreSQL: a leaked
checkout the garbage collector takes back, an app's own detach, and every connect timed, reopened ones included.
"""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import SAWarning
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from bench.db import server as postgres
from bench.instrument import PoolMetrics, RouteTagMiddleware, TimedAsyncPool, instrument, prometheus_text
from bench.instrument.asgi import Receive, Scope, Send

LEAKS = 5
LEAK_HOLD_S = 0.05
ROUTE = "GET /leak"


def _engine(server: postgres.Server, database: str, **pool: float) -> AsyncEngine:
    url = postgres.sqlalchemy_url(server.dsn(database))
    return create_async_engine(url, poolclass=TimedAsyncPool, **pool)


@pytest.fixture
def manual_gc() -> Iterator[None]:
    """Collections only where the test asks for them: a leak then ends at a known moment."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


async def _leaking_route(engine: AsyncEngine) -> None:
    """An ASGI request that opens a session, uses it, and never closes it (unclosed-session's bug)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        session = AsyncSession(engine)
        await session.execute(text("SELECT 1"))
        await asyncio.sleep(LEAK_HOLD_S)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: Any) -> None:
        pass

    await RouteTagMiddleware(app)({"type": "http", "method": "GET", "path": "/leak"}, receive, send)


def test_gc_reclaims_close_the_hold_and_free_the_slot(pg_server: postgres.Server, database: str,
                                                     manual_gc: None) -> None:
    async def scenario() -> tuple[PoolMetrics, dict[str, Any], str, int]:
        engine = _engine(pg_server, database, pool_size=2, max_overflow=0, pool_timeout=5)
        metrics = instrument(engine)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", SAWarning)
                for _ in range(LEAKS):
                    await _leaking_route(engine)
                    gc.collect()  # SQLAlchemy's finalizer: reset (terminate only), detach, close; no checkin
            snapshot, text_out = metrics.snapshot(), prometheus_text(metrics)
        finally:
            await engine.dispose()
        cleanups = sum("garbage collector" in str(w.message) for w in caught)
        return metrics, snapshot, text_out, cleanups

    metrics, snapshot, exposition, cleanups = asyncio.run(scenario())
    assert cleanups == LEAKS  # every leak really went through the garbage collector's path
    # Each hold ran from checkout to the collection, and counts in the figures Little's law reads.
    assert metrics.use.count == LEAKS and metrics.use.percentile(0) >= LEAK_HOLD_S * 0.99
    assert metrics.use_by_route[ROUTE].count == LEAKS
    assert metrics.checked_out == 0 and snapshot["gauges"]["checked_out"] == 0
    # A reclaimed slot is lent again, so the peak stays within the pool: 1 of 2 here, never one per leak.
    assert metrics.checked_out_max <= 2 and metrics.checkouts == LEAKS
    # The slot's connection was terminated by the collection: each later checkout reopened it.
    assert metrics.connections_opened == LEAKS and metrics.create.count == metrics.connections_opened
    assert metrics.reclaimed == LEAKS and metrics.detached == 0
    assert snapshot["counters"]["reclaimed"] == LEAKS
    assert f'scopebench_connections_reclaimed_total{{db_client_connection_pool_name="default"}} {LEAKS}' \
        in exposition


def test_an_apps_own_detach_is_not_a_reclaim(pg_server: postgres.Server, database: str) -> None:
    async def scenario() -> PoolMetrics:
        engine = _engine(pg_server, database, pool_size=1, max_overflow=0, pool_timeout=5)
        metrics = instrument(engine)
        try:
            async with engine.connect() as conn:
                raw = await conn.get_raw_connection()
                raw.detach()  # the connection leaves the pool; the slot is free at once
                async with engine.connect() as second:  # the only slot, reopened
                    await second.execute(text("SELECT 1"))
        finally:
            await engine.dispose()
        return metrics

    metrics = asyncio.run(scenario())
    assert metrics.use.count == 2 and metrics.checked_out == 0 and metrics.checked_out_max == 1
    assert metrics.detached == 1 and metrics.reclaimed == 0
    assert metrics.connections_opened == 2 == metrics.create.count


def test_every_connect_is_timed_reopened_ones_included(pg_server: postgres.Server, database: str) -> None:
    slow_s = 0.2

    async def scenario() -> PoolMetrics:
        engine = _engine(pg_server, database, pool_size=1, max_overflow=0, pool_timeout=5)

        # Registered before instrument(), like the dialect's own set-up: part of the connect time.
        @event.listens_for(engine.sync_engine.pool, "connect")
        def _slow_setup(dbapi_conn: Any, record: Any) -> None:
            time.sleep(slow_s)

        metrics = instrument(engine)
        try:
            for _ in range(3):
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                    await conn.invalidate()  # the slot stays; its connection is closed
            async with engine.connect() as conn:  # reopens in get_connection(), after _do_get
                await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()
        return metrics

    metrics = asyncio.run(scenario())
    assert metrics.invalidated == 3 and metrics.checkouts == 4
    # One connect per checkout: the first in _do_get, three reopened after an invalidation.
    assert metrics.connections_opened == 4 and metrics.create.count == 4
    assert metrics.create.percentile(0) >= slow_s * 0.99
    # No connect is in any wait: the longest wait is shorter than the shortest connect.
    assert metrics.wait.count == 4 and metrics.wait.max < metrics.create.percentile(0)
    assert metrics.checked_out_max == 1
