"""The run's collector plus what bench capacity cuts per-step figures from: each interval's wait, hold and
loop-lag histograms, and CPU. bench.run.capacity runs its sweeps with ``DetailCollector`` (through ``RunHooks``).
"""

from __future__ import annotations

from typing import Any

import psutil

from bench.instrument import Histogram
from bench.results.samples import HISTOGRAM_FIELDS
from bench.run.collector import Collector


class DetailCollector(Collector):
    """The run's collector, plus per-sample histogram deltas (exact percentiles over any window) and CPU."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._previous: dict[str, Histogram] = {}
        self._seen: dict[str, Any] | None = None
        psutil.cpu_percent(None)  # the first call only sets the reference point

    async def sample(self, full: bool = False) -> dict[str, Any]:
        sample = await super().sample(full)
        pool = self.last_pool
        if pool is not None and pool is not self._seen:  # a failed fetch leaves the last one: count it once
            self._seen = pool
            sample.update(self._details(pool))
        busy = psutil.cpu_percent(None) / 100
        sample["host_cpu"] = round(busy, 4)
        sample["host_cores"] = round(busy * (psutil.cpu_count() or 1), 3)  # comparable with the app's CPU
        return sample

    def _details(self, pool: dict[str, Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for name, keys in HISTOGRAM_FIELDS.items():
            node: Any = pool
            for key in keys:
                node = node.get(key) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                continue
            hist = Histogram.from_json(node)
            previous = self._previous.get(name)
            self._previous[name] = hist
            fields[name] = (hist if previous is None else hist.minus(previous)).to_json()
        loop = pool.get("loop")
        if isinstance(loop, dict) and "cpu_s" in loop:
            fields["app_cpu_s"] = loop["cpu_s"]
            # The CPU above is summed over this many loops (--app-workers): the bottleneck judges one loop's share.
            fields["app_loops"] = int(loop.get("workers") or 1)
        return fields
