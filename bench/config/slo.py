"""A service-level objective written as data ("p95<250ms,errors<1%,pool_wait_p95<50ms"), parsed into checks.

`bench capacity` parses ``--slo`` here and asks each load step whether it meets every objective; `bench run` parses
its ``--slo`` here too and judges the run's figures (``Slo.judge_run``), whole-run and per route
("p95<250ms; GET /items/{id}: p95<100ms,errors<0.1%": a route's objectives run to the next ``;``).
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from bench.errors import UsageError
from bench.results import metrics

DEFAULT_SLO = "p95<250ms,errors<1%,pool_wait_p95<50ms"
EXAMPLE = "write e.g. 'p95<250ms,errors<1%,pool_wait_p95<50ms'"

# metric -> (path in a step's figures, kind), from the registry's capacity step figures (bench.results.metrics);
# kind "ms" takes ms or s, "ratio" takes a percentage.
METRICS: dict[str, tuple[str, str]] = {
    name: (metrics.step_path(metric), "ms" if metric.unit == "ms" else "ratio") for name, metric in metrics.SLO.items()
}
_OPS: dict[str, Callable[[float, float], bool]] = {"<": operator.lt, "<=": operator.le}
# metric -> where bench run's figures hold it, inside one app's summary (and inside one route's, under endpoints).
# errors is failures / requests, both counted in the summary; p90 and loop lag are capacity step figures only.
RUN_PATHS: dict[str, str] = {
    **{p: f"latency_ms.{p}" for p in ("p50", "p95", "p99", "max")},
    **{f"pool_wait_{p}": f"pool.wait_ms.{p}" for p in ("p50", "p95", "p99", "mean")},
    "errors": "failures",
}
ROUTE_PATHS: dict[str, str] = {
    **{p: f"latency_ms.{p}" for p in ("p50", "p95", "p99", "max")},
    **{f"pool_wait_{p}": f"pool_wait_ms.{p}" for p in ("p50", "p95", "p99", "mean")},
    "errors": "failures",
}
_ROUTE = re.compile(r"^\s*([A-Z]+\s+/\S*)\s*:\s*(.*)$", re.DOTALL)
_OBJECTIVE = re.compile(r"^\s*([a-z0-9_]+)\s*(<=|<)\s*(\d+(?:\.\d+)?)\s*(ms|s|%)?\s*$")


@dataclass(frozen=True)
class Objective:
    metric: str
    op: str
    threshold: float  # milliseconds for latencies, a fraction (0.01) for errors
    text: str
    route: str | None = None  # bench run only: one route's figures ("GET /items/{id}"), not the whole run's

    @property
    def path(self) -> str:
        return METRICS[self.metric][0]

    def value(self, figures: Mapping[str, Any]) -> float | None:
        node: Any = figures
        for part in self.path.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        return float(node) if isinstance(node, (int, float)) and math.isfinite(node) else None

    def met(self, figures: Mapping[str, Any]) -> bool:
        """A step with no figure for the metric does not meet it: no data is no evidence."""
        value = self.value(figures)
        return value is not None and _OPS[self.op](value, self.threshold)


@dataclass(frozen=True)
class Slo:
    objectives: tuple[Objective, ...]

    @classmethod
    def parse(cls, text: str) -> Slo:
        objectives = tuple(_objectives(text))
        if not objectives:
            raise UsageError(f"--slo {text!r} names no objective; {EXAMPLE}")
        seen = [(o.route, o.metric) for o in objectives]
        for route, metric in seen:
            if seen.count((route, metric)) > 1:
                raise UsageError(f"--slo names {f'{route}: ' if route else ''}{metric} twice; give each metric once")
        return cls(objectives)

    def for_sweep(self) -> Slo:
        """The SLO as bench capacity holds each step to it: the step's figures are the whole load's."""
        if routed := [o.text for o in self.objectives if o.route]:
            raise UsageError(
                f"--slo {routed[0]!r}: bench capacity judges whole steps; per-route objectives are for bench run"
            )
        return self

    def for_run(self) -> Slo:
        """The SLO as bench run judges it: every metric must be one the run's summary holds."""
        for o in self.objectives:
            if o.metric not in RUN_PATHS:
                raise UsageError(
                    f"--slo {o.text!r}: bench run has no {o.metric} figure; it judges "
                    f"{', '.join(RUN_PATHS)} (the rest are bench capacity's step figures)"
                )
        return self

    @property
    def text(self) -> str:
        return ", ".join(o.text for o in self.objectives)

    def missed(self, figures: Mapping[str, Any]) -> list[str]:
        """The objectives a step's figures miss (empty: the step meets the SLO)."""
        return [o.text for o in self.objectives if not o.met(figures)]

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "objectives": [
                {"metric": o.metric, "path": o.path, "op": o.op, "threshold": o.threshold} for o in self.objectives
            ],
        }

    def judge_run(self, apps: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
        """One check per app and objective, shaped as summary.json's checks (name, app, metric, op, threshold,
        value, passed) plus the objective as written (``slo``) and its unit. A figure the run lacks (a route that
        got no requests, a service without a pool endpoint) fails its objective: no data is no evidence."""
        checks = []
        for app, figures in apps.items():
            for o in self.objectives:
                metric, value = run_figure(o, figures)
                passed = value is not None and _OPS[o.op](value, o.threshold)
                checks.append(
                    {
                        "name": f"{app}: {o.text}",
                        "app": app,
                        "metric": metric,
                        "op": o.op,
                        "threshold": o.threshold,
                        "value": value,
                        "passed": passed,
                        "slo": o.text,
                        "unit": METRICS[o.metric][1],
                    }
                )
        return checks


def run_figure(objective: Objective, figures: Mapping[str, Any]) -> tuple[str, float | None]:
    """(the figure's path in one app's summary, its value) for a run objective; errors is failures / requests."""
    node: Any = figures
    prefix = ""
    if objective.route is not None:
        node = (figures.get("endpoints") or {}).get(objective.route)
        prefix = f"endpoints.{objective.route}."
    path = (ROUTE_PATHS if objective.route else RUN_PATHS)[objective.metric]
    if objective.metric == "errors":
        failures, requests = _number(node, "failures"), _number(node, "requests")
        rate = failures / requests if failures is not None and requests else None
        return f"{prefix}failures / {prefix}requests", rate
    return prefix + path, _number(node, path)


def _number(node: Any, path: str) -> float | None:
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    ok = isinstance(node, (int, float)) and not isinstance(node, bool) and math.isfinite(node)
    return float(node) if ok else None


def _objectives(text: str) -> list[Objective]:
    """Groups split on ';'; a group may open with a route ("GET /items/{id}: p95<100ms,errors<1%")."""
    out = []
    for group in text.split(";"):
        route = None
        for part in group.split(","):
            if not part.strip():
                continue
            if match := _ROUTE.match(part):
                route, part = " ".join(match.group(1).split()), match.group(2)
            objective = _objective(part)
            out.append(replace(objective, route=route, text=f"{route}: {objective.text}") if route else objective)
    return out


def _objective(part: str) -> Objective:
    match = _OBJECTIVE.match(part)
    if match is None:
        raise UsageError(f"--slo: cannot read {part.strip()!r}; {EXAMPLE}")
    metric, op, number, unit = match.groups()
    if metric not in METRICS:
        close = difflib.get_close_matches(metric, list(METRICS), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UsageError(f"--slo: unknown metric {metric!r}; {hint}known: {', '.join(METRICS)}")
    kind = METRICS[metric][1]
    value = float(number)
    if kind == "ratio":
        if unit != "%":
            raise UsageError(f"--slo: {part.strip()!r}: give errors as a percentage, e.g. errors<1%")
        threshold, shown = value / 100, f"{value:g}%"
    else:
        if unit not in ("ms", "s"):
            raise UsageError(f"--slo: {part.strip()!r}: give {metric} with a unit, e.g. {metric}<250ms")
        threshold, shown = (value * 1000 if unit == "s" else value), f"{value:g}{unit}"
    if threshold <= 0:
        raise UsageError(f"--slo: {part.strip()!r}: the threshold must be above 0")
    return Objective(metric=metric, op=op, threshold=threshold, text=f"{metric}{op}{shown}")
