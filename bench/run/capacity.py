"""`bench capacity`: one continuous stepped-load run per pool size, cut into steps, assessed, written as capacity.json.

The CLI's capacity command calls ``run_capacity``; tests call it too. bench.render.capacity_report renders the results.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.analysis.assessment import Assessment, assess, pool_scaling, recommend
from bench.analysis.bottleneck import HOST_FULL, other_cores
from bench.analysis.steps import cut_steps
from bench.analysis.stepsamples import DetailCollector
from bench.config.catalog import Scenario
from bench.config.options import RunConfig, resolve_config
from bench.config.slo import Slo
from bench.config.sweep import SweepPlan
from bench.errors import BenchError, Interrupted
from bench.render.capacity_report import render_report
from bench.render.terminal import Console
from bench.results.folder import new_run_dir, write_json
from bench.run.environment import describe
from bench.run.loadgen import PLUGINS
from bench.run.runner import RunHooks, run_scenario

SCHEMA = "scopebench.capacity/1"
SCHEMA_VERSION = 1
PACER = PLUGINS / "pacer.py"
OTHER_CORES = 0.75  # busy cores outside the app and Locust past which a busy machine gets a warning

GLOSSARY = {
    "level": "offered load of a step: requests/s scheduled (open model, --rates) or users (closed model, --users)",
    "offered_rps": "arrivals scheduled per second in the step's measured window (requests started, closed model)",
    "throughput_rps": "successful responses per second, counted by completion time",
    "latency_ms": "successful requests; open model: from the SCHEDULED start, so a late start counts",
    "error_rate": "(failed + dropped + unfinished) / arrivals; dropped = no free user at the scheduled start",
    "pool_wait_ms": "checkout queue wait, exact histogram of the window (connect time excluded)",
    "hold_ms_per_request": "connection-seconds held in the window per request answered",
    "littles_law.ceiling_rps": "capacity / hold_ms_per_request below the knee: requests/s with every connection busy",
    "saturation.plateau_rps": "median throughput of the steps that fall behind the offered load (overload)",
    "knee": "first step where latency p95 or pool wait p95 turns up, or throughput falls behind, and stays so",
    "max_slo": "highest step meeting every SLO objective, with every step below it",
    "model": "M/D/c queue (Erlang C, Cosmetatos correction): pool wait p95 and highest rate meeting the pool-wait "
             "objective; constant arrivals queue less than its Poisson ones",
    "loop_lag_ms": "how late a 10 ms asyncio.sleep wakes in the app: a busy event loop, not a starved pool",
    "app_cpu": "app process CPU, fraction of one core (one uvicorn process uses one core at most)",
}


@dataclass(frozen=True, kw_only=True)
class CapacityRequest:
    scenario: Scenario
    plan: SweepPlan
    slo: Slo
    flags: dict[str, Any]  # bench run's flags that apply to every pool size: app, max_overflow, dsn, ...
    out: Path | None
    command: list[str]


@dataclass
class CapacityResult:
    folder: Path
    data: dict[str, Any]
    exit_code: int
    error: str | None = None


class CapacityConsole(Console):
    """One line per pool-size run instead of bench run's header and summary; the live progress line stays."""

    def header(self, config: RunConfig, scenario: Scenario, folder: Path) -> None:
        self.info(f"pool {config.pool_size}+{config.max_overflow}: {' then '.join(config.apps)}, "
                  f"{config.duration_s:g}s of steps each · {folder}")

    def final(self, summary: dict[str, Any], folder: Path, error: str | None, report: Path | None = None) -> None:
        self.end_progress()
        if error:
            print(f"error: {error}", file=self.err, flush=True)


def pool_configs(request: CapacityRequest) -> list[RunConfig]:
    """One run config per pool size (flag > BENCH_* env > catalog, as bench run), validated up front."""
    plan = request.plan
    flags = {**request.flags, "users": plan.users, "spawn_rate": float(plan.users), "duration_s": plan.duration_s,
             "cooldown_s": request.flags.get("cooldown_s") or "1s", "repeat": 1}
    return [resolve_config(request.scenario, {**flags, "pool_size": size}) for size in plan.pool_sizes]


async def run_capacity(request: CapacityRequest, console: Console) -> CapacityResult:
    configs = pool_configs(request)  # a usage error leaves no folder behind
    folder = new_run_dir(f"capacity_{request.scenario.name}", request.out)
    configs = [replace(c, out=folder / f"pool-{c.pool_size}") for c in configs]
    started, wall0 = datetime.now(UTC).isoformat(), time.monotonic()
    # No scenario checks: they judge one steady load, not a sweep.
    scenario = replace(request.scenario, checks=())
    hooks = _hooks(request.plan)
    assessments: list[Assessment] = []
    runs: dict[str, Any] = {}
    status, error, exit_code = "completed", None, 0
    try:
        for config in configs:
            result = await run_scenario(config, scenario, console, request.command, hooks)
            runs[f"pool-{config.pool_size}"] = _run_entry(result.folder, folder, result.summary, result.error)
            if result.exit_code not in (0, 1):
                status, error, exit_code = _failure(result.exit_code), result.error, result.exit_code
                break
            assessments += _assess_pool(request, config, result.folder)
            _write(folder, _document(request, configs, started, wall0, runs, assessments, "running", None))
    except asyncio.CancelledError:
        status, error, exit_code = "interrupted", "interrupted by a signal", Interrupted.exit_code
    except BenchError as err:
        status, error, exit_code = "failed", str(err), err.exit_code
    data = _document(request, configs, started, wall0, runs, assessments, status, error)
    _write(folder, data)
    render_report(folder, data)
    return CapacityResult(folder=folder, data=data, exit_code=exit_code, error=error)


def _hooks(plan: SweepPlan) -> RunHooks:
    return RunHooks(locust_files=(PACER,), locust_env=plan.pacer_env(), collector=DetailCollector)


def _assess_pool(request: CapacityRequest, config: RunConfig, run_folder: Path) -> list[Assessment]:
    capacity = config.pool_size + config.max_overflow
    return [assess(app=app, pool_size=config.pool_size, capacity=capacity,
                   steps=cut_steps(run_folder / app, request.plan), plan=request.plan, slo=request.slo)
            for app in config.apps]


def _failure(code: int) -> str:
    return "interrupted" if code == Interrupted.exit_code else "failed"


def _run_entry(run_folder: Path, folder: Path, summary: dict[str, Any] | None, error: str | None) -> dict[str, Any]:
    summary = summary or {}
    return {"folder": str(run_folder.relative_to(folder)) if run_folder.is_relative_to(folder) else str(run_folder),
            "status": summary.get("status"), "error": error, "timings": summary.get("timings"),
            "postgres": (summary.get("environment") or {}).get("postgres")}


def _document(request: CapacityRequest, configs: list[RunConfig], started: str, wall0: float,
              runs: dict[str, Any], assessments: list[Assessment], status: str, error: str | None) -> dict[str, Any]:
    postgres = next((r["postgres"] for r in runs.values() if r.get("postgres")), None)
    config = {k: v for k, v in configs[0].to_json().items()
              if k not in ("pool_size", "users", "spawn_rate", "duration_s", "out", "repeat", "scenario")}
    return {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "scenario": request.scenario.name,
        "status": status, "error": error, "started_at": started, "finished_at": datetime.now(UTC).isoformat(),
        "wall_time_s": round(time.monotonic() - wall0, 1), "command": request.command,
        "environment": describe(postgres),
        "config": {**config, "pool_sizes": list(request.plan.pool_sizes), "sweep": request.plan.to_json(),
                   "slo": request.slo.to_json(), "duration_s_per_app": request.plan.duration_s},
        "runs": runs,
        "results": [a.to_json() for a in assessments],
        "pool_scaling": pool_scaling(assessments),
        "recommendation": recommend(assessments, request.slo, request.scenario.name) if assessments else None,
        "warnings": busy_machine_warnings(assessments),
        "glossary": GLOSSARY,
    }


def busy_machine_warnings(assessments: list[Assessment]) -> list[str]:
    """Say so when the machine was short of CPU for reasons outside the app and Locust (a shared machine)."""
    out = []
    for a in assessments:
        busy = [s for s in a.steps if (s.host_cpu or 0) >= HOST_FULL and (other_cores(s) or 0) >= OTHER_CORES]
        if busy:
            cores = sorted(other_cores(s) or 0 for s in busy)[len(busy) // 2]
            out.append(f"{a.app} pool {a.pool_size}: the machine's CPU was {HOST_FULL:.0%}+ busy in {len(busy)} of "
                       f"{len(a.steps)} steps, {cores:.1f} cores of it outside the app and Locust (PostgreSQL and "
                       "anything else running): a CPU-bound app measures lower than on a quiet machine")
    return out


def _write(folder: Path, data: dict[str, Any]) -> None:
    write_json(folder / "capacity.json", data)
