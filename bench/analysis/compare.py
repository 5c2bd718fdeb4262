"""Compares two runs metric by metric (asv-style marks), decides significance and evaluates the gates.

``bench compare BASE CURRENT`` calls ``load_side`` and ``compare``; ``bench.config.gates`` parses ``--fail-on``.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.analysis.holdsites import NewSite, new_sites
from bench.analysis.repeats import counted_runs_to_decide, ranked_runs_to_decide
from bench.analysis.stats import count_change_p, count_rise_p, fewest_deciding_runs, mann_whitney_p
from bench.config.gates import Gate, default_gates, family_member
from bench.errors import EXIT_GATE, EXIT_OK, UsageError
from bench.results.metric import Direction, Metric, Window
from bench.results.metrics import COMPARED, expand, ratio, value_at
from bench.results.summaryfile import load_summary

# Every figure under apps.<app>, from the metric registry (bench.results.metrics), in its order: direction,
# noise floor and whether 0 -> n is news ("!") come with each.
METRICS: tuple[Metric, ...] = COMPARED
MIN_EFFECT = 0.05  # changes smaller than 5% are noise whatever a test says
ALPHA = 0.05
MIN_REPEATS = fewest_deciding_runs(ALPHA)  # 4: the exact two-sided Mann-Whitney p cannot go below 0.1 with 3 vs 3


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
        values = [value_at(r, parts) for r in self._repeats(app)]
        return [v for v in values if v is not None]

    def runs(self, app: str) -> int:
        """How many runs the app's figures rest on: its repeats, or 1 for a single run."""
        return len(self._repeats(app)) or 1

    def total(self, app: str, parts: tuple[str, ...], absent_is_zero: bool = False) -> float | None:
        """A count summed over the repeats (the figure itself for a single run): what a count test weighs."""
        values = [figure_at(r, parts, absent_is_zero) for r in self._repeats(app)]
        if values and all(v is not None for v in values):
            return float(sum(v for v in values if v is not None))
        return figure_at(self.app(app), parts, absent_is_zero)

    def _repeats(self, app: str) -> list[dict[str, Any]]:
        repeats: list[dict[str, Any]] = self.summary.get("repeats", {}).get(app, [])
        return repeats


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
    # "?" not a number (NaN: the figure could not be computed), " " unchanged
    p_value: float | None
    gate: str | None = None
    gate_failed: bool = False
    # The verdict rests on too few samples to decide: the --repeat (on both sides) that could, were each side's
    # runs spread (for a count, its rate) as they are now (bench.analysis.repeats).
    needs_repeat: int | None = None
    # A relative gate on a speed figure (latency, throughput, hold times) is not applied without the rank test.
    gate_skipped: bool = False


@dataclass
class Comparison:
    scenario: str
    pairs: list[tuple[str, str]]
    rows: list[Row] = field(default_factory=list)
    repeats: tuple[int, int] = (1, 1)  # runs per side (1: a single run); the fewest over the app pairs

    @property
    def failed_gates(self) -> list[Row]:
        return [r for r in self.rows if r.gate_failed]

    @property
    def worsened(self) -> list[Row]:
        return [r for r in self.rows if r.mark in "+!?"]

    @property
    def exit_code(self) -> int:
        """What bench compare exits with: 1 when a gate failed, else 0."""
        return EXIT_GATE if self.failed_gates else EXIT_OK

    notes: list[str] = field(default_factory=list)
    # Lines of the app holding connections past the threshold in the current run and not in the base.
    new_sites: list[NewSite] = field(default_factory=list)

    @property
    def skipped_gates(self) -> list[Row]:
        """Speed gates not applied: too few runs for the rank test."""
        return [r for r in self.rows if r.gate_skipped]

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
    result = Comparison(
        scenario=str(base.summary.get("scenario")), pairs=pairs_for(base, current, base_app, current_app)
    )
    for b_app, c_app in result.pairs:
        for metric in METRICS:
            for name, parts in expand(metric, base.app(b_app), current.app(c_app)):
                gate = by_metric.get(name) or by_metric.get(metric.path)  # a route's own, else its family's
                row = _row(base, current, b_app, c_app, metric, parts, gate)
                if row is not None:
                    result.rows.append(row)
    result.repeats = (min(base.runs(b) for b, _ in result.pairs), min(current.runs(c) for _, c in result.pairs))
    _check_route_gates(gates, result, base, current)
    result.notes = config_differences(base.summary.get("config", {}), current.summary.get("config", {}))
    result.new_sites = [
        site for b_app, c_app in result.pairs for site in new_sites(c_app, base.app(b_app), current.app(c_app))
    ]
    return result


def _check_route_gates(gates: list[Gate], result: Comparison, base: Side, current: Side) -> None:
    """A gate on a route neither run has would silently pass: a misspelled route is a usage error (exit 2)."""
    listed = {row.metric for row in result.rows}
    for gate in gates:
        member = family_member(gate.metric)
        if gate.metric in listed or member is None or not member[0].path.startswith("endpoints."):
            continue
        routes = sorted(
            {
                route
                for b, c in result.pairs
                for side, app in ((base, b), (current, c))
                for route in (side.app(app).get("endpoints") or {})
            }
        )
        close = difflib.get_close_matches(member[1], routes, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UsageError(
            f"--fail-on {gate.text!r}: neither run has a route {member[1]!r}; {hint}"
            f"routes: {', '.join(repr(r) for r in routes) or 'none'}"
        )


_COMPARABLE = (
    "users",
    "spawn_rate",
    "duration_s",
    "pool_size",
    "max_overflow",
    "pool_timeout_s",
    "upstream_latency_ms",
    "idle_threshold_ms",
    "cooldown_s",
)


def config_differences(base: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Load settings that differ: totals (connection-seconds, counts) then scale with them."""
    return [
        f"config differs: {key} {_setting(base.get(key))} -> {_setting(current.get(key))}"
        for key in _COMPARABLE
        if base.get(key) != current.get(key)
    ]


def _setting(value: Any) -> str:
    """A setting as it was given: ``8``, not the ``8.0`` the config keeps."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _row(
    base: Side, current: Side, b_app: str, c_app: str, metric: Metric, parts: tuple[str, ...], gate: Gate | None
) -> Row | None:
    zero = _absent_is_zero(metric)
    b = figure_at(base.app(b_app), parts, zero)
    c = figure_at(current.app(c_app), parts, zero)
    if b is None and c is None:
        return None
    change = ratio(b, c)
    counted = metric.alarm and metric.window is not Window.COOLDOWN
    b_samples, c_samples = base.samples(b_app, parts), current.samples(c_app, parts)
    if counted:
        p = _count_p(base, current, b_app, c_app, count_parts(metric, parts))
    elif len(b_samples) >= MIN_REPEATS and len(c_samples) >= MIN_REPEATS:
        p = mann_whitney_p(b_samples, c_samples)
    else:
        p = None
    mark = _mark(metric, b, c, change, p)
    label = b_app if b_app == c_app else f"{b_app}->{c_app}"
    # A speed figure measures the runner as much as the code: its relative gate waits for the rank test.
    skipped = gate is not None and gate.relative and metric.speed and p is None and mark != "?"
    failed = gate is not None and not skipped and gate.fails(b, c, significant=mark in "+!*?")
    needs = None
    if _mark(metric, b, c, change, None) in "+-!" and (p is None or p >= ALPHA):  # a verdict, were it tested
        if counted:
            needs = _count_needs_repeat(base, current, b_app, c_app, count_parts(metric, parts))
        else:
            needs = (
                ranked_runs_to_decide(b_samples, c_samples, ALPHA)
                if min(len(b_samples), len(c_samples)) > 1
                else MIN_REPEATS
            )
    return Row(label, ".".join(parts), b, c, change, mark, p, _gate_text(gate, parts), failed, needs, skipped)


def _gate_text(gate: Gate | None, parts: tuple[str, ...]) -> str | None:
    """The gate as the row's figure: a family's gate names the member (``failures_per_1k_requests.HTTP 500:+450%``)."""
    if gate is None:
        return None
    return f"{'.'.join(parts)}:{gate.text.rpartition(':')[2]}" if "<" in gate.metric else gate.text


# Rates and the counts they are made of, per cause: a cause one side never had is 0 there, not missing.
_ZERO_FAMILIES = frozenset(path for m in COMPARED if m.rate_of and m.is_pattern for path in (m.path, m.rate_of))


def _absent_is_zero(metric: Metric) -> bool:
    return metric.path in _ZERO_FAMILIES


def figure_at(node: Any, parts: tuple[str, ...], absent_is_zero: bool = False) -> float | None:
    """The figure at ``parts``; 0 for a family member absent where its family is present, if it counts events."""
    value = value_at(node, parts)
    if value is None and absent_is_zero:
        for part in parts[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        return 0.0 if isinstance(node, dict) else None
    return value


def count_parts(metric: Metric, parts: tuple[str, ...]) -> tuple[str, ...]:
    """Where the count a figure's test weighs is: the figure itself, or for a rate the count it is made of, its
    family key carried over (``failures_per_1k_requests.HTTP 500`` -> ``failures_by_cause.HTTP 500``)."""
    if metric.rate_of is None:
        return parts
    keys = {wild: key for wild, key in zip(metric.parts, parts, strict=True) if wild.startswith("<")}
    return tuple(keys.get(part, part) for part in metric.rate_of.split("."))


def _count_needs_repeat(base: Side, current: Side, b_app: str, c_app: str, parts: tuple[str, ...]) -> int | None:
    """The fewest runs per side at which the count test would call this difference more than chance, were each
    side's rate per run what it is now: None when it already does, or not within MOST_COUNTED runs."""
    zero = _zero_count(parts)
    b_total, c_total = base.total(b_app, parts, zero), current.total(c_app, parts, zero)
    if b_total is None or c_total is None:
        return None
    requests = (base.total(b_app, ("requests",)) or 0.0, current.total(c_app, ("requests",)) or 0.0)
    return counted_runs_to_decide((b_total, c_total), requests, (base.runs(b_app), current.runs(c_app)), ALPHA)


def _count_p(base: Side, current: Side, b_app: str, c_app: str, parts: tuple[str, ...]) -> float | None:
    """The exact test of counts for a figure that can be newly failing (failures, timeouts, lost writes...), or
    for a rate, of the count it is made of.

    Events counted over a run are Poisson counts: rare failures (0.3 a run) come and go between identical runs,
    and a bare "0 -> 1" rule false-alarms on a fifth of A/A pairs. Totals over the repeats, weighed by the
    requests each side made: a count that went from 0 to k is tested one-sided (did it rise?), any other move
    two-sided. None when a side has no count. A figure read at one instant (idle in tx after load: leaked
    connections) counts no events and keeps the plain rule: any rise from 0 is news.
    """
    zero = _zero_count(parts)
    b, c = base.total(b_app, parts, zero), current.total(c_app, parts, zero)
    if b is None or c is None or not (math.isfinite(b) and math.isfinite(c)) or min(b, c) < 0:
        return None
    b_requests = base.total(b_app, ("requests",)) or 0.0
    c_requests = current.total(c_app, ("requests",)) or 0.0
    test = count_rise_p if b == 0 else count_change_p
    return test(b, c, b_requests, c_requests)


def _zero_count(parts: tuple[str, ...]) -> bool:
    """Whether a count at ``parts`` is a member of a family a rate is made of (absent is 0)."""
    return any(m.path in _ZERO_FAMILIES and m.matches(parts) for m in COMPARED)


def _mark(metric: Metric, b: float | None, c: float | None, change: float | None, p: float | None) -> str:
    if b is None or c is None or change is None:
        return " "
    if not (math.isfinite(b) and math.isfinite(c)):
        return "?"  # NaN never reads as better: the figure could not be computed
    if change == 1.0:
        return " "
    if p is not None and p >= ALPHA:
        return "~"
    if metric.alarm and b == 0 and c > 0 and metric.direction is Direction.LOWER:
        return "!"  # a count that was zero (lost writes, timeouts, failures) rose beyond chance
    if abs(c - b) < metric.noise_floor_at(min(abs(b), abs(c))):
        return "~"
    effect = abs(change - 1) if math.isfinite(change) else math.inf
    if effect < MIN_EFFECT:
        return "~"
    if metric.direction is Direction.NEITHER:
        return "*"  # a size or a setting moved: news, not a verdict
    worse = change > 1 if metric.direction is Direction.LOWER else change < 1
    return "+" if worse else "-"
