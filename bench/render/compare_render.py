"""Renders a ``Comparison`` as an asv-style text table, GitHub markdown, JSON or JUnit XML.

``bench compare`` picks the format; the text table is what a person reads in a terminal.
"""

from __future__ import annotations

import json
import math
from typing import Any

from bench.analysis.compare import ALPHA, MIN_EFFECT, MIN_REPEATS, Comparison, Row
from bench.render.hold_sites import new_site_lines, new_site_markdown
from bench.render.junit import case, suite

LEGEND = (
    "marks: + worse  - better  * changed (no better direction)  ~ not significant  ! newly failing (was 0)"
    "  ? not a number   gate: ✗ failed  (not applied) a speed gate without the runs to test it"
)
UNDECIDED = (
    "undecided: too few runs (or, for a count, events) to tell this change from chance; --repeat N on "
    "both sides could decide it, were each side's runs spread as they are now"
)


def _not_finite(value: float) -> str:
    return "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return _not_finite(value)
    if value == int(value) and abs(value) < 1e9:
        return f"{int(value)}"
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:.1f}"


def _ratio(row: Row) -> str:
    if row.ratio is None:
        return "-"
    return _not_finite(row.ratio) if not math.isfinite(row.ratio) else f"{row.ratio:.2f}"


def verdict_line(result: Comparison) -> str:
    failed = result.failed_gates
    runs = result.repeats
    if not result.single_sample:
        basis = f"Mann-Whitney U over {runs[0]} vs {runs[1]} repeats (alpha {ALPHA}) and"
    elif runs == (1, 1):
        basis = f"ONE sample per side (bench run --repeat {MIN_REPEATS} or more gives a significance test); judged by"
    else:
        basis = (
            f"{runs[0]} vs {runs[1]} runs, too few for a significance test (--repeat {MIN_REPEATS} or more on "
            "both sides); judged by"
        )
    head = f"{len(failed)} gate(s) failed" if failed else "all gates passed"
    line = (
        f"{head}; {basis} a minimum effect of {MIN_EFFECT:.0%} and each figure's noise floor; counts and rates "
        f"per request by an exact test of counts (alpha {ALPHA})"
    )
    skipped = sorted({r.metric for r in result.skipped_gates})  # one name per gate, whatever the apps compared
    if skipped:
        line += (
            f"; {len(skipped)} speed gate(s) not applied ({', '.join(skipped)}): "
            f"latency, throughput and hold times measure the runner as much as the code, so their gates need "
            f"--repeat {MIN_REPEATS} or more on both sides and the significance test"
        )
    return line


def _gate_cell(row: Row, failed: str, text: str) -> str:
    return ("" if not row.gate_failed else failed) + text + (" (not applied)" if row.gate_skipped else "")


def _undecided(row: Row) -> str:
    return f"needs --repeat {row.needs_repeat}" if row.needs_repeat is not None else ""


def render_text(result: Comparison, show_all: bool = False) -> str:
    rows = [r for r in result.rows if show_all or r.mark != " " or r.gate_failed]
    undecided = any(r.needs_repeat is not None for r in rows)
    header = ("", "app", "metric", "base", "current", "ratio", "gate", *(("undecided",) if undecided else ()))
    body = [
        (
            r.mark,
            r.app,
            r.metric,
            _num(r.base),
            _num(r.current),
            _ratio(r),
            _gate_cell(r, "✗ ", r.gate or ""),
            *((_undecided(r),) if undecided else ()),
        )
        for r in rows
    ]
    widths = [max(len(str(x[i])) for x in [header, *body]) for i in range(len(header))]
    lines = [f"scenario {result.scenario}: " + ", ".join(f"{b} -> {c}" for b, c in result.pairs)]
    fmt = "  ".join(f"{{:<{w}}}" if i < 3 or i >= 6 else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines.append(fmt.format(*header).rstrip())
    lines.extend(fmt.format(*row).rstrip() for row in body)
    if not body:
        lines.append("(no metric changed)")
    lines.append(LEGEND)
    if undecided:
        lines.append(UNDECIDED)
    lines.extend(result.notes)
    lines.extend(new_site_lines(result))
    lines.append(verdict_line(result))
    return "\n".join(lines)


def render_markdown(result: Comparison) -> str:
    status = "❌" if result.failed_gates else "✅"
    lines = [
        f"### {status} scopebench compare: `{result.scenario}`",
        "",
        verdict_line(result),
        "",
        *[f"> {note}" for note in result.notes],
        "",
        "| | app | metric | base | current | ratio | gate | undecided |",
        "|---|---|---|---:|---:|---:|---|---|",
    ]
    for r in result.rows:
        if r.mark == " " and not r.gate_failed:
            continue
        gate = _gate_cell(r, "❌ ", f"`{r.gate}`" if r.gate else "")
        lines.append(
            f"| `{r.mark}` | {r.app} | `{r.metric}` | {_num(r.base)} | {_num(r.current)} | "
            f"{_ratio(r)} | {gate} | {_undecided(r)} |"
        )
    lines.extend(["", *new_site_markdown(result)] if result.new_sites else [])
    lines.append("")
    lines.append(f"<sub>{LEGEND}<br>{UNDECIDED}</sub>")
    return "\n".join(lines)


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity: a number that is not finite is null (its mark says why)."""
    return value if value is not None and math.isfinite(value) else None


def render_json(result: Comparison) -> str:
    """Every number is a number or null: ``ratio`` is null when either side is missing or the base is 0."""
    data: dict[str, Any] = {
        "scenario": result.scenario,
        "pairs": result.pairs,
        "repeats": list(result.repeats),
        "single_sample": result.single_sample,
        "failed_gates": [r.gate for r in result.failed_gates],
        "skipped_gates": [r.gate for r in result.skipped_gates],
        "notes": result.notes,
        "new_sites": [site.to_json() for site in result.new_sites],
        "rows": [
            {
                "app": r.app,
                "metric": r.metric,
                "base": _finite(r.base),
                "current": _finite(r.current),
                "ratio": _finite(r.ratio),
                "mark": r.mark.strip() or "=",
                "p_value": _finite(r.p_value),
                "gate": r.gate,
                "gate_failed": r.gate_failed,
                "gate_skipped": r.gate_skipped,
                "needs_repeat": r.needs_repeat,
            }
            for r in result.rows
        ],
    }
    return json.dumps(data, indent=2, allow_nan=False)


def render_junit(result: Comparison) -> str:
    """Each gate is a test case, so CI systems list them; failed gates are failures, speed gates without the runs
    to test them skipped."""
    gated = [r for r in result.rows if r.gate]
    classname = f"scopebench.{result.scenario}"
    cases = []
    for r in gated:
        name = f"{r.app}: {r.gate}"
        if r.gate_skipped:
            cases.append(
                case(
                    classname,
                    name,
                    skipped=f"speed gate not applied: {r.metric} needs --repeat "
                    f"{MIN_REPEATS} or more on both sides for the significance test",
                )
            )
        elif r.gate_failed:
            why = f"; undecided, too few to tell from chance: {_undecided(r)}" if r.needs_repeat is not None else ""
            cases.append(
                case(classname, name, f"{r.metric}: {_num(r.base)} -> {_num(r.current)} (ratio {_ratio(r)}){why}")
            )
        else:
            cases.append(case(classname, name))
    return suite(
        f"scopebench compare {result.scenario}",
        cases,
        sum(r.gate_failed for r in gated),
        sum(r.gate_skipped for r in gated),
    )
