"""A fixed garbage-collection schedule for the scenarios whose leaked connections only the cyclic GC ends.

The unclosed-session and use-after-close routes of both apps call ``collect_on_schedule`` first thing.
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass, field

from fastapi import FastAPI

from target_apps.common.settings import SettingsError

GC_EVERY_ENV = "BENCH_APP_GC_EVERY_S"


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
    """Made on first use from ``BENCH_APP_GC_EVERY_S`` (seconds); automatic collection is turned off then."""
    schedule: GcSchedule | None = getattr(app.state, "gc_schedule", None)
    if schedule is None:
        schedule = app.state.gc_schedule = _from_env()
    schedule.tick()


def _from_env() -> GcSchedule:
    raw = os.environ.get(GC_EVERY_ENV)
    if not raw:
        return GcSchedule(every_s=None)
    try:
        every_s = float(raw)
    except ValueError:
        every_s = -1.0
    if not every_s > 0:
        raise SettingsError(f"{GC_EVERY_ENV} must be a positive number of seconds, got {raw!r}")
    gc.disable()
    return GcSchedule(every_s=every_s)
