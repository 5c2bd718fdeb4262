"""One app's run as time series: its request log and samples on a clock that starts with its load, per second.

The report reads a Timeline per app and plots good and bad on the same axes; runs may be torn or partial.
The raw files are read through bench.results (a --workers run's request log is one file per Locust worker).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from bench.analysis import littleslaw
from bench.analysis.histbuckets import BucketCounts, summed
from bench.analysis.littleslaw import Windows, windows
from bench.results.requestlog import RequestLog, read_requests, split_dropped, split_unfinished
from bench.results.samples import SampleLog, read_samples

# The plotted gauges, and what Little's-law window needs: the table's pool waits are the window's, and bench run's
# digest hands the summary the time line's window (one read of the samples for both).
SAMPLE_COLUMNS = tuple(dict.fromkeys(("t", "phase", "pool_wait_p95_ms", "pool_checked_out", "pool_size", "idle_in_tx",
                                      "idle_in_tx_oldest_s", *littleslaw.COLUMNS)))
# A one-second bucket the load's end cuts short is scaled to a rate over the part inside the load; under half a
# second inside, a handful of responses would swing it either way, so it is left out rather than drawn.
MIN_SPAN_S = 0.5
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class PerSecond:
    """Responses per one-second bucket of completion time (start + response time), from the load's start to its
    end; ``x`` is each bucket's middle. Rates are NaN where the bucket is too short to judge (MIN_SPAN_S)."""

    x: FloatArray
    span_s: FloatArray  # seconds of the bucket inside the load: 1, but for the last one
    ok_rps: FloatArray  # successful responses / span_s
    failed_rps: FloatArray  # failed responses / span_s
    p50_ms: FloatArray  # nearest rank over every answered request in the bucket, failed ones included; NaN if none
    p95_ms: FloatArray
    p99_ms: FloatArray


@dataclass(frozen=True)
class Gauge:
    """A sampled gauge per one-second bucket of sample time: the mean, least and largest of its samples."""

    x: FloatArray
    mean: FloatArray
    low: FloatArray
    high: FloatArray


@dataclass(frozen=True)
class Timeline:
    """Times are seconds since this app's load started, so two apps run one after the other line up."""

    requests: pd.DataFrame  # end_s, response_time_ms, failed, name, error: answered rows (UNFINISHED left out)
    samples: pd.DataFrame  # x plus SAMPLE_COLUMNS but the wait histograms (``waits``)
    load_end_s: float | None  # the first cool-down sample; None if the run never got there
    end_s: float
    unreadable_requests: int = 0  # request-log rows that could not be read (a torn last line, garbled fields)
    unreadable_samples: int = 0  # samples.jsonl lines that were not a sample
    load_window_s: float | None = None  # summary.json's: seconds from the go to Locust's stop
    waits: BucketCounts | None = None  # the samples' per-interval wait histograms, grouped by second
    # Those inside Little's-law window added up, as summary.json's ``pool.wait_ms`` ranks them (else every one)
    window_waits: BucketCounts | None = None
    window: Windows | None = None  # Little's-law window, as summary.json's figures over it are found

    def with_load_window(self, load_window_s: float | None) -> Timeline:
        """This time line with summary.json's ``load_window_s`` (none where it is missing or not positive)."""
        return replace(self, load_window_s=load_window_s if load_window_s and load_window_s > 0 else None)

    @property
    def stop_s(self) -> float:
        """When the load stopped: ``load_window_s`` after its start when the summary gave it (the harness's own
        clock); else the first cool-down sample (a little late: the cool-down starts once Locust has exited), or
        the last response when the run never reached its cool-down."""
        if self.load_window_s is not None:
            return self.load_window_s
        if self.load_end_s is not None:
            return self.load_end_s
        return float(self.requests["end_s"].max()) if not self.requests.empty else 0.0

    def per_second(self, route: str | None = None) -> PerSecond:
        """One-second buckets over the load (of one route, or all): rates and latency percentiles."""
        rows = self.requests if route is None else self.requests[self.requests["name"] == route]
        stop = self.stop_s
        buckets = int(np.ceil(stop - 1e-9)) if stop > 0 else 0
        span = np.clip(stop - np.arange(buckets, dtype=float), 0.0, 1.0)
        inside = rows[(rows["end_s"] >= 0) & (rows["end_s"] < stop)]
        second = np.floor(inside["end_s"].to_numpy(dtype=float)).astype(np.int64)
        failed = inside["failed"].to_numpy() != 0
        judged = span >= MIN_SPAN_S
        with np.errstate(invalid="ignore", divide="ignore"):
            ok = np.where(judged, np.bincount(second[~failed], minlength=buckets)[:buckets] / span, np.nan)
            bad = np.where(judged, np.bincount(second[failed], minlength=buckets)[:buckets] / span, np.nan)
        ranks = ranked(second, inside["response_time_ms"].to_numpy(dtype=float), buckets, (50, 95, 99))
        p50, p95, p99 = (np.where(judged, r, np.nan) for r in ranks)
        return PerSecond(x=np.arange(buckets, dtype=float) + 0.5, span_s=span, ok_rps=ok, failed_rps=bad,
                         p50_ms=p50, p95_ms=p95, p99_ms=p99)

    def gauge(self, column: str) -> Gauge:
        """A samples.jsonl field per one-second bucket of sample time, load and cool-down; NaN where no sample in
        the second had it (no pool endpoint)."""
        present = self.samples[self.samples[column].notna() & (self.samples["x"] >= 0)]
        if present.empty:
            empty = np.array([], dtype=float)
            return Gauge(x=empty, mean=empty, low=empty, high=empty)
        second = np.floor(present["x"].to_numpy(dtype=float)).astype(np.int64)
        grouped = present[column].astype(float).groupby(second)
        index = pd.RangeIndex(0, int(second.max()) + 1)
        return Gauge(x=index.to_numpy(dtype=float) + 0.5, mean=grouped.mean().reindex(index).to_numpy(dtype=float),
                     low=grouped.min().reindex(index).to_numpy(dtype=float),
                     high=grouped.max().reindex(index).to_numpy(dtype=float))

    def wait_counts(self) -> BucketCounts | None:
        """The pool's waits that ``pool.wait_ms`` ranks: those inside Little's-law window (the requests answered in
        it), or every one where the samples make no window; None for runs recorded before the collector wrote
        the samples' wait histograms."""
        return self.window_waits

    def routes(self) -> list[str]:
        """The routes of the request log, busiest first."""
        return [str(r) for r in self.requests["name"].value_counts(sort=True).index]


def ranked(group: NDArray[np.int64], values: FloatArray, groups: int,
           percentiles: tuple[float, ...]) -> list[FloatArray]:
    """Nearest-rank percentiles of ``values`` per group 0..groups-1 (the harness's one rule, as
    bench.analysis.stats.nearest_rank), all groups at once; NaN for a group with no value."""
    out = [np.full(groups, np.nan) for _ in percentiles]
    keep = (group >= 0) & (group < groups)
    group, values = group[keep], values[keep]
    if group.size == 0:
        return out
    order = np.lexsort((values, group))
    group, values = group[order], values[order]
    counts = np.bincount(group, minlength=groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    has = counts > 0
    for p, result in zip(percentiles, out, strict=True):
        rank = np.maximum(1, np.ceil(p * counts / 100 - 1e-9)).astype(np.int64)
        result[has] = values[(starts + np.minimum(rank, counts) - 1)[has]]
    return out


def read_timeline(app_dir: Path, load_window_s: float | None = None) -> Timeline:
    """The app's time line, its clock started at its first load sample or first request, whichever came first
    (the harness's go, within a sampling interval)."""
    return timeline_of(read_samples(app_dir, SAMPLE_COLUMNS), read_requests(app_dir)).with_load_window(load_window_s)


def timeline_of(sample_log: SampleLog, request_log: RequestLog) -> Timeline:
    """``read_timeline`` from files already read, without a load window: ``bench run`` reads each app's once, for
    its summary and this, and hands the summary the time line's ``window``. ``sample_log`` holds SAMPLE_COLUMNS."""
    samples, (answered, _unfinished) = sample_log.frame, split_unfinished(request_log.frame)
    load = samples.loc[samples["phase"] == "load", "t"]
    starts = [float(load.min())] if not load.empty else []
    starts += [float(answered["start_epoch_s"].min())] if not answered.empty else []
    starts += [float(samples["t"].min())] if not samples.empty and not starts else []
    t0 = min(starts, default=0.0)
    requests = pd.DataFrame({
        "end_s": answered["start_epoch_s"] + answered["response_time_ms"] / 1000 - t0,
        # 0 or 1: a byte each, not eight, in the time line the report holds for every app.
        "response_time_ms": answered["response_time_ms"], "failed": answered["failed"].astype(np.int8),
        # A category: the per-route series compare routes a million rows at a time.
        "name": answered["name"].astype("category"), "error": answered["error"]})
    samples = samples.assign(x=samples["t"] - t0)
    cooldown = samples.loc[samples["phase"] == "cooldown", "x"]
    hists = samples[samples["wait_hist"].notna()]  # a SampleHistogram where a sample has one
    waits = BucketCounts.of_samples(hists["wait_hist"].tolist(), np.floor(hists["x"].to_numpy(dtype=float))) \
        if not hists.empty else None
    # The table's and the distribution's: the waits summary.json's pool.wait_ms ranks (its window, as the summary
    # finds it from the requests that were sent), else every one.
    window = windows(samples, split_dropped(answered)[0])
    waited = window.waits if window.waits is not None else summed(hists["wait_hist"].tolist())
    del hists, answered
    # Read into ``waits``, they are most of the samples' memory; a copy, so no view keeps them alive.
    samples = samples[[c for c in (*SAMPLE_COLUMNS, "x") if c != "wait_hist"]].copy()
    ends = [float(samples["x"].max())] if not samples.empty else []
    ends += [float(requests["end_s"].max())] if not requests.empty else []
    return Timeline(requests=requests.reset_index(drop=True), samples=samples, end_s=max(ends, default=0.0),
                    load_end_s=float(cooldown.min()) if not cooldown.empty else None,
                    unreadable_requests=request_log.unreadable, unreadable_samples=sample_log.unreadable,
                    waits=waits,
                    window_waits=BucketCounts.of_histogram(waited) if waited is not None else None, window=window)
