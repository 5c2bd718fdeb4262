"""Digests a run: each driven app's raw files into its figures, then the run's figures into summary.json and the report.

bench.run.runner digests every drive and then the run; bench.run.capacity writes its per-pool summary.json here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from bench.analysis import applog, littleslaw
from bench.analysis.loadperiod import NO_STALL_CHECK, Quiet
from bench.analysis.summary import Check, Integrity, evaluate, evaluate_each, summarize_app
from bench.analysis.timeline import SAMPLE_COLUMNS, Timeline, timeline_of
from bench.config.slo import Slo
from bench.errors import BenchError
from bench.results.folder import write_json
from bench.results.layout import RunFiles
from bench.results.locustfiles import read_locust_json
from bench.results.requestlog import RequestLog, read_requests
from bench.results.samples import read_samples
from bench.results.summaryfile import SCHEMA_VERSION
from bench.run.drive import Driven
from bench.run.state import Outcome, RunState, ended_by


def summarize(run: RunState, driven: Driven, *, plotted: bool = False) -> dict[str, Any]:
    """One app run's figures (summary.json's ``apps.<app>``) from its raw files and what the drive measured.
    ``plotted``: the report will plot this folder (an app's first run): its time line is made from the same reads
    (``plotted_timeline``) and kept in ``run.timelines`` for ``render_report``."""
    cfg = run.config
    log = read_requests(driven.files.root)
    requests = log.frame
    # The paired apps' log is ours to read; a target's log is wherever the user keeps it.
    app_log = None if cfg.target else applog.scan(driven.files.app_log)
    quiet = Quiet.of(requests, driven.load)  # for the stall events here and the summary's figures
    run.events.extend(quiet.events(driven.app))
    little = driven.pool is not None  # the pool's samples make Little's-law window
    timeline = plotted_timeline(driven.files.root, log, run.timelines) if plotted else None
    return summarize_app(requests=requests, pool=driven.pool, db=driven.db,
                         integrity=_integrity(run, driven, requests), pool_capacity=cfg.pool_size + cfg.max_overflow,
                         locust_stats=list(read_locust_json(driven.files.root).entries), app_log=app_log,
                         period=driven.load, unreadable=log.unreadable, shared_database=shared_database(run),
                         quiet=quiet, window=timeline.window if little and timeline else None,
                         # Else read for the summary alone, and held by nothing else: it lets them go once used.
                         samples=read_samples(driven.files.root, littleslaw.COLUMNS).frame
                         if little and timeline is None else None)


def plotted_timeline(root: Path, log: RequestLog, timelines: dict[Path, Timeline]) -> Timeline | None:
    """The report's time line of an app folder, kept in ``timelines`` by folder: made from the request log the summary
    reads and one read of samples.jsonl, which also finds Little's-law window for the summary. None when samples.jsonl
    cannot be read: the report says why it has no time line, and the summary, reading it, fails as it would."""
    try:
        timeline = timeline_of(read_samples(root, SAMPLE_COLUMNS), log)
    except BenchError:
        return None
    timelines[root] = timeline
    return timeline


def shared_database(run: RunState) -> bool:
    """Whether the run's database has other clients than the app: target mode with --app-name, where the
    samples are the app's alone but pg_stat_database counts every session. A paired app has a database of its
    own; a target without --app-name is sampled whole, the counters' own scope."""
    return bool(run.config.target and run.config.app_name)


def _integrity(run: RunState, driven: Driven, requests: pd.DataFrame) -> Integrity | None:
    """Successful responses of each write route vs the rows carrying that route's tag."""
    routes = run.scenario.write_routes
    if not routes or driven.written is None:
        return None
    ok = requests[requests["failed"] == 0]
    acknowledged = {name: int((ok["name"] == name).sum()) for name in routes}
    written = {name: driven.written.get(tag, 0) for name, tag in routes.items()}
    return Integrity(acknowledged=acknowledged, written=written)


def conclude(run: RunState, outcome: Outcome) -> tuple[dict[str, Any], Outcome, Path | None]:
    """summary.json, run.json's last status and the report: (the summary, how the run ended, the report).

    When the folder can take no more (a full disk), what it holds stays as it was, nothing more is attempted, and
    the outcome names the first cause; the summary is still returned, for the terminal.
    """
    summary = build_summary(run, outcome)
    try:
        write_json(RunFiles(run.folder).summary_json, summary)
        write_json(RunFiles(run.folder).run_json, run.run_json(outcome.status, outcome.error))
    except BenchError as err:
        if outcome.status == "completed":
            outcome = ended_by(err, run.folder)
        summary.update(status=outcome.status, error=outcome.error, checks=[])
        return summary, outcome, None
    return summary, outcome, render_report(run)


def write_summary(run: RunState, outcome: Outcome) -> dict[str, Any]:
    """summary.json (schema_version 1), as ``build_summary`` makes it."""
    summary = build_summary(run, outcome)
    write_json(RunFiles(run.folder).summary_json, summary)
    return summary


def build_summary(run: RunState, outcome: Outcome) -> dict[str, Any]:
    """summary.json's content (schema_version 1); the scenario's checks judge only a completed run."""
    completed = outcome.status == "completed"
    # Every app also gets the no-stall check: a frozen app is not a healthy run, whatever the scenario checks. It
    # judges each repeat, not the median: a stall in any repeat fails it.
    stalls = [Check.parse(NO_STALL_CHECK.format(app=app)) for app in run.apps]
    each = run.repeats or {app: [figures] for app, figures in run.apps.items()}
    # --slo: the user's thresholds, on the same figures (the median of repeats) as the scenario's checks.
    slo = Slo.parse(run.config.slo).for_run().judge_run(run.apps) if run.config.slo else []
    checks = [*evaluate([Check.parse(c) for c in run.scenario.checks], run.apps),
              *evaluate_each(stalls, each), *slo] if completed else []
    summary = {
        "schema_version": SCHEMA_VERSION,
        "scenario": run.config.scenario,
        "status": outcome.status,
        "error": outcome.error,
        "started_at": run.started_at,
        "command": run.command,
        "environment": run.environment(),
        "config": run.config.to_json(),
        "timings": run.timings,
        "events": run.events,
        "apps": run.apps,
        "checks": checks,
    }
    if run.config.repeat > 1:
        summary["repeats"] = run.repeats
    return summary


def render_report(run: RunState) -> Path | None:
    from bench.render.run_report import render_report as render

    try:
        _md, html = render(run.folder, run.timelines)
    except BenchError as err:  # the run's own results are safe on disk; say why there is no report
        run.console.info(f"no report: {err}")
        return None
    return html
