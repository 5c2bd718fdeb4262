"""Summary figures and checks computed from known inputs."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.analysis.summary import Check, Integrity, evaluate, summarize_app
from bench.errors import UsageError
from bench.instrument import Histogram, PoolMetrics
from bench.results.records import DbFigures


def _requests(n: int, latency_ms: float, failed_every: int = 0) -> pd.DataFrame:
    rows = [
        {"start_epoch_s": 1000 + i * 0.01, "request_type": "GET", "name": "GET /items/{item_id}",
         "response_time_ms": latency_ms + i % 10, "response_length": 10,
         "failed": int(bool(failed_every) and i % failed_every == 0), "error": ""}
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
    out = summarize_app(requests=_requests(1000, 100), pool=_pool(0.1, 1000), db=db,
                        integrity=Integrity(acknowledged={"POST /a": 10, "POST /b": 2}, written={"POST /a": 7, "POST /b": 3}), pool_capacity=5)
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


def test_failures_excluded_from_latency_and_throughput() -> None:
    out = summarize_app(requests=_requests(100, 10, failed_every=4), pool=None, db=DbFigures(),
                        integrity=None, pool_capacity=5, locust_stats=[{"num_requests": 101, "num_failures": 25}])
    assert out["requests"] == 101 and out["failures"] == 25 and out["requests_recorded"] == 100
    assert out["pool"] is None


def test_checks_parse_and_evaluate() -> None:
    apps = {"good": {"throughput_rps": 500.0, "pool": {"timeouts": 0}}, "bad": {"throughput_rps": 50.0,
                                                                                  "pool": {"timeouts": 3}}}
    checks = [Check.parse(c) for c in ("good/bad: throughput_rps >= 5", "bad: pool.timeouts == 0",
                                       "good: missing.metric > 1", "other: failures == 0")]
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
