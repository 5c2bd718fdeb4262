"""The timed pool against a real PostgreSQL: queue wait, connect time, hold time, timeouts, histograms.

These fail if SQLAlchemy stops calling the private hooks (``_do_get``, ``_create_connection``, ``_return_conn``).
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest
from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from bench.db import server as postgres
from bench.instrument import Histogram, PoolMetrics, TimedAsyncPool, instrument


def _engine(server: postgres.Server, database: str, **pool: float) -> AsyncEngine:
    url = postgres.sqlalchemy_url(server.dsn(database))
    return create_async_engine(url, poolclass=TimedAsyncPool, **pool)  # type: ignore[arg-type]


async def _hold(engine: AsyncEngine, seconds: float) -> float:
    start = time.perf_counter()
    async with engine.connect() as conn:
        waited = time.perf_counter() - start
        await conn.execute(text("SELECT 1"))
        await asyncio.sleep(seconds)
    return waited


def test_private_hooks_still_exist_and_are_called() -> None:
    # If SQLAlchemy renames these, TimedAsyncPool silently stops timing: fail loudly instead.
    for name in ("_do_get", "_create_connection", "_return_conn"):
        assert name in vars(AsyncAdaptedQueuePool.__mro__[1]) or hasattr(AsyncAdaptedQueuePool, name)
        assert name in vars(TimedAsyncPool)
    # instrument() times every connect by wrapping the creator each connection record calls
    # (tests/test_pool_lifecycle.py shows it is called for reopened connections too).
    pool = AsyncAdaptedQueuePool(lambda: None)
    assert callable(pool._invoke_creator)


def test_the_instrumentation_goes_along_when_the_engine_replaces_its_pool(
    pg_server: postgres.Server, database: str
) -> None:
    # engine.dispose() puts a new pool in the old one's place: waits, holds and connects go on being counted, each
    # connect once (the connect listener is carried over by SQLAlchemy, not added again).
    async def scenario() -> tuple[PoolMetrics, list[int], bool]:
        engine = _engine(pg_server, database, pool_size=2, max_overflow=0)
        metrics = instrument(engine)
        counts = []
        try:
            await _hold(engine, 0)
            counts.append(metrics.checkouts)
            first = engine.sync_engine.pool
            await engine.dispose()
            await asyncio.gather(_hold(engine, 0.05), _hold(engine, 0.05))
            counts.append(metrics.checkouts)
            return metrics, counts, engine.sync_engine.pool is metrics.pool is not first
        finally:
            await engine.dispose()

    metrics, counts, gauges_read_the_new_pool = asyncio.run(scenario())
    assert counts == [1, 3] and gauges_read_the_new_pool
    assert (metrics.wait.count, metrics.use.count) == (3, 3)
    assert metrics.connections_opened == metrics.create.count == 3  # one before the dispose, two after
    assert metrics.checked_out == 0 and metrics.checked_out_max == 2


def test_queue_wait_matches_outside_timing(pg_server: postgres.Server, database: str) -> None:
    hold_s = 0.5

    async def scenario() -> tuple[list[float], PoolMetrics, Histogram, Histogram]:
        engine = _engine(pg_server, database, pool_size=2, max_overflow=1, pool_timeout=10)
        metrics = instrument(engine)
        try:
            await asyncio.gather(*(_hold(engine, 0.05) for _ in range(3)))  # warm: all 3 connections open
            assert metrics.connections_opened == 3
            wait, use = Histogram.from_json(metrics.wait.to_json()), Histogram.from_json(metrics.use.to_json())
            waits = await asyncio.gather(*(_hold(engine, hold_s) for _ in range(8)))
        finally:
            await engine.dispose()
        return sorted(waits), metrics, metrics.wait.minus(wait), metrics.use.minus(use)

    outside, metrics, wait, use = asyncio.run(scenario())
    assert metrics.timed and wait.count == 8 and metrics.checkouts == 3 + 8
    # 8 holders of 0.5 s on 2+1 connections: three start at once, the rest queue behind them. The pool
    # was warmed, but it closes an overflow connection on return, so one of the three connects again.
    # Only the queued waits have a floor (a holder's sleep): the others are judged against them.
    slack = 0.1 * min(outside[3:]) + metrics.create.max
    assert all(w > 0.9 * hold_s for w in outside[3:]) and outside[-1] > 1.9 * hold_s
    assert max(outside[:3]) < slack, outside
    # The pool's own figure for each checkout matches the wait timed from outside it (which also holds
    # the adapter's overhead and that connect): never more, and less by no more than the slack.
    inside = [wait.percentile(100 * (i + 1) / 8) for i in range(8)]
    for mine, theirs in zip(inside, outside, strict=True):
        assert mine <= theirs * 1.006 and theirs - mine < slack, (inside, outside)
    assert metrics.connections_opened >= 3 and metrics.create.count == metrics.connections_opened
    assert use.count == 8 and use.percentile(0) >= 0.99 * hold_s
    assert metrics.checked_out == 0 and metrics.pending == 0 and metrics.checked_out_max == 3


def test_timeouts_are_counted(pg_server: postgres.Server, database: str) -> None:
    async def scenario() -> PoolMetrics:
        engine = _engine(pg_server, database, pool_size=1, max_overflow=0, pool_timeout=0.2)
        metrics = instrument(engine)
        try:
            holder = asyncio.create_task(_hold(engine, 0.6))
            await asyncio.sleep(0.1)
            with pytest.raises(exc.TimeoutError):
                await _hold(engine, 0)
            await holder
        finally:
            await engine.dispose()
        return metrics

    metrics = asyncio.run(scenario())
    assert metrics.timeouts == 1 and metrics.wait.count == 2
    assert 0.19 < metrics.wait.max < 0.35
    snapshot = metrics.snapshot()
    assert snapshot["counters"]["timeouts"] == 1 and snapshot["gauges"]["size"] == 1


def test_histogram_percentiles_within_half_a_percent() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(-3, 1.2) for _ in range(20_000)]
    hist = Histogram()
    for v in values:
        hist.record(v)
    ordered = sorted(values)
    for q in (50, 90, 95, 99, 99.9):
        exact = ordered[max(0, int(q / 100 * len(ordered) + 0.999999) - 1)]
        assert abs(hist.percentile(q) - exact) / exact < 0.006, q
    assert hist.percentile(100) == max(values)


def test_histogram_roundtrip_merge_and_delta() -> None:
    a, b = Histogram(), Histogram()
    for v in (0.001, 0.002, 0.5):
        a.record(v)
    snapshot = Histogram.from_json(a.to_json())
    for v in (0.003, 0.9):
        a.record(v)
        b.record(v)
    delta = a.minus(snapshot)
    assert delta.count == 2 and abs(delta.total - 0.903) < 1e-9
    assert abs(delta.percentile(100) - 0.9) < 0.01
    merged = Histogram.from_json(snapshot.to_json())
    merged.merge(b)
    assert merged.to_json()["buckets"] == a.to_json()["buckets"]
    assert Histogram().percentile(95) == 0.0
