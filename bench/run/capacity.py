"""`bench capacity`: one continuous stepped-load run per pool size, cut into steps, assessed, written as capacity.json.

The CLI's capacity command calls ``run_capacity``; tests call it too. bench.render.capacity_report renders the results.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.analysis.assessment import Assessment, assess, pool_scaling, recommend
from bench.analysis.bottleneck import HOST_FULL, other_cores
from bench.analysis.steps import cut_steps
from bench.config.catalog import Scenario
from bench.config.command import CommandTemplate
from bench.config.options import RunConfig, given_value
from bench.config.slo import Slo
from bench.config.sweep import SweepPlan
from bench.errors import InfraError, UsageError
from bench.render.capacity_report import render_report
from bench.render.terminal import Console
from bench.results.capacity_figures import CAPACITY
from bench.results.folder import new_run_dir, write_json
from bench.results.layout import CapacityFiles
from bench.run.detail_collector import DetailCollector
from bench.run.digest import summarize, write_summary
from bench.run.drive import Driven, drive
from bench.run.loadgen import PLUGINS
from bench.run.runner import database
from bench.run.state import COMPLETED, Outcome, RunHooks, RunState, ended_by

SCHEMA = "scopebench.capacity/1"
SCHEMA_VERSION = 1
PACER = PLUGINS / "pacer.py"
OTHER_CORES = 0.75  # busy cores outside the app and Locust past which a busy machine gets a warning

# The figures capacity.md explains, by the name its tables use, in the metric registry's words (docs/metrics.md):
# one definition, so the page cannot drift from it. A percentile family is defined once, without its "95th
# percentile: " lead.
_GLOSSARY_PATHS = {
    "level": "results[].steps[].level",
    "offered_rps": "results[].steps[].offered_rps",
    "throughput_rps": "results[].steps[].throughput_rps",
    "latency_ms": "results[].steps[].latency_ms.p95",
    "error_rate": "results[].steps[].error_rate",
    "dropped": "results[].steps[].dropped",
    "pool_wait_ms": "results[].steps[].pool_wait_ms.p95",
    "hold_ms_per_request": "results[].steps[].hold_ms_per_request",
    "pool_busy": "results[].steps[].pool_busy",
    "littles_law.ceiling_rps": "results[].littles_law.ceiling_rps",
    "saturation.plateau_rps": "results[].saturation.plateau_rps",
    "knee": "results[].knee.index",
    "max_slo": "results[].max_slo.sustained_rps",
    "model": "results[].model.max_rate_rps",
    "loop_lag_ms": "results[].steps[].loop_lag_ms.p95",
    "app_cpu": "results[].steps[].app_cpu",
    "generator_cpu": "results[].steps[].generator_cpu",
}


def _definition(path: str) -> str:
    text = next(m.description for m in CAPACITY if m.path == path)
    if path.rsplit(".", 1)[-1] in ("p50", "p95", "p99"):
        what = text.split(": ", 1)[1]
        text = what[:1].upper() + what[1:]
    return text


GLOSSARY = {name: _definition(path) for name, path in _GLOSSARY_PATHS.items()}


@dataclass(frozen=True, kw_only=True)
class CapacityRequest:
    scenario: Scenario
    plan: SweepPlan
    slo: Slo
    configs: tuple[RunConfig, ...]  # one per pool size, resolved as bench run's (bench.config.sweep.resolve_sweep)
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
        pool = (
            f"pool {config.pool_size}+{config.max_overflow}"
            if pool_is_set(config)
            else "pool: your service's own (read from its pool endpoint, if it has one)"
        )
        self.info(f"{pool}: {' then '.join(config.apps)}, {config.duration_s:g}s of steps each · {folder}")

    def final(self, summary: dict[str, Any], folder: Path, error: str | None, report: Path | None = None) -> None:
        self.end_progress()
        if error:
            print(f"error: {error}", file=self.err, flush=True)


def pool_is_set(config: RunConfig) -> bool:
    """Whether the harness set the pool: the paired apps, or a --serve command that takes {pool_size}."""
    if config.target:
        return False
    return config.serve is None or "pool_size" in CommandTemplate.parse(config.serve, "--serve").uses


def check_own_service(configs: tuple[RunConfig, ...], given: Mapping[str, Any]) -> None:
    """Refuse, before anything runs, pool sizes the harness cannot give the user's service."""
    sized = given_value(given, "pool_size")
    if configs[0].target and sized is not None:
        raise UsageError(
            f"{sized.source}: the harness cannot set the pool of a service already running "
            "(--target); drop it, or use --serve CMD with {pool_size} in CMD to sweep pool sizes"
        )
    if len(configs) > 1 and not pool_is_set(configs[0]):
        raise UsageError(
            f"{sized.source if sized else '--pool-size'} names {len(configs)} pool sizes but --serve "
            "has no {pool_size}: put it where your service reads its pool size"
        )


def pool_configs(request: CapacityRequest) -> list[RunConfig]:
    """One run config per pool size, validated up front by bench.config.sweep.resolve_sweep."""
    return list(request.configs)


@dataclass
class _Sweep:
    """What the sweep has so far: one entry per pool size run, the assessments of every app in them."""

    request: CapacityRequest
    configs: list[RunConfig]
    files: CapacityFiles
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    wall0: float = field(default_factory=time.monotonic)
    runs: dict[str, Any] = field(default_factory=dict)
    assessments: list[Assessment] = field(default_factory=list)


async def run_capacity(request: CapacityRequest, console: Console) -> CapacityResult:
    configs = pool_configs(request)  # a usage error leaves no folder behind
    files = CapacityFiles(
        new_run_dir(CapacityFiles.default_name(request.scenario.name), request.out, configs[0].force, console.info)
    )
    sweep = _Sweep(request=request, configs=[replace(c, out=files.pool_run(c.pool_size)) for c in configs], files=files)
    runs = [_pool_state(sweep, config, console) for config in sweep.configs]
    outcome = COMPLETED
    try:
        # One database server for the whole sweep; every app run still gets a fresh database in it.
        async with database(runs[0]):
            for run in runs:
                run.server = runs[0].server
                outcome = await _sweep_pool(sweep, run)
                _write(sweep, runs[0], "running")
                if outcome != COMPLETED:
                    break
    except (asyncio.CancelledError, Exception) as err:  # noqa: BLE001 - whatever stopped it, keep the results
        outcome = ended_by(err, files.root)
    data = _write(sweep, runs[0], outcome.status, outcome.error)
    render_report(files.root, data)
    return CapacityResult(folder=files.root, data=data, exit_code=outcome.exit_code, error=outcome.error)


def _pool_state(sweep: _Sweep, config: RunConfig, console: Console) -> RunState:
    assert config.out is not None
    # No scenario checks: they judge one steady load, not a sweep.
    scenario = replace(sweep.request.scenario, checks=())
    hooks = RunHooks(locust_files=(PACER,), locust_env=sweep.request.plan.pacer_env(), collector=DetailCollector)
    return RunState(
        config=config, scenario=scenario, console=console, command=sweep.request.command, folder=config.out, hooks=hooks
    )


async def _sweep_pool(sweep: _Sweep, run: RunState) -> Outcome:
    """Drive and assess each app at one pool size; its summary.json is written whatever ends it."""
    run.folder.mkdir(parents=True, exist_ok=True)
    run.console.header(run.config, run.scenario, run.folder)
    outcome = COMPLETED
    try:
        for app in run.config.apps:
            driven = await drive(run, app)
            run.apps[app] = summarize(run, driven)
            if run.faults:  # its figures are kept, but a sweep with a fault is not a measurement to trust
                raise InfraError("; ".join(run.faults))
            sweep.assessments.append(_assess(sweep, run, driven))
    except (asyncio.CancelledError, Exception) as err:  # noqa: BLE001 - whatever stopped it, keep the results
        outcome = ended_by(err, run.folder)
    # Each pool size's folder stays a run folder: bench report and bench compare read its summary.json.
    summary = write_summary(run, outcome)
    sweep.runs[sweep.files.pool_run_name(run.config.pool_size)] = _run_entry(sweep, run, outcome)
    run.console.final(summary, run.folder, outcome.error)
    return outcome


def _assess(sweep: _Sweep, run: RunState, driven: Driven) -> Assessment:
    plan, config = sweep.request.plan, run.config
    size, capacity = config.pool_size, config.pool_size + config.max_overflow
    if not pool_is_set(config):
        # The service's own pool: as its pool endpoint reports it, else unknown (0, which no figure divides by:
        # without the endpoint there is no hold time, so no ceiling and no model).
        measured = ((run.apps.get(driven.app) or {}).get("pool") or {}).get("capacity")
        size = capacity = int(measured) if isinstance(measured, (int, float)) and measured > 0 else 0
    return assess(
        app=driven.app,
        pool_size=size,
        capacity=capacity,
        steps=cut_steps(driven.files.root, plan),
        plan=plan,
        slo=sweep.request.slo,
    )


def _run_entry(sweep: _Sweep, run: RunState, outcome: Outcome) -> dict[str, Any]:
    folder = run.folder
    return {
        "folder": str(folder.relative_to(sweep.files.root)) if folder.is_relative_to(sweep.files.root) else str(folder),
        "status": outcome.status,
        "error": outcome.error,
        "timings": run.timings,
        "postgres": run.server.version if run.server else None,
    }


def _write(sweep: _Sweep, first: RunState, status: str, error: str | None = None) -> dict[str, Any]:
    data = _document(sweep, first.environment(), status, error)
    write_json(sweep.files.capacity_json, data)
    return data


def _document(sweep: _Sweep, environment: dict[str, Any], status: str, error: str | None) -> dict[str, Any]:
    request, assessments = sweep.request, sweep.assessments
    config = {
        k: v
        for k, v in sweep.configs[0].to_json().items()
        if k not in ("pool_size", "users", "spawn_rate", "duration_s", "out", "repeat", "scenario")
    }
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "scenario": request.scenario.name,
        "status": status,
        "error": error,
        "started_at": sweep.started_at,
        "finished_at": datetime.now(UTC).isoformat(),
        "wall_time_s": round(time.monotonic() - sweep.wall0, 1),
        "command": request.command,
        "environment": environment,
        "config": {
            **config,
            "pool_sizes": list(request.plan.pool_sizes),
            "sweep": request.plan.to_json(),
            "slo": request.slo.to_json(),
            "duration_s_per_app": request.plan.duration_s,
        },
        "runs": sweep.runs,
        "results": [_result(a) for a in assessments],
        "pool_scaling": pool_scaling(assessments),
        "recommendation": _recommendation(sweep) if assessments else None,
        "warnings": [*unknown_pool_warnings(assessments), *busy_machine_warnings(assessments)],
        "glossary": GLOSSARY,
    }


def _recommendation(sweep: _Sweep) -> str:
    text = recommend(sweep.assessments, sweep.request.slo, sweep.request.scenario.name)
    # An unknown pool is held as 0 (see _assess); the paragraph says what it is.
    return text.replace("pool 0 ", "pool unknown ").replace("pool 0:", "pool unknown:")


def _result(assessment: Assessment) -> dict[str, Any]:
    data = assessment.to_json()
    if assessment.capacity == 0:  # the service's pool, which the harness could not read
        data["pool_size"] = data["capacity"] = "unknown"
    return data


def unknown_pool_warnings(assessments: list[Assessment]) -> list[str]:
    """Say what a sweep of a service whose pool the harness cannot know leaves out, and what still stands."""
    return [
        f"{a.app}: its pool is unknown (no pool endpoint answered; see --pool-url): no pool wait, hold time, "
        "Little's-law ceiling or pool-wait model; the knee, the SLO rate and the database-side figures stand"
        for a in assessments
        if a.capacity == 0
    ]


def busy_machine_warnings(assessments: list[Assessment]) -> list[str]:
    """Say so when the machine was short of CPU for reasons outside the app and Locust (a shared machine)."""
    out = []
    for a in assessments:
        busy = [s for s in a.steps if (s.host_cpu or 0) >= HOST_FULL and (other_cores(s) or 0) >= OTHER_CORES]
        if busy:
            cores = sorted(other_cores(s) or 0 for s in busy)[len(busy) // 2]
            out.append(
                f"{a.app} pool {a.pool_size}: the machine's CPU was {HOST_FULL:.0%}+ busy in {len(busy)} of "
                f"{len(a.steps)} steps, {cores:.1f} cores of it outside the app and Locust (PostgreSQL and "
                "anything else running): a CPU-bound app measures lower than on a quiet machine"
            )
    return out
