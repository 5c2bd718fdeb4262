"""The rank test and the count tests (bench.analysis.stats) against computations of their own.

The Mann-Whitney p is recomputed by enumerating every split of the pooled values (exact) and from the rank
sum's permutation variance taken from the mid-ranks themselves (normal); the binomial tails are summed in exact
fractions. The edges are covered as well: empty and one-value samples, exactly EXACT_MAX values, every value
tied, tails far below the float's resolution near 1, exposures of 0 or a fraction, and a count that did not move.
"""

from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction

import pytest

from bench.analysis.stats import EXACT_MAX, count_change_p, count_rise_p, fewest_deciding_runs, mann_whitney_p


def _mid_ranks(pooled: list[float]) -> list[Fraction]:
    """Each value's rank, ties sharing the mean of their ranks: (values below) + (values equal + 1) / 2."""
    return [Fraction(sum(y < x for y in pooled)) + Fraction(sum(y == x for y in pooled) + 1, 2) for x in pooled]


def _enumerated_p(a: list[float], b: list[float]) -> float:
    """The exact two-sided p: the share of every way of choosing len(a) of the pooled values whose rank sum lies
    at least as far from its mean as a's."""
    pooled = a + b
    ranks = _mid_ranks(pooled)
    mean = Fraction(len(a) * (len(pooled) + 1), 2)
    observed = abs(sum(ranks[: len(a)]) - mean)
    splits = list(itertools.combinations(range(len(pooled)), len(a)))
    extreme = sum(abs(sum(ranks[i] for i in split) - mean) >= observed for split in splits)
    return extreme / len(splits)


def _normal_p(a: list[float], b: list[float]) -> float:
    """Normal approximation from first principles: U from a's rank sum, its variance the permutation variance of
    a rank sum (n·m / (N·(N - 1)) times the rank's sum of squared deviations, which holds with ties), and a
    continuity correction of 1/2 towards the mean."""
    n, m = len(a), len(b)
    pooled = a + b
    total = n + m
    ranks = _mid_ranks(pooled)
    u = sum(ranks[:n]) - Fraction(n * (n + 1), 2)
    centre = Fraction(total + 1, 2)
    variance = Fraction(n * m, total * (total - 1)) * sum((r - centre) ** 2 for r in ranks)
    if variance == 0:
        return 1.0
    z = (abs(u - Fraction(n * m, 2)) - Fraction(1, 2)) / math.sqrt(variance)
    return min(1.0, math.erfc(max(float(z), 0.0) / math.sqrt(2)))


def _upper_tail(n: int, k: int, share: Fraction) -> Fraction:
    """P(X >= k), X ~ Binomial(n, share), in exact fractions."""
    return sum((math.comb(n, x) * share**x * (1 - share) ** (n - x) for x in range(k, n + 1)), Fraction(0))


def test_a_sample_with_no_values_decides_nothing() -> None:
    assert mann_whitney_p([], [1.0, 2.0]) == 1.0
    assert mann_whitney_p([3.0], []) == 1.0
    assert mann_whitney_p([], []) == 1.0


@pytest.mark.parametrize(("a", "b"), [([0.0], [1.0, 2.0, 3.0]), ([1.0, 2.0, 3.0], [0.0]), ([2.0], [1.0, 2.0, 3.0])])
def test_one_value_against_several_is_counted_exactly(a: list[float], b: list[float]) -> None:
    # One value below three: it has rank 1 of 4, and ranks 1 and 4 lie as far from the mean: p = 2/4.
    assert mann_whitney_p(a, b) == pytest.approx(_enumerated_p(a, b), rel=1e-12)


def test_exact_up_to_and_including_exact_max_values() -> None:
    # 1 vs 39 is EXACT_MAX values in all and 40 splits to count; the lowest value apart from the rest: p = 2/40.
    # The normal approximation, which starts one value later, says 0.0998 here.
    a, b = [0.0], [float(v) for v in range(1, EXACT_MAX)]
    assert len(a + b) == EXACT_MAX
    assert mann_whitney_p(a, b) == pytest.approx(2 / 40, rel=1e-12) == _enumerated_p(a, b)
    assert _normal_p(a, b) == pytest.approx(0.0998, abs=5e-4)


@pytest.mark.parametrize("seed", range(6))
def test_past_exact_max_the_normal_approximation_is_the_textbook_one_ties_included(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(1, 30)
    m = EXACT_MAX + 1 - n + rng.randint(0, 30)
    spread = rng.choice([3, 6, 50])  # 3 distinct values: ties everywhere; 50: few
    shift = rng.choice([0, 0, 1])  # most samples alike (p well above 0.3), some apart
    a = [float(rng.randint(0, spread) + shift) for _ in range(n)]
    b = [float(rng.randint(0, spread)) for _ in range(m)]
    assert mann_whitney_p(a, b) == pytest.approx(_normal_p(a, b), rel=1e-9)


def test_the_normal_approximation_near_the_mean_and_with_every_value_tied() -> None:
    # U lies just off its mean: z is under 1 and p near 1, which a floor on z would pull down.
    a = [float(v % 7) for v in range(25)]
    b = [float((v + 3) % 7) for v in range(24)]
    p = mann_whitney_p(a, b)
    assert 0.3 < p < 1.0 and p == pytest.approx(_normal_p(a, b), rel=1e-9)
    assert mann_whitney_p([4.0] * 25, [4.0] * 25) == 1.0  # no variance at all: nothing to decide


@pytest.mark.parametrize("alpha", [0.01, 0.03, 0.05, 0.1, 0.2, 0.5, 0.9])
def test_fewest_deciding_runs_is_where_the_exact_test_first_can_decide(alpha: float) -> None:
    # Every run of one side above every run of the other: the most extreme outcome n runs per side can give.
    def extreme_p(n: int) -> float:
        return mann_whitney_p([float(v) for v in range(n)], [float(v) for v in range(n, 2 * n)])

    fewest = next(n for n in range(1, 20) if extreme_p(n) < alpha)
    assert fewest_deciding_runs(alpha) == fewest


@pytest.mark.parametrize(("base", "current"), [(0, 60), (0, 200), (3, 150), (40, 400)])
def test_a_far_tail_keeps_its_size_below_the_resolution_near_one(base: int, current: int) -> None:
    # 0 to 60 events at equal exposure: 0.5^60 = 8.7e-19, which 1 - P(X < 60) would round to 0.
    exact = _upper_tail(base + current, current, Fraction(1, 2))
    assert count_rise_p(base, current) == pytest.approx(float(exact), rel=1e-9, abs=0)
    assert count_change_p(base, current) == pytest.approx(float(2 * exact), rel=1e-9, abs=0)


def test_no_rise_and_no_move_are_p_one() -> None:
    assert count_rise_p(5, 0) == 1.0  # no event on the current side: nothing rose
    assert count_change_p(5, 5) == 1.0  # twice a tail above one half is capped
    assert count_change_p(0, 0) == 1.0


@pytest.mark.parametrize(("base_exposure", "current_exposure"), [(0.25, 0.75), (1.5, 0.5), (3.0, 1.0)])
def test_exposures_weigh_the_sides_fractions_included(base_exposure: float, current_exposure: float) -> None:
    share = Fraction(current_exposure) / (Fraction(base_exposure) + Fraction(current_exposure))
    exact = _upper_tail(3 + 9, 9, share)
    assert count_rise_p(3, 9, base_exposure, current_exposure) == pytest.approx(float(exact), rel=1e-9, abs=0)


@pytest.mark.parametrize(
    ("base_exposure", "current_exposure"),
    [(1.0, 0.0), (0.0, 1.0), (0.0, 0.0), (math.inf, 1.0), (1e308, 1e308)],  # the last: a sum past the float's range
)
def test_a_side_without_a_usable_exposure_weighs_the_sides_equally(base_exposure: float, current_exposure: float) -> None:
    assert count_rise_p(1, 3, base_exposure, current_exposure) == count_rise_p(1, 3)
    assert count_change_p(1, 3, base_exposure, current_exposure) == count_change_p(1, 3)


def test_a_share_that_rounds_to_all_or_nothing_is_certain_not_an_error() -> None:
    # The base side's exposure is lost next to the current's (share 1.0 in floating point): every event belongs to
    # the current side, so a rise is certain (p 1) and the base side's 3 events could not have happened (p 0).
    assert count_rise_p(3, 2, 1e-300, 1.0) == 1.0
    assert count_change_p(3, 2, 1e-300, 1.0) == 0.0
