"""`bench run unclosed-session` for real: a session never closed, and its twin in ``async with``.

Both apps run with automatic GC off and a collection every few seconds (BENCH_APP_GC_EVERY_S, set by the
catalog): bad's leaked connections stay idle in transaction until a collection terminates them, the pool
runs dry in between and the GC's complaints land in the log; good has nothing for the GC to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_bench

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory, pg_home: Path) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("run") / "unclosed-session"
    result, summary = run_bench("unclosed-session", out, pg_home, duration_s="8s", cooldown_s="2s")
    assert result.exit_code == 0, (result.error, [c for c in summary["checks"] if not c["passed"]])
    return summary


def test_bad_leaks_a_connection_per_answered_request(summary: dict[str, Any]) -> None:
    bad = summary["apps"]["bad"]
    pool, capacity = bad["pool"], bad["pool"]["capacity"]
    answered = bad["requests"] - bad["failures"]
    # No connection is ever checked in (a GC termination is not a checkin), so each answered request
    # (plus those still in flight when Locust stopped) opened one that it never gave back.
    assert answered <= pool["connections_opened"] <= answered + summary["config"]["users"]
    # A reclaimed slot is lent again: the pool never lends more than it has, leaks or not.
    assert pool["checked_out_max"] == capacity
    # Each leak holds its connection until a collection: far longer than any checkout waits.
    assert pool["hold_ms"]["max"] >= summary["config"]["pool_timeout_s"] * 1000


def test_bad_pool_runs_dry_between_collections(summary: dict[str, Any]) -> None:
    config, bad = summary["config"], summary["apps"]["bad"]
    assert bad["pool"]["timeouts"] >= 10
    assert bad["pool"]["wait_ms"]["p95"] >= 0.9 * config["pool_timeout_s"] * 1000
    # A leak lives until the next collection, longer than any checkout is willing to wait.
    assert bad["db"]["idle_in_tx_oldest_s"] >= config["pool_timeout_s"]
    good = summary["apps"]["good"]
    assert good["throughput_rps"] >= 10 * bad["throughput_rps"]


def test_only_the_gc_frees_bad_connections(summary: dict[str, Any]) -> None:
    bad = summary["apps"]["bad"]
    leaked_at_end = bad["db"]["idle_in_tx_after_load"]
    # Every slot still leaked when the load ends: nothing collects without requests.
    assert leaked_at_end == bad["pool"]["capacity"]
    # Every other connection was terminated by a collection, each logged (pool ERROR line and SAWarning).
    terminated = bad["pool"]["connections_opened"] - leaked_at_end
    assert terminated >= bad["pool"]["capacity"]
    assert bad["app_log"]["gc_cleanups"] >= terminated
    # The instrumentation sees each of those as a reclaim (the collector's detach, not a checkin).
    assert bad["pool"]["reclaimed"] == terminated


def test_good_leaves_nothing_behind(summary: dict[str, Any]) -> None:
    good = summary["apps"]["good"]
    assert good["failures"] == 0 and good["pool"]["timeouts"] == 0
    assert good["pool"]["checked_out_max"] <= good["pool"]["capacity"]
    assert good["app_log"]["gc_cleanups"] == 0 and good["pool"]["reclaimed"] == 0
    assert good["db"]["idle_in_tx_after_load"] == 0
    assert good["db"]["idle_in_tx_oldest_s"] < 0.5
