"""The printed table of ``harness_perf``: sections of aligned figure lines, medians over repetitions.

Every measuring module of the benchmark returns a ``Section``; ``harness_perf`` prints them in order.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

LABEL_WIDTH = 46
VALUE_WIDTH = 11
UNIT_WIDTH = 7


@dataclass(frozen=True, kw_only=True)
class Line:
    """One figure: a label, a number with its unit, and a note (the spread, a target, why)."""

    label: str
    value: float | None
    unit: str = ""
    fmt: str = "{:,.0f}"
    note: str = ""

    def render(self) -> str:
        shown = "n/a" if self.value is None or not math.isfinite(self.value) else self.fmt.format(self.value)
        text = f"  {self.label:<{LABEL_WIDTH}} {shown:>{VALUE_WIDTH}} {self.unit:<{UNIT_WIDTH}}"
        return (text + " " + self.note if self.note else text).rstrip()


@dataclass
class Section:
    title: str
    lines: list[Line] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, label: str, value: float | None, unit: str = "", fmt: str = "{:,.0f}", note: str = "") -> None:
        self.lines.append(Line(label=label, value=value, unit=unit, fmt=fmt, note=note))

    def ratio(self, label: str, numerator: float | None, denominator: float | None, note: str = "") -> None:
        self.add(label, ratio(numerator, denominator), "x", "{:.2f}", note)

    def say(self, text: str) -> None:
        self.notes.append(text)

    def render(self) -> str:
        out = [f"== {self.title} =="]
        out += [line.render() for line in self.lines]
        out += [f"  · {note}" for note in self.notes]
        return "\n".join(out)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(present) if present else None


def medians(runs: Iterable[Mapping[str, float | None]]) -> dict[str, float | None]:
    """Per key, the median over repetitions (keys missing from a repetition are skipped there)."""
    runs = list(runs)
    keys = dict.fromkeys(k for run in runs for k in run)
    return {k: median(run.get(k) for run in runs) for k in keys}


def spread(values: Iterable[float | None], fmt: str = "{:,.0f}") -> str:
    """``min–max of n`` for a note: the reader sees how far the repetitions were apart."""
    present = [v for v in values if v is not None and math.isfinite(v)]
    if len(present) < 2:
        return ""
    return f"range {fmt.format(min(present))}–{fmt.format(max(present))} of {len(present)}"


def target_note(met: bool | None, target: str) -> str:
    if met is None:
        return f"target {target}: not measured"
    return f"target {target}: {'met' if met else 'MISSED'}"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min) on {os.cpu_count()} cores"


def emit(text: str) -> None:
    # Sections print as they finish: a long benchmark shows progress and a crash keeps what ran.
    print(text, flush=True)
    sys.stdout.flush()
