"""bench compare's counts and rates: the exact test against values worked out by hand, rates per request tested as
the counts they are made of, speed gates that wait for repeats, and the --repeat that would decide a verdict.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from bench.analysis.compare import ALPHA, Side, compare
from bench.analysis.repeats import counted_runs_to_decide, ranked_runs_to_decide
from bench.analysis.stats import count_change_p, count_rise_p, mann_whitney_p
from bench.config.gates import DEFAULT_GATES, FLOOR, derived_limit, merge_gates


def _binomial_upper(n: int, k: int, share: Fraction) -> Fraction:
    """P(X >= k), X ~ Binomial(n, share), summed exactly in rationals."""
    return sum((Fraction(math.comb(n, x)) * share**x * (1 - share) ** (n - x) for x in range(k, n + 1)), Fraction(0))


def test_count_test_matches_values_worked_by_hand() -> None:
    # 2 -> 10 events at equal exposure: 12 in all, each on the current side with chance 1/2.
    # P(X >= 10) = (C(12,10) + C(12,11) + C(12,12)) / 2^12 = (66 + 12 + 1) / 4096.
    assert count_rise_p(2, 10) == pytest.approx(79 / 4096, rel=1e-12)
    # Two-sided: twice the smaller tail; P(X <= 10) = 1 - (1 + 12) / 4096 is the larger one.
    assert count_change_p(2, 10) == pytest.approx(158 / 4096, rel=1e-12)
    # 3 events over 1,000 requests, then 7 over 3,000: the current side's share of the exposure is 3/4.
    # P(X >= 7 | n 10, 3/4) = (120·3^7 + 45·3^8 + 10·3^9 + 3^10) / 4^10 = 813564 / 1048576.
    assert count_rise_p(3, 7, 1000, 3000) == pytest.approx(813564 / 1048576, rel=1e-12)
    # Two-sided: P(X <= 7) = 1 - (45·3^8 + 10·3^9 + 3^10) / 4^10 = 497452 / 1048576 is the smaller tail.
    assert count_change_p(3, 7, 1000, 3000) == pytest.approx(2 * 497452 / 1048576, rel=1e-12)


@pytest.mark.parametrize(
    ("base", "current", "b_exp", "c_exp"),
    [(0, 7, 1000, 900), (20, 15, 10_000, 2000), (40, 31, 5000, 5200), (1, 60, 300, 7000)],
)
def test_count_test_agrees_with_exact_rationals(base: int, current: int, b_exp: int, c_exp: int) -> None:
    share = Fraction(c_exp, b_exp + c_exp)
    rise = _binomial_upper(base + current, current, share)
    assert count_rise_p(base, current, b_exp, c_exp) == pytest.approx(float(rise), rel=1e-9, abs=1e-300)
    fall = 1 - _binomial_upper(base + current, current + 1, share)
    assert count_change_p(base, current, b_exp, c_exp) == pytest.approx(
        min(1.0, float(2 * min(rise, fall))), rel=1e-9, abs=1e-300
    )


def _app(requests: int, causes: dict[str, int], timeouts: int = 0) -> dict[str, Any]:
    return {
        "requests": requests,
        "failures": sum(causes.values()),
        "failures_by_cause": causes,
        "failures_per_1k_requests": {c: n * 1000 / requests for c, n in causes.items()},
        "pool": {"timeouts": timeouts, "timeouts_per_1k_requests": timeouts * 1000 / requests},
    }


def _side(*runs: dict[str, Any]) -> Side:
    summary: dict[str, Any] = {"schema_version": 1, "scenario": "s", "apps": {"x": runs[0]}}
    if len(runs) > 1:
        summary["repeats"] = {"x": list(runs)}
    return Side("x", summary)


def _row(result: Any, metric: str) -> Any:
    return next(r for r in result.rows if r.metric == metric)


def test_a_rate_is_tested_as_its_count_weighed_by_requests() -> None:
    # The bad twin serves a fifth of the requests: its failures fell 20 -> 15, its rate rose 2 -> 7.5 per 1,000.
    gates = merge_gates(["failures_per_1k_requests.<cause>:+100%"])
    result = compare(_side(_app(10_000, {"HTTP 500": 20})), _side(_app(2000, {"HTTP 500": 15})), gates)
    rate, count = _row(result, "failures_per_1k_requests.HTTP 500"), _row(result, "failures_by_cause.HTTP 500")
    expected = float(_binomial_upper(35, 15, Fraction(1, 6)) * 2)  # two-sided, the rise is the smaller tail
    assert rate.p_value == pytest.approx(expected, rel=1e-9) and rate.p_value < ALPHA
    assert rate.mark == "+" and rate.gate_failed and rate.gate == "failures_per_1k_requests.HTTP 500:+100%"
    assert count.p_value == rate.p_value and count.gate is None  # the same test; the count has no default gate


def test_a_cause_one_side_never_had_is_zero_there() -> None:
    result = compare(_side(_app(1000, {})), _side(_app(1000, {"ConnectionRefusedError": 6})))
    row = _row(result, "failures_per_1k_requests.ConnectionRefusedError")
    assert (row.base, row.current, row.mark) == (0.0, 6.0, "!") and row.gate_failed
    assert row.p_value == pytest.approx(1 / 64)  # 0 -> 6 at equal exposure, one-sided: 0.5^6
    # 0 -> 4 is chance (p 1/16), and says how many runs would tell: at 4 a run, 0 -> 5 takes 2 runs each.
    chance = _row(
        compare(_side(_app(1000, {})), _side(_app(1000, {"HTTP 503": 4}))), "failures_per_1k_requests.HTTP 503"
    )
    assert chance.mark == "~" and not chance.gate_failed and chance.needs_repeat == 2


def test_a_summary_without_rates_raises_no_alarm() -> None:
    # Written before the rates existed: the rows are there, with nothing to compare against.
    old: dict[str, Any] = {"requests": 1000, "failures": 0, "pool": {"timeouts": 0}}
    result = compare(_side(old), _side(_app(1000, {"HTTP 500": 9}, timeouts=9)))
    for metric in ("failures_per_1k_requests.HTTP 500", "pool.timeouts_per_1k_requests"):
        row = _row(result, metric)
        assert row.base is None and row.mark == " " and not row.gate_failed


def test_speed_gates_wait_for_repeats_and_apply_with_them() -> None:
    gates = merge_gates(["throughput_rps:-15%", "pool.hold_ms_per_request:+25%"])
    one = compare(_side({"throughput_rps": 100.0}), _side({"throughput_rps": 60.0}), gates)
    assert _row(one, "throughput_rps").gate_skipped and not one.failed_gates and one.exit_code == 0
    base = _side(*({"throughput_rps": v} for v in (100, 101, 99, 102)))
    worse = _side(*({"throughput_rps": v} for v in (60, 61, 59, 62)))
    four = compare(base, worse, gates)
    assert not four.skipped_gates and [r.metric for r in four.failed_gates] == ["throughput_rps"]
    # A code figure is judged on one run per side.
    code = compare(
        _side({"pool": {"hold_ms_per_request": 20.0}}), _side({"pool": {"hold_ms_per_request": 90.0}}), gates
    )
    assert [r.metric for r in code.failed_gates] == ["pool.hold_ms_per_request"] and not code.skipped_gates


def test_invariants_fail_on_the_first_whatever_the_base() -> None:
    gates = merge_gates([])
    for base, current, fails in ((0, 1, True), (3, 1, True), (2, 0, False)):
        result = compare(
            _side({"integrity": {"lost_writes": base}}), _side({"integrity": {"lost_writes": current}}), gates
        )
        assert bool(result.failed_gates) is fails
    assert "integrity.lost_writes:>0" in DEFAULT_GATES and "db.idle_in_tx_after_load:>0" in DEFAULT_GATES


def _spread(values: list[float], n: int) -> list[float]:
    """The same spreading, by numpy's nearest-rank percentiles (inverted_cdf) instead of the harness's rule."""
    return list(np.percentile(values, [100 * (i + 0.5) / n for i in range(n)], method="inverted_cdf"))


@pytest.mark.parametrize(
    ("base", "current"),
    [
        ([100, 104, 96, 101], [110, 99, 112, 108]),
        ([1.0, 3.0], [2.0, 4.0]),
        ([10, 11, 12, 13, 14], [12, 13, 14, 15, 16]),
    ],
)
def test_ranked_runs_to_decide_is_the_first_n_whose_spread_decides(base: list[float], current: list[float]) -> None:
    n = ranked_runs_to_decide(base, current, ALPHA)
    assert n is not None and n > max(len(base), len(current), 3)
    assert mann_whitney_p(_spread(base, n), _spread(current, n)) < ALPHA
    assert all(mann_whitney_p(_spread(base, m), _spread(current, m)) >= ALPHA for m in range(4, n))


def test_ranked_runs_to_decide_limits() -> None:
    assert ranked_runs_to_decide([1, 2], [3, 4], ALPHA) == 4  # apart already: the fewest the test can decide on
    assert ranked_runs_to_decide([5, 6, 7, 8], [5, 6, 7, 8], ALPHA) is None  # the same spread never decides
    assert ranked_runs_to_decide([1.0], [2.0], ALPHA) is None  # one run says nothing of its spread


def test_a_rank_tested_change_that_did_not_decide_says_what_would() -> None:
    result = compare(
        _side(*({"pool": {"hold_ms_per_request": v}} for v in (20, 21, 19, 24))),
        _side(*({"pool": {"hold_ms_per_request": v}} for v in (28, 18, 30, 27))),
    )
    row = _row(result, "pool.hold_ms_per_request")
    assert row.mark == "~" and row.p_value is not None and row.p_value >= ALPHA
    assert row.needs_repeat == ranked_runs_to_decide([20, 21, 19, 24], [28, 18, 30, 27], ALPHA) and row.needs_repeat


def test_counted_runs_to_decide() -> None:
    # 0 -> 2 over 4 runs each (p 0.25): at that rate 10 runs give 0 -> 5, p 1/32.
    assert counted_runs_to_decide((0, 2), (4000, 4000), (4, 4), ALPHA) == 10
    assert count_rise_p(0, 5) < ALPHA <= count_rise_p(0, 2 * 9 / 4)
    assert counted_runs_to_decide((0, 6), (1000, 1000), (1, 1), ALPHA) is None  # decided already
    assert counted_runs_to_decide((5, 5), (1000, 1000), (1, 1), ALPHA) is None  # equal rates never decide


def test_derived_limit_rule() -> None:
    assert derived_limit([]) == FLOOR == derived_limit([0.01, 0.02])
    assert derived_limit([0.04, 0.061]) == pytest.approx(0.2)  # 3 x 0.061 = 0.183, rounded up to 5%
    assert derived_limit([0.1, math.nan]) == pytest.approx(0.3)
