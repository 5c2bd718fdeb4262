"""Pool counts in summary.json, each set against another count of the same events: connects timed against the
connections opened and the server's own sessions, cancelled checkouts against the cancellations the callers saw,
and the garbage collector's cleanups in a real app log against the pool's reclaims.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench.analysis import applog
from bench.analysis.summary import _pool_block
from bench.db import server as postgres
from bench.instrument import TimedAsyncPool, instrument, prometheus_text
from bench.instrument.shared import merge

ROOT = Path(__file__).resolve().parents[1]
POOL = 'db_client_connection_pool_name="default"'
REOPENS = 4


def _engine(server: postgres.Server, database: str, size: int) -> AsyncEngine:
    url = postgres.sqlalchemy_url(server.dsn(database))
    return create_async_engine(url, poolclass=TimedAsyncPool, pool_size=size, max_overflow=0, pool_timeout=10)


async def _sessions(server: postgres.Server, database: str) -> int:
    """pg_stat_database's count of sessions the database ever had, once none of its backends is left (a backend's
    counts reach the shared statistics by its exit at the latest)."""
    conn = await asyncpg.connect(server.dsn("postgres"))
    try:
        for _ in range(200):
            if not await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", database):
                break
            await asyncio.sleep(0.05)
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        return int(await conn.fetchval("SELECT sessions FROM pg_stat_database WHERE datname = $1", database))
    finally:
        await conn.close()


def test_connects_timed_are_the_connections_opened_and_the_servers_sessions(
    pg_server: postgres.Server, database: str
) -> None:
    async def scenario() -> tuple[dict[str, Any], int]:
        before = await _sessions(pg_server, database)
        engine = _engine(pg_server, database, size=2)
        metrics = instrument(engine)
        try:
            for _ in range(REOPENS):  # each checkout after an invalidation reopens the slot's connection
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                    await conn.invalidate()
            async with engine.connect() as one, engine.connect() as two:  # the second slot opens
                await one.execute(text("SELECT 1"))
                await two.execute(text("SELECT 1"))
            snapshot = metrics.snapshot()
        finally:
            await engine.dispose()
        return snapshot, await _sessions(pg_server, database) - before

    snapshot, server_sessions = asyncio.run(scenario())
    pool = _pool_block(snapshot, capacity=2, law=None)
    assert pool is not None
    # The first slot's connection opened and reopened after each invalidation but the last, once more for the
    # pair, and the second slot's: REOPENS + 2.
    assert pool["connect_ms"]["count"] == pool["connections_opened"] == server_sessions == REOPENS + 2
    assert pool["invalidated"] == REOPENS
    # Two workers: the merged histogram counts both, as the merged counter does.
    merged = _pool_block(merge([snapshot, snapshot]), capacity=4, law=None)
    assert merged is not None and merged["connect_ms"]["count"] == merged["connections_opened"] == 2 * (REOPENS + 2)


WAITERS = 3


def test_checkout_cancellations_are_in_the_summary(pg_server: postgres.Server, database: str) -> None:
    async def scenario() -> tuple[dict[str, Any], str, int]:
        engine = _engine(pg_server, database, size=1)
        metrics = instrument(engine)

        async def use(seconds: float) -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
                await asyncio.sleep(seconds)

        try:
            holder = asyncio.ensure_future(use(1.0))
            await asyncio.sleep(0.2)
            waiting = [asyncio.ensure_future(use(0.0)) for _ in range(WAITERS)]  # queued behind the holder
            await asyncio.sleep(0.2)
            assert not any(task.done() for task in waiting)
            for task in waiting:
                task.cancel()
            outcomes = await asyncio.gather(*waiting, return_exceptions=True)
            await holder
            snapshot, exposition = metrics.snapshot(), prometheus_text(metrics)
        finally:
            await engine.dispose()
        return snapshot, exposition, sum(isinstance(o, asyncio.CancelledError) for o in outcomes)

    snapshot, exposition, seen = asyncio.run(scenario())
    pool = _pool_block(snapshot, capacity=1, law=None)
    assert pool is not None
    assert pool["cancelled"] == seen == WAITERS
    assert (pool["timeouts"], pool["connect_failures"], pool["checkouts"]) == (0, 0, 1)
    assert f"scopebench_checkouts_cancelled_total{{{POOL}}} {WAITERS}\n" in exposition
    merged = _pool_block(merge([snapshot, snapshot]), capacity=2, law=None)
    assert merged is not None and merged["cancelled"] == 2 * WAITERS


LEAKS = 4
_LEAKING_APP = """
import asyncio, gc, json, logging, sys

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from bench.instrument import TimedAsyncPool, instrument


async def leak(engine):
    session = AsyncSession(engine)
    await session.execute(text("SELECT 1"))  # returns with the session, and its connection, dropped


async def main(url, leaks, quiet_logger):
    if quiet_logger:  # the pool's logger is named after its class (bench.instrument.pool.TimedAsyncPool here)
        logging.disable(logging.ERROR)
    gc.disable()
    engine = create_async_engine(url, poolclass=TimedAsyncPool, pool_size=2, max_overflow=0)
    metrics = instrument(engine)
    for _ in range(leaks):
        await leak(engine)
        gc.collect()
    await engine.dispose()
    print(json.dumps({"reclaimed": metrics.reclaimed}))


asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "quiet"))
"""


@pytest.mark.parametrize(
    ("options", "logger", "lines_per_cleanup"),
    [
        ((), "loud", 2),  # as the target apps run: the pool logger's error line and the SAWarning
        (("-W", "ignore:The garbage collector"), "loud", 1),  # warnings filtered: the log line alone
        ((), "quiet", 1),  # logging silenced: the warning alone
    ],
)
def test_gc_cleanups_count_one_per_cleanup_in_a_real_app_log(
    pg_server: postgres.Server,
    database: str,
    tmp_path: Path,
    options: tuple[str, ...],
    logger: str,
    lines_per_cleanup: int,
) -> None:
    script, log = tmp_path / "leaky_app.py", tmp_path / "app.log"
    script.write_text(_LEAKING_APP)
    url = postgres.sqlalchemy_url(pg_server.dsn(database))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "w", encoding="utf-8") as stderr:  # the app's log is its stderr, as uvicorn's app.log is
        done = subprocess.run(
            [sys.executable, *options, str(script), url, str(LEAKS), logger],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            timeout=60,
            check=True,
        )
    reclaimed = json.loads(done.stdout)["reclaimed"]
    text_of_log = log.read_text(encoding="utf-8")
    assert text_of_log.count("garbage collector is trying to clean up") == lines_per_cleanup * LEAKS, text_of_log
    assert applog.scan(log)["gc_cleanups"] == reclaimed == LEAKS
