"""Samples detailed enough to cut per-step figures from: each interval's wait and hold histograms, loop lag, CPU.

`bench capacity` runs its sweeps with ``DetailCollector`` (through ``RunHooks``); bench.analysis.steps reads what it wrote.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from bench.errors import UsageError
from bench.instrument import Histogram
from bench.run.collector import Collector

# sample field -> where its cumulative histogram is in the pool endpoint's JSON
HISTOGRAMS = {"wait_hist": ("wait_time",), "hold_hist": ("use_time",), "lag_hist": ("loop", "lag")}
COLUMNS = ("t", "phase", "pool_checked_out", "pool_pending", "pool_timeouts", "active", "idle_in_tx",
           "app_cpu_s", "host_cpu", "host_cores", *HISTOGRAMS)


class DetailCollector(Collector):
    """The run's collector, plus per-sample histogram deltas (exact percentiles over any window) and CPU."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._previous: dict[str, Histogram] = {}
        self._seen: dict[str, Any] | None = None
        psutil.cpu_percent(None)  # the first call only sets the reference point

    async def sample(self) -> dict[str, Any]:
        sample = await super().sample()
        pool = self.last_pool
        if pool is not None and pool is not self._seen:  # a failed fetch leaves the last one: count it once
            self._seen = pool
            sample.update(self._details(pool))
        busy = psutil.cpu_percent(None) / 100
        sample["host_cpu"] = round(busy, 4)
        sample["host_cores"] = round(busy * (psutil.cpu_count() or 1), 3)  # comparable with the app's CPU
        return sample

    def _details(self, pool: dict[str, Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for name, keys in HISTOGRAMS.items():
            node: Any = pool
            for key in keys:
                node = node.get(key) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                continue
            hist = Histogram.from_json(node)
            previous = self._previous.get(name)
            self._previous[name] = hist
            fields[name] = (hist if previous is None else hist.minus(previous)).to_json()
        loop = pool.get("loop")
        if isinstance(loop, dict) and "cpu_s" in loop:
            fields["app_cpu_s"] = loop["cpu_s"]
        return fields


@dataclass(frozen=True)
class WindowSamples:
    """The samples inside one time window, and the last one before it (the base for counter deltas)."""

    rows: pd.DataFrame
    before: pd.Series | None

    def merged(self, column: str) -> Histogram:
        total = Histogram()
        for value in self.rows[column]:
            if isinstance(value, dict):
                total.merge(Histogram.from_json(value))
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


def read_samples(path: Path) -> pd.DataFrame:
    """samples.jsonl as a frame with the columns above (NaN / None where a sample lacks one), sorted by time."""
    rows: list[dict[str, Any]] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue  # a killed run leaves at most one torn last line
                if isinstance(row, dict):
                    rows.append(row)
    except FileNotFoundError:
        raise UsageError(f"{path} is missing; the sweep's run folder is incomplete, re-run bench capacity") from None
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame.dropna(subset=["t"]).sort_values("t", kind="stable").reset_index(drop=True)


def window(samples: pd.DataFrame, start: float, end: float) -> WindowSamples:
    inside = samples[(samples["t"] >= start) & (samples["t"] < end)]
    earlier = samples[samples["t"] < start]
    return WindowSamples(rows=inside, before=earlier.iloc[-1] if not earlier.empty else None)
