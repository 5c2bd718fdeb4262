"""Turns one app run's raw material (requests, pool snapshot, collector figures, row counts) into
summary.json's schema-1 figures, and evaluates the scenario's checks over them.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis.holdsites import hold_sites
from bench.analysis.lintmatch import lint_section
from bench.analysis.littleslaw import IdleWindow, LittleWindow, Windows, whole_run, windows
from bench.analysis.loadperiod import LoadPeriod, Quiet
from bench.analysis.rates import add_rates
from bench.analysis.stats import ms, nearest_rank, rounded
from bench.errors import UsageError
from bench.instrument import Histogram
from bench.results.metrics import ratio, value_at
from bench.results.records import DbFigures
from bench.results.requestlog import LOST, split_dropped, split_unfinished

PERCENTILES = (50, 95, 99)


@dataclass(frozen=True)
class Integrity:
    """Writes acknowledged to the client vs rows in the database, per write route."""

    acknowledged: dict[str, int]
    written: dict[str, int]

    @property
    def lost_writes(self) -> int:
        return sum(max(0, n - self.written.get(route, 0)) for route, n in self.acknowledged.items())

    def to_json(self) -> dict[str, Any]:
        return {
            "acknowledged_writes": sum(self.acknowledged.values()),
            "rows_written": sum(self.written.values()),
            "lost_writes": self.lost_writes,
            "by_route": {
                route: {"acknowledged_writes": n, "rows_written": self.written.get(route, 0),
                        "lost_writes": max(0, n - self.written.get(route, 0))}
                for route, n in sorted(self.acknowledged.items())
            },
        }


def latency_ms(values: pd.Series) -> dict[str, float]:
    """p50, p95, p99 and max, rounded to the request log's 3 decimals; all 0 for no request.

    The percentile rule is the harness's one, nearest rank (``stats.nearest_rank``, one sort for all three): the
    value at rank ceil(p·n / 100) of the sorted latencies, so a percentile is a latency some request really had,
    as HDR histograms report it.
    """
    ranked = nearest_rank(values.to_numpy(dtype=float), PERCENTILES)
    if ranked is None:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    out = {f"p{p}": round(q, 3) for p, q in zip(PERCENTILES, ranked, strict=True)}
    out["max"] = round(float(values.max()), 3)
    return out


def hist_ms(hist: Histogram) -> dict[str, float]:
    out = {f"p{p}": ms(hist.percentile(p)) for p in PERCENTILES}
    out["max"] = ms(hist.max)
    out["mean"] = ms(hist.mean)
    return out


def summarize_app(
    *,
    requests: pd.DataFrame,
    pool: dict[str, Any] | None,
    db: DbFigures,
    integrity: Integrity | None,
    pool_capacity: int,
    locust_stats: list[dict[str, Any]] | None = None,
    app_log: dict[str, Any] | None = None,
    period: LoadPeriod | None = None,
    unreadable: int = 0,
    samples: pd.DataFrame | None = None,
    shared_database: bool = False,
    quiet: Quiet | None = None,
    window: Windows | None = None,
) -> dict[str, Any]:
    """``samples`` are the collector's (samples.jsonl); ``shared_database`` says the run's database has other
    clients than the app (target mode with --app-name), so its pg_stat_database counters are not the app's;
    ``quiet``: the period's quiet stretches when the caller has found them already (for its stall events);
    ``window``: Little's-law window when the caller has found it from the samples already (``bench run`` does, in
    the report's time line), in place of ``samples``."""
    # Throughput is over the load period the harness drove, a stall included; requests still waiting when it
    # stopped are counted apart (every closed-model run ends with some): neither responses nor failures.
    period = period or LoadPeriod.of_requests(requests)
    load = (quiet or Quiet.of(requests, period)).figures()
    requests, unfinished = split_unfinished(requests)
    requests, dropped = split_dropped(requests)
    # Locust's own stats hold the pacer's lost arrivals as failed requests of their own type: not responses.
    locust_stats = [e for e in locust_stats or [] if e.get("method") not in LOST]
    # The successes' latencies, not a copy of their rows: an hour's log is a million of them.
    ok_ms = requests["response_time_ms"][requests["failed"] == 0]
    throughput = len(ok_ms) / period.seconds if period.seconds > 0 else 0.0
    recorded_failures = int(requests["failed"].sum()) if not requests.empty else 0
    # Final counts come from Locust's own JSON; our per-request log gives the exact percentiles and
    # must agree with it (requests_recorded shows any gap).
    counted = bool(locust_stats)
    # Connection time per request, idle in transaction per successful request and the pool's waits, over
    # Little's-law window when the samples make one.
    window = window if window is not None else windows(samples, requests)
    del samples  # an hour's holds 36,000 histograms (20-odd MiB): gone before the log's group-bys, if no caller keeps it
    idle_per_request = IdlePerRequest(window.idle, len(ok_ms))
    summary: dict[str, Any] = {
        "requests": sum(int(e.get("num_requests", 0)) for e in locust_stats or []) if counted else len(requests),
        "failures": sum(int(e.get("num_failures", 0)) for e in locust_stats or []) if counted else recorded_failures,
        "requests_recorded": len(requests),
        "requests_unfinished": len(unfinished),
        "requests_dropped": len(dropped),
        "requests_unreadable": unreadable,
        "throughput_rps": round(throughput, 3),
        **load,  # load_window_s, stalls, longest_stall_s
        # Every request, failed ones included (as Locust and k6 report it): a success turned timeout must worsen it.
        "latency_ms": latency_ms(requests["response_time_ms"]),
        "success_latency_ms": latency_ms(ok_ms),
        "pool": _pool_block(pool, pool_capacity, window.law or whole_run(pool, requests, period.seconds),
                            idle_per_request, window.waits),
        "db": _db_block(db, idle_per_request, shared_database),
        "integrity": integrity.to_json() if integrity else None,
        "endpoints": _endpoints(requests, pool),
        "app_log": app_log,
    }
    add_rates(summary, requests)  # per-request figures the default gates judge (bench.analysis.rates)
    # Which lint findings the hold sites confirm, and which long holds no rule found (bench.analysis.lintmatch).
    summary["lint"] = lint_section((summary["pool"] or {}).get("hold_sites"))
    return summary


@dataclass(frozen=True)
class IdlePerRequest:
    """Per successful request, an idle-in-transaction total: its part inside Little's-law window over the
    successes answered in it, so that it counts the same requests as the connection time per request; without a
    window (no pool samples), the whole run's total (load and cool-down) over the load's successes."""

    window: IdleWindow | None
    successes: int  # the load's

    def ms(self, total: float, inside: Callable[[IdleWindow], float | None]) -> float | None:
        part = inside(self.window) if self.window is not None else None
        if self.window is not None and part is not None:
            return round(part * 1000 / self.window.successes, 3)
        return round(total * 1000 / self.successes, 3) if self.successes else None


NOTHING_SUCCEEDED = IdlePerRequest(window=None, successes=0)  # per-request idle figures null


def _pool_block(
    pool: dict[str, Any] | None, capacity: int, law: LittleWindow | None, idle: IdlePerRequest = NOTHING_SUCCEEDED,
    waits: Histogram | None = None,
) -> dict[str, Any] | None:
    """``waits``: the pool waits inside Little's-law window; without them, every checkout's (the pool's own)."""
    if pool is None:
        return None
    wait = waits if waits is not None else Histogram.from_json(pool["wait_time"])
    hold = Histogram.from_json(pool["use_time"])
    counters = pool.get("counters", {})
    gauges = pool.get("gauges", {})
    if "size" in gauges:  # what the app really runs with (in target mode the flags do not set it)
        capacity = int(gauges["size"]) + max(0, int(gauges.get("max_overflow", 0)))
    # Little's law: at most `capacity` connections, each busy for the connection time one request needs, all
    # its checkouts together (the good long-session route checks out twice): total hold / requests, unrounded.
    per_request = law.hold_ms_per_request if law else None
    ceiling = capacity * 1000 / per_request if per_request else None
    connect = Histogram.from_json(pool["create_time"])
    return {
        "wait_ms": {**hist_ms(wait), "count": wait.count},
        "hold_ms": hist_ms(hold),
        # Its count, to set against connections_opened: every connection opened is timed, reopened ones included.
        "connect_ms": {**hist_ms(connect), "count": connect.count},
        "checkouts": counters.get("checkouts", 0),
        "timeouts": counters.get("timeouts", 0),
        "cancelled": counters.get("cancelled", 0),
        "connect_failures": counters.get("connect_failures", 0),
        "checked_out_max": counters.get("checked_out_max", 0),
        "pending_max": counters.get("pending_max", 0),
        "connections_opened": counters.get("connections_opened", 0),
        "invalidated": counters.get("invalidated", 0),
        "reclaimed": counters.get("reclaimed", 0),
        "capacity": capacity,
        "hold_s": round(hold.total, 4),
        # Holds not ended at the last reading: a connection never returned is in no figure above.
        "holds_open": gauges.get("holds_open", 0),
        "hold_open_s": round(float(gauges.get("hold_open_s", 0.0)), 4),
        "hold_open_max_ms": round(float(gauges.get("hold_open_max_s", 0.0)) * 1000, 3),
        "hold_ms_per_request": round(per_request, 3) if per_request else 0.0,
        **_idle_app(counters, gauges, idle),
        "hold_share_by_route": _hold_shares(pool.get("use_time_by_route", {}), pool.get("hold_open_s_by_route", {})),
        # Where the holds past the threshold come from: the app's lines, from the instrumentation's watchdog.
        "hold_sites": hold_sites(pool),
        "littles_law": {"window_s": round(law.window_s, 3), "hold_s": round(law.hold_s, 4),
                        "requests": law.requests, "rps": round(law.rps, 3)} if law else None,
        "littles_law_ceiling_rps": round(ceiling, 3) if ceiling else None,
        # Requests answered per second over the same window: the share of the pool's capacity in use.
        "ceiling_utilisation": round(law.rps / ceiling, 4) if law and ceiling else None,
    }


def _idle_app(counters: dict[str, Any], gauges: dict[str, Any], idle: IdlePerRequest) -> dict[str, Any]:
    """Idle in transaction as the instrumented app timed it, exactly: ended transactions and open ones so far
    (None from an app whose instrumentation does not time it)."""
    if "idle_in_tx_s" not in counters:
        return {"idle_in_tx_app_s": None, "idle_in_tx_app_per_request_ms": None, "transactions": None}
    total = float(counters["idle_in_tx_s"]) + float(gauges.get("idle_in_tx_open_s", 0.0))
    return {
        "idle_in_tx_app_s": round(total, 4),
        "idle_in_tx_app_per_request_ms": idle.ms(total, lambda window: window.app_s),
        "transactions": int(counters.get("transactions", 0)) + int(gauges.get("transactions_open", 0)),
    }


def _hold_shares(by_route: dict[str, Any], open_by_route: dict[str, Any]) -> dict[str, float]:
    """Each route's share of all connection-holding time, its holds still open included: the culprit owns most."""
    sums = {route: float(h.get("sum_s", 0.0)) for route, h in by_route.items()}
    for route, seconds in (open_by_route or {}).items():
        sums[route] = sums.get(route, 0.0) + float(seconds)
    total = sum(sums.values())
    if total <= 0:
        return {}
    return {route: round(v / total, 4) for route, v in sorted(sums.items(), key=lambda kv: -kv[1])}


def _db_block(db: DbFigures, idle: IdlePerRequest, shared_database: bool) -> dict[str, Any]:
    # A shared database's counters are every client's: never the app's (its samples are filtered by name).
    server = {} if shared_database else db.server
    server_idle = server.get("idle_in_transaction_time")
    total = db.idle_in_tx_seconds_sampled if server_idle is None else _idle_total(server_idle, db)
    return {
        "idle_in_tx_max": db.idle_in_tx_max,
        "idle_in_tx_mean": round(db.idle_in_tx_mean, 3),
        "idle_in_tx_oldest_s": round(db.idle_in_tx_oldest_s, 4),
        "idle_in_tx_seconds": round(total, 4),
        "idle_in_tx_seconds_sampled": round(db.idle_in_tx_seconds_sampled, 4),
        "idle_in_tx_unreported_seconds": round(total - server_idle if server_idle is not None
                                               else db.idle_in_tx_unreported_s, 4),
        # Uncapped: above 1 the samples saw more than the total, and that is worth seeing.
        "idle_in_tx_sampled_share": round(db.idle_in_tx_seconds_sampled / total, 3) if total else None,
        "idle_in_tx_long_seconds": round(db.idle_in_tx_long_seconds, 4),
        "idle_in_tx_long_per_request_ms": idle.ms(db.idle_in_tx_long_seconds, lambda window: window.long_s),
        "idle_in_tx_per_request_ms": idle.ms(total, lambda window: _inside(total, db, window)),
        "idle_in_tx_after_load": db.idle_in_tx_after_load,
        "connections_max": db.connections_max,
        "xact_oldest_s": round(db.xact_oldest_s, 4),
        "samples": db.samples,
        "server": {k: round(v, 4) for k, v in server.items()},
        "idle_in_tx_long_by_route": {k: round(v, 3) for k, v in sorted(
            db.idle_in_tx_long_by_route.items(), key=lambda kv: -kv[1])[:10]},
        "idle_in_tx_long_by_site": {k: round(v, 3) for k, v in sorted(
            db.idle_in_tx_long_by_site.items(), key=lambda kv: -kv[1])[:10]},
    }


def _inside(total: float, db: DbFigures, window: IdleWindow) -> float:
    """The part of the idle total inside Little's-law window: the total stays the server's own, exact, and the
    samples take off only what they saw outside the window (before it, and the cool-down)."""
    outside = max(0.0, db.idle_in_tx_seconds_sampled - window.sampled_s)
    return min(total, max(0.0, total - outside))


def _idle_total(server_idle: float, db: DbFigures) -> float:
    """The server counts a spell exactly, but only when the backend's state changes: add the spells that ended
    without one (sessions ended abnormally, spells still open). Spells whose session ended normally right after
    are counted there, unless a graceful close cut them: between none and all of them, the samples' estimate
    decides, so a correct app's figure is the server's own, never the noisier estimate."""
    known = server_idle + db.idle_in_tx_unreported_s
    return known + min(max(0.0, db.idle_in_tx_seconds_sampled - known), db.idle_in_tx_unresolved_s)


def _endpoints(requests: pd.DataFrame, pool: dict[str, Any] | None) -> dict[str, Any]:
    by_route = (pool or {}).get("use_time_by_route", {})
    wait_by_route = (pool or {}).get("wait_time_by_route", {})
    out: dict[str, Any] = {}
    if requests.empty:
        return out
    # Only the columns read here go through the group-by, which sorts a copy of what it is given.
    for name, group in requests[["name", "failed", "response_time_ms"]].groupby("name", sort=True, observed=True):
        ok = group["response_time_ms"][group["failed"] == 0]
        hold = by_route.get(str(name))
        wait = wait_by_route.get(str(name))
        out[str(name)] = {
            "requests": len(group),
            "failures": int(group["failed"].sum()),
            "latency_ms": latency_ms(group["response_time_ms"]),
            "success_latency_ms": latency_ms(ok),
            "pool_hold_ms": hist_ms(Histogram.from_json(hold)) if hold else None,
            "pool_wait_ms": hist_ms(Histogram.from_json(wait)) if wait else None,
        }
    return out


# --- checks -------------------------------------------------------------------------------------

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
_CHECK = re.compile(r"^\s*([a-z]+)(?:/([a-z]+))?\s*:\s*([A-Za-z0-9_.]+)\s*(>=|<=|==|>|<)\s*(-?[0-9.]+)\s*$")


@dataclass(frozen=True)
class Check:
    app: str
    other: str | None
    metric: str
    op: str
    threshold: float

    @classmethod
    def parse(cls, text: str) -> Check:
        match = _CHECK.match(text)
        if match is None:
            raise UsageError(f"check {text!r} is malformed; write e.g. 'bad/good: pool.wait_ms.p95 >= 10'")
        app, other, metric, op, threshold = match.groups()
        return cls(app, other, metric, op, float(threshold))

    @property
    def name(self) -> str:
        who = f"{self.app}/{self.other}" if self.other else self.app
        return f"{who}: {self.metric} {self.op} {self.threshold:g}"


def metric_value(app: dict[str, Any], path: str) -> float | None:
    return value_at(app, path.split("."))


def evaluate(checks: list[Check], apps: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Checks whose apps all ran; a missing metric fails its check rather than passing silently."""
    results = []
    for check in checks:
        if check.app not in apps or (check.other and check.other not in apps):
            continue
        value = metric_value(apps[check.app], check.metric)
        if check.other and value is not None:
            base = metric_value(apps[check.other], check.metric)
            value = ratio(base, value)
        passed = value is not None and bool(_OPS[check.op](value, check.threshold))
        results.append({
            "name": check.name, "app": check.app if not check.other else f"{check.app}/{check.other}",
            "metric": check.metric, "op": check.op, "threshold": check.threshold,
            "value": None if value is None else (round(value, 4) if math.isfinite(value) else str(value)),
            "passed": passed,
        })
    return results


def evaluate_each(checks: list[Check], repeats: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Checks judged in every repeat rather than on the median: one fails when any repeat fails it (a stall in
    one of three repeats is a stall, though the median of 0, 0 and 1 is 0). Its value is the first failing
    repeat's, else the last repeat's; with one run it is ``evaluate``'s result."""
    count = max((len(runs) for runs in repeats.values()), default=0)
    each = [{app: runs[i] for app, runs in repeats.items() if i < len(runs)} for i in range(count)]
    results = []
    for check in checks:
        judged = [result for apps in each for result in evaluate([check], apps)]
        if judged:
            results.append(next((r for r in judged if not r["passed"]), judged[-1]))
    return results


def median_summary(repeats: list[dict[str, Any]]) -> dict[str, Any]:
    """One app's figures over repeats: the median of every number, other values from the first."""
    first = repeats[0]
    out: dict[str, Any] = {}
    for key, value in first.items():
        values = [r.get(key) for r in repeats]
        if isinstance(value, dict) and all(isinstance(v, dict) for v in values):
            out[key] = median_summary(values)  # type: ignore[arg-type]
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            mid = float(np.median(np.asarray(values, dtype=float)))
            out[key] = int(mid) if all(isinstance(v, int) for v in values) and mid.is_integer() else rounded(mid, 4)
        else:
            out[key] = value
    return out
