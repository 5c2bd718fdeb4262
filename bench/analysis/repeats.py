"""How many runs per side a comparison needs before its tests can tell a change from chance.

bench.analysis.compare asks it for every figure whose verdict rests on too few samples, and prints the answer as
the ``--repeat`` that would decide it. Both answers hold each side's runs as they are now, only more of them.
"""

from __future__ import annotations

from collections.abc import Sequence

from bench.analysis.stats import count_change_p, count_rise_p, fewest_deciding_runs, mann_whitney_p, nearest_rank

# bench run / bench ab take at most this many repeats: past it no repeat is suggested for a figure the rank test
# judges. A count's totals are cheap to scale, so its search goes further (a difference that needs more runs than
# that is not worth chasing).
MOST_RANKED = 50
MOST_COUNTED = 1000


def ranked_runs_to_decide(
    base: Sequence[float], current: Sequence[float], alpha: float, most: int = MOST_RANKED
) -> int | None:
    """The fewest runs per side at which the two-sided Mann-Whitney test would call the sides different, were each
    side's runs spread as they are now: each side drawn at n evenly spaced quantiles of its runs (nearest rank,
    the harness's percentile rule), n from the fewest that can decide at all up to ``most``. None when no n does,
    or when a side has fewer than 2 runs to show its spread (one run says nothing of it)."""
    if len(base) < 2 or len(current) < 2:
        return None
    for n in range(max(len(base), len(current), fewest_deciding_runs(alpha)), most + 1):
        if mann_whitney_p(_spread(base, n), _spread(current, n)) < alpha:
            return n
    return None


def _spread(values: Sequence[float], n: int) -> list[float]:
    """n values spread as ``values`` are: the percentiles 100·(i + ½)/n, i = 0..n-1."""
    ranked = [nearest_rank(values, 100 * (i + 0.5) / n) for i in range(n)]
    return [v for v in ranked if v is not None]


def counted_runs_to_decide(
    totals: tuple[float, float],
    requests: tuple[float, float],
    runs: tuple[int, int],
    alpha: float,
    most: int = MOST_COUNTED,
) -> int | None:
    """The fewest runs per side at which the exact count test would call the two sides' rates different, were each
    side's events and requests per run what they are now: one-sided from a base of 0, two-sided otherwise (as
    bench compare tests them). None when the counts already decide, or no n up to ``most`` does."""
    test = count_rise_p if totals[0] == 0 else count_change_p

    def decides(n: int) -> bool:
        b, c = (totals[i] * n / runs[i] for i in (0, 1))
        return test(b, c, requests[0] * n / runs[0], requests[1] * n / runs[1]) < alpha

    low = max(runs)
    if decides(low):  # the side with fewer runs was all that was short
        return low if min(runs) < low else None
    high = low * 2
    while not decides(high):
        if high >= most:
            return None
        low, high = high, min(high * 2, most)
    while high - low > 1:  # more runs at the same rates only lower p: the first n that decides
        mid = (low + high) // 2
        low, high = (low, mid) if decides(mid) else (mid, high)
    return high
