"""Renders a run folder as report.md and a self-contained report.html: the story first, then figures, plots,
distributions and tables, the run's parameters last.

`bench report RUN` and the end of `bench run` call ``render_report``; it reads the run folder through bench.results.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.analysis.timeline import Timeline, read_timeline
from bench.db.server import redact
from bench.render.hold_sites import report_table as hold_sites_table
from bench.render.lint_lines import report_table as lint_table
from bench.render.page import Block, Cell, Heading, Plots, Story, Table, own_service, to_html, to_markdown
from bench.render.report_charts import distribution_charts, route_charts, time_charts
from bench.render.report_tables import (
    app_log_tables,
    checks_table,
    failures_table,
    headline_table,
    integrity_table,
    percentile_table,
    routes_table,
)
from bench.render.story import build_story
from bench.render.svgplot import Reference, render
from bench.results.folder import write_text
from bench.results.layout import RunFiles
from bench.results.summaryfile import RunFolder, load_run

TIME_NOTE = ("Seconds since each app's load started, so the apps line up; one point per second. The shaded stretch "
             "is the cool-down: no load is sent, so whatever stays checked out or idle in transaction there is a "
             "leak. Rates count responses by the second they completed in; the second the load's end cuts short is "
             "scaled to its part inside the load (left out under half a second). Rest the pointer on a plot for "
             "its values. On long runs each line is the mean per time bin, over a faint band of that bin's range.")
ROUTE_NOTE = "The busiest routes; the same route has the same colour in every plot, and each app's pair shares its axis."
DISTRIBUTION_NOTE = ("Ten bins per decade of a log scale: a bin's height is the share of all requests (or checkouts) "
                     "that took that long. Values under the first bin count in it.")


def render_report(run_dir: Path, read: Mapping[Path, Timeline] | None = None) -> tuple[Path, Path]:
    """Write report.md and report.html into ``run_dir`` (atomically) and return their paths. ``read``: app folders'
    time lines already read (``timeline_of``, without the summary's load window), by folder; the rest are read here.
    """
    folder = load_run(run_dir)
    timelines = {app: _timeline(folder, app, read or {}) for app in folder.plotted_apps()}
    blocks = [_redacted(b) for b in build_blocks(folder, timelines)]
    head = heading(folder)
    md_path, html_path = RunFiles(run_dir).report_md, RunFiles(run_dir).report_html
    write_text(md_path, to_markdown(head, blocks))
    write_text(html_path, to_html(head, blocks))
    return md_path, html_path


def _timeline(folder: RunFolder, app: str, read: Mapping[Path, Timeline]) -> Timeline:
    window = _number(_obj(folder.apps.get(app)).get("load_window_s"))
    timeline = read.get(folder.app_dir(app))
    return read_timeline(folder.app_dir(app), window) if timeline is None else timeline.with_load_window(window)


def build_blocks(folder: RunFolder, timelines: dict[str, Timeline]) -> list[Block]:
    scenario = str(folder.summary.get("scenario") or folder.config.get("scenario") or "?")
    threshold = _number(folder.config.get("idle_threshold_ms"))
    blocks: list[Block] = [build_story(scenario, folder.apps), headline_table(folder), checks_table(folder)]
    blocks.append(Plots("plots", "Over time", TIME_NOTE, tuple(render(c) for c in time_charts(
        timelines, pool_references(folder, timelines), threshold))))
    by_route = route_charts(timelines)
    if by_route:
        blocks.append(Plots("route-plots", "Per route over time", ROUTE_NOTE, tuple(render(c) for c in by_route)))
    blocks.append(Plots("distributions", "Distributions", DISTRIBUTION_NOTE,
                        tuple(render(c) for c in distribution_charts(timelines))))
    blocks += [percentile_table(timelines), routes_table(folder), hold_sites_table(folder), lint_table(folder),
               failures_table(timelines),
               integrity_table(folder)]
    blocks += app_log_tables(folder)
    blocks.append(parameters_table(folder))
    return blocks


def parameters_table(folder: RunFolder) -> Table:
    s, cfg = folder.summary, folder.config
    env = _obj(s.get("environment")) or _obj(folder.run.get("environment"))
    git, machine, packages = _obj(env.get("git")), _obj(env.get("machine")), _obj(env.get("packages"))
    planned, ran = ", ".join(map(str, cfg.get("apps") or [])), ", ".join(folder.apps)
    commit = str(git.get("commit") or "unknown") + (" (uncommitted changes)" if git.get("dirty") else "")
    rows = [
        ("status", folder.status + (" (see the error above)" if folder.error else "")),
        ("scenario", str(s.get("scenario") or cfg.get("scenario") or "?")),
        ("apps", ran + (f" (planned: {planned})" if planned and planned != ran else "")),
        ("users", f"{cfg.get('users', '?')} (spawn rate {cfg.get('spawn_rate', '?')}/s)"),
        ("duration", f"{_g(cfg.get('duration_s'))} s load + {_g(cfg.get('cooldown_s'))} s cool-down per app"),
        ("pool", (f"size {cfg.get('pool_size', '?')} + overflow {cfg.get('max_overflow', '?')}, "
                 f"checkout timeout {_g(cfg.get('pool_timeout_s'))} s")),
        ("upstream latency", f"{_g(cfg.get('upstream_latency_ms'))} ms"),
        ("idle-in-tx threshold", f"{_g(cfg.get('idle_threshold_ms'))} ms"),
        ("database", redact(str(folder.run.get("database") or cfg.get("database") or "?"))),
        ("PostgreSQL", str(env.get("postgres") or "?")),
        ("git commit", commit),
        ("machine", (f"{machine.get('platform', '?')}, {machine.get('cpus', '?')} CPUs, "
                    f"{machine.get('memory_gib', '?')} GiB, host {machine.get('hostname', '?')}")),
        ("software", f"Python {env.get('python', '?')} · " + " · ".join(
            f"{name} {packages[name]}" for name in ("sqlalchemy", "asyncpg", "fastapi", "uvicorn", "locust")
            if name in packages)),
        ("date", _date(s.get("started_at") or folder.run.get("started_at"))),
        ("command", shlex.join(redact(str(a)) for a in s.get("command") or folder.run.get("command") or [])),
    ]
    return Table("parameters", "Run parameters", ("parameter", "value"),
                 tuple((Cell(k), Cell(v, "fail" if k == "status" and folder.status != "completed" else ""))
                       for k, v in rows), key_value=True)


def pool_references(folder: RunFolder, timelines: dict[str, Timeline]) -> tuple[Reference, ...]:
    size = _number(folder.config.get("pool_size"))
    if size is None:
        sizes = [float(t.samples["pool_size"].max()) for t in timelines.values() if t.samples["pool_size"].notna().any()]
        size = max(sizes, default=None)
    if size is None:
        return ()
    overflow = _number(folder.config.get("max_overflow")) or 0.0
    refs = [Reference(size, f"pool size {size:g}", "#333333")]
    if overflow > 0:
        refs.append(Reference(size + overflow, f"pool size + overflow {size + overflow:g}", "#888888"))
    return tuple(refs)


def heading(folder: RunFolder) -> Heading:
    cfg = folder.config
    apps = " then ".join(map(str, cfg.get("apps") or folder.apps)) or "no app"
    service = own_service(cfg)
    settings = (f"your service ({service})" if service else f"pool {cfg.get('pool_size', '?')}+"
                f"{cfg.get('max_overflow', '?')} · upstream {_g(cfg.get('upstream_latency_ms'))} ms")
    subtitle = (f"{apps} · {cfg.get('users', '?')} users · {_g(cfg.get('duration_s'))} s load + "
                f"{_g(cfg.get('cooldown_s'))} s cool-down · {settings}")
    return Heading(scenario=str(folder.summary.get("scenario") or cfg.get("scenario") or "?"),
                   status=folder.status, error=folder.error, subtitle=subtitle,
                   date=_date(folder.summary.get("started_at") or folder.run.get("started_at")),
                   folder=str(folder.path))


def _redacted(block: Block) -> Block:
    """Any DSN that reached a table (an app-log exception, a failure message) loses its password before it is
    written."""
    if not isinstance(block, Table):
        return block if not isinstance(block, Story) else replace(block, verdict=redact(block.verdict))
    return replace(block, title=redact(block.title), notes=tuple(redact(n) for n in block.notes),
                   rows=tuple(tuple(replace(c, text=redact(c.text), title=redact(c.title)) for c in row)
                              for row in block.rows))


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _g(value: Any) -> str:
    number = _number(value)
    return "?" if number is None else f"{number:g}"


def _date(value: Any) -> str:
    try:
        return datetime.fromisoformat(str(value)).strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    except ValueError:
        return str(value) if value else "date unknown"
