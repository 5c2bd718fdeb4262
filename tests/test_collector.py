"""The collector against a real PostgreSQL: idle-in-transaction episodes it must see and measure."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg

from bench.db import embedded as postgres
from bench.run.collector import Collector, DbFigures


async def _idle_in_transaction(dsn: str, app: str, seconds: float, short: int) -> None:
    conn = await asyncpg.connect(dsn, server_settings={"application_name": app})
    try:
        for _ in range(short):  # correct code: many brief moments idle in transaction
            async with conn.transaction():
                await conn.execute("SELECT 1")
                await asyncio.sleep(0.005)
        async with conn.transaction():  # the anti-pattern: one long one
            await conn.execute("SELECT 1")
            await asyncio.sleep(seconds)
    finally:
        await conn.close()


def test_collector_measures_idle_in_transaction(pg_server: postgres.Server, database: str, tmp_path: Path) -> None:
    async def scenario() -> DbFigures:
        collector = Collector(
            admin_dsn=pg_server.dsn("postgres"), database=database, application_name="sb-test",
            pool_url=None, samples_path=tmp_path / "samples.jsonl", interval_s=0.1, idle_threshold_s=0.05,
        )
        await collector.open()
        stop = asyncio.Event()
        sampling = asyncio.create_task(collector.run(stop))
        collector.phase = "load"
        await _idle_in_transaction(pg_server.dsn(database), "sb-test", 1.0, short=20)
        collector.phase = "cooldown"
        await asyncio.sleep(0.3)
        stop.set()
        await sampling
        figures = await collector.finish()
        await collector.close()
        return figures

    figures = asyncio.run(scenario())
    assert 0.9 <= figures.idle_in_tx_oldest_s <= 1.1
    # One second idle in transaction, 0.95 s of it past the 50 ms threshold.
    assert 0.75 <= figures.idle_in_tx_long_seconds <= 1.15
    assert figures.idle_in_tx_max == 1 and figures.connections_max == 1
    assert figures.idle_in_tx_after_load == 0
    server_idle = figures.server["idle_in_transaction_time"]
    assert 1.0 <= server_idle <= 1.3, figures.server
    assert figures.server["sessions"] == 1
    assert 0.8 <= figures.idle_in_tx_seconds_sampled / server_idle <= 1.2
    lines = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert len(lines) >= 10 and {"load", "cooldown"} <= {line["phase"] for line in lines}
    assert max(line["idle_in_tx_oldest_s"] for line in lines) >= 0.9


def test_collector_ignores_other_applications(pg_server: postgres.Server, database: str, tmp_path: Path) -> None:
    async def scenario() -> DbFigures:
        collector = Collector(
            admin_dsn=pg_server.dsn("postgres"), database=database, application_name="sb-mine",
            pool_url=None, samples_path=tmp_path / "s.jsonl",
        )
        await collector.open()
        stop = asyncio.Event()
        sampling = asyncio.create_task(collector.run(stop))
        await _idle_in_transaction(pg_server.dsn(database), "sb-someone-else", 0.4, short=0)
        stop.set()
        await sampling
        await collector.close()
        return collector.figures

    figures = asyncio.run(scenario())
    assert figures.idle_in_tx_max == 0 and figures.connections_max == 0 and figures.samples >= 3
