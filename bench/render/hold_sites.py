"""The lines behind long holds where people look: the terminal's top culprits, the report's table with the source
line quoted, and bench compare's new sites. terminal, run_report and compare_render call it.
"""

from __future__ import annotations

from typing import Any

from bench.analysis.compare import Comparison
from bench.render.page import Cell, Table
from bench.results.summaryfile import RunFolder

TERMINAL_SITES = 2  # culprits per app in the terminal summary
REPORT_SITES = 10  # rows per app in the report's table
# A site that idled less than this is no culprit for the terminal (bench compare's noise floor for connection-
# seconds): a correct app's holds stretched past the threshold by a busy CPU wait in the database, not idle.
MIN_IDLE_S = 0.5


def terminal_lines(apps: dict[str, Any]) -> list[str]:
    """Per app, the lines that held connections past the threshold most; from the database's side (the statement
    tags' sites) when the app's pool endpoint did not serve sites."""
    lines: list[str] = []
    for name, app in apps.items():
        sites = (app.get("pool") or {}).get("hold_sites")
        if isinstance(sites, list):
            shown = [
                row
                for row in sites
                if isinstance(row, dict)
                and (
                    float(row.get("idle_s") or 0) >= MIN_IDLE_S
                    or row.get("open")
                    or row.get("reclaimed")
                    or row.get("lost")
                )
            ]
            lines += [f"  {name}: {culprit(row)}" for row in shown[:TERMINAL_SITES]]
            continue
        by_site = (app.get("db") or {}).get("idle_in_tx_long_by_site") or {}
        lines += [
            f"  {name}: {site} checked out connections the database saw idle in transaction {seconds:.1f} s"
            for site, seconds in list(by_site.items())[:TERMINAL_SITES]
        ]
    return lines


def culprit(row: dict[str, Any]) -> str:
    """``target_apps/bad/long_session.py:24 in checkout — ref = await charge(...): 43.0 s idle in transaction of
    44.1 s held (100% of the long holds' time, 417 holds, POST /orders/{item_id}/checkout)``; a connection still
    out when the code that checked it out returned is said so (with its checkout line when the row is placed
    elsewhere: a scoped session's middleware), with what became of it."""
    code = f" — {_short(str(row.get('code') or ''))}" if row.get("code") else ""
    text = f"{row.get('site')} in {row.get('function')}{code}: "
    if row.get("returned"):
        checkout = row.get("checkout_site")
        text += (
            "returned with the connection checked out, "
            if checkout in (None, row.get("site"))
            else f"its request scope ended with the connection checked out at {checkout}, "
        )
    text += f"{float(row.get('idle_s') or 0):.1f} s idle in transaction of {float(row.get('held_s') or 0):.1f} s held"
    share = 100 * float(row.get("share") or 0)
    text += f" ({share:.0f}% of the long holds' time, {row.get('holds', 0)} holds, {row.get('route')})"
    left = [
        f"{row[k]} {what}"
        for k, what in (("open", "still held"), ("reclaimed", "reclaimed by the GC"), ("lost", "lost (invalidated)"))
        if row.get(k)
    ]
    return text + (f"; {', '.join(left)}" if left else "")


def report_table(folder: RunFolder) -> Table:
    """Every app's top rows, the source line quoted; empty (with a note) when no app's instrumentation saw one."""
    rows: list[tuple[Cell, ...]] = []
    looked = False
    for app, figures in folder.apps.items():
        sites = ((figures.get("pool") if isinstance(figures, dict) else None) or {}).get("hold_sites")
        if not isinstance(sites, list):
            continue
        looked = True
        for row in sites[:REPORT_SITES]:
            if not isinstance(row, dict):
                continue
            where = str(row.get("site"))
            checkout = str(row.get("checkout_site"))
            via = f"checked out at {checkout}" + (", returned without checking it in" if row.get("returned") else "")
            rows.append(
                (
                    Cell(app),
                    Cell(f"{where} in {row.get('function')}", title=via),
                    Cell(str(row.get("code") or "")),
                    Cell(str(row.get("route"))),
                    Cell(f"{checkout}" + (" (returned)" if row.get("returned") else "")),
                    Cell(f"{int(row.get('holds') or 0):,}", "num"),
                    Cell(f"{float(row.get('held_s') or 0):,.2f}", "num"),
                    Cell(f"{float(row.get('idle_s') or 0):,.2f}", "num"),
                    Cell(f"{100 * float(row.get('share') or 0):.0f}%", "num"),
                    Cell(
                        f"{int(row.get('open') or 0)} / {int(row.get('reclaimed') or 0)} / {int(row.get('lost') or 0)}",
                        "num",
                    ),
                )
            )
    threshold = folder.config.get("idle_threshold_ms")
    if rows:
        note = (
            f"Holds longer than {threshold} ms (the idle-in-transaction threshold), by the line of the app the "
            "holding task sat at (the source line quoted) and the line that checked the connection out; "
            '"returned": that code returned with the connection still checked out (a leak, or a session kept '
            "by something else; one taken through a scoped session is placed at the middleware whose scope "
            "keeps it). Holds of any length whose connection the task lost (invalidated) are placed at the "
            "line that lost it. Most held first. Idle: the time the task was not in the database, sampled. "
            "Share: of all time held past the threshold or lost. Open / reclaimed / lost: holds still checked "
            "out at the end / ended by the garbage collector / invalidated. See docs/metrics.md, "
            "pool.hold_sites."
        )
    elif looked:
        note = "no hold passed the threshold"
    else:
        note = (
            "the apps' instrumentation served no hold sites (target mode without the pool endpoint, or an "
            "older bench.instrument)"
        )
    return Table(
        "hold-sites",
        "Where long holds come from",
        (
            "app",
            "holding line",
            "source line",
            "route",
            "checked out at",
            "holds",
            "held (s)",
            "idle (s)",
            "share",
            "open / reclaimed / lost",
        ),
        tuple(rows),
        (note,),
    )


def new_site_lines(result: Comparison) -> list[str]:
    if not result.new_sites:
        return []
    return [
        "new in the current run, lines holding connections past the threshold:",
        *(f"  {site.describe()}" for site in result.new_sites),
    ]


def new_site_markdown(result: Comparison) -> list[str]:
    return [
        "**New in the current run**, lines holding connections past the threshold:",
        "",
        *(f"- {site.describe()}" for site in result.new_sites),
    ]


def _short(code: str, width: int = 70) -> str:
    return code if len(code) <= width else code[: width - 1] + "…"
