"""How the collector reads a real app's pool endpoint: one kept-alive connection, the per-route figures once a
second and at the end, and a last snapshot whose figures are exactly the app's own after the load."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.db import server as postgres
from bench.run.collector import Collector
from bench.run.poolclient import PoolClient, PoolEndpointError
from tests.conftest import seed, start_app

TOKEN = "t0ken-for-reads"
ROUTE_FIELDS = ("use_time_by_route", "wait_time_by_route", "hold_sites")


@pytest.fixture
def app(pg_server: postgres.Server, database: str, tmp_path: Path) -> Iterator[str]:
    seed(pg_server, database)
    child, base = start_app(pg_server, database, tmp_path, BENCH_APP_METRICS_TOKEN=TOKEN)
    try:
        yield base
    finally:
        child.stop()


def _load(base: str, n: int) -> None:
    for i in range(n):
        with urllib.request.urlopen(f"{base}/items/{i % 50 + 1}", timeout=5) as response:
            response.read()


def test_light_and_full_reads_over_one_connection(app: str) -> None:
    _load(app, 20)

    async def reads() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        client = PoolClient(app + "/_bench/pool", TOKEN)
        try:
            light = await client.get("routes=0")
            writer = client._writer  # the same connection answers the next read
            full = await client.get()
            assert client._writer is writer and writer is not None
            await asyncio.sleep(5.5)  # past uvicorn's keep-alive timeout: the server closed it
            again = await client.get()
            return light, full, again
        finally:
            client.close()

    light, full, again = asyncio.run(reads())
    for key in ROUTE_FIELDS:
        assert key not in light and key in full
    # Everything else is the same figure either way (no request in between).
    assert light["counters"] == full["counters"] and light["use_time"] == full["use_time"]
    assert sum(h["count"] for h in full["use_time_by_route"].values()) == full["use_time"]["count"] >= 20
    assert again["counters"] == full["counters"]


def test_wrong_token_is_an_error(app: str) -> None:
    async def read() -> None:
        client = PoolClient(app + "/_bench/pool", "wrong")
        try:
            await client.get()
        finally:
            client.close()

    with pytest.raises(PoolEndpointError, match="401"):
        asyncio.run(read())


def test_last_snapshot_is_read_in_full_and_exact(
    pg_server: postgres.Server, database: str, app: str, tmp_path: Path
) -> None:
    samples = tmp_path / "samples.jsonl"

    async def run() -> tuple[Collector, dict[str, Any]]:
        collector = Collector(
            admin_dsn=pg_server.dsn("postgres"),
            database=database,
            application_name=None,
            pool_url=app + "/_bench/pool",
            pool_token=TOKEN,
            samples_path=samples,
            interval_s=0.05,
        )
        await collector.open()
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        await asyncio.to_thread(_load, app, 150)
        stop.set()
        await task
        client = PoolClient(app + "/_bench/pool", TOKEN)
        try:
            return collector, await client.get()
        finally:
            client.close()
            await collector.close()

    collector, after = asyncio.run(run())
    assert collector.pool_errors == 0 and collector.last_pool is not None
    last = json.loads(samples.read_text(encoding="utf-8").splitlines()[-1])
    # The per-route figures the summary takes are the app's own after the load, not a second old.
    for key in ("use_time_by_route", "wait_time_by_route", "counters", "use_time"):
        assert collector.last_pool[key] == after[key], key
    assert last["pool_checkouts"] == after["counters"]["checkouts"] >= 150
    assert last["pool_checkins"] == after["use_time"]["count"]
