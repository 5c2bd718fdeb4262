"""Runs one scenario end to end: the database, then drive and digest for each app (and repeat), then summary and report.

``bench run`` calls ``run_scenario``; tests call it directly. Every child is stopped on every exit path.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config.catalog import Scenario
from bench.config.options import RunConfig
from bench.db import server as postgres
from bench.db.embedded import EmbeddedPostgres
from bench.errors import EXIT_GATE, InfraError
from bench.render.terminal import Console
from bench.results.folder import new_run_dir, write_json
from bench.results.layout import RunFiles
from bench.run.drive import drive
from bench.run.processes import stop_all
from bench.run.state import COMPLETED, RunHooks, RunState, ended_by


@dataclass
class RunResult:
    folder: Path
    summary: dict[str, Any] | None
    exit_code: int
    error: str | None = None


async def run_scenario(config: RunConfig, scenario: Scenario, console: Console, command: list[str],
                       hooks: RunHooks | None = None) -> RunResult:
    moved: list[str] = []
    folder = new_run_dir(config.scenario, config.out, config.force, moved.append)  # a usage error: nothing ran
    run = RunState(config=config, scenario=scenario, console=console, command=command, folder=folder,
                   hooks=hooks or RunHooks())
    for message in moved:  # said, and kept on run.json's time line
        run.note(message)
    write_json(RunFiles(folder).run_json, run.run_json("running"))
    console.header(config, scenario, folder)
    outcome = COMPLETED
    try:
        async with database(run):
            write_json(RunFiles(folder).run_json, run.run_json("running"))
            await _drive_and_digest(run)
    except (asyncio.CancelledError, Exception) as err:  # noqa: BLE001 - whatever stopped it, keep the results
        outcome = ended_by(err, folder)
    from bench.run.digest import conclude

    summary, outcome, report = conclude(run, outcome)  # a full disk: what is written stays, the cause is named
    exit_code = outcome.exit_code
    if outcome.status == "completed" and any(not c["passed"] for c in summary["checks"]):
        exit_code = EXIT_GATE
    console.final(summary, folder, outcome.error, report)
    return RunResult(folder=folder, summary=summary, exit_code=exit_code, error=outcome.error)


async def _drive_and_digest(run: RunState) -> None:
    # Repeats interleave the apps (good bad good bad ...) so drift hits both alike.
    for index in range(run.config.repeat):
        for app in run.config.apps:
            driven = await drive(run, app, index)
            # Imported after the first load, not before its first request: the analysis needs pandas (0.3 s).
            from bench.analysis.summary import median_summary
            from bench.run.digest import summarize

            figures = summarize(run, driven, plotted=index == 0)
            run.repeats.setdefault(app, []).append(figures)
            run.apps[app] = median_summary(run.repeats[app])
            write_json(RunFiles(run.folder).run_json, run.run_json("running"))
            if run.faults:  # its figures are kept, but a run with a fault is not a measurement to trust
                raise InfraError("; ".join(run.faults))


@asynccontextmanager
async def database(run: RunState) -> AsyncIterator[None]:
    """The run's PostgreSQL server (``--dsn``, or the embedded one) for the block; then every child and the
    embedded server are stopped, whatever ended the block. bench.run.capacity holds one for a whole sweep."""
    try:
        await _start_database(run)
        yield
    finally:
        stop_all()
        if run.embedded is not None:
            await asyncio.shield(run.embedded.stop())


async def _start_database(run: RunState) -> None:
    if run.config.dsn:
        run.server = await postgres.connect_external(run.config.dsn, need_createdb=not run.config.target)
        run.note(f"database: {run.server.safe_dsn('postgres')} ({run.server.version})")
        return
    started = time.monotonic()
    run.embedded = EmbeddedPostgres(notify=run.note)
    run.server = await run.embedded.start()  # cancellable: Ctrl-C during start-up stops it
    run.timings["database_start_s"] = round(time.monotonic() - started, 3)
    run.console.info(f"embedded {run.server.version} on 127.0.0.1:{run.server.port} "
                     f"(started in {run.timings['database_start_s']:.2f}s)")
