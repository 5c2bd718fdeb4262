"""Lint findings under load, where people look: the terminal's lines and the report's table, both from summary.json's
``lint`` per app (bench.analysis.lintmatch). terminal and run_report call it.
"""

from __future__ import annotations

from typing import Any

from bench.render.page import Cell, Table
from bench.results.summaryfile import RunFolder


def terminal_lines(apps: dict[str, Any]) -> list[str]:
    """``bad: SB001 target_apps/bad/long_session.py:32, confirmed under load: 40.5 s idle in transaction``, then
    the findings the scenario did not exercise and the long holds no rule found."""
    lines: list[str] = []
    for name, app in apps.items():
        lint = app.get("lint") if isinstance(app, dict) else None
        if isinstance(lint, dict):
            lines += [f"  {name}: {text}" for _, text in entries(lint, _sites(app))]
    return lines


def entries(lint: dict[str, Any], sites: dict[tuple[str, str], dict[str, Any]]) -> list[tuple[str, str]]:
    """(status, one line) for every confirmed finding, then the not exercised ones, then the holds found only
    under load (their seconds from ``pool.hold_sites``)."""
    out = [
        ("confirmed", f"{f.get('rule')} {f.get('where')}, confirmed under load: {_idle(f)}")
        for f in lint.get("confirmed") or []
    ]
    out += [
        ("not exercised", f"{f.get('rule')} {f.get('where')}, not exercised: no long hold under load")
        for f in lint.get("not_exercised") or []
    ]
    out += [
        (
            "found only under load",
            f"{row.get('site')} in {row.get('function')}, found only under load (no rule): "
            + _idle(sites.get(_key(row), {})),
        )
        for row in lint.get("load_only") or []
    ]
    return out


def report_table(folder: RunFolder) -> Table:
    """Every app's findings and load-only holds, one row each; empty (with a note) when no app was linted."""
    rows: list[tuple[Cell, ...]] = []
    linted = False
    for app, figures in folder.apps.items():
        lint = figures.get("lint") if isinstance(figures, dict) else None
        if not isinstance(lint, dict):
            continue
        linted = True
        sites = _sites(figures)
        for f in lint.get("confirmed") or []:
            rows.append(_row(app, "confirmed", str(f.get("rule")), str(f.get("where")), f, str(f.get("message"))))
        for f in lint.get("not_exercised") or []:
            rows.append(_row(app, "not exercised", str(f.get("rule")), str(f.get("where")), {}, str(f.get("message"))))
        for row in lint.get("load_only") or []:
            what = f"{row.get('function')} — {row.get('code')} ({row.get('route')})"
            rows.append(_row(app, "found only under load", "-", str(row.get("site")), sites.get(_key(row), {}), what))
    note = (
        "bench lint over each app's files its hold sites name, matched to the holds that cost the pool (idle in "
        "transaction at least 0.5 s, or left open, reclaimed or lost): confirmed when a hold's line or checkout "
        "line falls in the finding's span, not exercised when none does, found only under load for a hold no "
        "finding covers. See docs/metrics.md, lint."
        if linted
        else "no app's hold sites named source files found here, so nothing was linted"
    )
    return Table(
        "lint",
        "Lint findings under load",
        ("app", "status", "rule", "line", "holds", "held (s)", "idle (s)", "message"),
        tuple(rows),
        (note,),
    )


def _row(app: str, status: str, rule: str, where: str, figures: dict[str, Any], text: str) -> tuple[Cell, ...]:
    def num(key: str, fmt: str) -> Cell:
        return Cell(fmt.format(figures[key]) if key in figures else "-", "num")

    css = "fail" if status != "not exercised" else ""
    return (
        Cell(app),
        Cell(status, css),
        Cell(rule),
        Cell(where),
        num("holds", "{:,}"),
        num("held_s", "{:,.2f}"),
        num("idle_s", "{:,.2f}"),
        Cell(text),
    )


def _idle(figures: dict[str, Any]) -> str:
    idle, held = float(figures.get("idle_s") or 0), float(figures.get("held_s") or 0)
    return f"{idle:.1f} s idle in transaction ({int(figures.get('holds') or 0)} long holds, {held:.1f} s held)"


def _sites(app: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """``pool.hold_sites`` by site and route (a line may hold for several routes, one row each)."""
    rows = (app.get("pool") or {}).get("hold_sites")
    if not isinstance(rows, list):
        return {}
    return {(str(r.get("site")), str(r.get("route"))): r for r in rows if isinstance(r, dict)}


def _key(row: dict[str, Any]) -> tuple[str, str]:
    return str(row.get("site")), str(row.get("route"))
