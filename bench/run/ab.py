"""bench ab: version A and version B of one app, run interleaved (A B A B ...) in one job on one database server, a
fresh database each, then compared with the significance test and the gates; one folder holds it all.

``bench ab`` calls ``run_ab``; tests call it too. Each side is a complete run folder (``a/``, ``b/``) that ``bench
compare`` and ``bench report`` read as they read any other; the comparison and ``ab.json`` sit beside them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.analysis.compare import Comparison, compare, load_side
from bench.analysis.summary import median_summary
from bench.config.catalog import Scenario
from bench.config.gates import Gate, merge_gates
from bench.config.options import RunConfig, redact_argv
from bench.errors import EXIT_GATE, EXIT_OK, InfraError
from bench.render.compare_render import render_json, render_junit, render_markdown, render_text
from bench.render.terminal import Console
from bench.results.folder import new_run_dir, write_json, write_text
from bench.results.layout import RunFiles
from bench.results.summaryfile import SCHEMA_VERSION
from bench.run.digest import conclude, summarize
from bench.run.drive import drive
from bench.run.runner import database
from bench.run.state import COMPLETED, Outcome, RunState, ended_by

SIDES = ("a", "b")  # the sides' folders, in the order they run within each repeat
AB_JSON = "ab.json"
COMPARISON = "comparison.{ext}"  # .txt (the terminal's table), .md (a job summary), .json, .xml (JUnit)


@dataclass(frozen=True, kw_only=True)
class AbRequest:
    """What bench ab was asked: the two versions' configs (bench.config.options.resolve_ab) and the verdict's."""

    scenario: Scenario
    a: RunConfig
    b: RunConfig
    out: Path | None
    force: bool
    fail_on: tuple[str, ...]  # --fail-on texts, over the registry's default gates
    junit: Path | None  # a copy of comparison.xml here too (CI reporters look for one path)
    command: list[str]


@dataclass(frozen=True)
class AbResult:
    folder: Path
    exit_code: int
    comparison: Comparison | None  # None when a side did not complete: there is nothing fair to compare
    error: str | None = None


class SideConsole(Console):
    """The run's console, its progress line saying which version is running (A or B)."""

    def __init__(self, side: str, console: Console) -> None:
        super().__init__(console.out, console.err, console.quiet)
        self.side = side.upper()

    def progress(self, app: str, *rest: Any, **more: Any) -> None:
        super().progress(f"{self.side} {app}", *rest, **more)


async def run_ab(request: AbRequest, console: Console) -> AbResult:
    """Drive both versions, interleaved, then digest each side and compare B against A.

    Exit code: 3 (or 130) when a side did not complete, else 1 when a gate or a side's own check failed, else 0.
    """
    gates = merge_gates(list(request.fail_on))  # a malformed gate is a usage error before anything runs
    moved: list[str] = []
    folder = new_run_dir(f"ab_{request.scenario.name}", request.out, request.force, moved.append)
    started = time.monotonic()
    runs = [_side_state(request, side, folder, console) for side in SIDES]
    for message in moved:
        runs[0].note(message)
    _header(request, folder, console)
    outcome = COMPLETED
    try:
        await _interleave(runs)
    except (asyncio.CancelledError, Exception) as err:  # noqa: BLE001 - whatever stopped it, keep the results
        outcome = ended_by(err, folder)
    concluded = [conclude(run, outcome) for run in runs]  # each side: summary.json, run.json, report
    for run, (summary, side_outcome, report) in zip(runs, concluded, strict=True):
        console.info(f"{run.folder.name.upper()} ({_version(run.config)}): {side_outcome.status}, "
                     f"{RunFiles(run.folder).summary_json}" + (f", report {report}" if report else ""))
        outcome = side_outcome if outcome.status == "completed" else outcome
    result = _verdict(request, runs, [c[0] for c in concluded], outcome, gates, folder)
    _write_ab_json(request, folder, result, time.monotonic() - started)
    if result.error:
        console.info(f"error: {result.error}")
    return result


def _side_state(request: AbRequest, side: str, folder: Path, console: Console) -> RunState:
    config = replace(request.a if side == "a" else request.b, out=folder / side)
    run = RunState(config=config, scenario=request.scenario, console=SideConsole(side, console),
                   command=request.command, folder=folder / side)
    run.folder.mkdir(parents=True, exist_ok=True)
    write_json(RunFiles(run.folder).run_json, run.run_json("running"))
    return run


async def _interleave(runs: list[RunState]) -> None:
    """A B A B ...: whatever drifts during the job (a neighbour's load, a warming cache) falls on both alike. One
    database server for the job (the first side's; bench.run.runner.database stops every child at the end)."""
    first = runs[0]
    async with database(first):
        for run in runs[1:]:
            run.server = first.server
            run.timings.update(first.timings)
        for index in range(first.config.repeat):
            for run in runs:
                app = run.config.apps[0]
                figures = summarize(run, await drive(run, app, index), plotted=index == 0)
                run.repeats.setdefault(app, []).append(figures)
                run.apps[app] = median_summary(run.repeats[app])
                write_json(RunFiles(run.folder).run_json, run.run_json("running"))
                if run.faults:  # its figures are kept, but a run with a fault is not a measurement to trust
                    raise InfraError(f"{run.folder.name.upper()}: " + "; ".join(run.faults))


def _verdict(request: AbRequest, runs: list[RunState], summaries: list[dict[str, Any]], outcome: Outcome,
             gates: list[Gate], folder: Path) -> AbResult:
    """The comparison of B against A, written in every format; the exit code the job ends with."""
    if outcome.status != "completed":
        return AbResult(folder, outcome.exit_code, None, f"no comparison: {outcome.error}")
    a, b = (load_side(run.folder) for run in runs)
    comparison = compare(a, b, gates, base_app=runs[0].config.apps[0], current_app=runs[1].config.apps[0])
    for ext, text in (("txt", render_text(comparison)), ("md", render_markdown(comparison)),
                      ("json", render_json(comparison)), ("xml", render_junit(comparison))):
        write_text(folder / COMPARISON.format(ext=ext), text + ("\n" if ext != "xml" else ""))
    if request.junit is not None:
        write_text(request.junit, render_junit(comparison))
    print(render_text(comparison), file=runs[0].console.out, flush=True)
    failed_checks = [f"{run.folder.name.upper()}: {c['name']}" for run, summary in zip(runs, summaries, strict=True)
                     for c in summary.get("checks", []) if not c["passed"]]
    if failed_checks:
        runs[0].console.info("check(s) failed: " + "; ".join(failed_checks))
    code = EXIT_GATE if comparison.failed_gates or failed_checks else EXIT_OK
    return AbResult(folder, code, comparison)


def _header(request: AbRequest, folder: Path, console: Console) -> None:
    cfg = request.a
    console.info(f"scopebench ab · {request.scenario.name} · A: {_version(request.a)} · B: {_version(request.b)} · "
                 f"{cfg.repeat} runs each, interleaved · {cfg.users} users · {cfg.duration_s:g}s load + "
                 f"{cfg.cooldown_s:g}s cool-down per run")
    console.info(f"folder: {folder}")


def _version(config: RunConfig) -> str:
    return redact_argv([config.serve])[0] if config.serve else f"the {config.apps[0]} app"


def _write_ab_json(request: AbRequest, folder: Path, result: AbResult, wall_s: float) -> None:
    """The job's own record, beside its two run folders: what was compared, how it ended, how long it took."""
    comparison = result.comparison
    write_json(folder / AB_JSON, {
        "schema_version": SCHEMA_VERSION,
        "scenario": request.scenario.name,
        "command": redact_argv(request.command),
        "finished_at": datetime.now(UTC).isoformat(),
        "sides": {side: {"folder": side, "version": _version(cfg), "app": cfg.apps[0]}
                  for side, cfg in zip(SIDES, (request.a, request.b), strict=True)},
        "repeat": request.a.repeat,
        "exit_code": result.exit_code,
        "error": result.error,
        "failed_gates": [r.gate for r in comparison.failed_gates] if comparison else None,
        "comparison": COMPARISON.format(ext="json") if comparison else None,
        "wall_s": round(wall_s, 1),
    })
