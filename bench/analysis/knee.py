"""Where a load sweep turns up (the knee) and what it levels off at under overload (the saturation plateau).

bench.run.capacity calls these on each app's per-step figures; they take plain points, so tests feed them series.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Latency has turned up when its p95 is past both twice and 25 ms above the best step below it; pool wait
# when its p95 is 10 ms above and past twice the best below it. Both are wide: a 2-core box is noisy.
LATENCY_FACTOR = 2.0
LATENCY_FLOOR_MS = 25.0
WAIT_FACTOR = 2.0
WAIT_FLOOR_MS = 10.0
# Open model: a step has fallen behind when it answers less than this share of what was offered; past the
# knee, a step counts as saturated (plateau material) when it misses even a few percent of it. Answers, not
# successes: an app that fails a fifth of its requests by design (background-task's 404s) keeps up all the same.
KEEPS_UP = 0.9
SATURATED = 0.97
# Closed model: past the knee when each user gets less than this share answered of the best step below
# (the users queue rather than work; latency has grown by a third).
PER_USER = 0.75


@dataclass(frozen=True)
class Point:
    level: float  # offered load: requests/s (open model) or users (closed model)
    throughput_rps: float
    latency_p95_ms: float | None
    pool_wait_p95_ms: float | None = None
    offered_rps: float | None = None  # open model only: arrivals per second actually scheduled
    answered_rps: float | None = None  # responses per second, failed ones included (None: throughput_rps)

    @property
    def answered(self) -> float:
        return self.throughput_rps if self.answered_rps is None else self.answered_rps


@dataclass(frozen=True)
class Knee:
    index: int  # the first step past the knee
    level: float
    last_flat_level: float | None  # the step before it: the highest load still on the flat part
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "level": self.level, "last_flat_level": self.last_flat_level,
                "reasons": list(self.reasons)}


def turned_up(points: Sequence[Point], i: int) -> list[str]:
    """Why step ``i`` is past the knee, judged against the best of the steps below it (empty: it is not)."""
    p = points[i]
    below = points[:i]
    reasons = []
    best_latency = min((q.latency_p95_ms for q in below if q.latency_p95_ms is not None), default=None)
    if p.latency_p95_ms is not None and best_latency is not None and \
            p.latency_p95_ms > max(LATENCY_FACTOR * best_latency, best_latency + LATENCY_FLOOR_MS):
        reasons.append(f"latency p95 {p.latency_p95_ms:.0f} ms vs {best_latency:.0f} ms below")
    best_wait = min((q.pool_wait_p95_ms for q in below if q.pool_wait_p95_ms is not None), default=0.0)
    if p.pool_wait_p95_ms is not None and \
            p.pool_wait_p95_ms > max(WAIT_FACTOR * best_wait, best_wait + WAIT_FLOOR_MS):
        reasons.append(f"pool wait p95 {p.pool_wait_p95_ms:.0f} ms vs {best_wait:.0f} ms below")
    behind = falls_behind(points, i)
    return reasons + ([behind] if behind else [])


def falls_behind(points: Sequence[Point], i: int) -> str | None:
    """Why step ``i`` does not keep up with its load over the whole step (None: it does): a shortfall of answers,
    measured over the step's window, where the latency reasons are tail percentiles that one stall can move."""
    p = points[i]
    if p.offered_rps is not None:
        if p.answered < KEEPS_UP * p.offered_rps:
            return f"answers {p.answered:.0f} of {p.offered_rps:.0f} req/s offered"
        return None
    best = max((q.answered / q.level for q in points[:i]), default=0.0)
    if best > 0 and p.answered / p.level < PER_USER * best:
        return f"answers per user {p.answered / p.level / best:.2f}x the best below"
    return None


def find_knee(points: Sequence[Point]) -> Knee | None:
    """The first step that has turned up and stays up in the next step (a lone noisy step is not a knee).

    The last step has no step above it to confirm it: it is the knee only when it falls behind its load over
    the whole step, never on a latency or pool-wait percentile alone.
    """
    for i in range(len(points)):
        reasons = turned_up(points, i)
        if not reasons:
            continue
        confirmed = turned_up(points, i + 1) if i + 1 < len(points) else falls_behind(points, i)
        if confirmed:
            return Knee(index=i, level=points[i].level, last_flat_level=points[i - 1].level if i else None,
                        reasons=tuple(reasons))
    return None


def saturated_steps(points: Sequence[Point], knee: Knee | None) -> list[int]:
    """Steps under overload, from the knee on: open model, those that answer less than offered; closed, all."""
    if knee is None:
        return []
    later = range(knee.index, len(points))
    return [i for i in later if points[i].offered_rps is None
            or points[i].answered < SATURATED * (points[i].offered_rps or 0.0)]


def plateau(points: Sequence[Point], steps: Sequence[int]) -> float | None:
    """The saturation throughput: the median over the overloaded steps (None if the sweep never got there)."""
    values = [points[i].throughput_rps for i in steps]
    return statistics.median(values) if values else None
