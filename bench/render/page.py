"""Lays a report out as Markdown and as one self-contained HTML page: heading, story, tables, inline SVG plots.

bench.render.run_report builds the content from a run folder and calls these; nothing here reads a run folder.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.results.layout import REPORT_HTML

# Sections shown side by side on a wide screen: the verdict at a glance, before the plots.
SIDE_BY_SIDE = ("headline", "checks")
_BREAKS = re.compile(r"([/.(,](?!\s))")


def own_service(config: Mapping[str, Any]) -> str | None:
    """The flag that brought the user's own service (``--serve``, ``--target``), whose upstream and (unless the
    command takes ``{pool_size}``) pool the harness neither sets nor knows; None for the paired apps."""
    return "--serve" if config.get("serve") else "--target" if config.get("target") else None


@dataclass(frozen=True)
class Cell:
    text: str
    css: str = ""  # "num", "better", "worse", "pass", "fail"; "num" also right-aligns the Markdown column
    title: str = ""  # shown on hover in HTML (the raw metric path of a check, say)


@dataclass(frozen=True)
class Table:
    anchor: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    notes: tuple[str, ...] = ()
    key_value: bool = False  # two columns, name and value: laid out as a compact grid in HTML


@dataclass(frozen=True)
class Plots:
    """A group of inline SVG plots under one heading; report.md names them and points to report.html."""

    anchor: str
    title: str
    note: str
    svgs: tuple[str, ...]


@dataclass(frozen=True)
class CodeRef:
    """Where one app's side of an anti-pattern is in the code: its marker comment and what it says."""

    app: str
    where: str  # target_apps/bad/long_session.py:18
    text: str


@dataclass(frozen=True)
class Pattern:
    """One anti-pattern the run exercises: its id, the routes that run it, and each app's code."""

    name: str
    routes: tuple[str, ...]
    code: tuple[CodeRef, ...]


@dataclass(frozen=True)
class Story:
    """What the run is about, before any figure: the scenario, the code behind it, and the verdict."""

    description: str
    symptom: str
    verdict: str
    patterns: tuple[Pattern, ...]


@dataclass(frozen=True, kw_only=True)
class Heading:
    scenario: str
    status: str
    error: str | None
    subtitle: str  # the run's parameters on one line
    date: str
    folder: str


Block = Story | Table | Plots


def to_markdown(heading: Heading, blocks: Sequence[Block]) -> str:
    lines = [f"# scopebench report: {_md(heading.scenario)}", "",
             f"**Status: {_md(heading.status)}** · {_md(heading.date)} · `{heading.folder}`", "",
             _md(heading.subtitle), ""]
    if heading.error:
        lines += [f"> **Run {_md(heading.status)}:** {_md(heading.error)}", ""]
    for block in blocks:
        if isinstance(block, Story):
            lines += _story_markdown(block)
        elif isinstance(block, Plots):
            lines += [f"## {_md(block.title)}", "", f"{len(block.svgs)} plots: open `{REPORT_HTML}`.", ""]
        else:
            lines += _table_markdown(block)
    return "\n".join(lines)


def _story_markdown(story: Story) -> list[str]:
    lines = ["## What this run shows", ""]
    if story.verdict:
        lines += [f"**Verdict:** {_md(story.verdict)}", ""]
    lines += [f"- **Scenario:** {_md(story.description)}"] if story.description else []
    lines += [f"- **Expected symptom:** {_md(story.symptom)}"] if story.symptom else []
    for pattern in story.patterns:
        routes = f" ({', '.join(f'`{r}`' for r in pattern.routes)})" if pattern.routes else ""
        lines.append(f"- **{_md(pattern.name)}**{routes}")
        lines += [f"  - {_md(ref.app)} `{ref.where}`: {_md(ref.text)}" for ref in pattern.code]
    return [*lines, ""]


def _table_markdown(table: Table) -> list[str]:
    lines = [f"## {_md(table.title)}", ""]
    if table.rows:
        numeric = [_numeric(table, i) for i in range(len(table.columns))]
        lines.append("| " + " | ".join(_md(c) for c in table.columns) + " |")
        lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
        lines += ["| " + " | ".join(_md(c.text) for c in row) + " |" for row in table.rows]
        lines.append("")
    return lines + [line for note in table.notes for line in (_md(note), "")]


def to_html(heading: Heading, blocks: Sequence[Block]) -> str:
    """One page, no external resource and no script: styles inline, plots as inline ``<svg>`` elements."""
    body = [_header(heading)]
    pair = [_section(b) for b in blocks if isinstance(b, Table) and b.anchor in SIDE_BY_SIDE]
    for block in blocks:
        if isinstance(block, Story):
            body.append(_story(block))
        elif isinstance(block, Plots):
            body.append(_plots(block))
        elif block.anchor == SIDE_BY_SIDE[0]:
            body.append('<div class="side-by-side">' + "\n".join(pair) + "</div>")
        elif block.anchor not in SIDE_BY_SIDE:
            body.append(_section(block))
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


def _story(story: Story) -> str:
    e = html.escape
    parts = ['<section id="story"><h2>What this run shows</h2>']
    if story.verdict:
        parts.append(f'<p class="verdict">{e(story.verdict)}</p>')
    facts = [("scenario", story.description), ("expected symptom", story.symptom)]
    parts.append('<dl class="facts">' + "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in facts if v) + "</dl>")
    for pattern in story.patterns:
        routes = "".join(f" <code>{e(r)}</code>" for r in pattern.routes)
        items = "".join(f'<li><span class="app app-{e(ref.app)}">{e(ref.app)}</span> <code>{e(ref.where)}</code> '
                        f"{e(ref.text)}</li>" for ref in pattern.code)
        parts.append(f'<div class="pattern"><h3>{e(pattern.name)}{routes}</h3><ul>{items}</ul></div>')
    parts.append("</section>")
    return "".join(parts)


def _plots(plots: Plots) -> str:
    figures = "\n".join(f'<figure class="plot">{svg}</figure>' for svg in plots.svgs)
    note = f'<p class="note">{html.escape(plots.note)}</p>' if plots.note else ""
    return (f'<section id="{html.escape(plots.anchor)}"><h2>{html.escape(plots.title)}</h2>{note}'
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
        rows = "\n".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in table.rows)
        grid = (f'<div class="scroll"><table class="t-{html.escape(table.anchor)}"><thead><tr>{head}</tr></thead>'
                f"<tbody>{rows}</tbody></table></div>")
    return f'<section id="{html.escape(table.anchor)}"><h2>{html.escape(table.title)}</h2>{grid}{notes}</section>'


def _td(cell: Cell) -> str:
    title = f' title="{html.escape(cell.title)}"' if cell.title else ""
    # Routes, file paths and code lines may break after a slash, a dot or a bracket when the page is narrow
    # (<wbr> adds no character); a long word would otherwise push the table's last columns out of sight.
    text = html.escape(cell.text) if "num" in cell.css else _BREAKS.sub(r"\1<wbr>", html.escape(cell.text))
    return f'<td class="{html.escape(cell.css)}"{title}>{text}</td>'


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
h3 { font-size: 14px; margin: 12px 0 4px; }
section, header { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px;
                  margin: 0 0 16px; min-width: 0; }
.subtitle, .note { color: var(--muted); margin: 6px 0 0; }
.status { font-size: 13px; font-weight: 600; padding: 2px 10px; border-radius: 999px; background: #fdecea;
          color: var(--bad); text-transform: uppercase; letter-spacing: .04em; }
.status-completed { background: #e6f4ea; color: var(--good); }
.error { margin: 12px 0 0; padding: 10px 14px; border-left: 4px solid var(--bad); background: #fdecea;
         color: #5f1a14; white-space: pre-wrap; word-break: break-word; }
.verdict { font-size: 16px; font-weight: 600; margin: 0 0 12px; padding: 10px 14px; background: #fff8e1;
           border-left: 4px solid #e6a700; }
.facts { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 2px 16px; margin: 0; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; }
.pattern ul { margin: 0; padding-left: 18px; }
.pattern li { margin: 2px 0; }
code { font: 12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #f1f3f4;
       padding: 1px 5px; border-radius: 4px; word-break: break-word; }
.app { font-weight: 700; }
.app-bad { color: #b34700; }
.app-good { color: #005a8c; }
.side-by-side { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 0 16px; }
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
td.wrap { white-space: normal; min-width: 16em; word-break: break-word; }
.params { display: grid; grid-template-columns: max-content minmax(0, 1fr) max-content minmax(0, 1fr);
          gap: 4px 16px; margin: 0; }
.params dt { color: var(--muted); }
.params dd { margin: 0; word-break: break-word; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 12px; margin-top: 12px; }
.plot { margin: 0; border: 1px solid #eceff1; border-radius: 6px; padding: 6px; background: #fff; }
.plot svg { display: block; width: 100%; height: auto; }
.plot .hover rect:hover { fill-opacity: 0.07; }
@media (max-width: 1000px) {
  main { padding: 16px 12px 32px; }
  section, header { padding: 14px 12px; }
  .params { grid-template-columns: max-content minmax(0, 1fr); }
  /* A narrow page wraps long routes, messages and code lines rather than hide columns behind a scroll. */
  table { font-size: 12.5px; }
  th, td { padding: 4px 6px; }
  th { white-space: normal; }
  td, td:first-child { white-space: normal; overflow-wrap: break-word; }
  td.num { white-space: nowrap; }
}
"""
