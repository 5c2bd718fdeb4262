"""Little's law for one app run: the pool's connection time and the requests it served over the same stretch.

bench.analysis.summary computes the ceiling from it; the terminal and the report show its arithmetic (``note``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.instrument import Histogram

if TYPE_CHECKING:  # the terminal imports this before a run's load: pandas loads with the data it reads
    import pandas as pd

    # The window's first and last sample, and which of the answered requests got their response inside it.
    Bounds = tuple[pd.Series, pd.Series, pd.Series]

# What ``windows`` reads from samples.jsonl besides "t": the phase and the pool's connection time, ended holds and
# open ones; for the idle time, the connections idle in transaction (past the threshold too) and the app's own idle
# time, ended transactions' and open ones'; for the pool's waits, each interval's wait histogram.
COLUMNS = ("phase", "pool_hold_s", "pool_hold_open_s", "idle_in_tx", "idle_in_tx_long", "pool_idle_in_tx_s",
           "pool_idle_in_tx_open_s", "wait_hist")


@dataclass(frozen=True)
class LittleWindow:
    """Connection time and the requests answered over one stretch of the load: Little's law's inputs."""

    window_s: float
    hold_s: float  # connection-seconds held in the window: the integral of checked-out connections over it
    requests: int  # requests answered in it, failed ones included (they hold connections too)

    @property
    def hold_ms_per_request(self) -> float:
        return self.hold_s * 1000 / self.requests

    @property
    def rps(self) -> float:
        return self.requests / self.window_s


@dataclass(frozen=True)
class IdleWindow:
    """Idle in transaction over Little's-law window, and the successful requests answered in it: the per-request
    idle figures divide one by the other, so that, like the connection time per request, they count no request
    Locust left waiting at its stop (the app serves those in the cool-down) and no second after the load."""

    successes: int
    sampled_s: float  # pg_stat_activity's connections idle in transaction, each sample times its interval, inside
    long_s: float  # the same for those idle past the threshold
    app_s: float | None  # the app's own exact idle time (ended spells and open ones so far): its growth, inside


@dataclass(frozen=True)
class Windows:
    """Little's-law window's figures, each None where the samples do not make it (too few pool samples in the load,
    or a column missing, as from an app without the pool endpoint or an older collector)."""

    law: LittleWindow | None  # connection time and the requests answered
    idle: IdleWindow | None  # idle in transaction and the successes answered
    waits: Histogram | None  # the pool waits that ended inside it: the samples' ``wait_hist`` added up


def windows(samples: pd.DataFrame | None, answered: pd.DataFrame) -> Windows:
    """From the first to the last load sample of the pool taken at or before the last response: what the pool and
    the server did in between, and the requests whose response came in between. ``answered``: the requests that got
    a response or failed (``failed`` 0 for a success); ``samples`` sorted by time, as ``read_samples`` gives them.
    Each sample stands for the interval since the one before it, as in the collector's totals: the window's first
    sample for none. The window's bounds are found once for all three figures.

    The connection time is the growth of the ended holds' total plus the open holds' age so far: the integral of
    checked-out connections over the window. A connection never returned (a session kept forever) is held all
    along; the ended holds alone would miss it and put the ceiling at thousands of requests a second.
    Cut so, both sides cover the same requests: a request's checkin comes just before its response. The whole
    run's hold, idle time and waits would also count the requests Locust left unanswered at its stop, which the
    app serves afterwards and no latency figure counts.
    """
    bounds = _bounds(samples, answered)
    return Windows(_little(bounds), _idle(samples, answered, bounds), _waits(samples, bounds))


def _little(bounds: Bounds | None) -> LittleWindow | None:
    if bounds is None:
        return None
    first, last, inside = bounds
    requests = int(inside.sum())
    hold = _held(last) - _held(first)
    if requests == 0 or hold <= 0:
        return None
    return LittleWindow(window_s=float(last["t"] - first["t"]), hold_s=hold, requests=requests)


def _idle(samples: pd.DataFrame | None, answered: pd.DataFrame, bounds: Bounds | None) -> IdleWindow | None:
    if bounds is None or samples is None or not {"idle_in_tx", "idle_in_tx_long"} <= set(samples.columns):
        return None
    first, last, inside = bounds
    successes = int((inside & (answered["failed"] == 0)).sum())
    if successes == 0:
        return None
    dt = samples["t"].diff().fillna(0)
    within = _within(samples, first, last)
    return IdleWindow(successes=successes, sampled_s=_integral(samples["idle_in_tx"], dt, within),
                      long_s=_integral(samples["idle_in_tx_long"], dt, within), app_s=_idle_app(first, last))


def _waits(samples: pd.DataFrame | None, bounds: Bounds | None) -> Histogram | None:
    if bounds is None or samples is None or "wait_hist" not in samples:
        return None
    from bench.analysis.histbuckets import summed  # numpy: loaded with the data, after the load

    first, last, _inside = bounds
    return summed(samples["wait_hist"][_within(samples, first, last)].tolist())


def _within(samples: pd.DataFrame, first: pd.Series, last: pd.Series) -> pd.Series:
    """The samples whose interval (since the sample before) lies inside the window: after its first sample, up to
    its last."""
    return (samples["t"] > first["t"]) & (samples["t"] <= last["t"])


def _bounds(samples: pd.DataFrame | None, answered: pd.DataFrame) -> Bounds | None:
    """The window's first and last sample, and which of ``answered`` got their response inside it."""
    if samples is None or answered.empty or "pool_hold_s" not in samples or "phase" not in samples:
        return None
    ends = answered["start_epoch_s"] + answered["response_time_ms"] / 1000
    load = samples[(samples["phase"] == "load") & samples["pool_hold_s"].notna() & (samples["t"] <= ends.max())]
    if len(load) < 2:
        return None
    first, last = load.iloc[0], load.iloc[-1]
    return first, last, (ends > first["t"]) & (ends <= last["t"])


def _integral(counts: pd.Series, dt: pd.Series, within: pd.Series) -> float:
    """Connection-seconds: each sample's count times the interval since the sample before, inside the window."""
    return float((counts.fillna(0) * dt)[within].sum())


def _held(sample: pd.Series) -> float:
    """A sample's connection time so far: ended holds and open ones (0 open from an app that does not say)."""
    open_s = sample.get("pool_hold_open_s")
    import pandas as pd

    return float(sample["pool_hold_s"]) + (float(open_s) if open_s is not None and pd.notna(open_s) else 0.0)


def _idle_app(first: pd.Series, last: pd.Series) -> float | None:
    """The app's own idle time's growth from ``first`` to ``last``: ended transactions' and open ones' so far. None
    unless both samples carry both (an app that does not time transactions, or a collector that did not keep the
    open ones: without them a session left open, a leak, would count nothing)."""
    import pandas as pd

    fields = ("pool_idle_in_tx_s", "pool_idle_in_tx_open_s")
    if not all(pd.notna(sample.get(field)) for sample in (first, last) for field in fields):
        return None
    return sum(float(last[field]) - float(first[field]) for field in fields)


def whole_run(pool: dict[str, Any] | None, answered: pd.DataFrame, window_s: float) -> LittleWindow | None:
    """Without pool samples over the load: the connection time of the pool's last reading (ended holds and the
    open ones' age) over every answered request. Runs high: the requests left waiting at the stop are served, and
    hold connections, after it, and a connection never returned is held through the cool-down too."""
    if pool is None or answered.empty or window_s <= 0:
        return None
    hold = Histogram.from_json(pool["use_time"]).total + float(pool.get("gauges", {}).get("hold_open_s") or 0.0)
    return LittleWindow(window_s=window_s, hold_s=hold, requests=len(answered)) if hold > 0 else None


def note(name: str, app: dict[str, Any]) -> str | None:
    """The ceiling and its utilisation with the arithmetic that made them, for the terminal and the report."""
    pool = app.get("pool") if isinstance(app.get("pool"), dict) else None
    law = (pool or {}).get("littles_law")
    ceiling, used = (pool or {}).get("littles_law_ceiling_rps"), (pool or {}).get("ceiling_utilisation")
    if pool is None or not isinstance(law, dict) or ceiling is None or used is None:
        return None
    return (f"{name}: Little's-law ceiling {pool['capacity']} connections / {pool['hold_ms_per_request']:,.1f} ms "
            f"per request ({law['hold_s']:,.2f} conn-s held over {law['requests']:,} requests) = {ceiling:,.1f} "
            f"req/s; {law['rps']:,.1f} req/s answered between pool samples ({law['requests']:,} in "
            f"{law['window_s']:,.2f} s) = "
            f"{100 * used:.0f}% of it")
