"""--slo on bench run: the grammar (whole run and per route, shared with bench capacity) and the checks it makes,
recomputed from the recorded runs' raw request logs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bench.config.slo import Slo
from bench.errors import UsageError
from bench.render.junit import checks_junit
from bench.render.report_tables import check_label, check_value

DATA = Path(__file__).parent / "data" / "mixed-run"


def test_whole_run_and_per_route_objectives_parse_on_one_grammar() -> None:
    slo = Slo.parse("p95<250ms,errors<1%; GET /items/{id}: p95<100ms,errors<=0.5% ; POST /x:max<2s")
    assert [(o.route, o.metric, o.op, o.threshold) for o in slo.objectives] == [
        (None, "p95", "<", 250.0),
        (None, "errors", "<", 0.01),
        ("GET /items/{id}", "p95", "<", 100.0),
        ("GET /items/{id}", "errors", "<=", 0.005),
        ("POST /x", "max", "<", 2000.0),
    ]
    assert (
        slo.text == "p95<250ms, errors<1%, GET /items/{id}: p95<100ms, GET /items/{id}: errors<=0.5%, POST /x: max<2s"
    )
    # A route's objectives run to the next ';', so one route may carry the same metric as the whole run.
    assert Slo.parse("GET /a: p95<1ms").objectives[0].route == "GET /a"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("p95<250ms,p95<100ms", "names p95 twice"),
        ("GET /a: p95<1ms,p95<2ms", "names GET /a: p95 twice"),
        ("p95<250", "with a unit"),
        ("p90<250ms", "bench run has no p90 figure"),
        ("loop_lag_p95<5ms", "bench run has no loop_lag_p95 figure"),
        ("GET /a: p95>1ms", "cannot read"),
        ("pool_wiat_p95<5ms", "did you mean 'pool_wait_p95'"),
    ],
)
def test_run_usage_errors_name_the_fix(text: str, error: str) -> None:
    with pytest.raises(UsageError, match=error):
        Slo.parse(text).for_run()


def test_capacity_refuses_a_per_route_objective() -> None:
    assert Slo.parse("p90<100ms").for_sweep().objectives[0].metric == "p90"
    with pytest.raises(UsageError, match="per-route objectives are for bench run"):
        Slo.parse("p95<1s; GET /a: p95<1ms").for_sweep()


def test_checks_agree_with_the_raw_request_log() -> None:
    summary = json.loads((DATA / "summary.json").read_text())
    apps = summary["apps"]
    route = "GET /items/{item_id}"
    checks = Slo.parse(f"p95<100000ms,errors<50%; {route}: max<1ms,errors<1%; GET /nowhere: p95<1s").judge_run(apps)
    by = {(c["app"], c["slo"]): c for c in checks}
    for app in apps:
        log = pd.read_csv(DATA / app / "requests.csv")
        # The summary counts answered requests: those still waiting when the load stopped are told apart.
        log = log[~log["error"].fillna("").str.startswith("Unfinished:")]
        own = log[log["name"] == route]
        # errors: failures over requests, from the log's own rows (the summary counts the same rows)
        assert by[(app, "errors<50%")]["value"] == pytest.approx(log["failed"].mean(), abs=1e-9)
        assert by[(app, f"{route}: errors<1%")]["value"] == pytest.approx(own["failed"].mean(), abs=1e-9)
        # the route's slowest answer is a row of the log; no request answers in under 1 ms here
        assert by[(app, f"{route}: max<1ms")]["value"] == pytest.approx(own["response_time_ms"].max(), rel=1e-3)
        assert not by[(app, f"{route}: max<1ms")]["passed"]
        assert by[(app, "p95<100000ms")]["passed"]
        # a route the run never requested has no figure: no data is no evidence
        missing = by[(app, "GET /nowhere: p95<1s")]
        assert missing["value"] is None and not missing["passed"]


def test_checks_render_as_written_and_in_junit() -> None:
    summary = {
        "scenario": "mine",
        "status": "completed",
        "checks": Slo.parse("p95<250ms,errors<1%").judge_run(
            {"target": {"requests": 200, "failures": 3, "latency_ms": {"p95": 120.04}}}
        ),
    }
    labels = [(check_label(c), check_value(c), c["passed"]) for c in summary["checks"]]
    assert labels == [("target: p95<250ms", "120.0 ms", True), ("target: errors<1%", "1.50%", False)]
    xml = checks_junit(summary)
    assert 'tests="2" failures="1"' in xml
    assert 'name="target: errors&lt;1%"><failure message="measured 1.50%"/>' in xml
    assert '<testcase classname="scopebench.mine" name="target: p95&lt;250ms"/>' in xml
    stopped = checks_junit({"scenario": "mine", "status": "failed", "error": "service exited", "checks": []})
    assert 'failures="1"' in stopped and "run failed: service exited" in stopped
