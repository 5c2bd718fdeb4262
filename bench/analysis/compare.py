"""Compares two runs metric by metric (asv-style marks), decides significance and evaluates the gates.

``bench compare BASE CURRENT`` calls ``load_side`` and ``compare``; ``bench.config.gates`` parses ``--fail-on``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.analysis.stats import mann_whitney_p
from bench.config.gates import Gate, default_gates
from bench.errors import EXIT_GATE, EXIT_OK, UsageError
from bench.results.metric import Direction, Metric
from bench.results.metrics import COMPARED, expand, ratio, value_at
from bench.results.summaryfile import load_summary

# Every figure under apps.<app>, from the metric registry (bench.results.metrics), in its order: direction,
# noise floor and whether 0 -> n is news ("!") come with each.
METRICS: tuple[Metric, ...] = COMPARED
MIN_EFFECT = 0.05  # changes smaller than 5% are noise whatever a test says
ALPHA = 0.05
MIN_REPEATS = 4  # the exact two-sided Mann-Whitney p cannot go below 0.1 with 3 vs 3


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a summary and, per app, the per-repeat figures if it has repeats."""

    label: str
    summary: dict[str, Any]

    def app(self, name: str) -> dict[str, Any]:
        apps: dict[str, Any] = self.summary.get("apps", {})
        if name not in apps:
            raise UsageError(f"{self.label} has no app '{name}' (it has: {', '.join(apps) or 'none'})")
        app: dict[str, Any] = apps[name]
        return app

    def samples(self, app: str, parts: tuple[str, ...]) -> list[float]:
        repeats = self.summary.get("repeats", {}).get(app, [])
        values = [value_at(r, parts) for r in repeats]
        return [v for v in values if v is not None]


def load_side(path: Path) -> Side:
    """A run folder or a summary.json, through the one loader; refuses what this version cannot read (exit 2)."""
    return Side(label=str(path), summary=load_summary(path, require_apps=True))


@dataclass(frozen=True)
class Row:
    app: str
    metric: str
    base: float | None
    current: float | None
    ratio: float | None
    mark: str  # "+" worse, "-" better, "*" changed (no better direction), "~" not significant, "!" newly failing,
    # " " unchanged
    p_value: float | None
    gate: str | None = None
    gate_failed: bool = False


@dataclass
class Comparison:
    scenario: str
    pairs: list[tuple[str, str]]
    rows: list[Row] = field(default_factory=list)
    repeats: tuple[int, int] = (0, 0)

    @property
    def failed_gates(self) -> list[Row]:
        return [r for r in self.rows if r.gate_failed]

    @property
    def worsened(self) -> list[Row]:
        return [r for r in self.rows if r.mark in "+!"]

    @property
    def exit_code(self) -> int:
        """What bench compare exits with: 1 when a gate failed, else 0."""
        return EXIT_GATE if self.failed_gates else EXIT_OK

    notes: list[str] = field(default_factory=list)

    @property
    def single_sample(self) -> bool:
        return min(self.repeats) < MIN_REPEATS


def pairs_for(base: Side, current: Side, base_app: str | None, current_app: str | None) -> list[tuple[str, str]]:
    if base_app or current_app:
        b = base_app or current_app
        c = current_app or base_app
        assert b is not None and c is not None
        base.app(b), current.app(c)
        return [(b, c)]
    common = [a for a in base.summary["apps"] if a in current.summary["apps"]]
    if not common:
        raise UsageError(
            f"no app ran in both: base has {', '.join(base.summary['apps'])}, current has "
            f"{', '.join(current.summary['apps'])}; pick them with --base-app / --current-app"
        )
    return [(a, a) for a in common]


def compare(
    base: Side,
    current: Side,
    gates: list[Gate] | None = None,
    base_app: str | None = None,
    current_app: str | None = None,
) -> Comparison:
    if base.summary.get("scenario") != current.summary.get("scenario"):
        raise UsageError(
            f"different scenarios: base is '{base.summary.get('scenario')}', current is "
            f"'{current.summary.get('scenario')}'; compare runs of the same scenario"
        )
    gates = default_gates() if gates is None else gates
    by_metric = {g.metric: g for g in gates}
    result = Comparison(scenario=str(base.summary.get("scenario")),
                        pairs=pairs_for(base, current, base_app, current_app))
    for b_app, c_app in result.pairs:
        for metric in METRICS:
            for name, parts in expand(metric, base.app(b_app), current.app(c_app)):
                row = _row(base, current, b_app, c_app, metric, parts, by_metric.get(name))
                if row is not None:
                    result.rows.append(row)
        result.repeats = (len(base.summary.get("repeats", {}).get(b_app, [])),
                          len(current.summary.get("repeats", {}).get(c_app, [])))
    result.notes = config_differences(base.summary.get("config", {}), current.summary.get("config", {}))
    return result


_COMPARABLE = ("users", "spawn_rate", "duration_s", "pool_size", "max_overflow", "pool_timeout_s",
               "upstream_latency_ms", "idle_threshold_ms", "cooldown_s")


def config_differences(base: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Load settings that differ: totals (connection-seconds, counts) then scale with them."""
    return [f"config differs: {key} {base.get(key)} -> {current.get(key)}"
            for key in _COMPARABLE if base.get(key) != current.get(key)]


def _row(base: Side, current: Side, b_app: str, c_app: str, metric: Metric, parts: tuple[str, ...],
         gate: Gate | None) -> Row | None:
    b = value_at(base.app(b_app), parts)
    c = value_at(current.app(c_app), parts)
    if b is None and c is None:
        return None
    change = ratio(b, c)
    p = None
    b_samples, c_samples = base.samples(b_app, parts), current.samples(c_app, parts)
    if len(b_samples) >= MIN_REPEATS and len(c_samples) >= MIN_REPEATS:
        p = mann_whitney_p(b_samples, c_samples)
    mark = _mark(metric, b, c, change, p)
    label = b_app if b_app == c_app else f"{b_app}->{c_app}"
    failed = gate is not None and gate.fails(b, c, significant=mark in "+!*")
    return Row(label, ".".join(parts), b, c, change, mark, p, gate.text if gate else None, failed)


def _mark(metric: Metric, b: float | None, c: float | None, change: float | None, p: float | None) -> str:
    if b is None or c is None or change is None:
        return " "
    if metric.alarm and b == 0 and c > 0 and metric.direction is Direction.LOWER:
        return "!"  # a count that was zero (lost writes, timeouts, failures) no longer is
    if change == 1.0:
        return " "
    if abs(c - b) < metric.noise_floor:
        return "~"
    effect = abs(change - 1) if math.isfinite(change) else math.inf
    if effect < MIN_EFFECT or (p is not None and p >= ALPHA):
        return "~"
    if metric.direction is Direction.NEITHER:
        return "*"  # a size or a setting moved: news, not a verdict
    worse = change > 1 if metric.direction is Direction.LOWER else change < 1
    return "+" if worse else "-"
