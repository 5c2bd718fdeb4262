"""One time window of a capacity sweep's samples: histograms merged, gauges averaged, counters' growth.

bench.analysis.steps reads samples.jsonl (through bench.results.samples) and cuts one window per load step here.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.instrument import Histogram
from bench.results.samples import HISTOGRAM_FIELDS, SampleHistogram

# The fields bench.analysis.steps cuts per-step figures from (bench.run.detail_collector writes the histograms).
COLUMNS = ("t", "phase", "pool_checked_out", "pool_pending", "pool_timeouts", "active", "idle_in_tx",
           "app_cpu_s", "app_loops", "host_cpu", "host_cores", *HISTOGRAM_FIELDS)


@dataclass(frozen=True)
class WindowSamples:
    """The samples inside one time window, and the last one before it (the base for counter deltas)."""

    rows: pd.DataFrame
    before: pd.Series | None

    def merged(self, column: str) -> Histogram:
        total = Histogram()
        for value in self.rows[column]:
            if isinstance(value, SampleHistogram):
                total.merge(Histogram.from_json(value.to_json()))
        return total

    def mean(self, column: str) -> float | None:
        values = pd.to_numeric(self.rows[column], errors="coerce").dropna()
        return float(values.mean()) if not values.empty else None

    def rate(self, column: str) -> float | None:
        """Growth of a cumulative counter per second of wall time across the window."""
        values = self.rows[["t", column]].dropna()
        if self.before is not None and pd.notna(self.before.get(column)):
            values = pd.concat([pd.DataFrame([{"t": self.before["t"], column: self.before[column]}]), values])
        if len(values) < 2:
            return None
        span = float(values["t"].iloc[-1] - values["t"].iloc[0])
        return float(values[column].iloc[-1] - values[column].iloc[0]) / span if span > 0 else None

    def growth(self, column: str) -> float | None:
        values = self.rows[column].dropna()
        base = self.before.get(column) if self.before is not None else None
        if values.empty:
            return None
        start = float(base) if base is not None and pd.notna(base) else float(values.iloc[0])
        return float(values.iloc[-1]) - start


def window(samples: pd.DataFrame, start: float, end: float) -> WindowSamples:
    inside = samples[(samples["t"] >= start) & (samples["t"] < end)]
    earlier = samples[samples["t"] < start]
    return WindowSamples(rows=inside, before=earlier.iloc[-1] if not earlier.empty else None)
