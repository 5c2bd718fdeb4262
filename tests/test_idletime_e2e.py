"""A real `bench run long-session --app both`: the app-side idle in transaction, timed exactly from the dialect's
calls, against the server's own ``idle_in_transaction_time`` for the app's database (pg_stat_database, deltas over
the run, taken once the app has stopped so its backends flushed them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_bench

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory, pg_home: Path) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("run") / "long-session"
    result, summary = run_bench("long-session", out, pg_home, app="both", duration_s="10s")
    assert result.exit_code in (0, 1), result.error  # 1: a check failed on a loaded machine; the figures stand
    apps: dict[str, Any] = summary["apps"]
    return apps


def _figures(both: dict[str, Any], app: str) -> tuple[dict[str, Any], float, float]:
    figures = both[app]
    pool, server = figures["pool"], figures["db"]["server"]
    assert pool["transactions"] > 0
    return figures, float(pool["idle_in_tx_app_s"]), float(server["idle_in_transaction_time"])


@pytest.mark.parametrize("app", ["bad", "good"])
def test_app_side_idle_is_within_the_servers(both: dict[str, Any], app: str) -> None:
    """Every moment the app counts, the server counts too: the app's spell runs from its reading of an answer to its
    sending the next statement, inside the server's spell from its answer to its reading of the next one."""
    figures, app_side, database = _figures(both, app)
    assert 0 < app_side <= database * 1.005, (app, app_side, database)
    # Per request, over Little's-law window (tests/test_figures_cross_check_e2e.py recomputes it): a part of the
    # connection time per request, counted over the same window and requests.
    assert 0 < figures["pool"]["idle_in_tx_app_per_request_ms"] <= figures["pool"]["hold_ms_per_request"]


def test_the_culprits_idle_time_is_the_servers(both: dict[str, Any]) -> None:
    """The bad app's idle time is its upstream call: the server's extra (the answers' wait for the event loop, the
    driver's BEGIN) is a few ms a transaction against 110 ms. Measured 3.7% to 6.4% below the server over 7 runs on a
    loaded machine (load average 3.7 to 4.7 on 2 cores)."""
    _figures_bad, app_side, database = _figures(both, "bad")
    assert app_side == pytest.approx(database, rel=0.10), (app_side, database)


@pytest.mark.xfail(
    strict=True,
    reason="issue 18's 2% is not met for a correct app: the server also counts each answer's wait for the app's "
    "event loop, which the app's own code cannot see (measured 0.145x to 0.163x the server's over 5 runs)",
)
def test_a_correct_apps_idle_agrees_with_the_server_within_2_percent(both: dict[str, Any]) -> None:
    """The bad app's 0.94x to 0.96x is in test_the_culprits_idle_time_is_the_servers: on a quiet machine it may come
    within 2%, so it is not an expected failure here."""
    _figures_good, app_side, database = _figures(both, "good")
    assert app_side == pytest.approx(database, rel=0.02), (app_side, database)
