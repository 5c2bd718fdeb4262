"""Summary figures and checks computed from known inputs."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from bench.analysis.littleslaw import windows
from bench.analysis.summary import Check, Integrity, evaluate, summarize_app
from bench.config.catalog import load_catalog
from bench.errors import UsageError
from bench.instrument import Histogram, PoolMetrics
from bench.render.report_tables import _ceiling_note
from bench.results.metric import COUNT_UNITS
from bench.results.metrics import COMPARED
from bench.results.records import DbFigures


def _requests(n: int, latency_ms: float, failed_every: int = 0) -> pd.DataFrame:
    rows = [
        {
            "start_epoch_s": 1000 + i * 0.01,
            "request_type": "GET",
            "name": "GET /items/{item_id}",
            "response_time_ms": latency_ms + i % 10,
            "response_length": 10,
            "failed": int(bool(failed_every) and i % failed_every == 0),
            "error": "",
        }
        for i in range(n)
    ]
    return pd.DataFrame(rows)


def _pool(hold_s: float, n: int) -> dict[str, object]:
    metrics = PoolMetrics()
    for _ in range(n):
        metrics.use.record(hold_s)
        metrics.wait.record(0.001)
    return metrics.snapshot()


def test_summary_figures_and_littles_law() -> None:
    db = DbFigures(idle_in_tx_seconds_sampled=9.0, server={"idle_in_transaction_time": 10.0})
    out = summarize_app(
        requests=_requests(1000, 100),
        pool=_pool(0.1, 1000),
        db=db,
        integrity=Integrity(acknowledged={"POST /a": 10, "POST /b": 2}, written={"POST /a": 7, "POST /b": 3}),
        pool_capacity=5,
    )
    assert out["requests"] == 1000 and out["failures"] == 0
    assert out["latency_ms"]["p50"] == 104 and out["latency_ms"]["max"] == 109
    assert out["throughput_rps"] == pytest.approx(1000 / (9.99 + 0.109), rel=1e-3)
    assert out["pool"]["littles_law_ceiling_rps"] == pytest.approx(50, rel=0.01)
    assert out["db"]["idle_in_tx_seconds"] == 10.0 and out["db"]["idle_in_tx_sampled_share"] == 0.9
    assert out["db"]["idle_in_tx_per_request_ms"] == 10.0
    integrity = out["integrity"]
    assert (integrity["acknowledged_writes"], integrity["rows_written"], integrity["lost_writes"]) == (12, 10, 3)
    assert integrity["by_route"]["POST /b"]["lost_writes"] == 0  # extra rows never offset losses elsewhere
    assert out["endpoints"]["GET /items/{item_id}"]["requests"] == 1000


def test_failures_excluded_from_throughput_and_success_latency() -> None:
    # 100 requests 10 ms apart, every 4th failed after 900 ms: 75 successes of 10-19 ms over the load period.
    requests = _requests(100, 10, failed_every=4)
    failed = requests["failed"] == 1
    requests.loc[failed, "response_time_ms"] = 900.0
    period_s = 0.96 + 0.9  # the last to end is the last failure: index 96, at 1000.96, 0.9 s
    out = summarize_app(
        requests=requests,
        pool=None,
        db=DbFigures(),
        integrity=None,
        pool_capacity=5,
        locust_stats=[{"num_requests": 101, "num_failures": 25}],
    )
    assert out["requests"] == 101 and out["failures"] == 25 and out["requests_recorded"] == 100
    assert out["load_window_s"] == pytest.approx(period_s, abs=1e-3)
    assert out["throughput_rps"] == pytest.approx(75 / period_s, abs=1e-3)  # successes only
    # Successes alone: 75 of 10 + (i % 10) ms with i not a multiple of 4; nearest rank over them.
    ok = sorted(10 + i % 10 for i in range(100) if i % 4)
    assert out["success_latency_ms"] == {"p50": ok[37], "p95": ok[71], "p99": ok[74], "max": 19.0}
    # Every request (failures' 900 ms included) for latency_ms: the 25 failures are the slowest quarter.
    assert out["latency_ms"]["p95"] == 900.0 and out["latency_ms"]["p50"] == ok[49]
    route = out["endpoints"]["GET /items/{item_id}"]
    assert (route["requests"], route["failures"], route["success_latency_ms"]["max"]) == (100, 25, 19.0)
    assert out["pool"] is None


def test_checks_parse_and_evaluate() -> None:
    apps = {
        "good": {"throughput_rps": 500.0, "pool": {"timeouts": 0}},
        "bad": {"throughput_rps": 50.0, "pool": {"timeouts": 3}},
    }
    checks = [
        Check.parse(c)
        for c in (
            "good/bad: throughput_rps >= 5",
            "bad: pool.timeouts == 0",
            "good: missing.metric > 1",
            "other: failures == 0",
        )
    ]
    results = evaluate(checks, apps)
    assert [r["passed"] for r in results] == [True, False, False]  # "other" did not run: skipped
    assert results[0]["value"] == 10.0 and results[2]["value"] is None
    with pytest.raises(UsageError, match="malformed"):
        Check.parse("good throughput >= 5")


def test_histogram_mean() -> None:
    hist = Histogram()
    hist.record(0.1)
    hist.record(0.3)
    assert hist.mean == pytest.approx(0.2)


# --- issue 12: figures that must be right ---------------------------------------------------------


def _pool_of(holds: list[float], size: int = 5, overflow: int = 0) -> dict[str, object]:
    metrics = PoolMetrics()
    for hold in holds:
        metrics.use.record(hold)
        metrics.wait.record(0.0)
    snapshot = metrics.snapshot()
    snapshot["gauges"] = {"size": size, "max_overflow": overflow}
    return snapshot


def test_the_ceiling_counts_the_pools_overflow_connections() -> None:
    # A pool of 5 + 3 overflow serves up to 8 connections at once: 8 / 10 ms = 800 req/s, whatever --pool-size said.
    out = summarize_app(
        requests=_requests(1000, 5),
        pool=_pool_of([0.010] * 1000, size=5, overflow=3),
        db=DbFigures(),
        integrity=None,
        pool_capacity=2,
    )
    assert out["pool"]["capacity"] == 8
    assert out["pool"]["littles_law_ceiling_rps"] == pytest.approx(800, rel=1e-4)


def test_littles_law_counts_only_the_requests_answered_inside_its_window() -> None:
    # Load samples from 1000.5 to 1001.0: responses before 1000.5 (or after 1001.0) are not the holds between.
    requests = _requests(100, 50)  # starts 1000.00 .. 1000.99, ends 50-59 ms later
    samples = pd.DataFrame(
        {
            "t": [1000.5, 1000.75, 1001.0, 1001.5],
            "phase": ["load", "load", "load", "cooldown"],
            "pool_hold_s": [3.0, 4.5, 6.0, 9.0],
        }
    )
    ends = [1000 + i * 0.01 + (50 + i % 10) / 1000 for i in range(100)]
    inside = sum(1 for end in ends if 1000.5 < end <= 1001.0)
    assert 0 < inside < sum(1 for end in ends if end <= 1001.0)  # some answered before the window
    law = windows(samples, requests).law
    assert law is not None and (law.window_s, law.hold_s, law.requests) == (0.5, 3.0, inside)


@pytest.mark.parametrize("checkouts_per_request", [1.37, 2.5, 0.02])
def test_littles_law_uses_total_connection_time_over_requests_unrounded(checkouts_per_request: float) -> None:
    # 1000 requests, checking out `checkouts_per_request` times each for 10 ms. The ceiling used to round
    # checkouts per request: 1.37 -> 1 overstated it by 37%, 2.5 -> 2 by 25%, and a websocket-like run (a
    # checkout per socket, many messages per socket: 0.02) -> 1 understated it 50 times.
    holds = [0.010] * round(1000 * checkouts_per_request)
    out = summarize_app(
        requests=_requests(1000, 5), pool=_pool_of(holds), db=DbFigures(), integrity=None, pool_capacity=5
    )
    per_request_ms = 10.0 * checkouts_per_request
    assert out["pool"]["hold_ms_per_request"] == pytest.approx(per_request_ms, rel=1e-6)
    assert out["pool"]["littles_law_ceiling_rps"] == pytest.approx(5 * 1000 / per_request_ms, rel=1e-4)


def test_littles_law_takes_the_load_window_of_the_samples() -> None:
    # Holds grow by 9.5 conn-s between the first and last load samples, 95 requests answer in between; what the
    # app serves after Locust stopped (cool-down samples, a further 5 conn-s) belongs to no logged request.
    requests = _requests(100, 50)  # starts 1000.00 .. 1000.99, each ends 50-59 ms later
    samples = pd.DataFrame(
        {
            "t": [1000.0, 1000.5, 1001.0, 1001.5],
            "phase": ["load", "load", "load", "cooldown"],
            "pool_hold_s": [0.0, 4.0, 9.5, 14.5],
        }
    )
    law = windows(samples, requests).law
    ends = requests["start_epoch_s"] + requests["response_time_ms"] / 1000
    assert law is not None and law.window_s == 1.0 and law.hold_s == 9.5
    assert law.requests == int(((ends > 1000.0) & (ends <= 1001.0)).sum())
    out = summarize_app(
        requests=requests, pool=_pool_of([0.1] * 145), db=DbFigures(), integrity=None, pool_capacity=5, samples=samples
    )
    assert out["pool"]["hold_ms_per_request"] == round(9500 / law.requests, 3)
    assert out["pool"]["littles_law"] == {
        "window_s": 1.0,
        "hold_s": 9.5,
        "requests": law.requests,
        "rps": round(law.requests / 1.0, 3),
    }
    # utilisation = the pool's busy share over the window: 9.5 conn-s of 5 connections x 1 s
    assert out["pool"]["ceiling_utilisation"] == pytest.approx(9.5 / 5, rel=1e-3)


def test_idle_per_request_takes_littles_window_and_its_successes() -> None:
    # The window runs 1000.0 to 1001.0; the cool-down sample at 1001.5 (2 idle for 0.5 s: 1 conn-s) is outside.
    # Every tenth request failed, so the successes inside are nine in ten of those answered inside.
    requests = _requests(100, 50, failed_every=10)
    samples = pd.DataFrame({
        "t": [1000.0, 1000.5, 1001.0, 1001.5],
        "phase": ["load", "load", "load", "cooldown"],
        "pool_hold_s": [0.0, 4.0, 9.5, 14.5],
        "idle_in_tx": [0, 3, 5, 2],  # inside: 0.5 s x 3 + 0.5 s x 5 = 4 conn-s
        "idle_in_tx_long": [0, 1, 1, 2],  # inside: 1 conn-s
        "pool_idle_in_tx_s": [0.0, 1.0, 3.0, 4.0],
        "pool_idle_in_tx_open_s": [0.0, 0.5, 0.5, 0.0],  # the app's own: 3.5 - 0.0 inside
    })
    ends = requests["start_epoch_s"] + requests["response_time_ms"] / 1000
    successes = int(((ends > 1000.0) & (ends <= 1001.0) & (requests["failed"] == 0)).sum())
    db = DbFigures(idle_in_tx_seconds_sampled=5.0, server={"idle_in_transaction_time": 5.5})
    db.idle_in_tx_long_seconds = 2.0
    pool = {**_pool_of([0.1] * 145), "counters": {"idle_in_tx_s": 4.0, "transactions": 145}}
    out = summarize_app(requests=requests, pool=pool, db=db, integrity=None, pool_capacity=5, samples=samples)
    # The server's 5.5 conn-s less the 1 the samples saw outside the window (5.0 sampled, 4.0 inside).
    assert out["db"]["idle_in_tx_per_request_ms"] == round(4500 / successes, 3)
    assert out["db"]["idle_in_tx_long_per_request_ms"] == round(1000 / successes, 3)
    assert out["pool"]["idle_in_tx_app_per_request_ms"] == round(3500 / successes, 3)
    # Without samples, the whole run's totals over the load's 90 successes, as before there was a window.
    out = summarize_app(requests=requests, pool=pool, db=db, integrity=None, pool_capacity=5)
    assert out["db"]["idle_in_tx_per_request_ms"] == round(5500 / 90, 3)
    assert out["db"]["idle_in_tx_long_per_request_ms"] == round(2000 / 90, 3)
    assert out["pool"]["idle_in_tx_app_per_request_ms"] == round(4000 / 90, 3)


def test_the_ceiling_note_shows_the_arithmetic_it_used() -> None:
    # Two checkouts of 4.4 ms per request: the ceiling comes from 8.8 ms per request, and so must the note.
    app = summarize_app(
        requests=_requests(1000, 5), pool=_pool_of([0.0044] * 2000), db=DbFigures(), integrity=None, pool_capacity=5
    )
    note = _ceiling_note("good", app)
    shown = re.search(
        r"(\d+) connections / ([\d.,]+) ms per request \(([\d.,]+) conn-s held over ([\d,]+) "
        r"requests\) = ([\d.,]+) req/s",
        note,
    )
    assert shown is not None, note
    capacity, per_request, held, requests, ceiling = (float(g.replace(",", "")) for g in shown.groups())
    assert held * 1000 / requests == pytest.approx(per_request, abs=0.05)
    assert capacity * 1000 / per_request == pytest.approx(ceiling, rel=0.01)
    assert ceiling == pytest.approx(app["pool"]["littles_law_ceiling_rps"], abs=0.05)


def test_latency_percentiles_count_failed_requests() -> None:
    # 90 fast successes and 10 requests that timed out after 5 s: the timeouts are the p95, as in Locust and k6.
    requests = _requests(100, 10)
    requests.loc[requests.index % 10 == 0, ["response_time_ms", "failed"]] = [5000.0, 1]
    out = summarize_app(requests=requests, pool=None, db=DbFigures(), integrity=None, pool_capacity=5)
    assert out["latency_ms"]["p95"] == 5000.0 and out["latency_ms"]["p50"] == 15.0
    assert out["success_latency_ms"]["p95"] == 19.0 and out["success_latency_ms"]["max"] == 19.0
    route = out["endpoints"]["GET /items/{item_id}"]
    assert route["latency_ms"]["p99"] == 5000.0 and route["success_latency_ms"]["p99"] == 19.0


@pytest.mark.parametrize(
    ("server", "unreported", "sampled", "total", "share"),
    [
        (10.0, 0.0, 10.5, 10.0, 1.05),  # a correct app: the server's exact figure, never the noisier one
        (10.0, 2.0, 11.4, 12.0, 0.95),  # plus spells the server never counted (a leak, a terminated backend)
    ],
)
def test_idle_in_tx_total_is_the_servers_plus_what_it_never_counts(
    server: float, unreported: float, sampled: float, total: float, share: float
) -> None:
    db = DbFigures(idle_in_tx_seconds_sampled=sampled, server={"idle_in_transaction_time": server})
    db.idle_in_tx_unreported_s = unreported
    out = summarize_app(requests=_requests(1000, 5), pool=None, db=db, integrity=None, pool_capacity=5)
    assert out["db"]["idle_in_tx_seconds"] == total
    assert out["db"]["idle_in_tx_sampled_share"] == share  # uncapped: an overshoot shows
    assert out["db"]["idle_in_tx_per_request_ms"] == total  # 1000 successes


def test_a_shared_databases_counters_are_not_the_apps() -> None:
    # Target mode with --app-name: the samples are the app's, pg_stat_database is every client's.
    db = DbFigures(idle_in_tx_seconds_sampled=5.0, server={"idle_in_transaction_time": 30.0, "sessions_fatal": 2.0})
    mine = summarize_app(
        requests=_requests(100, 5), pool=None, db=db, integrity=None, pool_capacity=5, shared_database=True
    )["db"]
    assert mine["idle_in_tx_seconds"] == 5.0 and mine["server"] == {}
    whole = summarize_app(requests=_requests(100, 5), pool=None, db=db, integrity=None, pool_capacity=5)["db"]
    assert whole["idle_in_tx_seconds"] == 30.0 and whole["server"]["sessions_fatal"] == 2.0


def _zero_for_a_correct_app(path: str) -> bool:
    """A figure a correct app may hold at exactly 0: a count, or time spent past the idle threshold."""
    metric = next((m for m in COMPARED if m.path == path), None)
    return "idle_in_tx_long" in path or (metric is not None and metric.unit in COUNT_UNITS)


def test_a_ratio_over_a_figure_that_can_be_zero_comes_with_an_absolute_check() -> None:
    """'bad/good: x >= 10' with good at 0 is infinite and passes whenever bad has any x at all: the scenario must
    also say how much is enough for bad, on the figure itself or its per-request form."""
    for name, scenario in load_catalog().items():
        checks = [Check.parse(text) for text in scenario.checks]
        for ratio in (c for c in checks if c.other and _zero_for_a_correct_app(c.metric)):
            stem = ratio.metric.removesuffix("_seconds")
            companions = [
                c
                for c in checks
                if c.other is None
                and c.app == ratio.app
                and c.op in (">", ">=")
                and c.metric.startswith(stem)
                and c.threshold > 0
            ]
            assert companions, f"{name}: '{ratio.name}' has no absolute check on {ratio.app}'s {stem}*"
