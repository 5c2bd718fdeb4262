"""A service-level objective written as data ("p95<250ms,errors<1%,pool_wait_p95<50ms"), parsed into checks.

`bench capacity` parses ``--slo`` here and asks each load step whether it meets every objective.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bench.errors import UsageError
from bench.results import metrics

DEFAULT_SLO = "p95<250ms,errors<1%,pool_wait_p95<50ms"
EXAMPLE = "write e.g. 'p95<250ms,errors<1%,pool_wait_p95<50ms'"

# metric -> (path in a step's figures, kind), from the registry's capacity step figures (bench.results.metrics);
# kind "ms" takes ms or s, "ratio" takes a percentage.
METRICS: dict[str, tuple[str, str]] = {
    name: (metrics.step_path(metric), "ms" if metric.unit == "ms" else "ratio")
    for name, metric in metrics.SLO.items()
}
_OPS: dict[str, Callable[[float, float], bool]] = {"<": operator.lt, "<=": operator.le}
_OBJECTIVE = re.compile(r"^\s*([a-z0-9_]+)\s*(<=|<)\s*(\d+(?:\.\d+)?)\s*(ms|s|%)?\s*$")


@dataclass(frozen=True)
class Objective:
    metric: str
    op: str
    threshold: float  # milliseconds for latencies, a fraction (0.01) for errors
    text: str

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
        parts = [part for part in text.split(",") if part.strip()]
        if not parts:
            raise UsageError(f"--slo {text!r} names no objective; {EXAMPLE}")
        objectives = tuple(_objective(part) for part in parts)
        seen = [o.metric for o in objectives]
        for metric in seen:
            if seen.count(metric) > 1:
                raise UsageError(f"--slo names {metric} twice; give each metric once")
        return cls(objectives)

    @property
    def text(self) -> str:
        return ", ".join(o.text for o in self.objectives)

    def missed(self, figures: Mapping[str, Any]) -> list[str]:
        """The objectives a step's figures miss (empty: the step meets the SLO)."""
        return [o.text for o in self.objectives if not o.met(figures)]

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "objectives": [
            {"metric": o.metric, "path": o.path, "op": o.op, "threshold": o.threshold} for o in self.objectives]}


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
