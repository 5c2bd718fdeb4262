"""Target mode: drive an app the harness did not start, watch its database, read its pool if exposed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.db import server as postgres
from tests.conftest import seed, start_app

pytestmark = pytest.mark.e2e
LOCUSTFILE = str(Path(__file__).resolve().parent.parent / "scenarios" / "long_session.py")


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True,
                          timeout=120, env=os.environ.copy(), check=False)


@pytest.mark.parametrize("with_pool", [True, False])
def test_run_against_a_running_app(pg_server: postgres.Server, database: str, tmp_path: Path,
                                   with_pool: bool) -> None:
    seed(pg_server, database)
    child, base = start_app(pg_server, database, tmp_path, variant="bad", BENCH_APP_METRICS_TOKEN="tk",
                            BENCH_APP_UPSTREAM_MS="100")
    try:
        out = tmp_path / "run"
        args = ["run", "--locustfile", LOCUSTFILE, "--target", base, "--dsn", pg_server.dsn(database),
                "--app-name", "scopebench-bad", "--duration", "4s", "--cooldown", "1s", "--users", "10",
                "--out", str(out)]
        result = bench(*args, *(["--pool-token", "tk"] if with_pool else []))
    finally:
        child.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    target = summary["apps"]["target"]
    assert target["requests"] > 10 and target["failures"] == 0
    # Database side, with no cooperation from the app: its 2 connections, idle in transaction
    # through each 100 ms upstream call.
    assert target["db"]["connections_max"] == 2
    assert target["db"]["idle_in_tx_oldest_s"] >= 0.08 and target["db"]["idle_in_tx_long_seconds"] > 0.5
    # ... and which route left them so, read from the route tag in pg_stat_activity.query.
    assert list(target["db"]["idle_in_tx_long_by_route"]) == ["POST /orders/{item_id}/checkout"]
    if with_pool:
        assert target["pool"]["hold_ms"]["p50"] >= 80 and target["pool"]["capacity"] == 2
        assert target["endpoints"]["POST /orders/{item_id}/checkout"]["pool_hold_ms"]["p50"] >= 80
    else:
        assert target["pool"] is None and "no pool metrics" in result.stderr


def test_non_loopback_target_is_refused_without_allow_remote(tmp_path: Path) -> None:
    start = time.monotonic()
    result = bench("run", "--locustfile", LOCUSTFILE, "--target", "http://192.0.2.10:8000",
                   "--dsn", "postgresql://u:pw@127.0.0.1:1/db", "--out", str(tmp_path / "r"))
    assert result.returncode == 2 and "not a loopback address" in result.stderr
    assert "--allow-remote" in result.stderr and time.monotonic() - start < 10
    assert not (tmp_path / "r").exists()


def test_target_needs_a_dsn_and_locustfile_needs_a_target(tmp_path: Path) -> None:
    no_dsn = bench("run", "--locustfile", LOCUSTFILE, "--target", "http://127.0.0.1:9")
    assert no_dsn.returncode == 2 and "--target needs --dsn" in no_dsn.stderr
    no_target = bench("run", "--locustfile", LOCUSTFILE)
    assert no_target.returncode == 2 and "add --target" in no_target.stderr
