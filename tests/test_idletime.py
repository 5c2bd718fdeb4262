"""Exact idle in transaction (bench/instrument/idletime.py) against a real PostgreSQL: the app's figure is the time
between statements inside each transaction, commits, rollbacks on return and failed statements alike, and never more
than the server's own ``idle_in_transaction_time`` for the database."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from bench.db import server as postgres
from bench.instrument import PoolMetrics, TimedAsyncPool, instrument
from bench.instrument.shared import merge

PAUSE_S = 0.04


def _engine(server: postgres.Server, database: str) -> AsyncEngine:
    url = postgres.sqlalchemy_url(server.dsn(database))
    return create_async_engine(url, poolclass=TimedAsyncPool, pool_size=3, max_overflow=0)


async def _server_idle_s(server: postgres.Server, database: str) -> float:
    """The server's idle_in_transaction_time for the database, once every backend of the test has gone (a backend
    flushes its counters when it exits)."""
    conn = await asyncpg.connect(server.dsn("postgres"))
    try:
        for _ in range(50):
            others = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", database
            )
            if not others:
                break
            await asyncio.sleep(0.05)
        await conn.execute("SELECT pg_stat_force_next_flush()")
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        value = await conn.fetchval(
            "SELECT idle_in_transaction_time FROM pg_stat_database WHERE datname = $1", database
        )
        return float(value) / 1000
    finally:
        await conn.close()


async def _transactions(engine: AsyncEngine, rounds: int) -> None:
    sessions = async_sessionmaker(engine)

    async def committed() -> None:
        async with sessions() as session:
            await session.execute(text("SELECT 1"))
            await asyncio.sleep(PAUSE_S)
            await session.execute(text("SELECT 2"))
            await session.commit()

    async def returned() -> None:  # no commit: the pool's rollback on return ends it
        async with sessions() as session:
            await session.execute(text("SELECT 1"))
            await asyncio.sleep(PAUSE_S)

    async def failed() -> None:  # idle in the aborted transaction until the rollback
        async with sessions() as session:
            with pytest.raises(exc.DBAPIError):
                await session.execute(text("SELECT 1/0"))
            await asyncio.sleep(PAUSE_S)
            await session.rollback()

    for _ in range(rounds):
        await asyncio.gather(committed(), returned(), failed())


def test_idle_time_is_the_time_between_statements(pg_server: postgres.Server, database: str) -> None:
    rounds = 5

    async def scenario() -> tuple[PoolMetrics, float, float]:
        engine = _engine(pg_server, database)
        metrics = instrument(engine, long_hold_ms=PAUSE_S * 1000 / 2)  # by checkout line: idle past the threshold
        try:
            async with engine.connect() as conn:  # the dialect's first connect: its own statements
                await conn.execute(text("SELECT 1"))
            before = metrics.idle.idle_s if metrics.idle else 0.0
            start = time.perf_counter()
            await _transactions(engine, rounds)
            elapsed = time.perf_counter() - start
        finally:
            await engine.dispose()
        return metrics, before, elapsed

    metrics, before, elapsed = asyncio.run(scenario())
    assert metrics.idle is not None
    idle = metrics.idle.idle_s - before
    # Three transactions a round, each idle through one pause; none can be idle longer than the round took.
    assert 3 * rounds * PAUSE_S <= idle <= 3 * elapsed, (idle, elapsed)
    snapshot = metrics.snapshot()
    assert snapshot["counters"]["transactions"] == metrics.idle.transactions >= 3 * rounds
    assert snapshot["gauges"]["transactions_open"] == 0 and snapshot["gauges"]["idle_in_tx_open_s"] == 0
    by_route = snapshot["idle_in_tx_by_route"]
    assert sum(r["idle_s"] for r in by_route.values()) == pytest.approx(metrics.idle.idle_s, abs=1e-5)
    sites = snapshot["idle_in_tx_by_site"]
    assert sites and all(s["checkout_site"].startswith("tests/test_idletime.py:") for s in sites), sites
    assert all(s["longest_idle_s"] >= PAUSE_S for s in sites)
    assert sum(s["transactions"] for s in sites) == 3 * rounds  # the warm-up's short one is not a site
    server = asyncio.run(_server_idle_s(pg_server, database))
    # The server counts from its answer to the next message it reads; the app from its reading of that answer to
    # its sending the next one. The server's spell holds the app's, plus the answer's wait for the event loop and
    # the driver's BEGIN before a transaction's first statement (measured: 0.8 to 2.5 ms a transaction here, and
    # the dialect's first-connect queries, which the app does not time): never less.
    assert metrics.idle.idle_s <= server + 0.001, (metrics.idle.idle_s, server)


def test_a_session_left_open_is_idle_so_far(pg_server: postgres.Server, database: str) -> None:
    async def scenario() -> tuple[dict[str, object], float]:
        engine = _engine(pg_server, database)
        metrics = instrument(engine)
        sessions = async_sessionmaker(engine)
        try:
            async with sessions() as session:
                await session.execute(text("SELECT 1"))
                await asyncio.sleep(0.2)
                open_snapshot = metrics.snapshot()
            return open_snapshot, metrics.idle.idle_s if metrics.idle else -1.0
        finally:
            await engine.dispose()

    snapshot, ended = asyncio.run(scenario())
    gauges = snapshot["gauges"]
    assert isinstance(gauges, dict)
    assert gauges["transactions_open"] == 1 and 0.2 <= gauges["idle_in_tx_open_s"] < 1.0
    assert ended >= 0.2  # ended at the rollback on return


def test_workers_are_added_up() -> None:
    def part(idle: float, n: int) -> dict[str, object]:
        return {
            "time": time.time(),
            "gauges": {"idle_in_tx_open_s": 0.5, "transactions_open": 1},
            "counters": {"idle_in_tx_s": idle, "transactions": n},
            "wait_time": {},
            "create_time": {},
            "use_time": {},
            "idle_in_tx_by_route": {"GET /a": {"idle_s": idle, "transactions": n}},
            "idle_in_tx_by_site": [{"route": "GET /a", "checkout_site": "app.py:3", "idle_s": idle, "transactions": n}],
        }

    merged = merge([part(1.5, 3), part(2.0, 4)])
    assert merged["counters"]["idle_in_tx_s"] == 3.5 and merged["counters"]["transactions"] == 7
    assert merged["gauges"]["idle_in_tx_open_s"] == 1.0
    assert merged["idle_in_tx_by_route"] == {"GET /a": {"idle_s": 3.5, "transactions": 7}}
    assert merged["idle_in_tx_by_site"][0]["idle_s"] == 3.5
