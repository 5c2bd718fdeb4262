"""Regression gates written as data (``pool.wait_ms.p95:+20%``, ``integrity.lost_writes:>0``), parsed
into small typed checks that ``bench compare`` evaluates; the defaults come from the metric registry.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass

from bench.errors import UsageError
from bench.results import metrics

_GATE = re.compile(r"^\s*([A-Za-z0-9_.]+)\s*:\s*(?:([+-])\s*([0-9]+(?:\.[0-9]+)?)\s*%|(>=|>)\s*(-?[0-9]+(?:\.[0-9]+)?))\s*$")

@dataclass(frozen=True)
class Gate:
    """Fails when the current value moved past ``limit`` in the bad direction, or past an absolute bound.

    relative: ``sign`` is "+" (an increase is bad) or "-" (a decrease is bad), ``limit`` a fraction.
    absolute: ``op`` is ">" or ">=", and the gate fails when current satisfies it.
    """

    text: str
    metric: str
    sign: str | None = None
    limit: float = 0.0
    op: str | None = None
    bound: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Gate:
        match = _GATE.match(text)
        if match is None:
            raise UsageError(
                f"--fail-on {text!r} is malformed; write METRIC:+N% (e.g. pool.wait_ms.p95:+20%), "
                "METRIC:-N% (e.g. throughput_rps:-10%) or METRIC:>N (e.g. integrity.lost_writes:>0)"
            )
        metric, sign, pct, op, bound = match.groups()
        if sign:
            return cls(text=text.strip(), metric=metric, sign=sign, limit=float(pct) / 100)
        return cls(text=text.strip(), metric=metric, op=op, bound=float(bound))

    def fails(self, base: float | None, current: float | None, significant: bool = True) -> bool:
        if current is None:
            return False
        if self.op is not None:
            return current > self.bound if self.op == ">" else current >= self.bound
        if base is None or not significant:
            return False
        if base == 0:
            moved_up = current > 0
            return moved_up if self.sign == "+" else False
        change = current / base - 1
        if not math.isfinite(change):
            return self.sign == "+"
        return change > self.limit if self.sign == "+" else change < -self.limit


def default_gates() -> list[Gate]:
    """The registry's default gates (bench.results.metrics): each is defined beside the figure it guards."""
    return [Gate.parse(text) for text in metrics.DEFAULT_GATES]


def merge_gates(overrides: list[str]) -> list[Gate]:
    """Defaults, with any ``--fail-on`` for the same metric replacing the default one."""
    parsed = [Gate.parse(text) for text in overrides]
    for gate in parsed:
        _known(gate)
    chosen = {g.metric: g for g in default_gates()}
    chosen.update({g.metric: g for g in parsed})
    return list(chosen.values())


def _known(gate: Gate) -> None:
    """A gate on a figure bench compare does not list would never be evaluated: refuse it rather than pass."""
    if metrics.find(gate.metric) is not None:
        return
    names = [m.path for m in metrics.COMPARED if not m.is_pattern]
    close = difflib.get_close_matches(gate.metric, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise UsageError(f"--fail-on {gate.text!r}: no figure {gate.metric!r} in summary.json; {hint}"
                     "see docs/metrics.md")
