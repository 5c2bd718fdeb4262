"""A fixed garbage-collection schedule for the scenarios whose leaked connections only the cyclic GC ends.

The unclosed-session and use-after-close routes of both apps call ``collect_on_schedule`` first thing.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field

from fastapi import FastAPI


@dataclass
class GcSchedule:
    """Collect every ``every_s`` seconds, at the first request past the period; ``None`` leaves the GC alone.

    A leaked session sits in a reference cycle, so its connection is freed only when the cyclic GC runs;
    automatic collection runs when allocations pile up, i.e. by luck (rarely, once the starved pool stops
    requests from allocating). With automatic collection off and this schedule on, a leak lives up to one
    period, in both apps alike. Collections ride on requests, not a timer: an idle service collects nothing.
    """

    every_s: float | None
    last: float = field(default_factory=time.monotonic)

    def tick(self) -> int:
        now = time.monotonic()
        if self.every_s is None or now - self.last < self.every_s:
            return 0
        self.last = now
        return gc.collect()


def collect_on_schedule(app: FastAPI) -> None:
    """Made on first use from the app's ``gc_every_s`` (``BENCH_APP_GC_EVERY_S``); automatic collection is
    turned off then."""
    schedule: GcSchedule | None = getattr(app.state, "gc_schedule", None)
    if schedule is None:
        every_s = app.state.bench.settings.gc_every_s
        if every_s is not None:
            gc.disable()
        schedule = app.state.gc_schedule = GcSchedule(every_s=every_s)
    schedule.tick()
