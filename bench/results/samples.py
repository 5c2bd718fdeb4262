"""samples.jsonl: what the collector saw on each tick (pool endpoint, pg_stat_activity, CPU), one JSON object a line.

bench.run.collector (and bench.run.detail_collector for capacity) write it; the report's timeline and capacity's
steps read it through ``read_samples``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import UsageError
from bench.results import jsonlines
from bench.results.layout import AppFiles

if TYPE_CHECKING:  # imported before the load (SampleHistogram, through histbuckets): pandas loads when data is read
    import pandas as pd

TEXT_FIELDS = frozenset({"phase"})
# Fields bench.run.detail_collector adds: each interval's histogram delta -> where the cumulative histogram
# sits in the pool endpoint's JSON. In the frame, each is a ``SampleHistogram``.
HISTOGRAM_FIELDS = {"wait_hist": ("wait_time",), "hold_hist": ("use_time",), "lag_hist": ("loop", "lag")}


@dataclass(slots=True)  # not frozen: a frozen dataclass takes twice as long to make, and an hour's read makes 72,000
class SampleHistogram:
    """A histogram field of one sample (``HISTOGRAM_FIELDS``), kept compact: an hour at 10 Hz holds 36,000 of them,
    and as parsed JSON (a key string and a number per bucket) they took more memory than the rest of the report."""

    count: int
    sum_s: float
    max_s: float
    keys: str  # the bucket indexes, separated by spaces, in the order of ``counts``
    counts: tuple[int, ...]

    @classmethod
    def of(cls, value: object) -> SampleHistogram | None:
        """The field as the collector wrote it (the pool endpoint's histogram JSON); None for anything else."""
        if not isinstance(value, dict):
            return None
        buckets = value.get("buckets")
        buckets = buckets if isinstance(buckets, dict) else {}
        # Positional: keywords cost as much as the rest of the call, and an hour's read makes 72,000 of them.
        return cls(value.get("count", 0), value.get("sum_s", 0.0), value.get("max_s", 0.0), " ".join(buckets),
                   tuple(buckets.values()))

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "sum_s": self.sum_s, "max_s": self.max_s,
                "buckets": dict(zip(self.keys.split(), self.counts, strict=True))}


@dataclass(frozen=True)
class SampleLog:
    # The asked-for columns, sorted by "t"; NaN where a sample lacks one. A histogram field is a ``SampleHistogram``
    # (None where a sample has none).
    frame: pd.DataFrame
    unreadable: int  # lines that were not a JSON object with a numeric "t" (a killed run tears its last line)
    present: bool  # False when there is no samples.jsonl: the run ended before its collector started


def read_samples(app_dir: Path, columns: Sequence[str]) -> SampleLog:
    """``columns`` of every sample, numbers as numbers; a file with no readable line at all is damage (exit 2).

    Each line's object is dropped as soon as its asked-for fields are taken: an hour at 10 Hz is 36,000 objects of
    30-odd fields, and holding them all to build the frame cost more memory than the frame itself."""
    path = AppFiles(app_dir).samples
    names = ["t", *(c for c in columns if c != "t")]
    values: list[list[Any]] = [[] for _ in names]
    plain = [(name, column.append) for name, column in zip(names, values, strict=True) if name not in HISTOGRAM_FIELDS]
    histograms = [(name, column.append) for name, column in zip(names, values, strict=True) if name in HISTOGRAM_FIELDS]
    lines = 0
    kept = 0
    try:
        with open(path, "rb") as handle:
            for line in handle:
                lines += 1
                row = _parse(line)
                if row is None:
                    continue
                kept += 1
                get = row.get
                for name, append in plain:
                    append(get(name))
                for name, append in histograms:
                    append(SampleHistogram.of(get(name)))
    except FileNotFoundError:
        return SampleLog(frame=_frame(values, names), unreadable=0, present=False)
    if lines > 1 and not kept:
        raise UsageError(f"{path} holds no valid JSON line; the run folder is damaged, re-run bench run")
    frame = _frame(values, names)
    return SampleLog(frame=frame, unreadable=lines - len(frame), present=True)


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        row = jsonlines.loads(line)
    except ValueError:
        return None
    return row if isinstance(row, dict) else None


def _frame(values: list[list[Any]], names: list[str]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame({name: column if name in TEXT_FIELDS or name in HISTOGRAM_FIELDS else _numbers(column)
                          for name, column in zip(names, values, strict=True)}, columns=names)
    return frame.dropna(subset=["t"]).sort_values("t", kind="stable").reset_index(drop=True)


def _numbers(column: list[Any]) -> Any:
    """A numeric field's values as ``pd.to_numeric(errors="coerce")`` makes them: int64 when every one is an integer,
    else float64 with NaN for a missing one. numpy reads a column of plain numbers (or numbers and None) directly,
    in a third of the time; anything else (text in a damaged file) goes through pandas."""
    import numpy as np
    import pandas as pd

    try:
        array = np.array(column)
        if array.dtype.kind in "if" and array.size:
            return array
        if array.dtype.kind == "O":
            return np.array(column, dtype=np.float64)  # numbers and None: None is NaN
    except (TypeError, ValueError, OverflowError):
        pass
    return pd.to_numeric(pd.Series(column, dtype=object), errors="coerce")
