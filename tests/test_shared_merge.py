"""Pool figures over an app's uvicorn workers (``bench.instrument.shared``): counters and histograms summed,
and the event loop's lag and CPU taken from every worker, not from whichever snapshot came first.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.db import server as postgres
from bench.db.ports import free_port
from bench.instrument import LoopLag, PoolMetrics
from bench.instrument.shared import merge
from bench.run.processes import Child, wait_for_http
from tests.conftest import seed


def test_merge_takes_loop_lag_and_cpu_from_every_worker() -> None:
    workers = []
    for lags, reclaimed in (((0.001, 0.002), 1), ((0.030, 0.040, 0.050), 2)):
        metrics = PoolMetrics(loop=LoopLag())
        metrics.reclaimed = reclaimed
        assert metrics.loop is not None
        for lag in lags:
            metrics.loop.lag.record(lag)
        workers.append(metrics.snapshot())
    merged = merge(workers)
    loop = merged["loop"]
    assert loop["ticks"] == 5 and loop["lag"]["count"] == 5
    # The second worker's lag is in the merged figure: its max, and most of the ticks.
    assert abs(loop["lag"]["max_s"] - 0.050) < 1e-9 and abs(loop["lag"]["sum_s"] - 0.123) < 1e-9
    assert loop["cpu_s"] == sum(w["loop"]["cpu_s"] for w in workers) and loop["workers"] == 2
    assert merged["counters"]["reclaimed"] == 3


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as response:
        data: dict[str, Any] = json.loads(response.read())
        return data


def _both_ticking(folder: Path) -> list[dict[str, Any]]:
    """The workers' own snapshots, once both loop monitors have run a while."""
    deadline = time.monotonic() + 30
    while True:
        files = []
        for path in folder.glob("*.json"):
            try:
                files.append(json.loads(path.read_text()))
            except (OSError, ValueError):  # replaced while read: take the next one
                pass
        if len(files) == 2 and min(f["loop"]["ticks"] for f in files) >= 20 or time.monotonic() > deadline:
            return files
        time.sleep(0.1)


def test_two_uvicorn_workers_serve_both_loops(pg_server: postgres.Server, database: str, tmp_path: Path) -> None:
    seed(pg_server, database)
    shared = tmp_path / "pool-metrics"
    port = free_port()
    child = Child(name="good app, 2 workers", log_path=tmp_path / "app.log",
                  argv=[sys.executable, "-m", "uvicorn", "--factory", "target_apps.good.app:create", "--host",
                        "127.0.0.1", "--port", str(port), "--log-level", "warning", "--workers", "2"],
                  env={"BENCH_APP_DSN": postgres.sqlalchemy_url(pg_server.dsn(database)),
                       "BENCH_APP_POOL_SIZE": "2", "BENCH_APP_METRICS_DIR": str(shared)})
    child.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(base + "/healthz", child)
        files = _both_ticking(shared)
        merged = _get(base + "/_bench/pool")
    finally:
        child.stop()
    assert len(files) == 2 and merged["workers"] == 2
    loop = merged["loop"]
    # Read after the files, so at least both workers' figures then: one worker's alone is about half.
    assert loop["ticks"] >= sum(f["loop"]["ticks"] for f in files) > max(f["loop"]["ticks"] for f in files)
    assert loop["cpu_s"] >= sum(f["loop"]["cpu_s"] for f in files)
    assert loop["lag"]["count"] == loop["ticks"] and loop["workers"] == 2
