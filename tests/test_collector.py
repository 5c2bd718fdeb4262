"""The collector against a real PostgreSQL: idle-in-transaction episodes it must see and measure."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pandas as pd
import pytest

from bench.analysis.summary import summarize_app
from bench.db import server as postgres
from bench.results.records import DbFigures
from bench.results.requestlog import COLUMNS
from bench.run.collector import Collector, CollectorEvent, EventKind, Phase


@dataclass
class Spells:
    """What the client timed of its own transactions: each spell idle in transaction lies between ``idle_s``
    (statement answered to COMMIT sent, which the server's spell contains) and ``whole_s`` (BEGIN sent to COMMIT
    answered, which contains it)."""

    idle_s: list[float] = field(default_factory=list)
    whole_s: list[float] = field(default_factory=list)
    long_from: float = 0.0  # wall clock: the long spell's start, as the client saw it


async def _idle_in_transaction(dsn: str, app: str, seconds: float, short: int) -> Spells:
    spells = Spells()
    conn = await asyncpg.connect(dsn, server_settings={"application_name": app})
    try:
        for n in range(short + 1):  # correct code: many brief moments idle in transaction; the last one is long
            began = time.monotonic()
            async with conn.transaction():
                await conn.execute("SELECT 1")
                idle_from, spells.long_from = time.monotonic(), time.time()
                await asyncio.sleep(seconds if n == short else 0.005)
                spells.idle_s.append(time.monotonic() - idle_from)
            spells.whole_s.append(time.monotonic() - began)
    finally:
        await conn.close()
    return spells


def _largest_gap(lines: list[dict[str, Any]]) -> float:
    """The longest time between two samples: how late a sample may see a spell, what one tick may over-count."""
    times = [line["t"] for line in lines]
    return max(b - a for a, b in itertools.pairwise(times))


def test_collector_measures_idle_in_transaction(pg_server: postgres.Server, database: str, tmp_path: Path) -> None:
    async def scenario() -> tuple[DbFigures, Spells]:
        collector = Collector(
            admin_dsn=pg_server.dsn("postgres"),
            database=database,
            application_name="sb-test",
            pool_url=None,
            samples_path=tmp_path / "samples.jsonl",
            interval_s=0.1,
            idle_threshold_s=0.05,
        )
        await collector.open()
        stop = asyncio.Event()
        sampling = asyncio.create_task(collector.run(stop))
        collector.start_load()
        spells = await _idle_in_transaction(pg_server.dsn(database), "sb-test", 1.0, short=20)
        collector.start_cooldown()
        await asyncio.sleep(0.3)
        stop.set()
        await sampling
        figures = await collector.finish()
        await collector.close()
        return figures, spells

    figures, spells = asyncio.run(scenario())
    lines = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert len(lines) >= 10 and {"load", "cooldown"} <= {line["phase"] for line in lines}
    # Bounds from what the client timed and how far apart the samples really were, never from the clock's hope.
    gap, slack = _largest_gap(lines), 0.01  # slack: the server's counters are in milliseconds
    long_idle, long_whole = spells.idle_s[-1], spells.whole_s[-1]
    assert long_idle - gap <= figures.idle_in_tx_oldest_s <= long_whole + slack, (figures, gap)
    assert long_idle - gap <= max(line["idle_in_tx_oldest_s"] for line in lines) <= long_whole + slack
    # Past the 50 ms threshold: the long spell's time beyond it, give or take a tick, plus any short spell a busy
    # machine stretched past it.
    past = [w - 0.05 for w in spells.whole_s if w > 0.05]
    assert long_idle - 0.05 - gap <= figures.idle_in_tx_long_seconds <= sum(past) + gap * len(past), (figures, gap)
    assert figures.idle_in_tx_max == 1 and figures.connections_max == 1
    assert figures.idle_in_tx_after_load == 0
    # The server's exact figure lies between the client's two timings of the same spells.
    server_idle = figures.server["idle_in_transaction_time"]
    assert sum(spells.idle_s) - slack <= server_idle <= sum(spells.whole_s) + slack, (figures.server, spells)
    assert figures.server["sessions"] == 1
    # Sampled, the long spell is off by at most a tick; each sample that caught a short spell adds at most one, and
    # the samples may miss every short spell, which the server counts (20 x 5 ms and more: 0.12 s in one run).
    caught = sum(1 for line in lines if line["idle_in_tx"] and line["t"] < spells.long_from)
    error = figures.idle_in_tx_seconds_sampled - server_idle
    missed = sum(spells.whole_s[:-1])
    assert -gap - missed - slack <= error <= gap * (1 + caught) + slack, (figures.idle_in_tx_seconds_sampled,
                                                                           server_idle, missed)


def test_collector_ignores_other_applications(pg_server: postgres.Server, database: str, tmp_path: Path) -> None:
    async def scenario() -> DbFigures:
        collector = Collector(
            admin_dsn=pg_server.dsn("postgres"),
            database=database,
            application_name="sb-mine",
            pool_url=None,
            samples_path=tmp_path / "s.jsonl",
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
    collector = Collector(
        admin_dsn="postgresql://unused/postgres",
        database="x",
        application_name=None,
        pool_url=None,
        samples_path=tmp_path / "s.jsonl",
    )
    assert collector.phase is Phase.WARMUP
    with pytest.raises(RuntimeError, match="from warmup to cooldown"):
        collector.start_cooldown()
    collector.start_load()
    assert collector.phase is Phase.LOAD
    with pytest.raises(RuntimeError, match="from load to load"):
        collector.start_load()
    collector.start_cooldown()
    assert collector.phase == "cooldown"


def test_a_lost_connection_is_a_typed_fault_on_the_time_line(
    pg_server: postgres.Server, database: str, tmp_path: Path
) -> None:
    async def scenario() -> list[CollectorEvent]:
        collector = Collector(
            admin_dsn=pg_server.dsn("postgres"),
            database=database,
            application_name=None,
            pool_url=None,
            samples_path=tmp_path / "s.jsonl",
            interval_s=0.05,
        )
        await collector.open()
        stop = asyncio.Event()
        sampling = asyncio.create_task(collector.run(stop))
        await asyncio.sleep(0.2)
        admin = await asyncpg.connect(pg_server.dsn("postgres"))
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'scopebench-collector'"
            )
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


# --- issue 12: the collector's figures ------------------------------------------------------------


async def _sampling(collector: Collector) -> tuple[asyncio.Event, asyncio.Task[None]]:
    await collector.open()
    stop = asyncio.Event()
    return stop, asyncio.create_task(collector.run(stop))


async def _stop(collector: Collector, stop: asyncio.Event, sampling: asyncio.Task[None]) -> DbFigures:
    stop.set()
    await sampling
    figures = await collector.finish()
    await collector.close()
    return figures


def _collector(pg_server: postgres.Server, database: str, app: str, path: Path, dsn: str | None = None) -> Collector:
    return Collector(
        admin_dsn=dsn or pg_server.dsn("postgres"),
        database=database,
        application_name=app,
        pool_url=None,
        samples_path=path,
        interval_s=0.1,
        idle_threshold_s=0.05,
    )


def test_the_sampling_interval_ignores_the_servers_clock(
    pg_server: postgres.Server, database: str, tmp_path: Path
) -> None:
    """A server whose clock runs an hour ahead, seen through a schema first on the collector's search_path (its
    now() and pg_stat_activity's times an hour fast). A sample without rows has no server time: mixing it with
    the server's time once made one interval an hour long."""
    schema = f"skew_{uuid.uuid4().hex[:8]}"

    async def admin(*statements: str) -> None:
        conn = await asyncpg.connect(pg_server.dsn("postgres"))
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    async def spell(app: str, seconds: float) -> None:
        # Named only once idle in transaction, so the first sample that sees the backend sees it idle.
        conn = await asyncpg.connect(pg_server.dsn(database), server_settings={"application_name": "sb-setup"})
        try:
            async with conn.transaction():
                await conn.execute(f"SET application_name = '{app}'")
                await asyncio.sleep(seconds)
        finally:
            await conn.close()

    async def scenario() -> DbFigures:
        collector = _collector(
            pg_server,
            database,
            "sb-clock",
            tmp_path / "s.jsonl",
            dsn=pg_server.dsn("postgres") + f"?search_path={schema},pg_catalog",
        )
        stop, sampling = await _sampling(collector)
        collector.start_load()
        await spell("sb-clock", 0.6)
        await asyncio.sleep(0.4)  # no backend of the app: samples without rows
        await spell("sb-clock", 0.6)
        return await _stop(collector, stop, sampling)

    shift = "interval '1 hour'"
    asyncio.run(
        admin(
            f"CREATE SCHEMA {schema}",
            f"CREATE FUNCTION {schema}.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT pg_catalog.now() + {shift} $$",
            f"CREATE VIEW {schema}.pg_stat_activity AS SELECT pid, datname, backend_type, application_name, state, "
            f"query, backend_start + {shift} AS backend_start, state_change + {shift} AS state_change, "
            f"xact_start + {shift} AS xact_start FROM pg_catalog.pg_stat_activity",
        )
    )
    try:
        figures = asyncio.run(scenario())
    finally:
        asyncio.run(admin(f"DROP SCHEMA {schema} CASCADE"))
    assert 0.9 <= figures.idle_in_tx_seconds_sampled <= 1.5, figures
    assert 0.5 <= figures.idle_in_tx_oldest_s <= 0.8  # ages are the server's two times: skew cancels out
    lines = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert all(abs(line["t"] - time.time()) < 60 for line in lines)  # the time line is on the harness's clock


def test_spells_the_server_never_counts(pg_server: postgres.Server, database: str, tmp_path: Path) -> None:
    """PostgreSQL adds an idle-in-transaction spell to pg_stat_database only when the backend's state changes:
    not when the client hangs up in the middle (as SQLAlchemy does with a garbage-collected connection), nor when
    idle_in_transaction_session_timeout ends the backend, nor while the spell is still open. A commit followed at
    once by a close looks the same from outside as the hang-up, but the server counted it."""
    held: dict[str, float] = {}
    still: list[asyncpg.Connection] = []

    async def idle(name: str, seconds: float, end: str) -> None:
        conn = await asyncpg.connect(
            pg_server.dsn(database),
            server_settings={
                "application_name": "sb-spells",
                "idle_in_transaction_session_timeout": "400ms" if end == "fatal" else "0",
            },
        )
        await conn.execute("BEGIN")
        began = time.monotonic()
        await asyncio.sleep(seconds)
        if end == "commit":
            await conn.execute("COMMIT")
        held[name] = time.monotonic() - began
        if end == "open":
            held["open_since"] = began
            still.append(conn)  # closed once the final statistics are taken
            return
        if end == "commit":
            await conn.close()  # right after the commit: gone by the next sample, its spell counted
        else:
            conn.terminate()  # as SQLAlchemy reclaims a leaked connection (for "fatal", the server ended it first)

    async def scenario() -> tuple[DbFigures, float]:
        collector = _collector(pg_server, database, "sb-spells", tmp_path / "s.jsonl")
        stop, sampling = await _sampling(collector)
        collector.start_load()
        await asyncio.gather(
            idle("commit", 0.8, "commit"),
            idle("vanish", 0.8, "vanish"),
            idle("fatal", 1.0, "fatal"),
            idle("open", 0.01, "open"),
        )
        await asyncio.sleep(0.5)
        still_open = time.monotonic() - held["open_since"]  # the last sample came up to an interval before
        stop.set()
        await sampling
        figures = await collector.finish()
        await collector.close()
        await still[0].close()
        return figures, still_open

    figures, still_open = asyncio.run(scenario())
    # The server counted the committed spell alone: not the hung-up one, the one its timeout ended, the open one.
    assert figures.server["idle_in_transaction_time"] == pytest.approx(held["commit"], abs=0.05)
    assert figures.server["sessions_fatal"] == 1 and figures.server["sessions_abandoned"] == 0  # asyncpg said bye
    # Certainly missing there: the one the timeout ended at 0.4 s (an abnormal end), the open one ...
    assert 0.4 + still_open - 0.25 <= figures.idle_in_tx_unreported_s <= 0.4 + still_open + 0.1
    # ... and, undecidable from outside, the committed-and-closed one (counted) and the hung-up one (not).
    assert figures.idle_in_tx_unresolved_s == pytest.approx(held["commit"] + held["vanish"], abs=0.25)
    db = summarize_app(
        requests=pd.DataFrame(columns=list(COLUMNS)), pool=None, db=figures, integrity=None, pool_capacity=1
    )["db"]
    truth = held["commit"] + held["vanish"] + 0.4 + still_open
    assert db["idle_in_tx_seconds"] == pytest.approx(truth, rel=0.1)
    assert db["idle_in_tx_seconds"] <= truth + held["commit"] - 0.3  # never the committed spell twice


def test_idle_after_load_counts_long_spells_only(pg_server: postgres.Server, database: str, tmp_path: Path) -> None:
    """Not whatever one sample catches idle: a spell younger than the idle threshold is a moment between two
    statements, a leak is older. (A threshold of 0.8 s here, so the moment can be half a second long.)"""

    async def scenario() -> DbFigures:
        collector = _collector(pg_server, database, "sb-left", tmp_path / "s.jsonl")
        collector.idle_threshold_s = 0.8
        stop, sampling = await _sampling(collector)
        leak = await asyncpg.connect(pg_server.dsn(database), server_settings={"application_name": "sb-left"})
        moment = await asyncpg.connect(pg_server.dsn(database), server_settings={"application_name": "sb-left"})
        try:
            collector.start_load()
            await leak.execute("BEGIN")
            await asyncio.sleep(0.8)
            collector.start_cooldown()
            await moment.execute("BEGIN")  # idle at the last sample too, but for 0.5 s
            await asyncio.sleep(0.5)
            return await _stop(collector, stop, sampling)
        finally:
            await leak.close()
            await moment.close()

    figures = asyncio.run(scenario())
    assert figures.idle_in_tx_max == 2 and figures.idle_in_tx_after_load == 1


def test_idle_mean_covers_load_and_cool_down(pg_server: postgres.Server, database: str, tmp_path: Path) -> None:
    """Like every other idle-in-transaction figure: weighted by time over load and cool-down."""

    async def scenario() -> DbFigures:
        collector = _collector(pg_server, database, "sb-mean", tmp_path / "s.jsonl")
        stop, sampling = await _sampling(collector)
        conn = await asyncpg.connect(pg_server.dsn(database), server_settings={"application_name": "sb-mean"})
        try:
            collector.start_load()
            await asyncio.sleep(0.6)
            collector.start_cooldown()
            await conn.execute("BEGIN")  # idle in transaction for the cool-down's last 0.6 s of 0.6
            await asyncio.sleep(0.6)
            return await _stop(collector, stop, sampling)
        finally:
            await conn.close()

    figures = asyncio.run(scenario())
    assert 0.35 <= figures.idle_in_tx_mean <= 0.65, figures
