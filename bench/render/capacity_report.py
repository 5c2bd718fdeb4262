"""Shows a capacity sweep: the terminal table, capacity.md and a self-contained capacity.html with SVG plots.

bench.run.capacity renders after a sweep; everything here reads only the capacity.json document.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.render.page import CSS, Cell, Heading, Table, own_service, to_markdown
from bench.render.svgplot import Chart, Reference, Series, render
from bench.results.folder import write_text
from bench.results.layout import CapacityFiles

COLORS = {"good": "#0072B2", "bad": "#D55E00"}
MODEL_COLORS = {"good": "#56B4E9", "bad": "#E69F00"}
GREY = "#9e9e9e"

# (column, how to read it from a result) for the summary table
SUMMARY: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    ("app", lambda r: str(r["app"])),
    ("pool", lambda r: str(r["pool_size"])),
    ("within SLO", lambda r: _sustained(r)),
    ("knee", lambda r: _level(r["knee"]["level"], r) if r.get("knee") else "none"),
    ("plateau rps", lambda r: _num(r["saturation"]["plateau_rps"], "{:.1f}")),
    ("Little ceiling rps", lambda r: _num(r["littles_law"]["ceiling_rps"], "{:.1f}")),
    ("plateau/ceiling", lambda r: _num(r["littles_law"]["plateau_over_ceiling"], "{:.2f}")),
    ("hold/req ms", lambda r: _num(r["littles_law"]["hold_ms_per_request"], "{:.1f}")),
    ("M/D/c SLO rps", lambda r: _num(r["model"]["max_rate_rps"], "{:.0f}")),
    ("bottleneck", lambda r: str(r["bottleneck"]["name"])),
)

# (column, how to read it from a step) for the per-step tables
STEPS: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    ("level", lambda s: f"{s['level']:g}"),
    ("offered rps", lambda s: _num(s["offered_rps"], "{:.1f}")),
    ("throughput rps", lambda s: _num(s["throughput_rps"], "{:.1f}")),
    ("p50 ms", lambda s: _num(s["latency_ms"]["p50"], "{:.0f}")),
    ("p95 ms", lambda s: _num(s["latency_ms"]["p95"], "{:.0f}")),
    ("p99 ms", lambda s: _num(s["latency_ms"]["p99"], "{:.0f}")),
    ("errors", lambda s: f"{100 * s['error_rate']:.1f}%"),
    ("dropped", lambda s: str(s["dropped"])),
    ("pool wait p95 ms", lambda s: _num(s["pool_wait_ms"]["p95"], "{:.1f}")),
    ("model wait p95 ms", lambda s: _num(s.get("model_wait_p95_ms"), "{:.1f}", none=s.get("model_none", "-"))),
    ("hold/req ms", lambda s: _num(s["hold_ms_per_request"], "{:.1f}")),
    ("pool busy", lambda s: _num(s["pool_busy"], "{:.1f}")),
    ("loop lag p95 ms", lambda s: _num(s["loop_lag_ms"]["p95"], "{:.1f}")),
    ("app CPU", lambda s: _num(s["app_cpu"], "{:.0%}")),
    ("Locust CPU", lambda s: _num(s["generator_cpu"], "{:.0%}")),
    ("SLO", lambda s: "met" if not s["slo_missed"] else "missed: " + ", ".join(s["slo_missed"])),
)


def render_terminal(data: dict[str, Any], folder: Path) -> str:
    results = data.get("results") or []
    lines = ["", _subtitle(data), ""]
    if results:
        rows = [[col for col, _ in SUMMARY]] + [[read(r) for _, read in SUMMARY] for r in results]
        widths = [max(len(row[i]) for row in rows) for i in range(len(SUMMARY))]
        for row in rows:
            lines.append("  " + "  ".join(c.ljust(w) if i in (0, len(row) - 1) else c.rjust(w)
                                          for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        lines.append("")
        for r in results:
            neck = r["bottleneck"]
            lines.append(f"  {r['app']} pool {r['pool_size']}: {neck['name']} — {neck['evidence']}")
    if data.get("recommendation"):
        lines += ["", _wrap(data["recommendation"], 110)]
    lines += [f"\nwarning: {w}" for w in data.get("warnings") or []]
    files = CapacityFiles(folder)
    lines += ["", f"{data.get('status')}: {files.capacity_json} (sweep wall time {data.get('wall_time_s')}s)",
              f"report: {files.capacity_html}"]
    return "\n".join(lines)


def render_report(folder: Path, data: dict[str, Any]) -> tuple[Path, Path]:
    tables = build_tables(data)
    heading = Heading(scenario=f"{data.get('scenario')} capacity", status=str(data.get("status")),
                      error=data.get("error"), subtitle=_subtitle(data), date=_date(data.get("started_at")),
                      folder=str(folder))
    md, page = CapacityFiles(folder).capacity_md, CapacityFiles(folder).capacity_html
    write_text(md, to_markdown(heading, tables))
    write_text(page, _page(heading, tables, [render(c) for c in build_charts(data)]))
    return md, page


def build_tables(data: dict[str, Any]) -> list[Table]:
    results = data.get("results") or []
    tables = [
        Table(anchor="recommendation", title="Recommendation", columns=(), rows=(),
              notes=(data.get("recommendation") or "no result: the sweep did not complete a pool size",
                     *(f"Warning: {w}" for w in data.get("warnings") or []))),
        Table(anchor="summary", title="Capacity per app and pool size", columns=tuple(c for c, _ in SUMMARY),
              rows=tuple(tuple(Cell(read(r), "" if i in (0, 9) else "num") for i, (_, read) in enumerate(SUMMARY))
                         for r in results),
              notes=tuple(f"{r['app']} pool {r['pool_size']}: bottleneck {r['bottleneck']['name']} — "
                          f"{r['bottleneck']['evidence']}" for r in results)),
    ]
    for r in results:
        # In the open model a missing model figure means the offered rate is past the pool's ceiling.
        none = "unstable" if ((data.get("config") or {}).get("sweep") or {}).get("mode") == "rate" else "-"
        steps = [s | {"model_wait_p95_ms": m, "model_none": none}
                 for s, m in zip(r["steps"], r["model"]["pool_wait_p95_ms"], strict=True)]
        tables.append(Table(
            anchor=f"steps-{r['app']}-{r['pool_size']}", title=f"Steps: {r['app']}, pool {r['pool_size']}",
            columns=tuple(c for c, _ in STEPS),
            rows=tuple(tuple(Cell(read(s), "" if c == "SLO" else "num") for c, read in STEPS) for s in steps),
            notes=(_steps_note(r),)))
    glossary = data.get("glossary") or {}
    tables.append(Table(anchor="glossary", title="What the figures mean", columns=("field", "meaning"),
                        rows=tuple((Cell(k), Cell(v)) for k, v in glossary.items())))
    return tables


def build_charts(data: dict[str, Any]) -> list[Chart]:
    results = data.get("results") or []
    sweep = (data.get("config") or {}).get("sweep") or {}
    unit = "requests/s offered" if sweep.get("mode") == "rate" else "users"
    slo = {o["metric"]: o["threshold"] for o in ((data.get("config") or {}).get("slo") or {}).get("objectives", [])}
    charts = []
    for size in dict.fromkeys(r["pool_size"] for r in results):
        runs = [r for r in results if r["pool_size"] == size]
        charts += _pool_charts(size, runs, unit, sweep.get("mode") == "rate", slo)
    if len({r["pool_size"] for r in results}) > 1:
        charts.append(_scaling_chart(results))
    return charts


def _pool_charts(size: int, runs: list[dict[str, Any]], unit: str, open_model: bool,
                 slo: dict[str, float]) -> list[Chart]:
    def line(r: dict[str, Any], read: Callable[[dict[str, Any]], Any], name: str = "", color: str = "") -> Series:
        x = np.array([s["level"] for s in r["steps"]], dtype=float)
        y = np.array([_float(read(s)) for s in r["steps"]], dtype=float)
        return Series(name or str(r["app"]), x, y, color or COLORS.get(r["app"], GREY))

    offered = (line(runs[0], lambda s: s["level"], "offered", GREY),) if open_model and runs else ()
    # A ceiling far above the load drawn would flatten every line: it goes in the legend instead.
    top = max((s["level"] if open_model else s["throughput_rps"]) for r in runs for s in r["steps"]) * 1.3
    ceilings = tuple(Reference(c, f"{r['app']} Little ceiling", COLORS.get(r["app"], GREY))
                     for r in runs if (c := r["littles_law"]["ceiling_rps"]) and c <= top)
    throughput = tuple(line(r, lambda s: s["throughput_rps"], _off_chart(r, top)) for r in runs)
    models = tuple(Series(f"{r['app']} M/D/c", np.array([s["level"] for s in r["steps"]], dtype=float),
                          np.array([_float(v) for v in r["model"]["pool_wait_p95_ms"]], dtype=float),
                          MODEL_COLORS.get(r["app"], GREY)) for r in runs if open_model)
    return [
        Chart(title=f"Throughput vs load, pool {size}", y_label="successful responses/s", x_label=unit,
              series=(*offered, *throughput), references=ceilings),
        Chart(title=f"Latency p95 vs load, pool {size}", y_label="ms", x_label=unit,
              series=tuple(line(r, lambda s: s["latency_ms"]["p95"]) for r in runs), references=_ref(slo, "p95")),
        Chart(title=f"Pool wait p95 vs load, pool {size} (measured and M/D/c model)", y_label="ms", x_label=unit,
              series=(*(line(r, lambda s: s["pool_wait_ms"]["p95"]) for r in runs), *models),
              references=_ref(slo, "pool_wait_p95")),
        Chart(title=f"Event-loop lag p95 vs load, pool {size}", y_label="ms", x_label=unit,
              series=tuple(line(r, lambda s: s["loop_lag_ms"]["p95"]) for r in runs)),
    ]


def _scaling_chart(results: list[dict[str, Any]]) -> Chart:
    series = []
    for app in dict.fromkeys(r["app"] for r in results):
        runs = sorted((r for r in results if r["app"] == app), key=lambda r: r["pool_size"])
        x = np.array([r["pool_size"] for r in runs], dtype=float)
        color = COLORS.get(app, GREY)
        series.append(Series(f"{app} SLO", x, np.array([_float((r["max_slo"] or {}).get("sustained_rps"))
                                                               for r in runs], dtype=float), color))
        series.append(Series(f"{app} plateau", x, np.array([_float(r["saturation"]["plateau_rps"]) for r in runs],
                                                           dtype=float), MODEL_COLORS.get(app, GREY)))
        if app == "bad":  # the good app's pool ceiling is far above anything it reaches: it would flatten the plot
            series.append(Series(f"{app} ceiling", x, np.array(
                [_float(r["littles_law"]["ceiling_rps"]) for r in runs], dtype=float), GREY))
    return Chart(title="Capacity vs pool size", y_label="requests/s", x_label="pool size", series=tuple(series))


def _off_chart(r: dict[str, Any], top: float) -> str:
    ceiling = r["littles_law"]["ceiling_rps"]
    return f"{r['app']} (Little ceiling {ceiling:.0f})" if ceiling and ceiling > top else str(r["app"])


def _ref(slo: dict[str, float], metric: str) -> tuple[Reference, ...]:
    return (Reference(slo[metric], f"SLO {metric} {slo[metric]:g} ms", "#333333"),) if metric in slo else ()


PLOTS_NOTE = ("One point per step, measured after the step settled. Dashed lines: Little's-law ceilings "
              "and SLO thresholds.")
# Belt and braces for "no network": the browser may load nothing from anywhere.
CSP = "default-src 'none'; style-src 'unsafe-inline'"


def _page(heading: Heading, tables: list[Table], plots: list[str]) -> str:
    title = html.escape(f"scopebench · {heading.scenario} · {heading.status}")
    status = html.escape(heading.status)
    error = f'<p class="error">{html.escape(heading.error)}</p>' if heading.error else ""
    figures = "\n".join(f'<figure class="plot">{svg}</figure>' for svg in plots)
    header = (f'<header><h1>scopebench: {html.escape(heading.scenario)} <span class="status status-{status}">'
              f'{status}</span></h1><p class="subtitle">{html.escape(heading.subtitle)} · '
              f"{html.escape(heading.date)}</p>{error}</header>")
    plots_section = (f'<section id="plots"><h2>Against offered load</h2><p class="note">{html.escape(PLOTS_NOTE)}'
                     f'</p><div class="plots">\n{figures}\n</div></section>')
    body = [header, *(_section(t) for t in tables[:2]), plots_section, *(_section(t) for t in tables[2:])]
    return "\n".join(["<!doctype html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
                      f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
                      '<meta name="viewport" content="width=device-width, initial-scale=1">',
                      f"<title>{title}</title>", f"<style>{CSS}</style>", "</head>", "<body><main>", *body,
                      "</main></body>", "</html>", ""])


def _section(table: Table) -> str:
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in table.notes)
    grid = ""
    if table.rows:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
        rows = "\n".join("<tr>" + "".join(f'<td class="{c.css}">{html.escape(c.text)}</td>' for c in row) + "</tr>"
                         for row in table.rows)
        grid = f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>'
    return f'<section id="{html.escape(table.anchor)}"><h2>{html.escape(table.title)}</h2>{grid}{notes}</section>'


def _subtitle(data: dict[str, Any]) -> str:
    cfg = data.get("config") or {}
    sweep = cfg.get("sweep") or {}
    levels: Sequence[float] = sweep.get("levels") or []
    unit = sweep.get("unit", "")
    model = f"open model, {sweep.get('arrivals')} arrivals" if sweep.get("mode") == "rate" else "closed model"
    load = (f"{model} {levels[0]:g}..{levels[-1]:g} {unit} in {len(levels)} steps of {sweep.get('step_s'):g}s "
            f"(first {sweep.get('settle_s'):g}s of each discarded)" if levels else "no steps")
    cap = f", at most {sweep.get('max_concurrency')} in flight" if sweep.get("mode") == "rate" else ""
    service = own_service(cfg)
    upstream = f" · your service ({service})" if service else f" · upstream {cfg.get('upstream_latency_ms')} ms"
    return (f"capacity · {data.get('scenario')} · {' and '.join(cfg.get('apps') or [])} · pools "
            f"{', '.join(str(p) for p in cfg.get('pool_sizes') or [])} (+{cfg.get('max_overflow')} overflow) · "
            f"{load}{cap}{upstream} · SLO {(cfg.get('slo') or {}).get('text')}")


def _sustained(r: dict[str, Any]) -> str:
    """A lower bound, as the recommendation says: the limit lies between this step and the next, or above the
    sweep's top."""
    top = r.get("max_slo")
    if not top:
        return "none"
    if top["unit"] == "rps":
        return f"≥ {top['level']:g} rps"
    return f"≥ {top['throughput_rps']:.0f} rps @{top['level']:g}u"


def _level(value: float, r: dict[str, Any]) -> str:
    return f"{value:g} {'rps' if (r.get('max_slo') or {}).get('unit', 'rps') == 'rps' else 'users'}"


def _steps_note(r: dict[str, Any]) -> str:
    law = r["littles_law"]
    return (f"Knee: {_knee_note(r)}. Little's law: ceiling {_num(law['ceiling_rps'], '{:.1f}')} rps from "
            f"{_num(law['hold_ms_per_request'], '{:.1f}')} ms held per request over {law['basis']}.")


def _knee_note(r: dict[str, Any]) -> str:
    knee = r.get("knee")
    if not knee:
        return "none within the sweep"
    flat = f"; last flat step {knee['last_flat_level']:g}" if knee.get("last_flat_level") is not None else ""
    return f"at {knee['level']:g} ({'; '.join(knee['reasons'])}){flat}"


def _date(value: Any) -> str:
    try:
        return datetime.fromisoformat(str(value)).strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    except ValueError:
        return "date unknown"


def _num(value: Any, fmt: str, none: str = "-") -> str:
    return fmt.format(value) if isinstance(value, (int, float)) and math.isfinite(value) else none


def _float(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan


def _wrap(text: str, width: int) -> str:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "\n".join([*lines, line])
