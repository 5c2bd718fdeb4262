"""A pool's figures in the app's own prometheus_client registry, so they appear on the service's /metrics
(optional extra ``prometheus``): the families of ``bench.instrument.prometheus``, read at each scrape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import REGISTRY, CollectorRegistry

from bench.instrument.poolmetrics import PoolMetrics
from bench.instrument.prometheus import Family, families
from bench.instrument.shared import served


class PoolCollector:
    """A prometheus_client collector. With ``shared_dir`` (the folder ``keep_writing`` fills, one per app),
    every scrape serves the sum over the app's uvicorn workers, whichever worker answers; without it, this
    process's pool. A scrape before the pool exists, or before any worker wrote, has no pool figures.
    """

    def __init__(
        self,
        metrics: Callable[[], PoolMetrics | None],
        pool_name: str = "default",
        shared_dir: str | Path | None = None,
    ) -> None:
        self.metrics = metrics
        self.pool_name = pool_name
        self.shared_dir = shared_dir

    def collect(self) -> Iterable[Metric]:
        metrics = self.metrics()
        snapshot = None if metrics is None else served(metrics, self.shared_dir)
        if snapshot is None:
            return []
        return [_converted(family) for family in families(snapshot, self.pool_name)]

    def describe(self) -> Iterable[Metric]:
        """The families' names alone, so the registry can refuse a clash even before the pool exists."""
        every = {"gauges": {"size": 0, "max_overflow": 0, "checked_in": 0}}  # a pool with every family
        return [_converted(Family(f.name, f.kind, f.help)) for f in families(every, self.pool_name)]


def register(
    metrics: Callable[[], PoolMetrics | None],
    registry: CollectorRegistry = REGISTRY,
    pool_name: str = "default",
    shared_dir: str | Path | None = None,
) -> PoolCollector:
    """Adds the pool's figures to ``registry`` (prometheus_client's global one by default); returns the
    collector, for ``registry.unregister``."""
    collector = PoolCollector(metrics, pool_name, shared_dir)
    registry.register(collector)
    return collector


def _converted(family: Family) -> Metric:
    every = [s.labels for s in family.samples] + [h.labels for h in family.histograms]
    names = sorted({name for labels in every for name, _ in labels})
    if family.kind == "histogram":
        hist = HistogramMetricFamily(family.name, family.help, labels=names)
        for h in family.histograms:
            hist.add_metric([dict(h.labels)[n] for n in names], [(le, float(n)) for le, n in h.buckets], h.total)
        return hist
    kind = CounterMetricFamily if family.kind == "counter" else GaugeMetricFamily
    out = kind(family.name, family.help, labels=names)
    for s in family.samples:
        out.add_metric([dict(s.labels)[n] for n in names], s.value)
    return out
