"""Lays a report out as Markdown and as one self-contained HTML page: heading, tables, inline SVG plots.

bench.render.run_report builds the content from a run folder and calls these; nothing here reads a run folder.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from bench.results.layout import REPORT_HTML

# Sections shown side by side on a wide screen: the verdict at a glance, before the plots.
SIDE_BY_SIDE = ("headline", "checks")
PLOTS_NOTE = ("Seconds since each app's load started, so the apps line up. The shaded stretch is the "
              "cool-down: no load is sent, so whatever stays checked out or idle in transaction there is a leak. "
              "On long runs each line is the mean per time bin, over a faint band of that bin's range.")


@dataclass(frozen=True)
class Cell:
    text: str
    css: str = ""  # "num", "better", "worse", "pass", "fail"; "num" also right-aligns the Markdown column


@dataclass(frozen=True)
class Table:
    anchor: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    notes: tuple[str, ...] = ()
    key_value: bool = False  # two columns, name and value: laid out as a compact grid in HTML


@dataclass(frozen=True, kw_only=True)
class Heading:
    scenario: str
    status: str
    error: str | None
    subtitle: str  # the run's parameters on one line
    date: str
    folder: str


def to_markdown(heading: Heading, tables: list[Table]) -> str:
    lines = [f"# scopebench report: {_md(heading.scenario)}", "",
             f"**Status: {_md(heading.status)}** · {_md(heading.date)} · `{heading.folder}`", "",
             _md(heading.subtitle), ""]
    if heading.error:
        lines += [f"> **Run {_md(heading.status)}:** {_md(heading.error)}", ""]
    for table in tables:
        lines += [f"## {_md(table.title)}", ""]
        if table.rows:
            numeric = [_numeric(table, i) for i in range(len(table.columns))]
            lines.append("| " + " | ".join(_md(c) for c in table.columns) + " |")
            lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
            lines += ["| " + " | ".join(_md(c.text) for c in row) + " |" for row in table.rows]
            lines.append("")
        lines += [line for note in table.notes for line in (_md(note), "")]
        if table.anchor == SIDE_BY_SIDE[-1]:
            lines += [f"Plots over time (throughput, latency, pool, idle in transaction): open `{REPORT_HTML}`.", ""]
    return "\n".join(lines)


def to_html(heading: Heading, tables: list[Table], plots: list[str]) -> str:
    """One page, no external resource: styles inline, plots as inline ``<svg>`` elements."""
    body = [_header(heading)]
    pair = [_section(t) for t in tables if t.anchor in SIDE_BY_SIDE]
    for table in tables:
        if table.anchor == SIDE_BY_SIDE[0]:
            body.append('<div class="side-by-side">' + "\n".join(pair) + "</div>")
            body.append(_plots(plots))
        elif table.anchor not in SIDE_BY_SIDE:
            body.append(_section(table))
    title = html.escape(f"scopebench · {heading.scenario} · {heading.status}")
    return "\n".join([
        "<!doctype html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        # Belt and braces for "no network": the browser may load nothing from anywhere.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title>", f"<style>{CSS}</style>", "</head>", "<body><main>", *body, "</main></body>",
        "</html>", ""])


def _header(heading: Heading) -> str:
    status = html.escape(heading.status)
    parts = [(f'<header><h1>scopebench report: {html.escape(heading.scenario)} '
             f'<span class="status status-{status}">{status}</span></h1>'),
             f'<p class="subtitle">{html.escape(heading.subtitle)} · {html.escape(heading.date)}</p>']
    if heading.error:
        parts.append(f'<p class="error"><strong>Run {status}:</strong> {html.escape(heading.error)}</p>')
    elif heading.status != "completed":
        parts.append(f'<p class="error"><strong>Run {status}:</strong> the figures below are partial.</p>')
    parts.append("</header>")
    return "\n".join(parts)


def _plots(plots: list[str]) -> str:
    figures = "\n".join(f'<figure class="plot">{svg}</figure>' for svg in plots)
    return (f'<section id="plots"><h2>Over time</h2><p class="note">{html.escape(PLOTS_NOTE)}</p>'
            f'<div class="plots">\n{figures}\n</div></section>')


def _section(table: Table) -> str:
    notes = "".join(f'<p class="note">{html.escape(note)}</p>' for note in table.notes)
    if not table.rows:
        grid = ""
    elif table.key_value:
        grid = '<dl class="params">' + "".join(
            f'<dt>{html.escape(row[0].text)}</dt><dd class="{html.escape(row[1].css)}">{html.escape(row[1].text)}</dd>'
            for row in table.rows) + "</dl>"
    else:
        head = "".join(f'<th class="{"num" if _numeric(table, i) else ""}">{html.escape(c)}</th>'
                       for i, c in enumerate(table.columns))
        rows = "\n".join("<tr>" + "".join(f'<td class="{html.escape(c.css)}">{html.escape(c.text)}</td>'
                                          for c in row) + "</tr>" for row in table.rows)
        grid = (f'<div class="scroll"><table class="t-{html.escape(table.anchor)}"><thead><tr>{head}</tr></thead>'
                f"<tbody>{rows}</tbody></table></div>")
    return f'<section id="{html.escape(table.anchor)}"><h2>{html.escape(table.title)}</h2>{grid}{notes}</section>'


def _numeric(table: Table, column: int) -> bool:
    return any("num" in row[column].css for row in table.rows)


def _md(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


CSS = """
:root { color-scheme: light; --fg: #1f1f1f; --muted: #5f6368; --line: #dadce0; --good: #1e7b34; --bad: #b3261e; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f7f9; color: var(--fg);
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1320px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; display: flex; align-items: center; gap: 12px; flex-wrap: wrap; }
h2 { font-size: 17px; margin: 0 0 10px; }
section, header { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px;
                  margin: 0 0 16px; min-width: 0; }
.subtitle, .note { color: var(--muted); margin: 6px 0 0; }
.status { font-size: 13px; font-weight: 600; padding: 2px 10px; border-radius: 999px; background: #fdecea;
          color: var(--bad); text-transform: uppercase; letter-spacing: .04em; }
.status-completed { background: #e6f4ea; color: var(--good); }
.error { margin: 12px 0 0; padding: 10px 14px; border-left: 4px solid var(--bad); background: #fdecea;
         color: #5f1a14; white-space: pre-wrap; word-break: break-word; }
.side-by-side { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); gap: 0 16px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 12px; border-bottom: 1px solid #eceff1; text-align: left; vertical-align: top; }
th { font-weight: 600; color: var(--muted); border-bottom: 2px solid var(--line); white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
.num { text-align: right; white-space: nowrap; }
td.worse, dd.worse { color: var(--bad); font-weight: 600; }
td.better { color: var(--good); font-weight: 600; }
td.pass { color: var(--good); font-weight: 700; }
td.fail, dd.fail { color: var(--bad); font-weight: 700; }
td:first-child { white-space: nowrap; }
.params { display: grid; grid-template-columns: max-content minmax(0, 1fr) max-content minmax(0, 1fr);
          gap: 4px 16px; margin: 0; }
.params dt { color: var(--muted); }
.params dd { margin: 0; word-break: break-word; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 12px; margin-top: 12px; }
.plot { margin: 0; border: 1px solid #eceff1; border-radius: 6px; padding: 6px; background: #fff; }
.plot svg { display: block; width: 100%; height: auto; }
"""
