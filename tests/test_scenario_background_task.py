"""`bench run background-task` for real: the request's session handed to a background task, and its twin.

Every fifth order names an item not in the catalog. Bad answers 200, holds a connection idle in transaction
for the task's life and then fails the write; good answers 404 for those and writes every order it accepts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_bench

pytestmark = pytest.mark.e2e

ROUTE = "POST /orders/{item_id}/accept"
UNKNOWN_SHARE = 1 / 5  # scenarios/background_task.py: UNKNOWN_EVERY


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory, pg_home: Path) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("run") / "background-task"
    result, summary = run_bench("background-task", out, pg_home, duration_s="8s", cooldown_s="2s")
    assert result.exit_code == 0, (result.error, [c for c in summary["checks"] if not c["passed"]])
    return summary


def test_bad_acknowledges_writes_it_then_loses(summary: dict[str, Any]) -> None:
    bad = summary["apps"]["bad"]
    integrity = bad["integrity"]
    assert bad["failures"] == 0 and integrity["acknowledged_writes"] == bad["requests"]
    lost = integrity["lost_writes"]
    assert lost == integrity["acknowledged_writes"] - integrity["rows_written"]
    # The lost orders are the unknown items, no more: the known ones were committed after the task.
    assert lost == pytest.approx(UNKNOWN_SHARE * bad["requests"], rel=0.25)
    # Each one failed in the task, after the 200: a traceback in the log that no client saw.
    assert bad["app_log"]["unhandled_errors"] >= lost


def test_good_answers_only_for_what_it_wrote(summary: dict[str, Any]) -> None:
    good = summary["apps"]["good"]
    integrity = good["integrity"]
    assert integrity["lost_writes"] == 0
    assert integrity["rows_written"] >= integrity["acknowledged_writes"] > 0
    # The same unknown fifth is reported to the client instead (404), not swallowed.
    assert good["failures"] == pytest.approx(UNKNOWN_SHARE * good["requests"], rel=0.25)
    assert good["app_log"]["unhandled_errors"] == 0


def test_bad_holds_a_connection_for_the_task(summary: dict[str, Any]) -> None:
    upstream_ms = summary["config"]["upstream_latency_ms"]
    good, bad = (summary["apps"][app] for app in ("good", "bad"))
    bad_hold = bad["endpoints"][ROUTE]["pool_hold_ms"]
    good_hold = good["endpoints"][ROUTE]["pool_hold_ms"]
    # Checked out from the task's first query to the teardown commit: the whole upstream call.
    assert bad_hold["p50"] >= 0.9 * upstream_ms
    assert good_hold["p50"] <= 0.25 * upstream_ms
    assert bad["pool"]["hold_ms"]["mean"] >= 5 * good["pool"]["hold_ms"]["mean"]


def test_bad_sits_idle_in_transaction_across_the_charge(summary: dict[str, Any]) -> None:
    upstream_s = summary["config"]["upstream_latency_ms"] / 1000
    good, bad = (summary["apps"][app]["db"] for app in ("good", "bad"))
    assert bad["idle_in_tx_oldest_s"] >= 0.8 * upstream_s
    assert good["idle_in_tx_oldest_s"] < 0.5 * upstream_s
    assert bad["idle_in_tx_long_seconds"] >= 10 * max(good["idle_in_tx_long_seconds"], 0.01)
