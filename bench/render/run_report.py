"""Renders a run folder as report.md and a self-contained report.html: parameters, tables, SVG plots.

`bench report RUN` and the end of `bench run` call ``render_report``; it reads the run folder through bench.results.
"""

from __future__ import annotations

import shlex
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.analysis import littleslaw as littles_law
from bench.analysis.loadperiod import STALL_EVENT
from bench.analysis.timeline import Timeline, read_timeline
from bench.db.server import redact
from bench.render.page import Cell, Heading, Table, to_html, to_markdown
from bench.render.svgplot import Band, Chart, Reference, Series, render
from bench.render.terminal import ROWS, lookup
from bench.results.folder import write_text
from bench.results.layout import RunFiles
from bench.results.metrics import ratio
from bench.results.summaryfile import RunFolder, load_run

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
COLORS = {"good": "#0072B2", "bad": "#D55E00", "target": "#009E73"}
SPARE_COLORS = ("#CC79A7", "#E69F00", "#56B4E9")


def render_report(run_dir: Path) -> tuple[Path, Path]:
    """Write report.md and report.html into ``run_dir`` (atomically) and return their paths."""
    folder = load_run(run_dir)
    tables = [_redacted(table) for table in build_tables(folder)]
    charts = build_charts(folder)
    head = heading(folder)
    md_path, html_path = RunFiles(run_dir).report_md, RunFiles(run_dir).report_html
    write_text(md_path, to_markdown(head, tables))
    write_text(html_path, to_html(head, tables, [render(chart) for chart in charts]))
    return md_path, html_path


# --- tables -------------------------------------------------------------------------------------

def build_tables(folder: RunFolder) -> list[Table]:
    tables = [parameters_table(folder), headline_table(folder), checks_table(folder), routes_table(folder)]
    tables += integrity_tables(folder)
    tables += app_log_tables(folder)
    return tables


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


def headline_table(folder: RunFolder) -> Table:
    apps, names = folder.apps, list(folder.apps)
    pair = len(names) == 2
    columns = ("metric", *names, *([f"{names[1]}/{names[0]}"] if pair else []))
    rows = []
    for label, path, fmt, lower in ROWS:
        values = [lookup(apps[n], path) for n in names]
        cells = [Cell(label), *(Cell(_fmt(v, fmt), "num") for v in values)]
        if pair:
            cells.append(_ratio_cell(values[0], values[1], lower))
        rows.append(tuple(cells))
    notes = tuple(_ceiling_note(name, apps[name]) for name in names if _ceiling_note(name, apps[name]))
    title = f"Headline: {' vs '.join(names)}" if names else "Headline: no app finished"
    return Table("headline", title, columns, tuple(rows), notes)


def routes_table(folder: RunFolder) -> Table:
    rows = []
    order = {name: i for i, name in enumerate(folder.apps)}
    entries = [(str(route), app, _obj(e)) for app, figures in folder.apps.items()
               for route, e in _obj(figures.get("endpoints")).items()]
    for route, app, e in sorted(entries, key=lambda r: (r[0], order[r[1]])):
        failures = lookup(e, "failures")
        rows.append((Cell(route), Cell(app), Cell(_fmt(lookup(e, "requests"), "{:,.0f}"), "num"),
                     Cell(_fmt(failures, "{:,.0f}"), "num worse" if failures else "num"),
                     *(Cell(_fmt(lookup(e, f"latency_ms.{p}"), "{:,.1f}"), "num") for p in ("p50", "p95", "p99")),
                     Cell(_fmt(lookup(e, "pool_hold_ms.p95"), "{:,.1f}"), "num")))
    columns = ("route", "app", "requests", "failures", "p50 (ms)", "p95 (ms)", "p99 (ms)", "pool hold p95 (ms)")
    notes = () if rows else ("no per-route figures in summary.json",)
    return Table("routes", "Per route", columns, tuple(rows), notes)


def integrity_tables(folder: RunFolder) -> list[Table]:
    columns = ("acknowledged writes", "rows written", "lost writes")
    keys = ("acknowledged_writes", "rows_written", "lost_writes")
    measured = {app: _obj(f.get("integrity")) for app, f in folder.apps.items() if _obj(f.get("integrity"))}
    rows = [(Cell(app), *_count_cells(figures, keys)) for app, figures in measured.items()]
    by_route = [(Cell(str(route)), Cell(app), *_count_cells(_obj(e), keys))
                for app, figures in measured.items() for route, e in _obj(figures.get("by_route")).items()]
    notes = (("Lost writes: acknowledged to the client but not in the database. Rows written may exceed "
             "acknowledged writes: requests in flight when the load stopped commit without Locust seeing "
             "a response."),) if rows else ("not measured: the scenario declares no write routes",)
    tables = [Table("integrity", "Write integrity", ("app", *columns), tuple(rows), notes)]
    if by_route:
        tables.append(Table("integrity-routes", "Write integrity by route", ("route", "app", *columns),
                            tuple(sorted(by_route, key=lambda r: r[0].text))))
    return tables


def checks_table(folder: RunFolder) -> Table:
    checks = [c for c in folder.summary.get("checks") or [] if isinstance(c, dict)]
    passed = sum(bool(c.get("passed")) for c in checks)
    rows = tuple((Cell("✓", "pass") if c.get("passed") else Cell("✗", "fail"), Cell(str(c.get("name", "?"))),
                  Cell(_check_value(c.get("value")), "num")) for c in checks)
    title = f"Checks: {passed} of {len(checks)} passed" if checks else "Checks"
    notes = () if checks else (f"no checks were evaluated (run {folder.status})",)
    stalls = tuple(f"Stall: {e.get('app', '?')}: {e.get('detail')}" for e in folder.summary.get("events") or []
                   if isinstance(e, dict) and e.get("event") == STALL_EVENT)
    return Table("checks", title, ("", "check", "value"), rows, stalls + notes)


def app_log_tables(folder: RunFolder) -> list[Table]:
    logs = {app: _obj(f.get("app_log")) for app, f in folder.apps.items() if _obj(f.get("app_log"))}
    if not logs:
        return []
    kinds = list(dict.fromkeys(k for log in logs.values() for k, v in log.items() if isinstance(v, int)))
    shown = [k for k in kinds if k == "lines" or any(log.get(k) for log in logs.values())]
    rows = tuple((Cell(kind), *(Cell(_fmt(lookup(log, kind), "{:,.0f}"),
                                     "num" if kind == "lines" or not log.get(kind) else "num worse")
                                for log in logs.values())) for kind in shown)
    notes = () if len(shown) > 1 else ("no errors, warnings or pool complaints in the app logs",)
    tables = [Table("app-log", "App log", ("count", *logs), rows, notes)]
    examples = tuple((Cell(app), Cell(str(text)), Cell(_fmt(_number(n), "{:,.0f}"), "num"))
                     for app, log in logs.items() for text, n in _obj(log.get("exceptions")).items())
    if examples:
        tables.append(Table("app-log-exceptions", "Most frequent exceptions in the app logs",
                            ("app", "exception", "lines"), examples))
    return tables


def _ratio_cell(base: float | None, other: float | None, lower_is_better: bool) -> Cell:
    value = ratio(base, other)
    if value is None or base is None or other is None:
        return Cell("-", "num")
    if base == other:
        return Cell("=", "num")
    worse = (other > base) == lower_is_better
    verdict, css = ("worse", "num worse") if worse else ("better", "num better")
    text = "∞" if base == 0 else f"{value:,.2f}×"
    return Cell(f"{text} {verdict}", css)


def _ceiling_note(name: str, app: dict[str, Any]) -> str:
    shown = littles_law.note(name, app)
    if shown is not None:
        return shown
    # A summary.json from before the ceiling's window was recorded: its ceiling came from hold_ms_per_request.
    pool = _obj(app.get("pool"))
    ceiling, used, per_request = (lookup(pool, "littles_law_ceiling_rps"), lookup(pool, "ceiling_utilisation"),
                                  lookup(pool, "hold_ms_per_request"))
    rps = lookup(app, "throughput_rps")
    if ceiling is None or used is None or per_request is None or rps is None:
        return ""
    return (f"{name}: {rps:,.1f} req/s measured vs {ceiling:,.1f} req/s Little's-law ceiling "
            f"(pool {pool.get('capacity', '?')} / {per_request:,.1f} ms held per request) = {100 * used:.0f}%")


def _count_cells(figures: dict[str, Any], keys: tuple[str, ...]) -> tuple[Cell, ...]:
    return tuple(Cell(_fmt(lookup(figures, k), "{:,.0f}"), "num worse" if k == "lost_writes" and figures.get(k)
                      else "num") for k in keys)


# --- plots --------------------------------------------------------------------------------------

def build_charts(folder: RunFolder) -> list[Chart]:
    timelines = {app: read_timeline(folder.app_dir(app)) for app in folder.plotted_apps()}
    seconds = {app: timeline.per_second() for app, timeline in timelines.items()}
    colors = {app: COLORS.get(app, SPARE_COLORS[i % len(SPARE_COLORS)]) for i, app in enumerate(timelines)}

    def per_second(column: str) -> tuple[Series, ...]:
        return tuple(Series(app, frame["x"].to_numpy(dtype=float), frame[column].to_numpy(dtype=float),
                            colors[app]) for app, frame in seconds.items() if not frame.empty)

    def sampled(column: str) -> tuple[Series, ...]:
        # An app whose samples lack the field (no pool endpoint) gets no line rather than an empty one.
        return tuple(Series(app, *timeline.sampled(column), colors[app]) for app, timeline in timelines.items()
                     if timeline.samples[column].notna().any())

    load_ends = [t.load_end_s for t in timelines.values() if t.load_end_s is not None]
    bands = (Band(min(load_ends), max(t.end_s for t in timelines.values()), "cool-down"),) if load_ends else ()
    threshold_ms = _number(folder.config.get("idle_threshold_ms"))
    idle_ref = (Reference(threshold_ms / 1000, f"long: past {threshold_ms:g} ms"),) if threshold_ms else ()
    common: dict[str, Any] = {"bands": bands, "first_label": "load" if timelines else ""}
    return [
        Chart(title="Throughput (successful responses per second)", y_label="requests/s",
              series=per_second("rps"), **common),
        Chart(title="Latency p95 per second (ms)", y_label="ms", series=per_second("p95_ms"), **common),
        Chart(title="Pool wait p95 (ms)", y_label="ms", series=sampled("pool_wait_p95_ms"), **common),
        Chart(title="Connections checked out vs pool size", y_label="connections",
              series=sampled("pool_checked_out"), references=_pool_references(folder, timelines), **common),
        Chart(title="Connections idle in transaction", y_label="connections", series=sampled("idle_in_tx"), **common),
        Chart(title="Oldest idle-in-transaction age (s)", y_label="seconds", series=sampled("idle_in_tx_oldest_s"),
              references=idle_ref, **common),
    ]


def _pool_references(folder: RunFolder, timelines: dict[str, Timeline]) -> tuple[Reference, ...]:
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


# --- the page ---------------------------------------------------------------------------------

def heading(folder: RunFolder) -> Heading:
    cfg = folder.config
    apps = " then ".join(map(str, cfg.get("apps") or folder.apps)) or "no app"
    subtitle = (f"{apps} · {cfg.get('users', '?')} users · {_g(cfg.get('duration_s'))} s load + "
                f"{_g(cfg.get('cooldown_s'))} s cool-down · pool {cfg.get('pool_size', '?')}+"
                f"{cfg.get('max_overflow', '?')} · upstream {_g(cfg.get('upstream_latency_ms'))} ms")
    return Heading(scenario=str(folder.summary.get("scenario") or cfg.get("scenario") or "?"),
                   status=folder.status, error=folder.error, subtitle=subtitle,
                   date=_date(folder.summary.get("started_at") or folder.run.get("started_at")),
                   folder=str(folder.path))


def _redacted(table: Table) -> Table:
    """Any DSN that reached a table (an app-log exception, a note) loses its password before it is written."""
    return replace(table, title=redact(table.title), notes=tuple(redact(n) for n in table.notes),
                   rows=tuple(tuple(replace(c, text=redact(c.text)) for c in row) for row in table.rows))


# --- small helpers ------------------------------------------------------------------------------

def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _fmt(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def _g(value: Any) -> str:
    number = _number(value)
    return "?" if number is None else f"{number:g}"


def _check_value(value: Any) -> str:
    number = _number(value)
    if number is not None:
        return f"{number:,.4g}"
    return "missing" if value is None else str(value)


def _date(value: Any) -> str:
    try:
        return datetime.fromisoformat(str(value)).strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    except ValueError:
        return str(value) if value else "date unknown"
