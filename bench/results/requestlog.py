"""The request log: every request Locust made, as bench/locust_plugins/recorder.py writes it (one CSV per process).

The runner follows it live (``RequestTail``) and reads it for the summary; the report's timeline and capacity's
steps read it too. All of them go through here, so a --workers run's requests-<pid>.csv files are never missed.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

from bench.errors import UsageError
from bench.results.layout import AppFiles

if TYPE_CHECKING:  # RequestTail runs during the load: pandas (0.3 s to import) loads when a log is read in full
    import pandas as pd

COLUMNS = ("start_epoch_s", "request_type", "name", "response_time_ms", "response_length", "failed", "error")
NUMERIC = ("start_epoch_s", "response_time_ms", "response_length", "failed")
_TYPES = {"start_epoch_s": "float64", "response_time_ms": "float64", "response_length": "int64", "failed": "int64"}
# A few distinct values repeated a million times in an hour's log: as categories a tenth of the memory of strings,
# and a comparison with a route name compares small integer codes, not a million strings.
_TEXT = {"request_type": "category", "name": "category", "error": "category"}
# request_type of a request still waiting for its response when the load stopped (the recorder and the pacer
# write it): its response_time_ms is its age at the stop, and it is neither a response nor a failure.
UNFINISHED = "UNFINISHED"
# bench capacity's pacer: an arrival no user was free to send (nothing reached the app).
DROPPED = "DROPPED"
LOST = (UNFINISHED, DROPPED)


@dataclass(frozen=True)
class RequestLog:
    """Every readable row of an app run's request logs, and how many rows could not be read."""

    frame: pd.DataFrame  # COLUMNS: numbers as numbers, text as text ("" where a request had no error)
    unreadable: int  # rows dropped: a torn last line (Locust killed mid-write), garbled fields
    files: tuple[Path, ...]


def split_unfinished(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows of requests that got a response or failed, rows of requests still waiting when the load stopped)."""
    return _split(frame, UNFINISHED)


def split_dropped(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows of requests that were sent, rows of the pacer's arrivals that were never sent)."""
    return _split(frame, DROPPED)


def _split(frame: pd.DataFrame, request_type: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    chosen = frame["request_type"] == request_type
    if not chosen.any():  # as in most runs: the frame itself, not a copy of it
        return frame, frame.iloc[:0]
    return frame[~chosen], frame[chosen]


def read_requests(app_dir: Path) -> RequestLog:
    """requests.csv, or every worker's requests-<pid>.csv, as one frame; an empty frame when there is none."""
    import pandas as pd

    files = tuple(AppFiles(app_dir).request_logs())
    frames, unreadable = [], 0
    for path in files:
        frame, dropped = _read_one(path)
        unreadable += dropped
        if not frame.empty:
            frames.append(frame)
    if not frames:
        return RequestLog(frame=_empty(), unreadable=unreadable, files=files)
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return RequestLog(frame=frame, unreadable=unreadable, files=files)


def _read_one(path: Path) -> tuple[pd.DataFrame, int]:
    import pandas as pd

    try:
        end, size, rows, blank, torn = _complete_lines(path)
        # Parse up to the last complete line: a torn one may hold an unterminated quote, which swallows the rest.
        # A log that ends with its last line (as every finished run's does) is parsed from the file, never held
        # whole in memory beside its frame; only a torn one's complete part is.
        prefix = None if end == size else _head(path, end)
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}; check the run folder's permissions") from None
    if blank:
        return _empty(), 0  # empty, or killed before the header was complete: no row was written

    def source() -> Path | BytesIO:
        return path if prefix is None else BytesIO(prefix)

    clean = _read_clean(source())
    if clean is not None:  # every field as it should be: no second pass over the numbers, no copies
        return clean, torn + max(0, rows - len(clean))
    try:
        frame = pd.read_csv(source(), keep_default_na=False, on_bad_lines="skip", engine="c", dtype=_TEXT)
    except (ValueError, pd.errors.ParserError) as err:  # garbage: not a requests log
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UsageError(f"{path} is not a requests log ({reason}); the run folder is damaged, re-run bench run") \
            from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise UsageError(f"{path} is not a requests log (no column {', '.join(missing)}); the run folder is "
                         "damaged, re-run bench run")
    numbers = frame[list(NUMERIC)].apply(pd.to_numeric, errors="coerce")
    valid = numbers.notna().all(axis=1)
    frame = frame.loc[valid, list(COLUMNS)].assign(**{c: numbers.loc[valid, c] for c in NUMERIC})
    return frame.astype(_TYPES).reset_index(drop=True), torn + max(0, rows - len(frame))


_CHUNK = 1 << 20


def _complete_lines(path: Path) -> tuple[int, int, int, bool, int]:
    """One pass over the file in chunks: where its last complete line ends, the file's size, the rows before that end
    (the header is not one), whether those lines hold nothing but white space, and 1 if a torn line follows them."""
    end = newlines = 0
    blank = True
    tail = b""
    offset = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            last = chunk.rfind(b"\n")
            if last >= 0:
                newlines += chunk.count(b"\n")
                blank = blank and not (tail + chunk[: last + 1]).strip()
                end, tail = offset + last + 1, chunk[last + 1 :]
            else:
                tail += chunk
            offset += len(chunk)
    return end, offset, newlines - 1, blank, 1 if tail.strip() else 0


def _head(path: Path, size: int) -> bytes:
    with path.open("rb") as handle:
        return handle.read(size)


def _read_clean(source: Path | BytesIO) -> pd.DataFrame | None:
    """The log read with every column's type given, or None when a field does not fit it (a garbled row)."""
    import pandas as pd

    try:
        frame = pd.read_csv(source, keep_default_na=False, on_bad_lines="skip", engine="c",
                            usecols=list(COLUMNS), dtype={**_TEXT, **_TYPES})
    except (ValueError, pd.errors.ParserError):
        return None
    if frame[list(NUMERIC)].isna().to_numpy().any():  # a short row's missing numbers read as NaN
        return None
    return frame[list(COLUMNS)] if tuple(frame.columns) != COLUMNS else frame


def _empty() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({c: pd.Series(dtype=_TYPES.get(c, _TEXT.get(c, "object"))) for c in COLUMNS})


class RequestTail:
    """Follows an app run's request logs while Locust writes them (one per worker process): progress counts."""

    def __init__(self, app_dir: Path) -> None:
        self.files = AppFiles(app_dir)
        self.offsets: dict[Path, int] = {}
        self.partial: dict[Path, bytes] = {}
        self.requests = 0  # answered or failed
        self.failures = 0
        self.unfinished = 0  # still waiting when the load stopped
        self.unreadable = 0
        self.first_start: float | None = None

    def poll(self) -> None:
        for path in self.files.request_logs():
            try:
                with open(path, "rb") as handle:
                    handle.seek(self.offsets.get(path, 0))
                    chunk = handle.read()
            except FileNotFoundError:
                continue
            self.offsets[path] = self.offsets.get(path, 0) + len(chunk)
            lines = (self.partial.get(path, b"") + chunk).split(b"\n")
            self.partial[path] = lines.pop()
            self._count(lines)

    def _count(self, lines: list[bytes]) -> None:
        for line in lines:
            if not line or line.startswith(COLUMNS[0].encode()):
                continue
            fields = next(csv.reader([line.decode("utf-8", "replace")]), [])
            start = _start(fields)
            if start is None:
                self.unreadable += 1
            elif fields[1] == UNFINISHED:
                self.unfinished += 1
            else:
                self.requests += 1
                if fields[5] == "1":
                    self.failures += 1
                if self.first_start is None or start < self.first_start:
                    self.first_start = start


def _start(fields: list[str]) -> float | None:
    """A row's start time; None when the line is not a row the recorder writes."""
    if len(fields) != len(COLUMNS):
        return None
    try:
        return float(fields[0])
    except ValueError:
        return None
