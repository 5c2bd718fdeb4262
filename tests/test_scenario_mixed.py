"""mixed: under the same traffic, the innocent read route (identical code in both apps) slows down in
the bad app and waits on the pool, because the culprit routes hold its connections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_bench

pytestmark = pytest.mark.e2e
READ = "GET /items/{item_id}"


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory, pg_home: Path) -> dict[str, Any]:
    result, summary = run_bench("mixed", tmp_path_factory.mktemp("mixed") / "run", pg_home,
                                duration_s="8s", cooldown_s="2s")
    assert result.exit_code == 0, (result.error, [c for c in summary["checks"] if not c["passed"]])
    return summary


def test_every_route_of_the_mix_ran_in_both_apps(mixed: dict[str, Any]) -> None:
    for app in ("good", "bad"):
        endpoints = mixed["apps"][app]["endpoints"]
        assert {READ, "POST /orders/{item_id}/checkout", "POST /orders/{item_id}/accept",
                "GET /items/{item_id}/price", "POST /orders/{item_id}/repeat"} <= set(endpoints)
        # Two thirds of the traffic is reads (weights 12 of 19).
        assert endpoints[READ]["requests"] >= 0.4 * mixed["apps"][app]["requests"]


def test_the_read_route_pays_for_the_culprits(mixed: dict[str, Any]) -> None:
    good = mixed["apps"]["good"]["endpoints"][READ]
    bad = mixed["apps"]["bad"]["endpoints"][READ]
    assert good["failures"] == 0
    assert bad["latency_ms"]["p95"] >= 5 * good["latency_ms"]["p95"]
    assert bad["pool_wait_ms"]["p95"] >= 10 * max(good["pool_wait_ms"]["p95"], 1.0)
    # Its own hold time is short in both apps: the read route is not the culprit.
    assert bad["pool_hold_ms"]["p50"] < 50 and good["pool_hold_ms"]["p50"] < 50


def test_the_culprit_holds_the_pool(mixed: dict[str, Any]) -> None:
    bad = mixed["apps"]["bad"]["endpoints"]
    upstream_ms = mixed["config"]["upstream_latency_ms"]
    assert bad["POST /orders/{item_id}/checkout"]["pool_hold_ms"]["p50"] >= 0.8 * upstream_ms
    assert mixed["apps"]["good"]["endpoints"]["POST /orders/{item_id}/checkout"]["pool_hold_ms"]["p50"] < 0.5 * upstream_ms


def test_culprits_are_named_from_both_sides(mixed: dict[str, Any]) -> None:
    bad = mixed["apps"]["bad"]
    shares = bad["pool"]["hold_share_by_route"]
    assert abs(sum(shares.values()) - 1) < 0.01 and shares.get(READ, 0) < 0.25
    # The database side, from the route tag on each statement: leaks and long sessions, never the reads.
    idle_by_route = bad["db"]["idle_in_tx_long_by_route"]
    assert idle_by_route and next(iter(idle_by_route)) != READ
    assert idle_by_route.get(READ, 0) < 0.1 * sum(idle_by_route.values())
    assert not any(key.startswith("SQL:") for key in idle_by_route)  # every statement carried its route
