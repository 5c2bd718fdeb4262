"""How a checkout ends, on real pools: a refused or rejected connect is a connect failure, only a cancellation
is cancelled, in the endpoint's JSON, its Prometheus text, the multi-worker merge and summary.json's pool block.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench.analysis.summary import _pool_block
from bench.db import server as postgres
from bench.instrument import PoolMetrics, TimedAsyncPool, instrument, prometheus_text
from bench.instrument.shared import merge

POOL = 'db_client_connection_pool_name="default"'


def _engine(dsn: str, **pool: float) -> AsyncEngine:
    return create_async_engine(postgres.sqlalchemy_url(dsn), poolclass=TimedAsyncPool, **pool)  # type: ignore[arg-type]


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, never listening, held for the test."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


class _Relay:
    """A TCP relay to the real PostgreSQL that can stop answering: a server that hangs during the connect."""

    def __init__(self, target: postgres.Server) -> None:
        self.target = target
        self.hang = False
        self._held: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> postgres.Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return dataclasses.replace(self.target, host="127.0.0.1", port=port)

    async def __aexit__(self, *exc: object) -> None:
        for writer in self._held:
            writer.close()
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._held.append(writer)
        if self.hang:
            return  # the socket stays open and silent: the client waits for an answer that never comes
        up_reader, up_writer = await asyncio.open_connection(self.target.host, self.target.port)
        self._held.append(up_writer)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def _use(engine: AsyncEngine, seconds: float = 0.0) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
        await asyncio.sleep(seconds)


async def _cancel_after(delay_s: float, work: Callable[[], Awaitable[Any]]) -> None:
    task = asyncio.ensure_future(work())
    await asyncio.sleep(delay_s)
    assert not task.done(), "the checkout was meant to be still waiting"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_a_refused_connect_is_a_connect_failure_not_a_cancellation(refused_port: int) -> None:
    dsn = f"postgresql://scopebench:x@127.0.0.1:{refused_port}/nothing"

    async def scenario() -> PoolMetrics:
        engine = _engine(dsn, pool_size=1, max_overflow=0, pool_timeout=5)
        metrics = instrument(engine)
        try:
            for _ in range(3):
                with pytest.raises(OSError):
                    await _use(engine)
        finally:
            await engine.dispose()
        return metrics

    metrics = asyncio.run(scenario())
    assert metrics.cancelled == 0  # nothing was cancelled: the server's port refused the connect
    assert (metrics.connect_failures, metrics.timeouts) == (3, 0)
    assert metrics.connections_opened == 0 == metrics.create.count and metrics.checkouts == 0
    # Each attempt still waited for its slot (briefly): the wait covers every checkout, failed ones included.
    assert metrics.wait.count == 3 and metrics.pending == 0 and metrics.checked_out == 0
    counters = metrics.snapshot()["counters"]
    assert counters["connect_failures"] == 3 and counters["cancelled"] == 0
    exposition = prometheus_text(metrics)
    assert f"scopebench_connect_failures_total{{{POOL}}} 3\n" in exposition
    assert f"scopebench_checkouts_cancelled_total{{{POOL}}} 0\n" in exposition
    # Two workers' snapshots: the endpoint serves their sum.
    merged = merge([metrics.snapshot(), metrics.snapshot()])
    assert merged["counters"]["connect_failures"] == 6 and merged["counters"]["cancelled"] == 0
    pool = _pool_block(merged, capacity=1, law=None)
    assert pool is not None and pool["connect_failures"] == 6


def test_a_cancelled_checkout_is_cancelled(pg_server: postgres.Server, database: str) -> None:
    async def scenario() -> PoolMetrics:
        engine = _engine(pg_server.dsn(database), pool_size=1, max_overflow=0, pool_timeout=10)
        metrics = instrument(engine)
        try:
            holder = asyncio.ensure_future(_use(engine, 1.0))
            await asyncio.sleep(0.2)
            await _cancel_after(0.3, lambda: _use(engine))  # queued behind the holder, then cancelled
            await holder
        finally:
            await engine.dispose()
        return metrics

    metrics = asyncio.run(scenario())
    assert (metrics.cancelled, metrics.connect_failures, metrics.timeouts) == (1, 0, 0)
    assert metrics.wait.count == 2 and 0.25 < metrics.wait.max < 0.8 and metrics.pending == 0
    assert metrics.checkouts == 1 and metrics.connections_opened == 1


def test_a_connect_cancelled_in_the_checkout_is_cancelled_once(pg_server: postgres.Server) -> None:
    async def scenario() -> PoolMetrics:
        relay = _Relay(pg_server)
        async with relay as via:
            relay.hang = True
            engine = _engine(via.dsn("postgres"), pool_size=1, max_overflow=0, pool_timeout=10)
            metrics = instrument(engine)
            try:
                await _cancel_after(0.3, lambda: _use(engine))  # cancelled inside _do_get's connect
            finally:
                await engine.dispose()
        return metrics

    metrics = asyncio.run(scenario())
    assert (metrics.cancelled, metrics.connect_failures, metrics.connections_opened) == (1, 0, 0)
    # The connect's time is not queueing: the checkout's wait stays near zero.
    assert metrics.wait.count == 1 and metrics.wait.max < 0.1


def test_a_reopen_cancelled_after_the_checkout_is_cancelled(pg_server: postgres.Server) -> None:
    async def scenario() -> PoolMetrics:
        relay = _Relay(pg_server)
        async with relay as via:
            engine = _engine(via.dsn("postgres"), pool_size=1, max_overflow=0, pool_timeout=10)
            metrics = instrument(engine)
            try:
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                    await conn.invalidate()  # the slot stays; the next checkout reopens it after _do_get
                relay.hang = True
                await _cancel_after(0.3, lambda: _use(engine))
            finally:
                await engine.dispose()
        return metrics

    metrics = asyncio.run(scenario())
    assert metrics.cancelled == 1  # outside _do_get, so its outcome never saw it
    assert (metrics.connect_failures, metrics.connections_opened) == (0, 1)
    assert metrics.wait.count == 2 and metrics.checkouts == 1


def test_a_rejected_reopen_is_a_connect_failure(pg_server: postgres.Server, database: str) -> None:
    async def allow(yes: bool) -> None:
        admin = await asyncpg.connect(pg_server.dsn("postgres"))
        try:
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(yes).lower()}')
        finally:
            await admin.close()

    async def scenario() -> PoolMetrics:
        engine = _engine(pg_server.dsn(database), pool_size=1, max_overflow=0, pool_timeout=5)
        metrics = instrument(engine)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
                await conn.invalidate()
            await allow(False)  # the server now turns every new connection to this database away
            with pytest.raises(Exception, match="not currently accepting connections"):
                await _use(engine)
        finally:
            await allow(True)
            await engine.dispose()
        return metrics

    metrics = asyncio.run(scenario())
    assert metrics.cancelled == 0
    assert (metrics.connect_failures, metrics.timeouts) == (1, 0)
    assert metrics.connections_opened == 1 and metrics.wait.count == 2
