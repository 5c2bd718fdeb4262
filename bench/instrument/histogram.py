"""Log-bucketed histogram of durations: the one data structure every pool figure is kept in.

The pool observers record into it, the endpoint serialises it, and the harness merges and diffs snapshots.
"""

from __future__ import annotations

import math
from typing import Any

# Relative bucket width: percentiles are exact to within half of it (0.5%).
GROWTH = 1.01
# Durations below this share bucket -1 (they read as 0.0): nothing in a pool is that fast to measure.
MIN_S = 1e-6
_LOG_GROWTH = math.log(GROWTH)
_log = math.log


def bucket_index(seconds: float) -> int:
    """The bucket a duration falls in: -1 below ``MIN_S``, else ``floor(log_GROWTH(seconds / MIN_S))``."""
    return -1 if seconds < MIN_S else int(math.log(seconds / MIN_S) / _LOG_GROWTH)


def bucket_bounds(index: int) -> tuple[float, float]:
    """Lower and upper edge (seconds) of a bucket; bucket -1 spans 0 to ``MIN_S``."""
    if index < 0:
        return 0.0, MIN_S
    return MIN_S * GROWTH**index, MIN_S * GROWTH ** (index + 1)


class Histogram:
    """Log-bucketed histogram of durations in seconds: mergeable, bounded memory, 0.5% accuracy."""

    __slots__ = ("buckets", "count", "max", "total")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def record(self, seconds: float) -> None:
        self._add(-1 if seconds < MIN_S else int(_log(seconds / MIN_S) / _LOG_GROWTH), seconds)

    def record_both(self, part: Histogram, seconds: float) -> None:
        """``record`` in this histogram and in ``part`` (a total and its share by route, say), the bucket found once:
        the pool records its waits and holds both ways, at every checkout."""
        index = -1 if seconds < MIN_S else int(_log(seconds / MIN_S) / _LOG_GROWTH)  # bucket_index, inlined
        self._add(index, seconds)
        part._add(index, seconds)

    def _add(self, index: int, seconds: float) -> None:
        buckets = self.buckets
        buckets[index] = buckets.get(index, 0) + 1
        self.count += 1
        self.total += seconds
        self.max = max(self.max, seconds)

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "sum_s": self.total,
            "max_s": self.max,
            "buckets": {str(k): v for k, v in sorted(self.buckets.items())},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Histogram:
        hist = cls()
        hist.buckets = {int(k): int(v) for k, v in data.get("buckets", {}).items()}
        hist.count = int(data.get("count", 0))
        hist.total = float(data.get("sum_s", 0.0))
        hist.max = float(data.get("max_s", 0.0))
        return hist

    def merge(self, other: Histogram) -> None:
        for k, v in other.buckets.items():
            self.buckets[k] = self.buckets.get(k, 0) + v
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)

    def minus(self, earlier: Histogram) -> Histogram:
        """The observations recorded since ``earlier`` (a previous snapshot of this histogram)."""
        delta = Histogram()
        for k, v in self.buckets.items():
            d = v - earlier.buckets.get(k, 0)
            if d > 0:
                delta.buckets[k] = d
        delta.count = self.count - earlier.count
        delta.total = self.total - earlier.total
        delta.max = self.max
        return delta

    def percentile(self, q: float) -> float:
        """The q-th percentile (0..100) in seconds; 0.0 when empty."""
        if self.count == 0:
            return 0.0
        # q·n in integer-friendly order, as bench.analysis.stats.nearest_rank: 99.9 / 100 * 1000 is not 999.
        rank = max(1, math.ceil(q * self.count / 100.0 - 1e-9))
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                if index < 0:
                    return 0.0
                low, _ = bucket_bounds(index)
                return min(low * (1 + GROWTH) / 2, self.max)  # the bucket's midpoint
        return self.max

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0
