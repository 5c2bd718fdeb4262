"""Per-step figures of one sweep, cut from one continuous run's raw files (request log, samples, pacer's steps).

bench.run.capacity calls ``cut_steps`` for each app and pool size; the start of every step is discarded (settling).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis.stats import ms, nearest_rank
from bench.analysis.stepsamples import COLUMNS, WindowSamples, window
from bench.config.sweep import SweepPlan
from bench.errors import UsageError
from bench.instrument import Histogram
from bench.results.layout import AppFiles
from bench.results.locustfiles import read_pacer
from bench.results.requestlog import DROPPED, LOST, UNFINISHED, read_requests
from bench.results.samples import read_samples

_PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True, kw_only=True)
class StepFigures:
    index: int
    level: float  # offered: requests/s (rate mode) or users (users mode)
    start: float  # epoch seconds of the measured window (after settling)
    end: float
    offered_rps: float  # arrivals scheduled per second in the window (requests started, in users mode)
    throughput_rps: float  # successful responses per second, by completion time
    requests: int
    failures: int  # failed responses plus dropped and unfinished arrivals
    dropped: int
    unfinished: int
    error_rate: float
    latency_ms: dict[str, float | None]  # successful requests; from the scheduled start in rate mode
    pool_wait_ms: dict[str, float | None]
    hold_ms_per_checkout: float | None
    hold_s: float  # connection-seconds held in the window
    served: int  # requests answered in the window (successful or not): hold_s / served = hold per request
    pool_busy: float | None  # mean connections checked out
    pool_pending: float | None
    timeouts: int
    loop_lag_ms: dict[str, float | None]
    app_cpu: float | None  # the app's CPU in cores, summed over its processes
    app_loops: int = 1  # the event loops (uvicorn workers) app_cpu is summed over
    host_cpu: float | None  # the whole machine's, fraction of all cores
    host_cores: float | None  # the whole machine's, in cores busy
    db_active: float | None  # mean backends running a statement
    idle_in_tx: float | None
    generator_cpu: float | None  # Locust's CPU over the step, fraction of one core
    start_lateness_ms_p95: float | None  # how late the pacer's users started scheduled arrivals

    @property
    def hold_ms_per_request(self) -> float | None:
        return self.hold_s * 1000 / self.served if self.served else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["hold_ms_per_request"] = _round(self.hold_ms_per_request)
        return data


def cut_steps(app_dir: Path, plan: SweepPlan) -> list[StepFigures]:
    """One ``StepFigures`` per step the pacer started, from the app's raw files."""
    pacer = read_pacer(app_dir)
    requests = read_requests(app_dir).frame
    log = read_samples(app_dir, COLUMNS)
    if not log.present:
        raise UsageError(f"{AppFiles(app_dir).samples} is missing; the sweep's run folder is incomplete, "
                         "re-run bench capacity")
    samples = log.frame
    if not requests.empty:
        requests = requests.assign(end=requests["start_epoch_s"] + requests["response_time_ms"] / 1000,
                                   lost=requests["request_type"].isin(LOST))
    figures = []
    for step in pacer["steps"]:
        start, end = float(step["start"]) + plan.settle_s, float(step["end"] or 0)
        if end <= start:
            continue  # the run stopped inside this step's settling period
        figures.append(_step(step, start, end, requests, window(samples, start, end)))
    return figures


def _step(step: dict[str, Any], start: float, end: float, requests: pd.DataFrame,
          samples: WindowSamples) -> StepFigures:
    span = end - start
    if requests.empty:
        scheduled = finished = requests
    else:
        scheduled = requests[(requests["start_epoch_s"] >= start) & (requests["start_epoch_s"] < end)]
        finished = requests[(requests["end"] >= start) & (requests["end"] < end) & ~requests["lost"]]
    ok = scheduled[scheduled["failed"] == 0] if not scheduled.empty else scheduled
    lost = scheduled[scheduled["lost"]] if not scheduled.empty else scheduled
    hold = samples.merged("hold_hist")
    app_cpu = samples.rate("app_cpu_s")
    loops = samples.mean("app_loops")  # absent from samples written before it was recorded: one loop
    return StepFigures(
        index=int(step["index"]), level=float(step["level"]), start=round(start, 3), end=round(end, 3),
        offered_rps=round(len(scheduled) / span, 3),
        throughput_rps=round(int((finished["failed"] == 0).sum()) / span, 3) if not finished.empty else 0.0,
        requests=len(scheduled), failures=int(scheduled["failed"].sum()) if not scheduled.empty else 0,
        dropped=int((lost["request_type"] == DROPPED).sum()) if not lost.empty else 0,
        unfinished=int((lost["request_type"] == UNFINISHED).sum()) if not lost.empty else 0,
        error_rate=round(float(scheduled["failed"].mean()), 5) if not scheduled.empty else 0.0,
        latency_ms=_latency(ok["response_time_ms"].to_numpy(dtype=float) if not ok.empty else np.array([])),
        pool_wait_ms=_hist_ms(samples.merged("wait_hist"), with_mean=True),
        hold_ms_per_checkout=_round(hold.mean * 1000) if hold.count else None,
        hold_s=round(hold.total, 6), served=len(finished),
        pool_busy=_round(samples.mean("pool_checked_out")), pool_pending=_round(samples.mean("pool_pending")),
        timeouts=int(samples.growth("pool_timeouts") or 0),
        loop_lag_ms=_hist_ms(samples.merged("lag_hist")),
        app_cpu=_round(app_cpu, 4), app_loops=max(1, round(loops)) if loops else 1,
        host_cpu=_round(samples.mean("host_cpu"), 4),
        host_cores=_round(samples.mean("host_cores")),
        db_active=_round(samples.mean("active")), idle_in_tx=_round(samples.mean("idle_in_tx")),
        generator_cpu=step.get("generator_cpu"), start_lateness_ms_p95=(step.get("lateness_ms") or {}).get("p95"),
    )


def _latency(values: np.ndarray) -> dict[str, float | None]:
    if values.size == 0:
        empty: dict[str, float | None] = {f"p{p}": None for p in _PERCENTILES}
        return empty | {"max": None, "mean": None}
    # Nearest rank, the harness's one percentile rule: a latency some request really had.
    out: dict[str, float | None] = {f"p{p}": _round(nearest_rank(values, p)) for p in _PERCENTILES}
    return out | {"max": round(float(values.max()), 3), "mean": round(float(values.mean()), 3)}


def _hist_ms(hist: Histogram, with_mean: bool = False) -> dict[str, float | None]:
    if hist.count == 0:
        out: dict[str, float | None] = {"p50": None, "p95": None, "p99": None}
        return out | ({"mean": None} if with_mean else {})
    out = {f"p{p}": ms(hist.percentile(p)) for p in (50, 95, 99)}
    return out | ({"mean": ms(hist.mean)} if with_mean else {})


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
