"""Event-loop lag and process CPU time, served next to the pool figures.

Apps run ``LoopLag.run()`` as a task in their lifespan and hand the monitor to ``PoolMetrics.loop``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from bench.instrument.histogram import Histogram


@dataclass
class LoopLag:
    """How late a periodic ``asyncio.sleep`` wakes up (event-loop lag), and the process's CPU time.

    A busy loop delays every coroutine, holders of pool connections included: without this figure a
    CPU-bound app looks like a starved pool. The app runs ``run()`` as a task in its lifespan.
    """

    period_s: float = 0.01
    lag: Histogram = field(default_factory=Histogram)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.period_s)
            self.lag.record(max(0.0, loop.time() - start - self.period_s))

    def to_json(self, histograms: bool = True) -> dict[str, Any]:
        # ``workers``: loops these figures cover (``shared.merge`` sums several processes' CPU and ticks).
        data: dict[str, Any] = {"period_s": self.period_s, "cpu_s": time.process_time(), "ticks": self.lag.count,
                                "workers": 1}
        if histograms:
            data["lag"] = self.lag.to_json()
        return data
