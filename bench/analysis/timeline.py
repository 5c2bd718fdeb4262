"""One app's run as time series: requests.csv and samples.jsonl on a clock that starts with its load.

The report reads a Timeline per app and plots good and bad on the same axes; runs may be torn or partial.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from bench.errors import UsageError

SAMPLE_COLUMNS = ("t", "phase", "pool_wait_p95_ms", "pool_checked_out", "pool_size", "idle_in_tx",
                  "idle_in_tx_oldest_s")
REQUEST_COLUMNS = ("start_epoch_s", "response_time_ms", "failed")
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Timeline:
    """Times are seconds since this app's load started, so two apps run one after the other line up."""

    requests: pd.DataFrame  # end_s, response_time_ms, failed
    samples: pd.DataFrame  # x plus SAMPLE_COLUMNS
    load_end_s: float | None  # when the cool-down began; None if the run never got there
    end_s: float

    def per_second(self) -> pd.DataFrame:
        """Successful responses per 1 s bucket of completion time: count and p95 latency (NaN if none)."""
        ok = self.requests[(self.requests["failed"] == 0) & (self.requests["end_s"] >= 0)]
        if ok.empty:
            return pd.DataFrame({"x": [], "rps": [], "p95_ms": []}, dtype=float)
        second = np.floor(ok["end_s"].to_numpy()).astype(np.int64)
        grouped = ok["response_time_ms"].groupby(second)
        # "higher": a latency some request really had, like the summary's nearest-rank percentiles.
        p95 = grouped.quantile(0.95, interpolation="higher")
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
    samples = _read_samples(app_dir / "samples.jsonl")
    requests = _read_requests(app_dir / "requests.csv")
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
                    load_end_s=float(cooldown.min()) if not cooldown.empty else None)


def _read_samples(path: Path) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    lines = 0
    if path.exists():
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                lines += 1
                try:
                    row = json.loads(line)
                except ValueError:
                    continue  # an interrupted run can leave one torn last line
                if isinstance(row, dict):
                    rows.append(row)
    if lines > 1 and not rows:
        raise UsageError(f"{path} holds no valid JSON line; the run folder is damaged, re-run bench run")
    frame = pd.DataFrame(rows, columns=list(SAMPLE_COLUMNS))
    numeric = [c for c in SAMPLE_COLUMNS if c != "phase"]
    frame[numeric] = frame[numeric].apply(pd.to_numeric, errors="coerce")
    return frame.dropna(subset=["t"]).sort_values("t", kind="stable")


def _read_requests(path: Path) -> pd.DataFrame:
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in REQUEST_COLUMNS})
    try:
        try:
            frame = _parse_requests(path, torn=False)
        except pd.errors.ParserError:
            frame = _parse_requests(path, torn=True)
    except (ValueError, pd.errors.ParserError) as err:  # wrong columns or garbage: not a requests log
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UsageError(f"{path} is not a requests log ({reason}); the run folder is damaged, re-run bench run") \
            from None
    numeric: pd.DataFrame = frame.apply(pd.to_numeric, errors="coerce")
    return numeric.dropna()


def _parse_requests(path: Path, *, torn: bool) -> pd.DataFrame:
    source: Path | BytesIO = path
    if torn:  # an unterminated quote in a torn last line: parse up to the last complete line
        data = path.read_bytes()
        source = BytesIO(data[: data.rfind(b"\n") + 1])
    # Only three columns; values a torn line left unparseable are coerced to NaN and dropped after.
    frame: pd.DataFrame = pd.read_csv(source, usecols=list(REQUEST_COLUMNS), on_bad_lines="skip", engine="c")
    return frame
