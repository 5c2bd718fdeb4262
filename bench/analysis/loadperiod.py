"""The load period a drive drove, and what the request log shows inside it: requests left waiting, stalls.

bench.run.drive measures the period; bench.analysis.summary turns it into figures, bench.run.digest into events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.results.requestlog import DROPPED, LOST, UNFINISHED

if TYPE_CHECKING:  # the run's driver imports this before its load: pandas (0.3 s) and numpy load with the data
    import numpy as np
    import pandas as pd
    from numpy.typing import NDArray

    FloatArray = NDArray[np.float64]

# A stall: no response for at least this long while requests wait, and for at least STALL_MEDIANS median
# response times (so a scenario whose requests take 10 s each is not stalled between two of them). Pools in the
# catalog time checkouts out after 2-5 s, so an exhausted pool still answers (with errors) well inside this.
STALL_MIN_S = 5.0
STALL_MEDIANS = 5.0
STALL_EVENT = "stall"
# The time line's entries for each app run's load period (``t``: the go signal, Locust's stop).
LOAD_STARTED, LOAD_STOPPED = "load started", "load stopped"
# The check every run gets: a stalled app is not a healthy run, whatever its scenario's own checks say.
NO_STALL_CHECK = "{app}: stalls == 0"


@dataclass(frozen=True)
class LoadPeriod:
    """Epoch seconds on the harness's clock: its go signal (Locust's users start) and Locust's stop."""

    start: float
    end: float

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)

    @classmethod
    def of_requests(cls, requests: pd.DataFrame) -> LoadPeriod:
        """For a log digested without the drive's measurement: first request's start to last response's end."""
        if requests.empty:
            return cls(0.0, 0.0)
        end = (requests["start_epoch_s"] + requests["response_time_ms"] / 1000).max()
        return cls(float(requests["start_epoch_s"].min()), float(end))


@dataclass(frozen=True)
class Stall:
    """A stretch of the load period with no response while requests were waiting."""

    start: float  # epoch seconds
    seconds: float
    waiting: int  # requests waiting at its end (the most: none was answered during it)

    def describe(self, period: LoadPeriod) -> str:
        return (f"no response for {self.seconds:.1f} s while {self.waiting} requests were waiting "
                f"(from {self.start - period.start:.1f} s into the load)")


def _quiet(requests: pd.DataFrame, period: LoadPeriod) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Every stretch between two responses (or the period's ends) during which some request was waiting:
    (its start, its length in seconds, the requests waiting at its end), one array each."""
    import numpy as np

    # Columns as arrays, masked: no copy of the log's rows (an hour's is a million).
    kind = requests["request_type"]
    sent = (kind != DROPPED).to_numpy(dtype=bool)
    answered = sent & (kind != UNFINISHED).to_numpy(dtype=bool)
    start = requests["start_epoch_s"].to_numpy(dtype=float)
    starts = np.sort(start[sent])
    ends = np.sort(start[answered] + requests["response_time_ms"].to_numpy(dtype=float)[answered] / 1000)
    del kind, sent, answered, start
    # Each array goes as soon as it is used (``del``): a dozen of them, a million values each, at once is too many.
    bounds = np.concatenate(([period.start], ends[(ends > period.start) & (ends < period.end)], [period.end]))
    a, b = bounds[:-1], bounds[1:]
    begun = np.searchsorted(starts, a, side="right")
    waiting_after_a = begun - np.searchsorted(ends, a, side="right")
    # Quiet from a when something was already waiting, else from the next request sent before b, if any.
    next_sent = starts[np.minimum(begun, len(starts) - 1)] if len(starts) else np.full(len(a), np.inf)
    sent_in_gap = (begun < len(starts)) & (next_sent < b)
    del begun
    quiet_from = np.where(waiting_after_a > 0, a, np.where(sent_in_gap, next_sent, np.nan))
    del waiting_after_a, next_sent, sent_in_gap
    waiting = np.searchsorted(starts, b, side="left") - np.searchsorted(ends, b, side="left")
    del starts, ends
    keep = ~np.isnan(quiet_from)
    return quiet_from[keep], b[keep] - quiet_from[keep], waiting[keep].astype(float)


def stall_threshold_s(requests: pd.DataFrame) -> float:
    # The answered requests' response times alone, not a copy of their rows.
    answered = requests.loc[~requests["request_type"].isin(LOST), "response_time_ms"]
    median_s = float(answered.median()) / 1000 if not answered.empty else 0.0
    return max(STALL_MIN_S, STALL_MEDIANS * median_s)


@dataclass(frozen=True)
class Quiet:
    """The load period's quiet stretches (see ``_quiet``) and the stall threshold, found once for summary.json's
    figures (``figures``) and the run's stall events (``events``): an hour's log takes a tenth of a second a search."""

    period: LoadPeriod
    # The stretches asked for: the stalls and the longest (an hour's log has one between most two responses).
    starts: FloatArray  # each one's start, epoch seconds
    seconds: FloatArray
    waiting: FloatArray  # requests waiting at its end
    threshold_s: float  # a stretch this long or longer is a stall

    @classmethod
    def of(cls, requests: pd.DataFrame, period: LoadPeriod) -> Quiet:
        import numpy as np

        starts, seconds, waiting = _quiet(requests, period)
        threshold = stall_threshold_s(requests)
        kept = seconds >= threshold
        if seconds.size:
            kept[np.argmax(seconds)] = True
        return cls(period, starts[kept], seconds[kept], waiting[kept], threshold)

    def stalls(self) -> list[Stall]:
        """The quiet stretches long enough to be a stall (see STALL_MIN_S), in time order."""
        long = self.seconds >= self.threshold_s
        return [Stall(start=float(t), seconds=float(s), waiting=int(w))
                for t, s, w in zip(self.starts[long], self.seconds[long], self.waiting[long], strict=True)]

    def figures(self) -> dict[str, Any]:
        """summary.json's figures of the load period itself (``load_window_s``, ``stalls``, ``longest_stall_s``)."""
        return {
            "load_window_s": round(self.period.seconds, 3),
            "stalls": int((self.seconds >= self.threshold_s).sum()),
            "longest_stall_s": round(float(self.seconds.max()) if self.seconds.size else 0.0, 3),
        }

    def events(self, app: str) -> list[dict[str, Any]]:
        """The run's time line entries for an app's stalls (summary.json's ``events``)."""
        return [{"t": s.start, "event": STALL_EVENT, "app": app, "detail": s.describe(self.period)}
                for s in self.stalls()]
