"""Whole-run distributions for the report: a percentile ladder, log-binned histograms, failures by message.

bench.render.run_report tabulates and plots these from each app's Timeline (requests.csv, samples.jsonl).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from bench.analysis.histbuckets import BucketCounts

if TYPE_CHECKING:  # the terminal imports this before a run's load: pandas loads with the data it reads
    import pandas as pd

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

# The percentile table's columns: Locust's and k6's usual ones, then the largest.
LADDER: tuple[float, ...] = (50, 75, 90, 95, 99, 99.9)
BINS_PER_DECADE = 10
# A failure message names the URL it failed on (Locust's FastHttpUser: "LocustBadStatusCode: URL
# http://host/items/995: code=500"): blanked, so one error over many items is one row, as Locust groups them.
_URL = re.compile(r"https?://\S+?(:?)(?=\s|$)")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")


@dataclass(frozen=True)
class Ladder:
    """Percentiles (LADDER, in ms) and the largest value of one distribution; None where it has no value."""

    values: tuple[float | None, ...]
    max: float | None
    count: int


@dataclass(frozen=True)
class Binned:
    """A distribution over log-spaced bins: each bin's share of all values and its count."""

    edges_ms: FloatArray  # BINS_PER_DECADE bins per decade; values below the first edge count in the first bin
    share: FloatArray
    count: IntArray


@dataclass(frozen=True)
class FailureGroup:
    """Failed requests of one route with one error message, as Locust's Failures table groups them."""

    route: str
    message: str
    occurrences: int
    share: float  # of the route's answered requests
    first_s: float  # completion time of the first one, seconds since the load started


def ladder(values: FloatArray) -> Ladder:
    """Nearest rank (rank ceil(p·n / 100) of the n sorted: a value some request had), as nearest_rank does."""
    ordered = np.sort(np.asarray(values, dtype=float))
    n = ordered.size
    if n == 0:
        return Ladder(values=tuple(None for _ in LADDER), max=None, count=0)
    ranks = [max(1, math.ceil(p * n / 100 - 1e-9)) for p in LADDER]
    return Ladder(values=tuple(float(ordered[min(r, n) - 1]) for r in ranks), max=float(ordered[-1]), count=n)


def bucket_ladder(counts: BucketCounts) -> Ladder:
    """The same ladder from the pool's histogram buckets (bucket midpoints: within 0.5% of the true value)."""
    if counts.total == 0:
        return Ladder(values=tuple(None for _ in LADDER), max=None, count=0)
    values = tuple(None if (v := counts.percentile(p)) is None else v * 1000 for p in LADDER)
    return Ladder(values=values, max=counts.max_s * 1000, count=counts.total)


def log_edges(values_ms: list[FloatArray]) -> FloatArray:
    """Bin edges covering every positive value of every distribution given (the first edge at or under the
    smallest 1st percentile, so a few near-zero values do not stretch the axis)."""
    present = [v[v > 0] for v in values_ms if v.size and (v > 0).any()]
    if not present:
        return np.array([0.1, 1.0])
    return edges_between(min(float(np.quantile(v, 0.01, method="inverted_cdf")) for v in present),
                         max(float(v.max()) for v in present))


def edges_between(low_ms: float, high_ms: float) -> FloatArray:
    """Edges at 10^(k / BINS_PER_DECADE) ms from at or under ``low_ms`` to past ``high_ms``."""
    low_ms, high_ms = max(low_ms, 1e-3), max(high_ms, low_ms, 1e-3)
    first = math.floor(math.log10(low_ms) * BINS_PER_DECADE + 1e-9)
    last = max(first + 1, math.ceil(math.log10(high_ms) * BINS_PER_DECADE - 1e-9))
    if 10 ** (last / BINS_PER_DECADE) <= high_ms:
        last += 1
    return np.asarray([10 ** (k / BINS_PER_DECADE) for k in range(first, last + 1)])


def binned(values_ms: FloatArray, edges_ms: FloatArray) -> Binned:
    """Each value's bin [edge, next edge); those under the first edge in the first bin, past the last in the last."""
    index = np.clip(np.searchsorted(edges_ms, values_ms, side="right") - 1, 0, len(edges_ms) - 2)
    count = np.bincount(index, minlength=len(edges_ms) - 1).astype(np.int64)
    total = count.sum()
    return Binned(edges_ms=edges_ms, share=count / total if total else count.astype(float), count=count)


def bucket_binned(counts: BucketCounts, edges_ms: FloatArray) -> Binned:
    share, count = counts.shares(edges_ms)
    return Binned(edges_ms=edges_ms, share=share, count=count)


def failure_groups(requests: pd.DataFrame) -> list[FailureGroup]:
    """Failed rows by (route, error message), most frequent first: the error column of requests.csv."""
    failed = requests[requests["failed"] != 0]
    if failed.empty:
        return []
    per_route = requests.groupby("name").size()
    messages = failed["error"].fillna("").astype(str).map(failure_message)
    grouped = failed.assign(message=messages).groupby(["name", "message"], sort=False)
    table = grouped.agg(occurrences=("failed", "size"), first_s=("end_s", "min")).reset_index()
    table = table.sort_values(["occurrences", "name", "message"], ascending=[False, True, True], kind="stable")
    return [FailureGroup(route=str(r.name), message=str(r.message), occurrences=int(r.occurrences),
                         share=int(r.occurrences) / int(per_route[r.name]), first_s=float(r.first_s))
            for r in table.itertuples(index=False)]


def failure_message(error: str) -> str:
    """The error column as the failures table groups it: URLs and object addresses blanked."""
    text = _ADDRESS.sub("0x…", _URL.sub(r"<url>\1", error.strip()))
    return text or "(no message)"
