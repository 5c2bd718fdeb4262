"""One app's run as time series: its request log and samples on a clock that starts with its load.

The report reads a Timeline per app and plots good and bad on the same axes; runs may be torn or partial.
The raw files are read through bench.results (a --workers run's request log is one file per Locust worker).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from bench.analysis.stats import nearest_rank
from bench.results.requestlog import read_requests
from bench.results.samples import read_samples

SAMPLE_COLUMNS = ("t", "phase", "pool_wait_p95_ms", "pool_checked_out", "pool_size", "idle_in_tx",
                  "idle_in_tx_oldest_s")
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Timeline:
    """Times are seconds since this app's load started, so two apps run one after the other line up."""

    requests: pd.DataFrame  # end_s, response_time_ms, failed
    samples: pd.DataFrame  # x plus SAMPLE_COLUMNS
    load_end_s: float | None  # when the cool-down began; None if the run never got there
    end_s: float
    unreadable_requests: int = 0  # request-log rows that could not be read (a torn last line, garbled fields)
    unreadable_samples: int = 0  # samples.jsonl lines that were not a sample

    def per_second(self) -> pd.DataFrame:
        """Successful responses per 1 s bucket of completion time: count and p95 latency (NaN if none)."""
        ok = self.requests[(self.requests["failed"] == 0) & (self.requests["end_s"] >= 0)]
        if ok.empty:
            return pd.DataFrame({"x": [], "rps": [], "p95_ms": []}, dtype=float)
        second = np.floor(ok["end_s"].to_numpy()).astype(np.int64)
        grouped = ok["response_time_ms"].groupby(second)
        # Nearest rank, the harness's one percentile rule (pandas' "higher" would give the maximum of 20).
        p95 = grouped.agg(lambda v: nearest_rank(v.to_numpy(dtype=float), 95))
        index = pd.RangeIndex(0, int(second.max()) + 1)
        return pd.DataFrame({
            "x": index.to_numpy(dtype=float) + 0.5,
            "rps": grouped.size().reindex(index, fill_value=0).to_numpy(dtype=float),
            "p95_ms": p95.reindex(index).to_numpy(dtype=float),
        })

    def sampled(self, column: str) -> tuple[FloatArray, FloatArray]:
        """(x, y) of one samples.jsonl field; NaN where the sample lacked it (no pool endpoint, no checkout)."""
        return (self.samples["x"].to_numpy(dtype=float), self.samples[column].to_numpy(dtype=float))


def read_timeline(app_dir: Path) -> Timeline:
    sample_log, request_log = read_samples(app_dir, SAMPLE_COLUMNS), read_requests(app_dir)
    samples, requests = sample_log.frame, request_log.frame
    load = samples.loc[samples["phase"] == "load", "t"]
    starts = [float(load.min())] if not load.empty else []
    starts += [float(requests["start_epoch_s"].min())] if not requests.empty else []
    starts += [float(samples["t"].min())] if not samples.empty and not starts else []
    t0 = min(starts, default=0.0)
    requests = pd.DataFrame({
        "end_s": requests["start_epoch_s"] + requests["response_time_ms"] / 1000 - t0,
        "response_time_ms": requests["response_time_ms"], "failed": requests["failed"]})
    samples = samples.assign(x=samples["t"] - t0)
    cooldown = samples.loc[samples["phase"] == "cooldown", "x"]
    ends = [float(samples["x"].max())] if not samples.empty else []
    ends += [float(requests["end_s"].max())] if not requests.empty else []
    return Timeline(requests=requests, samples=samples, end_s=max(ends, default=0.0),
                    load_end_s=float(cooldown.min()) if not cooldown.empty else None,
                    unreadable_requests=request_log.unreadable, unreadable_samples=sample_log.unreadable)
