"""bench compare: the table against a checked-in golden text, marks, gates, statistics, exit codes."""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.analysis.compare import Side, compare, load_side
from bench.analysis.stats import mann_whitney_p
from bench.config.gates import DEFAULT_GATES, Gate, merge_gates
from bench.errors import UsageError
from bench.render.compare_render import render_json, render_junit, render_markdown, render_text

DATA = Path(__file__).parent / "data" / "compare"


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True,
                          timeout=60, env=os.environ.copy(), check=False)


def test_golden_text_table() -> None:
    result = compare(load_side(DATA / "base.json"), load_side(DATA / "current.json"))
    assert render_text(result) + "\n" == (DATA / "expected.txt").read_text()


def test_a_b_on_recorded_runs_fails_the_gates() -> None:
    base, current = load_side(DATA / "base.json"), load_side(DATA / "current.json")
    result = compare(base, current, base_app="good", current_app="bad")
    # One run per side: the code's figures decide; the speed gates (latency, throughput, pool wait) are listed as
    # not applied, for want of the repeats their significance test needs.
    failed = {row.metric for row in result.failed_gates}
    # bad holds its connection across the upstream call: more connection time and idle in transaction per request.
    assert failed == {"db.idle_in_tx_per_request_ms", "db.idle_in_tx_long_per_request_ms", "pool.hold_ms_per_request"}
    assert {"throughput_rps", "latency_ms.p95", "pool.wait_ms.p95"} <= {r.metric for r in result.skipped_gates}
    assert all(row.app == "good->bad" for row in result.rows)
    markdown = render_markdown(result)
    assert markdown.startswith("### ❌") and "| `+` | good->bad | `db.idle_in_tx_per_request_ms` |" in markdown
    assert f"| `{_default('pool.wait_ms.p95')}` (not applied) |" in markdown and "speed gate(s) not applied" in markdown
    junit = render_junit(result)
    assert junit.count("<testcase") == len([r for r in result.rows if r.gate]) and "<failure" in junit
    assert junit.count("<skipped") == len(result.skipped_gates)
    data = json.loads(render_json(result))
    assert _default("db.idle_in_tx_per_request_ms") in data["failed_gates"]
    assert _default("pool.wait_ms.p95") in data["skipped_gates"]


def _default(metric: str) -> str:
    """The default gate on a figure, as bench/config/gates.py sets it today."""
    return next(text for text in DEFAULT_GATES if Gate.parse(text).metric == metric)


def test_same_run_against_itself_is_unchanged() -> None:
    side = load_side(DATA / "current.json")
    result = compare(side, side)
    assert not result.failed_gates and all(row.mark == " " for row in result.rows)


def _side(app_values: dict[str, list[float]], metric: str = "throughput_rps") -> Side:
    repeats = {app: [{metric: v} for v in values] for app, values in app_values.items()}
    apps = {app: {metric: sorted(values)[len(values) // 2]} for app, values in app_values.items()}
    summary: dict[str, Any] = {"schema_version": 1, "scenario": "s", "apps": apps, "repeats": repeats}
    return Side("x", summary)


def test_significance_needs_a_real_difference() -> None:
    # Overlapping repeats: a 6% drop in the median is not significant -> "~", gate does not fail.
    gates = merge_gates(["throughput_rps:-15%"])
    noisy = compare(_side({"good": [100, 104, 96, 101, 99]}), _side({"good": [94, 103, 97, 92, 100]}), gates)
    assert noisy.rows[0].mark == "~" and not noisy.failed_gates and not noisy.single_sample
    # Separated repeats: significant and past the gate's 15% -> "+" and a failed gate.
    real = compare(_side({"good": [100, 104, 96, 101, 99]}), _side({"good": [60, 63, 58, 61, 62]}), gates)
    assert real.rows[0].mark == "+" and real.rows[0].p_value is not None and real.rows[0].p_value < 0.05
    assert [r.metric for r in real.failed_gates] == ["throughput_rps"]


def test_mann_whitney_exact_values() -> None:
    assert mann_whitney_p([1, 2, 3, 4], [5, 6, 7, 8]) == pytest.approx(2 / 70)
    assert mann_whitney_p([1, 2, 3], [4, 5, 6]) == pytest.approx(0.1)
    assert mann_whitney_p([1, 5, 2, 6], [3, 7, 4, 8]) > 0.3
    assert mann_whitney_p([1.0] * 5, [1.0] * 5) == 1.0
    tied = mann_whitney_p([1, 1, 2, 2, 3, 3], [7, 7, 8, 8, 9, 9])  # ties: normal approximation
    assert tied < 0.01


@pytest.mark.parametrize(
    ("text", "base", "current", "fails"),
    [
        ("pool.wait_ms.p95:+20%", 10, 12.5, True),
        ("pool.wait_ms.p95:+20%", 10, 11.5, False),
        ("throughput_rps:-10%", 100, 85, True),
        ("throughput_rps:-10%", 100, 120, False),
        ("integrity.lost_writes:>0", 0, 1, True),
        ("integrity.lost_writes:>0", 5, 0, False),
        ("failures:+0%", 0, 3, True),
    ],
)
def test_gates(text: str, base: float, current: float, fails: bool) -> None:
    assert Gate.parse(text).fails(base, current) is fails


def test_fail_on_replaces_the_default_for_its_metric() -> None:
    gates = {g.metric: g.text for g in merge_gates(["pool.wait_ms.p95:+50%", "db.connections_max:>10"])}
    assert gates["pool.wait_ms.p95"] == "pool.wait_ms.p95:+50%" and gates["db.connections_max"] == "db.connections_max:>10"
    with pytest.raises(UsageError, match="malformed"):
        Gate.parse("pool.wait_ms.p95 up 20")


def test_cli_exit_codes(tmp_path: Path) -> None:
    assert bench("compare", str(DATA / "current.json"), str(DATA / "current.json")).returncode == 0
    ab = bench("compare", str(DATA / "base.json"), str(DATA / "current.json"),
               "--base-app", "good", "--current-app", "bad", "--junit", str(tmp_path / "gates.xml"))
    assert ab.returncode == 1 and "gate(s) failed" in ab.stdout and (tmp_path / "gates.xml").is_file()
    # --fail-on gates a figure both files hold: the A/A pair passes the defaults, and fails a bound its own p95 meets.
    p95 = load_side(DATA / "current.json").app("good")["latency_ms"]["p95"]
    tight = bench("compare", str(DATA / "current.json"), str(DATA / "current.json"),
                  "--fail-on", f"latency_ms.p95:>{p95 / 2:g}")
    assert tight.returncode == 1 and f"✗ latency_ms.p95:>{p95 / 2:g}" in tight.stdout, tight.stdout
    # It replaces its figure's default: every gate A/B failed, turned into a bound no value reaches, and the pair
    # passes (a relative gate would still fail a rise from 0).
    failed = compare(load_side(DATA / "base.json"), load_side(DATA / "current.json"), base_app="good",
                     current_app="bad").failed_gates
    loosened = [f"{row.metric}:{'>1000000' if row.gate and ':+' in row.gate else '<-1'}" for row in failed]
    assert failed and len(loosened) == len({row.metric for row in failed})
    loose = bench("compare", str(DATA / "base.json"), str(DATA / "current.json"), "--base-app", "good",
                  "--current-app", "bad", *(arg for text in loosened for arg in ("--fail-on", text)))
    assert loose.returncode == 0 and "all gates passed" in loose.stdout, loose.stdout
    assert all(text in loose.stdout for text in loosened), loose.stdout


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: {**s, "scenario": "background-task"}, "different scenarios"),
        (lambda s: {**s, "schema_version": 2}, "schema_version 2; this bench reads 1"),
        (lambda s: {**s, "apps": {}}, "holds no app results"),
        (lambda s: json.dumps(s)[:200], "is truncated or not valid JSON"),
        (lambda s: [1, 2], "not a scopebench summary"),
    ],
)
def test_incompatible_inputs_exit_2(tmp_path: Path, mutate: Any, message: str) -> None:
    base = json.loads((DATA / "base.json").read_text())
    broken = _write(tmp_path / "summary.json", mutate(base))
    result = bench("compare", str(DATA / "base.json"), str(broken))
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_run_folder_exits_2(tmp_path: Path) -> None:
    result = bench("compare", str(tmp_path / "nope"), str(DATA / "base.json"))
    assert result.returncode == 2 and "does not exist" in result.stderr


# --- issue 12, item 10: every verdict right ------------------------------------------------------

def test_exact_permutation_p_with_ties() -> None:
    # 4 vs 4 with ties: 6 of the 70 splits lie as far from the mean rank sum; the normal approximation said 0.047.
    assert mann_whitney_p([0, 0, 0, 1], [1, 1, 2, 2]) == pytest.approx(6 / 70)
    # Cross-check against counting every split of the pooled values, on tied samples.
    rng = random.Random(12)
    for _ in range(20):
        a = [float(rng.randint(0, 3)) for _ in range(rng.randint(3, 6))]
        b = [float(rng.randint(1, 4)) for _ in range(rng.randint(3, 6))]
        assert mann_whitney_p(a, b) == pytest.approx(_brute_force_p(a, b))


def _brute_force_p(a: list[float], b: list[float]) -> float:
    pooled = sorted(a + b)
    rank = {v: sum(i + 1 for i, x in enumerate(pooled) if x == v) / pooled.count(v) for v in pooled}
    mean = len(a) * (len(pooled) + 1) / 2
    observed = abs(sum(rank[v] for v in a) - mean)
    splits = list(itertools.combinations(range(len(pooled)), len(a)))
    extreme = sum(abs(sum(rank[pooled[i]] for i in s) - mean) >= observed - 1e-9 for s in splits)
    return extreme / len(splits)


def _summary(app: dict[str, Any], repeats: list[dict[str, Any]] | None = None) -> Side:
    summary: dict[str, Any] = {"schema_version": 1, "scenario": "s", "apps": {"good": app}}
    if repeats is not None:
        summary["repeats"] = {"good": repeats}
    return Side("x", summary)


def _failures_row(base: int, current: int) -> Any:
    result = compare(_summary({"requests": 1000, "failures": base}), _summary({"requests": 1000, "failures": current}),
                     merge_gates(["failures:+10%"]))
    return next(r for r in result.rows if r.metric == "failures")


def test_newly_failing_accounts_for_chance() -> None:
    # Rare failures, Poisson mean 0.3 a run, in identical A/A runs: the old "0 -> any" rule false-alarmed on about
    # a fifth of the pairs; the exact count test (one-sided, alpha 0.05) on at most 5%.
    rng = np.random.default_rng(12)
    pairs = rng.poisson(0.3, size=(400, 2))
    alarms = sum(_failures_row(int(b), int(c)).mark == "!" for b, c in pairs)
    assert alarms / len(pairs) <= 0.05, alarms
    one = _failures_row(0, 1)
    assert one.mark == "~" and not one.gate_failed and one.p_value == pytest.approx(0.5)
    five = _failures_row(0, 5)
    assert five.mark == "!" and five.gate_failed and five.p_value == pytest.approx(1 / 32)


def test_count_test_weighs_each_side_by_its_requests() -> None:
    # 0 -> 5 failures over 10x the requests is the same rate of failing as ~0.5: chance, not news.
    result = compare(_summary({"requests": 100, "failures": 0}), _summary({"requests": 1000, "failures": 5}))
    row = next(r for r in result.rows if r.metric == "failures")
    assert row.mark == "~" and not row.gate_failed and row.p_value == pytest.approx((10 / 11) ** 5)


def test_nan_is_never_better_and_fails_its_gate() -> None:
    # A speed gate waits for repeats, but a figure that could not be computed fails whatever the runs.
    base = _summary({"latency_ms": {"p95": 200.0}, "throughput_rps": 100.0})
    current = _summary({"latency_ms": {"p95": math.nan}, "throughput_rps": math.nan})
    result = compare(base, current)
    rows = {r.metric: r for r in result.rows}
    assert rows["latency_ms.p95"].mark == "?" and rows["latency_ms.p95"].gate_failed
    assert rows["throughput_rps"].mark == "?" and rows["throughput_rps"].gate_failed
    assert result.exit_code == 1 and rows["latency_ms.p95"] in result.worsened
    assert Gate.parse("latency_ms.p95:<1000").fails(None, math.nan)
    assert Gate.parse("latency_ms.p95:+25%").fails(math.nan, 200.0)
    # The JSON stays strict JSON: NaN and infinity are null.
    strict = json.loads(render_json(result), parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert {r["current"] for r in strict["rows"]} == {None}


def test_a_misspelled_fail_on_metric_exits_2_in_one_line() -> None:
    result = bench("compare", str(DATA / "base.json"), str(DATA / "current.json"), "--fail-on", "pool.wiat_ms.p95:+20%")
    assert result.returncode == 2 and "did you mean 'pool.wait_ms.p95'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("text", "current", "fails"),
    [("throughput_rps:<100", 99.0, True), ("throughput_rps:<100", 100.0, False),
     ("throughput_rps:<=100", 100.0, True), ("pool.wait_ms.p95:>=50", 50.0, True)],
)
def test_absolute_lower_bound(text: str, current: float, fails: bool) -> None:
    assert Gate.parse(text).fails(None, current) is fails


ROUTE = "endpoints.POST /orders/{item_id}/checkout"


def test_gates_on_per_route_figures() -> None:
    gate = Gate.parse(f"{ROUTE}.latency_ms.p95:+20%")
    assert (gate.metric, gate.sign, gate.limit) == (f"{ROUTE}.latency_ms.p95", "+", 0.2)
    # A route name may hold spaces, dots and colons: the threshold is what follows the last colon.
    odd = Gate.parse("endpoints.GET /ws:stream v1.2.latency_ms.p95:>500")
    assert (odd.metric, odd.op, odd.bound) == ("endpoints.GET /ws:stream v1.2.latency_ms.p95", ">", 500.0)
    assert {g.metric for g in merge_gates([odd.text])} >= {odd.metric}
    base, current = load_side(DATA / "base.json"), load_side(DATA / "current.json")
    result = compare(base, current, merge_gates([f"{ROUTE}.pool_hold_ms.p95:+5%", f"{ROUTE}.pool_hold_ms.p99:>100"]),
                     base_app="good", current_app="bad")
    # A relative gate on a speed figure waits for repeats (one run per side here); an absolute bound applies.
    assert f"{ROUTE}.pool_hold_ms.p95" in {r.metric for r in result.skipped_gates}
    assert f"{ROUTE}.pool_hold_ms.p99" in {r.metric for r in result.failed_gates}


def test_a_gate_on_a_route_neither_run_has_exits_2() -> None:
    base, current = load_side(DATA / "base.json"), load_side(DATA / "current.json")
    typo = ROUTE.replace("orders", "order")
    with pytest.raises(UsageError, match="neither run has a route 'POST /order/") as caught:
        compare(base, current, merge_gates([f"{typo}.latency_ms.p95:+20%"]))
    assert caught.value.exit_code == 2 and "did you mean 'POST /orders/{item_id}/checkout'" in str(caught.value)


def test_json_ratio_is_a_number_or_null_and_repeats_count_single_runs() -> None:
    result = compare(load_side(DATA / "base.json"), load_side(DATA / "current.json"))
    data = json.loads(render_json(result))
    assert data["repeats"] == [1, 1] and data["single_sample"]
    assert all(r["ratio"] is None or isinstance(r["ratio"], float | int) for r in data["rows"])
    rise = compare(_summary({"db": {"idle_in_tx_long_seconds": 0.0}}),
                   _summary({"db": {"idle_in_tx_long_seconds": 0.5}}))
    from_zero = next(r for r in json.loads(render_json(rise))["rows"] if r["metric"] == "db.idle_in_tx_long_seconds")
    assert from_zero["base"] == 0 and from_zero["ratio"] is None


def test_repeats_are_the_fewest_over_the_app_pairs() -> None:
    # good ran once, bad four times on each side: good's rows rest on one run, so the comparison is single-sample.
    def side(bad: list[float]) -> Side:
        apps = {"good": {"throughput_rps": 100.0}, "bad": {"throughput_rps": sorted(bad)[2]}}
        return Side("x", {"schema_version": 1, "scenario": "s", "apps": apps,
                          "repeats": {"bad": [{"throughput_rps": v} for v in bad]}})

    result = compare(side([50, 51, 52, 53]), side([50, 52, 51, 53]))
    assert result.pairs == [("good", "good"), ("bad", "bad")]
    assert result.repeats == (1, 1) and result.single_sample


@pytest.mark.parametrize(("base", "current", "mark"), [(6.0, 10.8, "+"), (6.0, 7.0, "~"), (0.05, 0.2, "~"),
                                                       (200.0, 204.9, "~"), (200.0, 230.0, "+")])
def test_noise_floor_scales_with_the_figure(base: float, current: float, mark: str) -> None:
    # A fixed 5 ms floor hid an 80% rise of a 6 ms hold p95; the floor is now a quarter of the figure, 1 to 5 ms.
    result = compare(_summary({"pool": {"hold_ms": {"p95": base}}}), _summary({"pool": {"hold_ms": {"p95": current}}}),
                     merge_gates(["pool.hold_ms.p95:+10%"]))
    row = next(r for r in result.rows if r.metric == "pool.hold_ms.p95")
    assert row.mark == mark and row.gate_skipped and not row.gate_failed  # a speed gate: one run per side


def test_differing_load_settings_are_named_as_given() -> None:
    from bench.analysis.compare import config_differences

    base = {"duration_s": 8.0, "users": 50, "upstream_latency_ms": 100.0, "pool_size": 5}
    current = {"duration_s": 20.0, "users": 50, "upstream_latency_ms": 150.5, "pool_size": None}
    assert config_differences(base, current) == [
        "config differs: duration_s 8 -> 20",
        "config differs: pool_size 5 -> None",
        "config differs: upstream_latency_ms 100 -> 150.5",
    ]
