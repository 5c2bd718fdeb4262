"""Names what limits an app in a sweep: the pool, the event loop / CPU, the database, or the load generator.

bench.analysis.assessment calls ``name_bottleneck`` with the steps under overload; the evidence line carries the figures.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.analysis.steps import StepFigures

POOL = "pool"
LOOP = "event loop / CPU"
DATABASE = "database"
GENERATOR = "load generator"
NOT_REACHED = "not reached"
UNCLEAR = "unclear"

# A pool is full when this share of it is checked out on average; an app with CPU to spare below SPARE_CPU.
# Both CPU thresholds are one event loop's share of its core: under --app-workers the app's CPU is summed over
# its loops (uvicorn workers), and a loop is busy at one core, not at N.
POOL_FULL = 0.9
SPARE_CPU = 0.6
# The loop is the limit when it uses most of its one core, or its callbacks run this late, or the machine is
# out of CPU while the app (all its loops) is a big user of it (it then waits for a core, not for the pool).
BUSY_CPU = 0.85
LOOP_LAG_MS = 20.0
HOST_FULL = 0.9
BIG_USER = 0.5
# Connections held this much longer per request than at light load, on a healthy loop: slow statements.
HOLD_GROWTH = 1.5
GENERATOR_CPU = 0.9
GENERATOR_LATE_MS = 50.0


@dataclass(frozen=True)
class Bottleneck:
    name: str
    evidence: str
    steps: tuple[int, ...]  # the steps judged

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "evidence": self.evidence, "steps": list(self.steps)}


@dataclass(frozen=True)
class _Signals:
    pool_full: float | None
    wait_p95_ms: float | None
    app_cpu: float | None  # one loop's CPU, fraction of its core: the app's CPU over its loops
    app_cores: float | None  # the app's CPU summed over its loops, in cores
    loops: int
    lag_p95_ms: float | None
    host_cpu: float | None
    other_cores: float | None  # busy cores outside the app and Locust: PostgreSQL and anything else running
    hold_growth: float | None
    db_active: float | None
    generator_cpu: float | None
    late_p95_ms: float | None

    def evidence(self, capacity: int) -> str:
        parts = [
            _fmt("pool {:.0%} checked out", self.pool_full) + (f" of {capacity}" if self.pool_full is not None else ""),
            _fmt("pool wait p95 {:.0f} ms", self.wait_p95_ms), self._cpu(),
            _fmt("loop lag p95 {:.1f} ms", self.lag_p95_ms), _fmt("host CPU {:.0%}", self.host_cpu)
            + _fmt(" ({:.1f} cores outside the app and Locust)", self.other_cores),
            _fmt("hold per request {:.2f}x light load", self.hold_growth),
            _fmt("{:.1f} backends active", self.db_active), _fmt("Locust CPU {:.0%}", self.generator_cpu),
            _fmt("start lateness p95 {:.0f} ms", self.late_p95_ms),
        ]
        return ", ".join(p for p in parts if p)

    def _cpu(self) -> str:
        if self.app_cpu is None or self.loops == 1:
            return _fmt("app CPU {:.0%} of a core", self.app_cpu)
        return f"app CPU {self.app_cpu:.0%} of a core per loop ({self.loops} loops, {self.app_cores or 0:.2f} cores)"


def name_bottleneck(steps: Sequence[StepFigures], judged: Sequence[int], capacity: int,
                    light_hold_ms: float | None) -> Bottleneck:
    if not judged:
        top = steps[-1].level if steps else 0
        return Bottleneck(NOT_REACHED, f"the sweep's highest step ({top:g}) did not overload the app; "
                                       "extend --rates / --users", ())
    chosen = [steps[i] for i in judged]
    signals = _signals(chosen, capacity, light_hold_ms)
    return Bottleneck(_rule(signals), signals.evidence(capacity), tuple(judged))


def _rule(s: _Signals) -> str:
    pool_full = (s.pool_full or 0) >= POOL_FULL
    if pool_full and (s.app_cpu is None or s.app_cpu < SPARE_CPU):
        return POOL  # connections all taken while the app has CPU to spare
    if (s.app_cpu or 0) >= BUSY_CPU or (s.lag_p95_ms or 0) >= LOOP_LAG_MS or \
            ((s.host_cpu or 0) >= HOST_FULL and (s.app_cores or 0) >= BIG_USER):
        return LOOP
    if pool_full:
        return POOL
    if (s.hold_growth or 0) >= HOLD_GROWTH:
        return DATABASE
    if (s.generator_cpu or 0) >= GENERATOR_CPU or (s.late_p95_ms or 0) >= GENERATOR_LATE_MS:
        return GENERATOR
    return UNCLEAR


def _signals(chosen: Sequence[StepFigures], capacity: int, light_hold_ms: float | None) -> _Signals:
    holds = [s.hold_ms_per_request for s in chosen if s.hold_ms_per_request is not None]
    return _Signals(
        pool_full=_median([s.pool_busy / capacity for s in chosen if s.pool_busy is not None]),
        wait_p95_ms=_median([s.pool_wait_ms.get("p95") for s in chosen]),
        app_cpu=_median([s.app_cpu / max(1, s.app_loops) if s.app_cpu is not None else None for s in chosen]),
        app_cores=_median([s.app_cpu for s in chosen]),
        loops=max(max(1, s.app_loops) for s in chosen),
        lag_p95_ms=_median([s.loop_lag_ms.get("p95") for s in chosen]),
        host_cpu=_median([s.host_cpu for s in chosen]),
        other_cores=_median([other_cores(s) for s in chosen]),
        hold_growth=statistics.median(holds) / light_hold_ms if holds and light_hold_ms else None,
        db_active=_median([s.db_active for s in chosen]),
        generator_cpu=_median([s.generator_cpu for s in chosen]),
        late_p95_ms=_median([s.start_lateness_ms_p95 for s in chosen]),
    )


def other_cores(step: StepFigures) -> float | None:
    """Cores busy outside the app and Locust in a step: PostgreSQL, and whatever else shares the machine."""
    if step.host_cores is None or step.app_cpu is None:
        return None
    return max(0.0, step.host_cores - step.app_cpu - (step.generator_cpu or 0.0))


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _fmt(template: str, value: float | None) -> str:
    return template.format(value) if value is not None else ""
