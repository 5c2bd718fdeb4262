"""samples.jsonl: what the collector saw on each tick (pool endpoint, pg_stat_activity, CPU), one JSON object a line.

bench.run.collector (and bench.run.detail_collector for capacity) write it; the report's timeline and capacity's
steps read it through ``read_samples``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.errors import UsageError
from bench.results.layout import AppFiles

TEXT_FIELDS = frozenset({"phase"})
# Fields bench.run.detail_collector adds: each interval's histogram delta -> where the cumulative histogram
# sits in the pool endpoint's JSON. They stay JSON objects in the frame.
HISTOGRAM_FIELDS = {"wait_hist": ("wait_time",), "hold_hist": ("use_time",), "lag_hist": ("loop", "lag")}


@dataclass(frozen=True)
class SampleLog:
    frame: pd.DataFrame  # the asked-for columns, sorted by "t"; NaN (None for histograms) where a sample lacks one
    unreadable: int  # lines that were not a JSON object with a numeric "t" (a killed run tears its last line)
    present: bool  # False when there is no samples.jsonl: the run ended before its collector started


def read_samples(app_dir: Path, columns: Sequence[str]) -> SampleLog:
    """``columns`` of every sample, numbers as numbers; a file with no readable line at all is damage (exit 2)."""
    path = AppFiles(app_dir).samples
    names = ["t", *(c for c in columns if c != "t")]
    rows: list[dict[str, Any]] = []
    lines = 0
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                lines += 1
                row = _parse(line)
                if row is not None:
                    rows.append(row)
    except FileNotFoundError:
        return SampleLog(frame=_frame([], names), unreadable=0, present=False)
    if lines > 1 and not rows:
        raise UsageError(f"{path} holds no valid JSON line; the run folder is damaged, re-run bench run")
    frame = _frame(rows, names)
    return SampleLog(frame=frame, unreadable=lines - len(frame), present=True)


def _parse(line: str) -> dict[str, Any] | None:
    try:
        row = json.loads(line)
    except ValueError:
        return None
    return row if isinstance(row, dict) else None


def _frame(rows: list[dict[str, Any]], names: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=names)
    numeric = [c for c in names if c not in TEXT_FIELDS and c not in HISTOGRAM_FIELDS]
    frame[numeric] = frame[numeric].apply(pd.to_numeric, errors="coerce")
    return frame.dropna(subset=["t"]).sort_values("t", kind="stable").reset_index(drop=True)
