"""bench capacity's detail collector on a real app under ``uvicorn --workers 2``: each sample says how many event
loops the app's CPU is summed over, which the bottleneck rule divides by.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from bench.db import server as postgres
from bench.db.ports import free_port
from bench.run.detail_collector import DetailCollector
from bench.run.processes import Child, wait_for_http
from tests.conftest import seed


async def _sample_both_loops(collector: DetailCollector, deadline_s: float) -> dict[str, Any]:
    """Samples until the endpoint serves both workers' snapshots (each writes its own every 0.1 s)."""
    deadline = time.monotonic() + deadline_s
    while True:
        sample = await collector.sample()
        if sample.get("app_loops") == 2 or time.monotonic() > deadline:
            return sample
        await asyncio.sleep(0.1)


def test_samples_count_the_loops_of_every_worker(pg_server: postgres.Server, database: str, tmp_path: Path) -> None:
    seed(pg_server, database)
    port = free_port()
    child = Child(name="good app, 2 workers", log_path=tmp_path / "app.log",
                  argv=[sys.executable, "-m", "uvicorn", "--factory", "target_apps.good.app:create", "--host",
                        "127.0.0.1", "--port", str(port), "--log-level", "warning", "--workers", "2"],
                  env={"BENCH_APP_DSN": postgres.sqlalchemy_url(pg_server.dsn(database)),
                       "BENCH_APP_POOL_SIZE": "2", "BENCH_APP_METRICS_DIR": str(tmp_path / "pool-metrics")})
    child.start()
    base = f"http://127.0.0.1:{port}"

    async def scenario() -> dict[str, Any]:
        collector = DetailCollector(admin_dsn=pg_server.dsn("postgres"), database=database, application_name=None,
                                    pool_url=base + "/_bench/pool", samples_path=tmp_path / "samples.jsonl")
        await collector.open()
        try:
            return await _sample_both_loops(collector, 15.0)
        finally:
            await collector.close()

    try:
        wait_for_http(base + "/healthz", child)
        sample = asyncio.run(scenario())
    finally:
        child.stop()
    assert sample["app_loops"] == 2, sample
    assert sample["app_cpu_s"] > 0 and "lag_hist" in sample
