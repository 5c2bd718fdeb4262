"""Significance for repeated runs: a two-sided Mann-Whitney U test, exact for small samples.

``bench.analysis.compare`` asks whether two sets of per-repeat figures differ before it calls a change real.
"""

from __future__ import annotations

import math
from functools import lru_cache


def _u_statistic(a: list[float], b: list[float]) -> tuple[float, bool]:
    """U of sample ``a`` (ties count one half) and whether any tie occurred."""
    u = 0.0
    ties = False
    for x in a:
        for y in b:
            if x > y:
                u += 1
            elif x == y:
                u += 0.5
                ties = True
    return u, ties


@lru_cache(maxsize=256)
def _u_distribution(n: int, m: int) -> tuple[int, ...]:
    """Number of arrangements giving each U from 0 to n*m (no ties), by the classic recurrence."""
    # counts[i][j] as a polynomial over U, built row by row.
    table: dict[tuple[int, int], list[int]] = {}
    for i in range(n + 1):
        for j in range(m + 1):
            if i == 0 or j == 0:
                table[(i, j)] = [1]
                continue
            left = table[(i - 1, j)]  # the largest value is from a: adds j to U
            up = table[(i, j - 1)]
            size = i * j + 1
            row = [0] * size
            for u, count in enumerate(left):
                row[u + j] += count
            for u, count in enumerate(up):
                row[u] += count
            table[(i, j)] = row
    return tuple(table[(n, m)])


def mann_whitney_p(a: list[float], b: list[float]) -> float:
    """Two-sided p-value that ``a`` and ``b`` come from the same distribution."""
    n, m = len(a), len(b)
    if n == 0 or m == 0:
        return 1.0
    u, ties = _u_statistic(a, b)
    if not ties and n * m <= 400:
        dist = _u_distribution(n, m)
        total = sum(dist)
        low = min(u, n * m - u)
        tail = sum(dist[: int(low) + 1])
        return min(1.0, 2 * tail / total)
    # Normal approximation with continuity and tie correction for the large or tied case.
    tie_term = sum(t**3 - t for t in _tie_sizes(a + b))
    mean = n * m / 2
    var = n * m / 12 * ((n + m + 1) - tie_term / ((n + m) * (n + m - 1)))
    if var <= 0:
        return 1.0
    z = (abs(u - mean) - 0.5) / math.sqrt(var)
    return min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2)))


def _tie_sizes(values: list[float]) -> list[int]:
    counts: dict[float, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return [c for c in counts.values() if c > 1]
