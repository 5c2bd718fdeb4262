"""The tables benchmarks/ci_verdicts.py prints: every gated figure's A/A spread and the limit derived from it, false
alarms, detection, the smallest culprit caught, and the time each part took; read from its results.jsonl.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.config.gates import DEFAULT_GATES, Gate, derived_limit, needed_floor_cap
from bench.results.metric import NOISE_SHARE, UNIT_NOISE, Metric
from bench.results.metrics import COMPARED, value_at

BY_PATH = {m.path: m for m in COMPARED}


@dataclass
class Records:
    items: list[dict[str, Any]] = field(default_factory=list)
    by_key: dict[str, dict[str, Any]] = field(default_factory=dict)
    root: Path = Path()  # the folder of results.jsonl, which holds each unit's folder under its key

    @classmethod
    def read(cls, path: Path) -> Records:
        records = cls(root=path.parent)
        if path.is_file():
            for line in path.read_text().splitlines():
                if line.strip():
                    records.add(json.loads(line))
        return records

    @property
    def keys(self) -> set[str]:
        return set(self.by_key)

    def add(self, record: dict[str, Any]) -> None:
        self.items.append(record)
        self.by_key[record["key"]] = record

    def of(self, part: str) -> list[dict[str, Any]]:
        return [r for r in self.items if r["part"] == part]


def gated_figures(app: dict[str, Any]) -> dict[str, float]:
    """Every figure a default gate judges in one app's summary (a family once per key), and the counts its rates
    are made of (their dispersion says whether the count test's Poisson model holds)."""
    out: dict[str, float] = {}
    for text in DEFAULT_GATES:
        metric = BY_PATH[Gate.parse(text).metric]
        paths = [metric.path, metric.rate_of] if metric.rate_of else [metric.path]
        for path in paths:
            out.update(_members(app, path))
    requests = value_at(app, ("requests",))
    if requests is not None:
        out["requests"] = requests
    return out


def _members(app: dict[str, Any], path: str) -> dict[str, float]:
    if "<" not in path:
        value = value_at(app, tuple(path.split(".")))
        return {} if value is None else {path: value}
    prefix = path.split(".<", 1)[0]
    block = value_at_node(app, prefix.split("."))
    if not isinstance(block, dict):
        return {}
    return {f"{prefix}.{key}": float(v) for key, v in block.items() if isinstance(v, (int, float))}


def value_at_node(node: Any, parts: list[str]) -> Any:
    for part in parts:
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    """Q1, median, Q3 by nearest rank (the harness's percentile rule)."""
    q1, med, q3 = np.percentile(values, [25, 50, 75], method="inverted_cdf")
    return float(q1), float(med), float(q3)


@dataclass
class Spread:
    """One default gate's figure over identical runs, in one condition, the widest over scenarios and apps.

    A figure whose median is small enough that the registry's noise floor (a quarter of the figure, at most its
    cap) is what decides a change has its IQR set against that floor (``floor_cap``: the cap that keeps K_IQR IQRs
    from counting); above, its IQR / median sets the gate's limit (``share``).
    """

    runs: int = 0
    share: tuple[float, str] | None = None
    floor_cap: tuple[float, str] | None = None  # the noise-floor cap the small figures' spread needs
    peaks: dict[str, float] = field(default_factory=dict)
    dispersion: float | None = None

    def add(self, values: list[float], where: str, app: str, floor_cap: float) -> None:
        self.runs = max(self.runs, len(values))
        self.peaks[app] = max(self.peaks.get(app, 0.0), max(values))
        q1, med, q3 = _quartiles(values)
        if med * NOISE_SHARE < floor_cap:  # the noise floor decides here, not the relative limit
            needed = needed_floor_cap(q3 - q1, med)
            if self.floor_cap is None or needed > self.floor_cap[0]:
                self.floor_cap = (needed, where)
        elif med > 0 and (self.share is None or (q3 - q1) / med > self.share[0]):
            self.share = ((q3 - q1) / med, where)


def _series(records: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, list[float]]]:
    """(condition, scenario, app) -> figure -> its value in every run; a family member a run lacks is 0 there."""
    runs: dict[tuple[str, str, str], list[dict[str, float]]] = defaultdict(list)
    for r in records:
        for app, figures in (r.get("figures") or {}).items():
            runs[(r["condition"], r["scenario"], app)].append(figures)
    out = {}
    for group, figure_runs in runs.items():
        names = {name for figures in figure_runs for name in figures}
        out[group] = {name: [f.get(name, 0.0 if _family(name) else np.nan) for f in figure_runs] for name in names}
    return out


def _family(name: str) -> bool:
    return name.startswith(("failures_per_1k_requests.", "failures_by_cause."))


def _matches(path: str, name: str) -> bool:
    """Whether a concrete figure name is ``path`` or a member of its family (``failures_by_cause.<cause>``)."""
    return name == path or ("<" in path and name.startswith(path.split(".<", 1)[0] + "."))


def _gate_of(name: str) -> str | None:
    """The default gate on a figure."""
    return next((t for t in DEFAULT_GATES if _matches(Gate.parse(t).metric, name)), None)


def _count_gate_of(name: str) -> str | None:
    """The default gate on the rate a count is made of (``pool.timeouts`` -> the timeouts-per-1,000 gate)."""
    for text in DEFAULT_GATES:
        rate_of = BY_PATH[Gate.parse(text).metric].rate_of
        if rate_of and _matches(rate_of, name):
            return text
    return None


def _spreads(records: Records) -> dict[tuple[str, str], Spread]:
    """(default gate, condition) -> the spread of its figure."""
    spreads: dict[tuple[str, str], Spread] = defaultdict(Spread)
    for (condition, scenario, app), figures in _series(records.of("spread")).items():
        for name, values in figures.items():
            clean = [v for v in values if not np.isnan(v)]
            if len(clean) < 2:
                continue
            counted = _count_gate_of(name)
            if counted is not None and statistics.mean(clean) > 0:
                # Variance over mean across identical runs: about 1 for Poisson counts, far above when events come
                # in bursts (the count test would then call chance news).
                spread = spreads[(counted, condition)]
                ratio = statistics.variance(clean) / statistics.mean(clean)
                spread.dispersion = max(spread.dispersion or 0.0, ratio)
            gated = _gate_of(name)
            if gated is not None:
                cap = _base_floor(BY_PATH[Gate.parse(gated).metric])
                spreads[(gated, condition)].add(clean, f"{scenario}/{app}", app, cap)
    return spreads


def _base_floor(metric: Metric) -> float:
    """The noise-floor cap a figure's unit gives (bench.results.metric.UNIT_NOISE), before any derived one: what
    splits the runs into those whose spread sets the relative limit and those whose spread sets the cap. Not the
    cap derived from them: a larger cap would move more runs to its side and ask for a larger cap again."""
    return 0.0 if metric.alarm else UNIT_NOISE.get(metric.unit, 0.0)


def spread_table(records: Records) -> list[str]:
    spreads = _spreads(records)
    lines = [
        "| gate now | A/A spread, quiet | A/A spread, one core kept busy | derived limit | noise floor now |",
        "|---|---|---|---|---|",
    ]
    for text in DEFAULT_GATES:
        gate = Gate.parse(text)
        metric = BY_PATH[gate.metric]
        cells = [_spread_cell(gate, spreads.get((text, c))) for c in ("quiet", "busy")]
        shares = [sp.share[0] for c in ("quiet", "busy") if (sp := spreads.get((text, c))) and sp.share]
        caps = [sp.floor_cap[0] for c in ("quiet", "busy") if (sp := spreads.get((text, c))) and sp.floor_cap]
        if not gate.relative:
            derived = "absolute"
        elif not any(spreads.get((text, c)) for c in ("quiet", "busy")):
            derived = "pending"
        else:
            derived = f"{gate.sign}{derived_limit(shares, gate.sign or '+'):.0%}"
            if caps and max(caps) > metric.noise_floor:
                derived += f"; noise floor cap ≥ {max(caps):.3g} {metric.unit}"
        floor = (
            f"{metric.noise_floor:g} {metric.unit}"
            if metric.noise_floor
            else "count test"
            if metric.rate_of
            else "none"
        )
        lines.append(f"| `{text}` | {cells[0]} | {cells[1]} | {derived} | {floor} |")
    return lines


def _spread_cell(gate: Gate, spread: Spread | None) -> str:
    if spread is None or not spread.runs:
        return "pending"
    if not gate.relative:
        return "most seen: " + ", ".join(f"{app} {peak:g}" for app, peak in sorted(spread.peaks.items()))
    parts = []
    if spread.share:
        parts.append(f"IQR/median {spread.share[0]:.3f} ({spread.share[1]})")
    if spread.floor_cap:
        parts.append(f"near 0: needs a floor cap of {spread.floor_cap[0]:.3g} ({spread.floor_cap[1]})")
    if spread.dispersion is not None:
        parts.append(f"counts var/mean ≤ {spread.dispersion:.1f}")
    return "; ".join(parts or ["0 everywhere"]) + f"; {spread.runs} runs"


def _median(values: Iterable[float]) -> str:
    vals = list(values)
    return f"{statistics.median(vals):.0f}" if vals else "-"


def aa_table(records: Records) -> list[str]:
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records.of("aa"):
        groups[(r["condition"], r["scenario"], r["rung"])].append(r)
    lines = [
        (
            "| condition | scenario | repeats x duration | A/A jobs | false alarms | gates that failed | "
            "other exit 1 (a check) | not run (exit 3) | job wall, median (s) |"
        ),
        "|---|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for (condition, scenario, rung), jobs in sorted(groups.items()):
        alarms = [j for j in jobs if j.get("failed_gates")]
        gates = Counter(g for j in alarms for g in j["failed_gates"])
        checks = sum(1 for j in jobs if j["exit_code"] == 1 and not j.get("failed_gates"))
        broken = sum(1 for j in jobs if j["exit_code"] not in (0, 1))
        lines.append(
            f"| {condition} | {scenario} | {rung} | {len(jobs)} | {len(alarms)} | "
            f"{', '.join(f'`{g}` ×{n}' for g, n in gates.most_common()) or '-'} | {checks} | {broken} | "
            f"{_median(j['wall_s'] for j in jobs)} |"
        )
    return lines


def aa_margin_table(records: Records) -> list[str]:
    """How near the A/A jobs came to each relative gate: the largest move of its figure in the gate's direction (B's
    median against A's, from each job's comparison.json), and how many jobs moved past the limit, which only the
    significance test or the noise floor then kept from failing."""
    nearest: dict[tuple[str, str], tuple[float, int, Gate]] = {}
    past: Counter[tuple[str, str]] = Counter()
    for r in records.of("aa"):
        path = records.root / r["key"] / "comparison.json"
        if not path.is_file():
            continue
        for row in json.loads(path.read_text()).get("rows", []):
            gate = Gate.parse(row["gate"]) if row.get("gate") else None
            ratio = row.get("ratio")
            if gate is None or not gate.relative or ratio is None or not np.isfinite(ratio):
                continue
            key = (r["condition"], gate.text)
            move = (ratio - 1) if gate.sign == "+" else (1 - ratio)
            if key not in nearest or move > nearest[key][0]:
                nearest[key] = (move, r["index"], gate)
            past[key] += move > gate.limit
    lines = [
        "| condition | gate | largest move seen, of the limit | A/A jobs past the limit, held back by the test or floor |",
        "|---|---|---|---:|",
    ]
    for (condition, text), (move, index, gate) in sorted(nearest.items()):
        lines.append(
            f"| {condition} | `{text}` | {move:+.1%} (job {index}), {move / gate.limit:.0%} of it | {past[(condition, text)]} |"
        )
    return lines


def ab_table(records: Records) -> list[str]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records.of("ab"):
        groups[(r["condition"], r["scenario"])].append(r)
    lines = [
        "| scenario | condition | detected at (repeats x duration) | gates that failed | job wall (s) | tried |",
        "|---|---|---|---|---:|---|",
    ]
    for (condition, scenario), jobs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        hit = next((j for j in jobs if j.get("failed_gates")), None)
        tried = ", ".join(f"{j['rung']} (exit {j['exit_code']})" for j in jobs)
        if hit is None:
            lines.append(f"| {scenario} | {condition} | not detected | - | - | {tried} |")
        else:
            lines.append(
                f"| {scenario} | {condition} | {hit['rung']} | "
                f"{', '.join(f'`{g}`' for g in hit['failed_gates'])} | {hit['wall_s']:.0f} | {tried} |"
            )
    return lines


def mde_table(records: Records) -> list[str]:
    jobs = sorted(records.of("mde"), key=lambda r: (r["condition"], r["rung"], r["every"]))
    lines = [
        "| culprit held in | condition | repeats x duration | detected | gates that failed | job wall (s) |",
        "|---|---|---|---|---|---:|",
    ]
    for j in jobs:
        lines.append(
            f"| 1 request in {j['every']} | {j['condition']} | {j['rung']} | "
            f"{'yes' if j.get('failed_gates') else 'no'} | "
            f"{', '.join(f'`{g}`' for g in j.get('failed_gates') or []) or '-'} | {j['wall_s']:.0f} |"
        )
    smallest: dict[tuple[str, str], int] = {}
    for j in jobs:
        if j.get("failed_gates"):
            key = (j["condition"], j["rung"])
            smallest[key] = max(smallest.get(key, 0), j["every"])
    lines += [""] + [
        f"Smallest share caught ({c}, {rung}): 1 request in {k} ({1 / k:.0%})."
        for (c, rung), k in sorted(smallest.items())
    ]
    return lines


def timing_table(records: Records) -> list[str]:
    totals: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records.items:
        totals[(r["part"], r["condition"])].append(r)
    lines = ["| part | condition | units | wall (s) | load average before, median |", "|---|---|---:|---:|---:|"]
    for (part, condition), units in sorted(totals.items()):
        load = statistics.median(u.get("load_before", 0.0) for u in units)
        lines.append(f"| {part} | {condition} | {len(units)} | {sum(u['wall_s'] for u in units):.0f} | {load:.2f} |")
    return lines


def render(records: Records) -> str:
    sections = [
        (
            (
                "A/A spread of every gated figure, and the limit the rule derives (bench/config/gates.py: K_IQR x the "
                "widest IQR / median over scenarios, apps and both conditions, rounded up to 5%, at least FLOOR)"
            ),
            spread_table(records),
        ),
        ("A/A jobs (`bench ab --app good --app-b good`, default gates)", aa_table(records)),
        ("How near the A/A jobs came to each relative gate", aa_margin_table(records)),
        ("Every bad scenario against its good twin (`bench ab SCENARIO`), up the ladder", ab_table(records)),
        (
            "Minimum detectable effect: the long-session culprit in 1 request in k (BENCH_APP_HOLD_EVERY)",
            mde_table(records),
        ),
        ("Time per part", timing_table(records)),
    ]
    return "\n".join(f"\n### {title}\n\n" + "\n".join(lines) for title, lines in sections)
