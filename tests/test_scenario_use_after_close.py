"""`bench run use-after-close` for real: a session queried after its ``async with`` block, and its twin.

With the default ``close_resets_only=True`` the closed session quietly checks out a new connection that
nothing returns: it stays idle in transaction past the load and the pool runs dry. Both apps run with the
same GC schedule as unclosed-session (BENCH_APP_GC_EVERY_S, set by the catalog).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_bench

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory, pg_home: Path) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("run") / "use-after-close"
    result, summary = run_bench("use-after-close", out, pg_home, duration_s="8s", cooldown_s="2s")
    assert result.exit_code == 0, (result.error, [c for c in summary["checks"] if not c["passed"]])
    return summary


def test_bad_checkouts_are_never_returned(summary: dict[str, Any]) -> None:
    pool = summary["apps"]["bad"]["pool"]
    leaked_at_end = summary["apps"]["bad"]["db"]["idle_in_tx_after_load"]
    # Connections never given back are taken back by the garbage collector: every one opened but those
    # still leaked at the end. Each slot is lent again, so the pool never lends more than its capacity.
    assert pool["reclaimed"] == pool["connections_opened"] - leaked_at_end >= pool["capacity"]
    assert pool["checked_out_max"] == pool["capacity"]
    # A leak's hold runs until the collection, longer than any checkout is willing to wait.
    assert pool["hold_ms"]["max"] >= summary["config"]["pool_timeout_s"] * 1000
    good = summary["apps"]["good"]["pool"]
    assert good["checked_out_max"] <= good["capacity"] and good["connections_opened"] <= good["capacity"]
    assert good["reclaimed"] == 0


def test_bad_is_idle_in_transaction_after_the_load(summary: dict[str, Any]) -> None:
    good, bad = (summary["apps"][app]["db"] for app in ("good", "bad"))
    assert bad["idle_in_tx_after_load"] == summary["apps"]["bad"]["pool"]["capacity"]
    assert good["idle_in_tx_after_load"] == 0
    assert bad["idle_in_tx_oldest_s"] >= summary["config"]["pool_timeout_s"]
    assert bad["idle_in_tx_long_seconds"] >= 10 * max(good["idle_in_tx_long_seconds"], 0.1)


def test_bad_pool_runs_dry(summary: dict[str, Any]) -> None:
    good, bad = (summary["apps"][app] for app in ("good", "bad"))
    assert bad["pool"]["timeouts"] >= 10 and good["pool"]["timeouts"] == 0
    assert good["failures"] == 0
    assert good["throughput_rps"] >= 10 * bad["throughput_rps"]
    assert bad["app_log"]["gc_cleanups"] >= bad["pool"]["capacity"] and good["app_log"]["gc_cleanups"] == 0


def test_bad_commits_orders_it_answers_500_for(summary: dict[str, Any]) -> None:
    # The order commits inside the block; the query after it then waits for a connection and times out,
    # so the client is told the order failed: a retry would order twice. Good writes what it answers.
    good, bad = (summary["apps"][app]["integrity"] for app in ("good", "bad"))
    assert bad["rows_written"] > bad["acknowledged_writes"] and bad["lost_writes"] == 0
    assert good["lost_writes"] == 0 and good["acknowledged_writes"] > 0
