"""The rules behind bench compare's verdicts and the pool's interval figures, at the values where they turn, against
values worked out by hand (tests/mutations/mutate.py found these unchecked: M13, M14, M16, M18, M20)."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from bench.analysis.compare import ALPHA, _mark
from bench.analysis.stats import count_change_p, count_rise_p, mann_whitney_p
from bench.config.gates import Gate
from bench.instrument import Histogram
from bench.results.metrics import COMPARED


def _binomial_tail(n: int, k: int) -> Fraction:
    """P(X >= k) for X ~ Binomial(n, 1/2), exactly."""
    return Fraction(sum(math.comb(n, x) for x in range(k, n + 1)), 2**n)


def test_a_count_that_moved_either_way_is_tested_two_sided() -> None:
    # 10 events, then 20, over equal requests: 30 events, and under equal rates the current side's share is
    # Binomial(30, 1/2). One-sided, P(X >= 20) = 0.0494; two-sided, twice that (0.0987): not significant.
    one_sided = _binomial_tail(30, 20)
    assert count_rise_p(10, 20) == pytest.approx(float(one_sided), rel=1e-9)
    assert count_change_p(10, 20) == pytest.approx(float(2 * one_sided), rel=1e-9)
    assert count_change_p(20, 10) == pytest.approx(float(2 * one_sided), rel=1e-9)  # a fall, the same


def test_the_rank_tests_normal_approximation_corrects_for_continuity_towards_the_mean() -> None:
    # 21 vs 21 values (42, past the exact test's 40), no ties: U counts the pairs where a's value is larger.
    a = [2 * i for i in range(21)]
    b = [2 * i + 7 for i in range(21)]  # p near 0.1, where half a step moves it most
    u = sum(1 for x in a for y in b if x > y)
    n = m = 21
    mean, sd = n * m / 2, math.sqrt(n * m * (n + m + 1) / 12)
    assert (u, mean, sd**2) == (153, 220.5, 1580.25)
    z = (abs(u - mean) - 0.5) / sd  # half a step towards the mean: the discrete U read as a continuous score
    assert mann_whitney_p(a, b) == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-9)


def test_a_p_value_at_alpha_is_not_significant() -> None:
    throughput = next(m for m in COMPARED if m.path == "throughput_rps")
    assert _mark(throughput, 100.0, 60.0, 0.6, ALPHA) == "~"  # p < alpha is the rule, as every test reports it
    assert _mark(throughput, 100.0, 60.0, 0.6, math.nextafter(ALPHA, 0)) == "+"  # worse: throughput fell


@pytest.mark.parametrize(
    ("text", "base", "current", "fails"),
    [
        # 5 / 4 - 1 is 0.25 exactly in binary floating point: a change at the limit passes, one past it fails.
        ("pool.wait_ms.p95:+25%", 4.0, 5.0, False),
        ("pool.wait_ms.p95:+25%", 4.0, 5.0 + 1e-9, True),
        ("throughput_rps:-25%", 4.0, 3.0, False),
        ("throughput_rps:-25%", 4.0, 3.0 - 1e-9, True),
    ],
)
def test_a_gate_fails_past_its_limit_not_at_it(text: str, base: float, current: float, fails: bool) -> None:
    assert Gate.parse(text).fails(base, current) is fails


def test_an_intervals_histogram_holds_that_intervals_observations_only() -> None:
    run = Histogram()
    for seconds in (0.010, 0.020, 0.030):
        run.record(seconds)
    earlier = Histogram.from_json(run.to_json())
    for seconds in (0.040, 0.050):
        run.record(seconds)
    interval = run.minus(earlier)
    assert interval.count == 2 and interval.total == pytest.approx(0.090)
    assert sum(interval.buckets.values()) == 2 and interval.mean == pytest.approx(0.045)
    assert interval.percentile(50) == pytest.approx(0.040, rel=0.01)  # the smaller of the two, by nearest rank
