"""What one app sustains at one pool size: SLO-meeting rate, knee, plateau vs Little's law, model, bottleneck.

bench.run.capacity assesses every (app, pool size) sweep here and joins them into the recommendation.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.analysis import queueing
from bench.analysis.bottleneck import LOOP, NOT_REACHED, POOL, Bottleneck, name_bottleneck
from bench.analysis.knee import Knee, Point, find_knee, plateau, saturated_steps
from bench.analysis.steps import StepFigures
from bench.config.slo import Slo
from bench.config.sweep import SweepPlan
from bench.results.metrics import ratio

_QUANTILES = {"pool_wait_p50": 0.5, "pool_wait_p95": 0.95, "pool_wait_p99": 0.99, "pool_wait_mean": None}
# A step that lost arrivals (dropped: no free user at their start; unfinished: no answer by the end) did not
# sustain its rate, whatever its latency says: latency covers only the requests that were sent and answered.
# With an errors objective they count in its error rate; without one, this share is the budget.
LOST_BUDGET = 0.01
LOST_OBJECTIVE = f"lost arrivals<{LOST_BUDGET:.0%}"


@dataclass(frozen=True, kw_only=True)
class Assessment:
    app: str
    pool_size: int
    capacity: int  # pool_size + max_overflow: connections at most
    unit: str
    steps: tuple[StepFigures, ...]
    missed: tuple[tuple[str, ...], ...]  # per step, the SLO objectives it misses
    knee: Knee | None
    saturated: tuple[int, ...]
    plateau_rps: float | None
    light_hold_ms: float | None  # connection time per request, below the knee
    hold_basis: str
    ceiling_rps: float | None  # Little's law: capacity / light_hold
    max_slo_index: int | None  # the highest step that meets the SLO, with every step below it
    model_wait_p95_ms: tuple[float | None, ...]  # M/D/c, per step (open model only)
    model_max_rate: float | None  # M/D/c: highest rate meeting the SLO's pool-wait objective
    bottleneck: Bottleneck

    @property
    def max_slo(self) -> StepFigures | None:
        return self.steps[self.max_slo_index] if self.max_slo_index is not None else None

    @property
    def sustained(self) -> float | None:
        """Requests/s sustained within the SLO: the offered rate (open model) or the throughput (closed)."""
        step = self.max_slo
        if step is None:
            return None
        return step.level if self.unit == "rps" else step.throughput_rps

    def to_json(self) -> dict[str, Any]:
        step = self.max_slo
        return {
            "app": self.app, "pool_size": self.pool_size, "capacity": self.capacity,
            "max_slo": None if step is None else {
                "index": step.index, "level": step.level, "unit": self.unit, "sustained_rps": self.sustained,
                "throughput_rps": step.throughput_rps, "latency_ms": step.latency_ms},
            "first_miss": self._first_miss(),
            "knee": self.knee.to_json() if self.knee else None,
            "saturation": {"steps": list(self.saturated), "plateau_rps": _r(self.plateau_rps)},
            "littles_law": {
                "ceiling_rps": _r(self.ceiling_rps), "hold_ms_per_request": _r(self.light_hold_ms),
                "basis": self.hold_basis,
                "plateau_over_ceiling": _r(self.plateau_rps / self.ceiling_rps, 4)
                if self.plateau_rps is not None and self.ceiling_rps else None},
            "model": {"name": "M/D/c (Poisson arrivals, fixed hold time; c = capacity)",
                      "max_rate_rps": _r(self.model_max_rate),
                      "pool_wait_p95_ms": [_r(v) for v in self.model_wait_p95_ms]},
            "bottleneck": self.bottleneck.to_json(),
            "steps": [s.to_json() | {"slo_missed": list(m)} for s, m in zip(self.steps, self.missed, strict=True)],
        }

    def _first_miss(self) -> dict[str, Any] | None:
        index = 0 if self.max_slo_index is None else self.max_slo_index + 1
        if index >= len(self.steps):
            return None
        return {"index": index, "level": self.steps[index].level, "missed": list(self.missed[index])}


def assess(*, app: str, pool_size: int, capacity: int, steps: Sequence[StepFigures], plan: SweepPlan,
           slo: Slo) -> Assessment:
    points = [Point(level=s.level, throughput_rps=s.throughput_rps, latency_p95_ms=s.latency_ms.get("p95"),
                    pool_wait_p95_ms=s.pool_wait_ms.get("p95"), answered_rps=_answered_rps(s),
                    offered_rps=s.offered_rps if plan.mode == "rate" else None) for s in steps]
    knee = find_knee(points)
    saturated = saturated_steps(points, knee)
    light_hold_ms, basis = _light_hold(steps, knee)
    ceiling = queueing.littles_ceiling(capacity, light_hold_ms / 1000) if light_hold_ms else None
    missed = tuple(tuple(missed_objectives(slo, s)) for s in steps)
    judged = saturated or (list(range(knee.index, len(steps))) if knee else [])
    model = _model(plan, capacity, light_hold_ms, steps)
    return Assessment(
        app=app, pool_size=pool_size, capacity=capacity, unit=plan.unit, steps=tuple(steps), missed=missed,
        knee=knee, saturated=tuple(saturated), plateau_rps=plateau(points, saturated), light_hold_ms=light_hold_ms,
        hold_basis=basis, ceiling_rps=ceiling, max_slo_index=_max_slo_index(missed),
        model_wait_p95_ms=model, model_max_rate=_model_max_rate(plan, slo, capacity, light_hold_ms),
        bottleneck=name_bottleneck(steps, judged, capacity, light_hold_ms),
    )


def _answered_rps(step: StepFigures) -> float | None:
    """Responses per second in the step's window, failed ones included: how much of the load it kept up with."""
    span = step.end - step.start
    return step.served / span if span > 0 else None


def missed_objectives(slo: Slo, step: StepFigures) -> list[str]:
    """The objectives a step misses; lost arrivals past LOST_BUDGET miss one even when the SLO names no errors."""
    missed = slo.missed(step.to_json())
    if any(o.metric == "errors" for o in slo.objectives):
        return missed  # its error rate counts dropped and unfinished arrivals as failures
    lost = step.dropped + step.unfinished
    if step.requests and lost / step.requests >= LOST_BUDGET:
        missed.append(LOST_OBJECTIVE)
    return missed


def _light_hold(steps: Sequence[StepFigures], knee: Knee | None) -> tuple[float | None, str]:
    """Connection-seconds per request where the pool is not contended: the hold time Little's law needs."""
    if knee is None:
        chosen, basis = list(steps), "every step (no knee)"
    elif knee.index == 0:
        chosen, basis = list(steps), "every step (none ran below the knee)"
    else:
        chosen, basis = list(steps[:knee.index]), "the steps below the knee"
    served = sum(s.served for s in chosen)
    hold = sum(s.hold_s for s in chosen)
    return (hold * 1000 / served if served and hold else None), basis


def _max_slo_index(missed: Sequence[Sequence[str]]) -> int | None:
    best = None
    for i, misses in enumerate(missed):
        if misses:
            break
        best = i
    return best


def _model(plan: SweepPlan, capacity: int, hold_ms: float | None,
           steps: Sequence[StepFigures]) -> tuple[float | None, ...]:
    if plan.mode != "rate" or not hold_ms:
        return tuple(None for _ in steps)
    waits = [queueing.mdc_wait_s(capacity, s.level, hold_ms / 1000, 0.95) for s in steps]
    return tuple(None if w is None else w * 1000 for w in waits)


def _model_max_rate(plan: SweepPlan, slo: Slo, capacity: int, hold_ms: float | None) -> float | None:
    objective = next((o for o in slo.objectives if o.metric in _QUANTILES), None)
    if plan.mode != "rate" or not hold_ms or objective is None:
        return None
    return queueing.max_rate(capacity, hold_ms / 1000, objective.threshold / 1000, _QUANTILES[objective.metric])


def recommend(items: Sequence[Assessment], slo: Slo, scenario: str) -> str:
    """One paragraph: what each pool sustains, what caps it, what the anti-pattern costs."""
    sentences = []
    for app in dict.fromkeys(a.app for a in items):
        runs = [a for a in items if a.app == app]
        sustains = "; ".join(f"pool {a.pool_size} sustains {_amount(a)}" for a in runs)
        sentences.append(f"{app}: {sustains} at {slo.text}.")
        sentences.append(_limit_sentence(app, scenario, runs))
    sentences += _cost_sentences(items)
    return " ".join(s for s in sentences if s)


def _amount(a: Assessment) -> str:
    """A lower bound: the limit lies between the highest step within the SLO and the next one, which misses it, or
    above the sweep when that step is its top."""
    step, index = a.max_slo, a.max_slo_index
    if step is None or index is None:
        return f"no step of the sweep (the lowest, {a.steps[0].level:g} {a.unit}, misses it)" if a.steps else "nothing"
    amount = f"{step.level:g} rps" if a.unit == "rps" else f"{step.throughput_rps:.0f} rps ({step.level:g} users)"
    if index + 1 >= len(a.steps):
        return f"at least {amount}, the top of the sweep (its limit lies above)"
    return f"at least {amount} ({a.steps[index + 1].level:g} {a.unit}, the next step, misses it)"


def _limit_sentence(app: str, scenario: str, runs: Sequence[Assessment]) -> str:
    names = {a.bottleneck.name for a in runs}
    holds = [a.light_hold_ms for a in runs if a.light_hold_ms]
    if names == {POOL} and holds:
        hold_s = sum(holds) / len(holds) / 1000
        measured = ", ".join(f"pool {a.pool_size}: plateau {_g(a.plateau_rps)} vs ceiling {_g(a.ceiling_rps)} rps"
                             for a in runs)
        return (f"The {app} {scenario} path is pool-bound: each request holds a connection {hold_s * 1000:.0f} ms, "
                f"so it caps any pool at pool/{hold_s:.3g} s ({measured}); only a bigger pool or a shorter hold helps.")
    if names == {LOOP}:
        pools = ", ".join(f"{_level_off(a)} at pool {a.pool_size} (pool ceiling {_g(a.ceiling_rps)} rps)" for a in runs)
        return (f"The {app} app is limited by its event loop / CPU, not by its pool: {pools}; "
                "more processes or cores raise it, more connections do not.")
    if names == {NOT_REACHED}:
        return (f"No step overloaded the {app} app (highest {runs[0].steps[-1].level:g} {runs[0].unit}): "
                "its limit lies above this sweep; extend --rates / --users.") if runs[0].steps else ""
    parts = [f"pool {a.pool_size}: {a.bottleneck.name}" for a in runs]
    return f"The {app} app's limit: {'; '.join(parts)}."


def _level_off(a: Assessment) -> str:
    if a.plateau_rps is not None:
        return f"it levels off at {a.plateau_rps:.0f} rps"
    knee = f"{a.knee.level:g} {a.unit}" if a.knee else "the top of the sweep"
    return f"it turns up at {knee}"


def _cost_sentences(items: Sequence[Assessment]) -> list[str]:
    out = []
    by_key = {(a.app, a.pool_size): a for a in items}
    for (app, size), bad in by_key.items():
        good = by_key.get(("good", size))
        if app != "bad" or good is None or not good.sustained:
            continue
        sustained = bad.sustained or 0.0
        out.append(f"At pool {size} the anti-pattern costs {1 - sustained / good.sustained:.0%} of capacity "
                   f"({sustained:g} vs {good.sustained:g} rps within the SLO).")
    return out


def pool_scaling(items: Sequence[Assessment]) -> list[dict[str, Any]]:
    """Plateau and SLO rate of each pool size against the next smaller one, per app."""
    out = []
    for app in dict.fromkeys(a.app for a in items):
        runs = sorted((a for a in items if a.app == app), key=lambda a: a.pool_size)
        for small, big in itertools.pairwise(runs):
            out.append({"app": app, "from_pool": small.pool_size, "to_pool": big.pool_size,
                        "pool_ratio": round(big.capacity / small.capacity, 3),
                        "plateau_ratio": _scaled(small.plateau_rps, big.plateau_rps),
                        "sustained_ratio": _scaled(small.sustained, big.sustained)})
    return out


def _scaled(small: float | None, big: float | None) -> float | None:
    """big / small, rounded; None when the smaller pool has no figure (or 0) to scale from."""
    return _r(ratio(small, big)) if small else None


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _g(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
