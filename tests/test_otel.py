"""OpenTelemetry export (``bench.instrument.otel``) of a real pool on the embedded PostgreSQL: the nine
``db.client.connection.*`` instruments read through the SDK's in-memory reader, each checked by name, unit,
attributes and value, the values against what the test counted and timed itself and what the server reports.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Histogram, InMemoryMetricReader, Metric, Sum
from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from bench.db import server as postgres
from bench.instrument import TimedAsyncPool, instrument
from bench.instrument.otel import METER, POOL_NAME, STATE, export_pool
from bench.instrument.prometheus import BOUNDS

APP = "sb-otel"
POOL = {POOL_NAME: "orders"}
SIZE, OVERFLOW, TIMEOUT_S, HOLD_S = 2, 1, 0.3, 0.05
NAMES = {
    "db.client.connection.count",
    "db.client.connection.idle.max",
    "db.client.connection.idle.min",
    "db.client.connection.max",
    "db.client.connection.pending_requests",
    "db.client.connection.timeouts",
    "db.client.connection.create_time",
    "db.client.connection.wait_time",
    "db.client.connection.use_time",
}


def _read(reader: InMemoryMetricReader) -> dict[str, Metric]:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        m.name: m
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        if sm.scope.name == METER
        for m in sm.metrics
    }


def _point(metric: Metric, **extra: str) -> Any:
    """The one data point whose attributes are exactly the pool's (and ``extra``)."""
    matches = [p for p in metric.data.data_points if dict(p.attributes or {}) == {**POOL, **extra}]
    assert len(matches) == 1, (metric.name, [p.attributes for p in metric.data.data_points])
    return matches[0]


@dataclass
class Story:
    """What the test did and measured on its own, to hold the instruments' values against."""

    mid: dict[str, Metric] = field(default_factory=dict)  # read while three are held and one checkout waits
    end: dict[str, Metric] = field(default_factory=dict)  # read after everything was returned
    pids: set[int] = field(default_factory=set)
    connects_s: float = 0.0  # the connect calls, end to end: each new connection was created inside one
    held_inner_s: float = 0.0  # from each connect's return to its close call: within the pool's hold
    held_outer_s: float = 0.0  # from each connect call to its close's return: around the pool's hold
    timeouts: int = 0
    backends: int = 0  # the app's connections the server lists at the end


async def _checkout(engine: AsyncEngine, story: Story) -> tuple[AsyncConnection, float, float]:
    began = time.perf_counter()
    conn = await engine.connect()
    got = time.perf_counter()
    story.connects_s += got - began
    story.pids.add(int(await conn.scalar(text("SELECT pg_backend_pid()"))))
    return conn, began, got


async def _scenario(dsn: str, reader: InMemoryMetricReader) -> Story:
    story = Story()
    engine = create_async_engine(
        postgres.sqlalchemy_url(dsn),
        poolclass=TimedAsyncPool,
        pool_size=SIZE,
        max_overflow=OVERFLOW,
        pool_timeout=TIMEOUT_S,
        connect_args={"server_settings": {"application_name": APP}},
    )
    export_pool(
        instrument(engine, statement_tags=False, long_hold_ms=None), "orders", MeterProvider(metric_readers=[reader])
    )
    try:
        async with AsyncExitStack() as stack:
            held = [await _checkout(engine, story) for _ in range(SIZE + OVERFLOW)]
            for conn, _, _ in held:
                stack.push_async_callback(conn.close)
            waiter = asyncio.ensure_future(engine.connect())  # the pool is exhausted: this one queues
            await asyncio.sleep(TIMEOUT_S / 3)
            story.mid = _read(reader)
            try:
                await waiter
            except exc.TimeoutError:
                story.timeouts += 1
            await asyncio.sleep(HOLD_S)
            for conn, began, got in held:
                closing = time.perf_counter()
                await conn.close()
                story.held_inner_s += closing - got
                story.held_outer_s += time.perf_counter() - began
        story.backends = await _backends(dsn, SIZE)
        story.end = _read(reader)
    finally:
        await engine.dispose()
    return story


async def _backends(dsn: str, expected: int) -> int:
    """The app's sessions on the server; a closed overflow connection's backend takes a moment to leave."""
    admin = await asyncpg.connect(dsn)
    try:
        for _ in range(100):
            n = int(await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", APP))
            if n == expected:
                break
            await asyncio.sleep(0.02)
        return n
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def story(pg_server: postgres.Server) -> Story:
    reader = InMemoryMetricReader()
    return asyncio.run(_scenario(pg_server.dsn("postgres"), reader))


def test_all_nine_instruments_with_their_units(story: Story) -> None:
    # While the first holds are still open, no use time was recorded: the SDK leaves out an empty instrument.
    assert set(story.mid) == NAMES - {"db.client.connection.use_time"} and set(story.end) == NAMES
    for reading in (story.mid, story.end):
        units = {name: m.unit for name, m in reading.items()}
        assert (
            units.items()
            <= {
                "db.client.connection.count": "{connection}",
                "db.client.connection.idle.max": "{connection}",
                "db.client.connection.idle.min": "{connection}",
                "db.client.connection.max": "{connection}",
                "db.client.connection.pending_requests": "{request}",
                "db.client.connection.timeouts": "{timeout}",
                "db.client.connection.create_time": "s",
                "db.client.connection.wait_time": "s",
                "db.client.connection.use_time": "s",
            }.items()
        )
        for name, metric in reading.items():
            if name.endswith("_time"):
                assert isinstance(metric.data, Histogram)
                assert all(tuple(p.explicit_bounds) == BOUNDS for p in metric.data.data_points)
            else:  # every count and limit goes up and down; only the timeouts only go up
                assert isinstance(metric.data, Sum) and metric.data.is_monotonic == (name.endswith("timeouts"))


def test_counts_and_limits_while_the_pool_is_exhausted(story: Story) -> None:
    mid = story.mid
    assert _point(mid["db.client.connection.count"], **{STATE: "used"}).value == SIZE + OVERFLOW
    assert _point(mid["db.client.connection.count"], **{STATE: "idle"}).value == 0
    assert len(mid["db.client.connection.count"].data.data_points) == 2
    assert _point(mid["db.client.connection.pending_requests"]).value == 1  # the waiter
    assert _point(mid["db.client.connection.timeouts"]).value == 0  # not yet
    assert _point(mid["db.client.connection.idle.max"]).value == SIZE
    assert _point(mid["db.client.connection.idle.min"]).value == 0  # the pool opens nothing ahead of demand
    assert _point(mid["db.client.connection.max"]).value == SIZE + OVERFLOW


def test_counts_after_everything_was_returned(story: Story) -> None:
    end = story.end
    # The overflow connection was closed at its checkin; the server lists the pool's idle ones.
    assert _point(end["db.client.connection.count"], **{STATE: "idle"}).value == SIZE == story.backends
    assert _point(end["db.client.connection.count"], **{STATE: "used"}).value == 0
    assert _point(end["db.client.connection.pending_requests"]).value == 0
    assert _point(end["db.client.connection.timeouts"]).value == story.timeouts == 1


def test_durations_against_the_tests_own_clock(story: Story) -> None:
    end = story.end
    create = _point(end["db.client.connection.create_time"])
    assert create.count == len(story.pids) == SIZE + OVERFLOW  # one creation per backend the test talked to
    assert 0 < create.sum <= story.connects_s
    wait = _point(end["db.client.connection.wait_time"])
    assert wait.count == SIZE + OVERFLOW + 1  # the timed-out checkout waited too
    assert wait.max >= TIMEOUT_S * 0.99 and wait.sum >= wait.max  # a timeout is a wait of at least the timeout
    use = _point(end["db.client.connection.use_time"])
    assert use.count == SIZE + OVERFLOW
    assert story.held_inner_s <= use.sum <= story.held_outer_s
    assert sum(use.bucket_counts) == use.count and use.min >= TIMEOUT_S  # each was held across the timeout


def test_a_pool_without_a_size_has_no_limits(pg_server: postgres.Server) -> None:
    reader = InMemoryMetricReader()

    async def scenario() -> dict[str, Metric]:
        engine = create_async_engine(postgres.sqlalchemy_url(pg_server.dsn("postgres")), poolclass=NullPool)
        export_pool(
            instrument(engine, statement_tags=False, long_hold_ms=None),
            "orders",
            MeterProvider(metric_readers=[reader]),
        )
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
                return _read(reader)
        finally:
            await engine.dispose()

    reading = asyncio.run(scenario())
    # Nothing is known of its limits or idle connections: no data points rather than made-up ones.
    for name in ("idle.max", "idle.min", "max"):
        metric = reading.get(f"db.client.connection.{name}")
        assert metric is None or not metric.data.data_points
    assert _point(reading["db.client.connection.count"], **{STATE: "used"}).value == 1
    assert len(reading["db.client.connection.count"].data.data_points) == 1


def test_exporting_twice_is_refused(pg_server: postgres.Server) -> None:
    engine = create_async_engine(postgres.sqlalchemy_url(pg_server.dsn("postgres")), poolclass=TimedAsyncPool)
    metrics = instrument(engine, statement_tags=False, long_hold_ms=None)
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    export_pool(metrics, meter_provider=provider)
    with pytest.raises(ValueError, match="already"):
        export_pool(metrics, meter_provider=provider)
