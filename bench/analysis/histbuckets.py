"""Many of the pool's log-bucketed histograms at once, as numpy arrays: per-second percentiles and a whole run's.

bench.analysis.timeline builds one from the samples' per-interval wait histograms (``SampleHistogram``); the report
plots and tabulates it. Percentiles follow bench.instrument's Histogram.percentile exactly (rank by bucket, the
bucket's midpoint). ``summed`` adds up a stretch of those intervals into one Histogram (bench.analysis.littleslaw:
the waits inside Little's-law window).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bench.instrument.histogram import GROWTH, MIN_S, Histogram
from bench.results.samples import SampleHistogram

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.signedinteger[Any]]
_DENSE_BUCKETS = 100_000  # ``summed`` counts bucket indexes this far apart in one array
_SUMMED_AT_ONCE = 4096  # samples


@dataclass(frozen=True)
class BucketCounts:
    """Observations by (group, bucket): one entry per bucket of each histogram, tagged with its group (a second).
    The samples' are int32 (an hour's is a million of each, kept for the report); one histogram's are int64."""

    group: IntArray
    bucket: IntArray  # the instrumentation's bucket index; -1 holds everything under MIN_S
    count: IntArray
    group_max_s: dict[int, float]  # the largest observation of each group, which caps its top bucket

    @classmethod
    def of_samples(cls, hists: list[Any], groups: FloatArray) -> BucketCounts:
        """The samples' histogram fields (``SampleHistogram``; anything else is left out) and the group of each."""
        keys: list[str] = []
        counts: list[int] = []
        sizes: list[int] = []
        kept: list[int] = []
        top: dict[int, float] = {}
        # One pass of C-level extends: an hour of samples holds about a million buckets.
        for hist, g in zip(hists, groups.astype(np.int64).tolist(), strict=True):
            if not isinstance(hist, SampleHistogram) or not hist.counts:
                continue
            keys.append(hist.keys)
            counts.extend(hist.counts)
            sizes.append(len(hist.counts))
            kept.append(g)
            high = float(hist.max_s or 0.0)
            if high > top.get(g, 0.0):
                top[g] = high
        return cls(group=np.repeat(np.asarray(kept, dtype=np.int32), np.asarray(sizes, dtype=np.int64)),
                   # numpy's text parser reads a million bucket keys in milliseconds; int() on each takes 200
                   bucket=np.fromstring(" ".join(keys), dtype=np.int32, sep=" ") if keys else np.zeros(0, np.int32),
                   count=np.asarray(counts, dtype=np.int32), group_max_s=top)

    @classmethod
    def of_histogram(cls, hist: Histogram) -> BucketCounts:
        """One histogram, as one group (0)."""
        buckets = sorted(hist.buckets)
        return cls(group=np.zeros(len(buckets), dtype=np.int64), bucket=np.asarray(buckets, dtype=np.int64),
                   count=np.asarray([hist.buckets[b] for b in buckets], dtype=np.int64), group_max_s={0: hist.max})

    @property
    def total(self) -> int:
        return int(self.count.sum())

    @property
    def max_s(self) -> float:
        return max(self.group_max_s.values(), default=0.0)

    @cached_property
    def _merged(self) -> tuple[IntArray, IntArray]:
        """Every group's buckets together: (bucket, count), ascending by bucket."""
        buckets, inverse = np.unique(self.bucket, return_inverse=True)
        return buckets, np.bincount(inverse, weights=self.count, minlength=buckets.size).astype(np.int64)

    def percentile(self, q: float) -> float | None:
        """The q-th percentile over every group together, in seconds; None when there is no observation."""
        buckets, counts = self._merged
        total = int(counts.sum())
        if total == 0:
            return None
        rank = max(1, math.ceil(q * total / 100.0 - 1e-9))  # as Histogram.percentile
        index = int(buckets[int(np.searchsorted(np.cumsum(counts), rank))])
        return 0.0 if index < 0 else min(MIN_S * GROWTH**index * (1 + GROWTH) / 2, self.max_s)

    def per_group(self, q: float, groups: int) -> FloatArray:
        """The q-th percentile of each group 0..groups-1, in seconds; NaN for a group with no observation."""
        out = np.full(groups, np.nan)
        keep = (self.group >= 0) & (self.group < groups) & (self.count > 0)
        if not keep.any():
            return out
        key = self.group[keep].astype(np.int64) * (1 << 32) + (self.bucket[keep].astype(np.int64) + 1)
        keys, inverse = np.unique(key, return_inverse=True)
        counts = np.bincount(inverse, weights=self.count[keep]).astype(np.int64)
        group, bucket = keys >> 32, (keys & ((1 << 32) - 1)) - 1
        totals = np.bincount(group, weights=counts, minlength=groups).astype(np.int64)
        # As Histogram.percentile: rank ceil(q/100 · n), the first bucket whose running count reaches it.
        rank = np.maximum(1, np.ceil(q * totals / 100.0 - 1e-9)).astype(np.int64)
        running = np.cumsum(counts) - np.concatenate([[0], np.cumsum(totals)])[group]
        reached = np.flatnonzero(running >= rank[group])
        first = reached[np.unique(group[reached], return_index=True)[1]]
        low = np.where(bucket[first] < 0, 0.0, MIN_S * GROWTH ** bucket[first].astype(float))
        mid = np.where(bucket[first] < 0, 0.0, low * (1 + GROWTH) / 2)
        caps = np.asarray([self.group_max_s.get(int(g), np.inf) for g in group[first]])
        out[group[first]] = np.minimum(mid, caps)
        return out

    def shares(self, edges_ms: FloatArray) -> tuple[FloatArray, IntArray]:
        """(share, count) of every observation per display bin [edges_ms[i], edges_ms[i+1]), by each bucket's
        midpoint; those under the first edge count in the first bin and those past the last in the last."""
        mid_ms = np.where(self.bucket < 0, 0.0, MIN_S * GROWTH ** self.bucket.astype(float) * (1 + GROWTH) / 2) * 1000
        index = np.clip(np.searchsorted(edges_ms, mid_ms, side="right") - 1, 0, len(edges_ms) - 2)
        counts = np.bincount(index, weights=self.count, minlength=len(edges_ms) - 1).astype(np.int64)
        total = counts.sum()
        return (counts / total if total else counts.astype(float)), counts


def summed(hists: list[Any]) -> Histogram | None:
    """The samples' histogram fields (``SampleHistogram``; anything else is left out) added up into one Histogram;
    None when none is a histogram. Its max is the largest ``max_s``: the collector writes the pool's running
    maximum there, so it is the largest value up to the last interval's end."""
    present = [h for h in hists if isinstance(h, SampleHistogram)]
    if not present:
        return None
    out = Histogram()
    # A few thousand samples at a time: an hour's million bucket counts at once would cost tens of MiB.
    for first in range(0, len(present), _SUMMED_AT_ONCE):
        for bucket, count in _bucket_totals(present[first:first + _SUMMED_AT_ONCE]):
            out.buckets[bucket] = out.buckets.get(bucket, 0) + count
    out.count = sum(out.buckets.values())
    out.total = float(sum(h.sum_s for h in present))
    out.max = max(float(h.max_s or 0.0) for h in present)
    return out


def _bucket_totals(hists: list[SampleHistogram]) -> zip[tuple[int, int]]:
    """(bucket, count) over ``hists``: every key and count in one C-level join and one chain, not a loop."""
    keys = np.fromstring(" ".join([h.keys for h in hists]), dtype=np.int64, sep=" ")
    counts = np.fromiter(itertools.chain.from_iterable([h.counts for h in hists]), dtype=np.int64, count=keys.size)
    if not keys.size:
        return zip([], [])
    # Bucket indexes are small (a day is bucket 3,000) and at least -1: counted by offset, no sort of the keys.
    low = min(int(keys.min()), -1)
    if int(keys.max()) - low > _DENSE_BUCKETS:  # not the pool's histogram: sort them after all
        buckets, inverse = np.unique(keys, return_inverse=True)
        merged = np.bincount(inverse, weights=counts, minlength=buckets.size).astype(np.int64)
    else:
        dense = np.bincount(keys - low, weights=counts).astype(np.int64)
        buckets = np.flatnonzero(dense)
        merged, buckets = dense[buckets], buckets + low
    return zip(buckets.tolist(), merged.tolist(), strict=True)
