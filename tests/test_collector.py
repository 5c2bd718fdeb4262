"""The collector against a real PostgreSQL: idle-in-transaction episodes it must see and measure."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import pytest

from bench.db import server as postgres
from bench.results.records import DbFigures
from bench.run.collector import Collector, CollectorEvent, EventKind, Phase


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
        collector.start_load()
        await _idle_in_transaction(pg_server.dsn(database), "sb-test", 1.0, short=20)
        collector.start_cooldown()
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


def test_phases_only_move_forward(tmp_path: Path) -> None:
    collector = Collector(admin_dsn="postgresql://unused/postgres", database="x", application_name=None,
                          pool_url=None, samples_path=tmp_path / "s.jsonl")
    assert collector.phase is Phase.WARMUP
    with pytest.raises(RuntimeError, match="from warmup to cooldown"):
        collector.start_cooldown()
    collector.start_load()
    assert collector.phase is Phase.LOAD
    with pytest.raises(RuntimeError, match="from load to load"):
        collector.start_load()
    collector.start_cooldown()
    assert collector.phase == "cooldown"


def test_a_lost_connection_is_a_typed_fault_on_the_time_line(pg_server: postgres.Server, database: str,
                                                             tmp_path: Path) -> None:
    async def scenario() -> list[CollectorEvent]:
        collector = Collector(admin_dsn=pg_server.dsn("postgres"), database=database, application_name=None,
                              pool_url=None, samples_path=tmp_path / "s.jsonl", interval_s=0.05)
        await collector.open()
        stop = asyncio.Event()
        sampling = asyncio.create_task(collector.run(stop))
        await asyncio.sleep(0.2)
        admin = await asyncpg.connect(pg_server.dsn("postgres"))
        try:
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE application_name = 'scopebench-collector'")
        finally:
            await admin.close()
        await asyncio.sleep(0.5)
        stop.set()
        await sampling
        await collector.close()
        return collector.events

    events = asyncio.run(scenario())
    assert [e.kind for e in events] == [EventKind.CONNECTION_LOST, EventKind.RECONNECTED]
    lost, back = events
    assert lost.fault is not None and lost.fault.startswith("the collector lost its database connection (")
    assert back.fault is None
    # The time line keeps the shape run.json and summary.json always had.
    assert set(lost.to_json()) == {"t", "event", "detail"} and lost.to_json()["event"] == "collector connection lost"
    assert back.to_json() == {"t": back.t, "event": "collector reconnected"}
