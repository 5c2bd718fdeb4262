"""The harness's statistics: one percentile rule, a rank test for repeated runs and an exact test for counts.

``bench.analysis.compare`` asks whether two runs differ before it calls a change real; the step cutter and the
time line take their percentiles from ``nearest_rank``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import overload

import numpy as np

# Up to this many values in both samples together the Mann-Whitney p is exact (every split of the pooled values
# counted, ties included); above it the normal approximation is within a few thousandths.
EXACT_MAX = 40


@overload
def nearest_rank(values: Sequence[float] | np.ndarray, p: float) -> float | None: ...


@overload
def nearest_rank(values: Sequence[float] | np.ndarray, p: Sequence[float]) -> list[float] | None: ...


def nearest_rank(values: Sequence[float] | np.ndarray, p: float | Sequence[float]) -> float | list[float] | None:
    """The p-th percentile (0..100) by nearest rank: the value at rank ceil(p·n / 100), a value some sample had.

    The one rule of every percentile the harness computes from raw values (bench.analysis.summary's latencies,
    the capacity steps, the pacer's lateness; the instrumentation's histograms rank the same way, by bucket).
    For n = 20 the 95th percentile is the 19th value, not the largest. ``p`` may be several percentiles: the
    values are sorted once and the percentiles come back as a list in ``p``'s order. None when there are no values.
    """
    ordered = np.sort(np.asarray(values, dtype=float))
    if ordered.size == 0:
        return None
    if isinstance(p, Sequence):
        return [_at_rank(ordered, q) for q in p]
    return _at_rank(ordered, p)


def _at_rank(ordered: np.ndarray, p: float) -> float:
    # p·n in integer-friendly order (95 * 20 / 100 is exactly 19; 0.95 * 20 need not be).
    rank = max(1, math.ceil(p * ordered.size / 100 - 1e-9))
    return float(ordered[min(rank, ordered.size) - 1])


def rounded(value: float, decimals: int) -> float:
    """``value`` to ``decimals`` places, and to 4 significant digits where that keeps more: summary.json's figures.
    A checkout that never queued waits 2 to 3 µs; at 3 decimals of a millisecond alone that reads up to 20% off
    (0.0025 ms as 0.002), where the histogram it comes from is within 0.5%, and a ratio to it is off as much."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, max(decimals, 3 - math.floor(math.log10(abs(value)))))


def ms(seconds: float) -> float:
    """Seconds as summary.json's milliseconds: 3 decimals, 4 significant digits under 1 ms (``rounded``)."""
    return rounded(seconds * 1000, 3)


def mann_whitney_p(a: list[float], b: list[float]) -> float:
    """Two-sided p-value that ``a`` and ``b`` come from the same distribution (Mann-Whitney U / Wilcoxon).

    Exact for up to EXACT_MAX values in all, ties included: the share of the C(n+m, n) ways of splitting the
    pooled values whose rank sum lies at least as far from its mean as the one observed.
    """
    n, m = len(a), len(b)
    if n == 0 or m == 0:
        return 1.0
    if n + m <= EXACT_MAX:
        return _exact_p(a, b)
    return _normal_p(a, b)


def _tied_ranks(pooled: list[float]) -> tuple[list[float], list[int], list[int]]:
    """The distinct values in ascending order, how often each occurs, and twice its mid-rank (an integer)."""
    values, counts = np.unique(np.asarray(pooled, dtype=float), return_counts=True)
    sizes = [int(c) for c in counts]
    doubled, below = [], 0
    for size in sizes:
        doubled.append(2 * below + size + 1)  # ranks below+1 .. below+size: mean (2·below + size + 1) / 2
        below += size
    return [float(v) for v in values], sizes, doubled


def _exact_p(a: list[float], b: list[float]) -> float:
    n, total = len(a), len(a) + len(b)
    values, sizes, doubled = _tied_ranks(a + b)
    rank_of = dict(zip(values, doubled, strict=True))
    observed = sum(rank_of[float(x)] for x in a)
    top = sum(d * s for d, s in zip(doubled, sizes, strict=True))
    # ways[k, w]: splits putting k values in ``a`` with doubled rank sum w (float64 holds C(40, 20) exactly).
    ways = np.zeros((n + 1, top + 1))
    ways[0, 0] = 1.0
    for size, rank in zip(sizes, doubled, strict=True):
        grown = np.zeros_like(ways)
        for k in range(min(size, n) + 1):
            grown[k:, k * rank:] += math.comb(size, k) * ways[: n + 1 - k, : top + 1 - k * rank]
        ways = grown
    mean = n * (total + 1)  # doubled
    sums = np.arange(top + 1)
    extreme = np.abs(sums - mean) >= abs(observed - mean)
    return float(min(1.0, ways[n, extreme].sum() / math.comb(total, n)))


def _normal_p(a: list[float], b: list[float]) -> float:
    """Normal approximation with continuity and tie correction, for samples too big to count exactly."""
    n, m = len(a), len(b)
    u = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in a for y in b)
    tie_term = sum(t**3 - t for t in _tied_ranks(a + b)[1] if t > 1)
    mean = n * m / 2
    var = n * m / 12 * ((n + m + 1) - tie_term / ((n + m) * (n + m - 1)))
    if var <= 0:
        return 1.0
    z = (abs(u - mean) - 0.5) / math.sqrt(var)
    return min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2)))


def fewest_deciding_runs(alpha: float) -> int:
    """The fewest runs per side with which the exact two-sided Mann-Whitney test can reach p < ``alpha``.

    Its most extreme outcome, every run of one side above every run of the other (no ties), has p = 2 / C(2n, n):
    0.1 at 3 vs 3, 0.029 at 4 vs 4. Below that n no difference, however large, can be significant.
    """
    n = 1
    while 2 / math.comb(2 * n, n) >= alpha:
        n += 1
    return n


def count_rise_p(base: float, current: float, base_exposure: float = 1.0, current_exposure: float = 1.0) -> float:
    """One-sided p that ``current`` counts events at a higher rate than ``base`` (both Poisson counts).

    The conditional binomial test: given n = base + current events in all, under equal rates the current
    side's share follows Binomial(n, π) with π its share of the exposure (requests made, say). p = P(X ≥ current).
    From 0 to k at equal exposure it is 0.5^k: 1, 2 or 4 events after none are chance, 5 are not (0.031).
    """
    return _binomial_tail(round(base), round(current), _share(base_exposure, current_exposure))


def count_change_p(base: float, current: float, base_exposure: float = 1.0, current_exposure: float = 1.0) -> float:
    """Two-sided p of the same test: twice the smaller tail, for a count that moved either way."""
    share = _share(base_exposure, current_exposure)
    b, c = round(base), round(current)
    rise = _binomial_tail(b, c, share)
    fall = _binomial_tail(c, b, 1 - share)  # P(X ≤ current) is the base side's upper tail
    return min(1.0, 2 * min(rise, fall))


def _share(base_exposure: float, current_exposure: float) -> float:
    if base_exposure > 0 and current_exposure > 0 and math.isfinite(base_exposure + current_exposure):
        return current_exposure / (base_exposure + current_exposure)
    return 0.5  # no exposure to weigh by: equal runs assumed


def _binomial_tail(other: int, k: int, share: float) -> float:
    """P(X ≥ k) for X ~ Binomial(other + k, share), summed in log space (counts may be large)."""
    n = other + k
    if k <= 0 or n == 0:
        return 1.0
    if share >= 1.0:
        return 1.0
    if share <= 0.0:  # no share of the events can fall to this side: k of them never do (log(0) below)
        return 0.0
    log_p, log_q = math.log(share), math.log1p(-share)

    def term(x: int) -> float:
        return math.exp(math.lgamma(n + 1) - math.lgamma(x + 1) - math.lgamma(n - x + 1) + x * log_p
                        + (n - x) * log_q)

    # Sum the tail that lies away from the mean, walking outwards until the terms no longer matter.
    upper = k > n * share
    xs = range(k, n + 1) if upper else range(k - 1, -1, -1)
    total = 0.0
    for x in xs:
        total += term(x)
        if term(x) < total * 1e-17:
            break
    return min(1.0, total) if upper else max(0.0, 1.0 - total)
