"""A pool's figures as OpenTelemetry metrics through the OTel API (optional extra ``otel``): the nine
``db.client.connection.*`` instruments of the semantic conventions. Apps call ``export_pool`` after ``instrument``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import metrics as otel
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from bench.instrument.histogram import Histogram
from bench.instrument.poolmetrics import PoolMetrics
from bench.instrument.prometheus import BOUNDS

log = logging.getLogger("bench.instrument.otel")

POOL_NAME = "db.client.connection.pool.name"
STATE = "db.client.connection.state"
METER = "scopebench.instrument"


class _Forwarding(Histogram):
    """The pool's own histogram, each observation also recorded, as it comes, into an OTel histogram: the
    OTel one sees every duration exactly (there is no asynchronous histogram to read a snapshot into)."""

    __slots__ = ("attributes", "sink")

    def __init__(self, own: Histogram, sink: otel.Histogram, attributes: dict[str, str]) -> None:
        super().__init__()
        self.merge(own)
        self.sink, self.attributes = sink, attributes

    def _add(self, index: int, seconds: float) -> None:  # where every observation lands, record() or record_both()
        super()._add(index, seconds)
        try:
            self.sink.record(seconds, self.attributes)
        except Exception:  # pragma: no cover - an exporter must never break a checkout
            log.exception("OpenTelemetry histogram record failed")


_DURATIONS = (
    ("wait", "db.client.connection.wait_time", "The time it took to obtain an open connection from the pool."),
    ("create", "db.client.connection.create_time", "The time it took to create a new connection."),
    ("use", "db.client.connection.use_time", "The time between borrowing a connection and returning it to the pool."),
)


def export_pool(metrics: PoolMetrics, pool_name: str = "default", meter_provider: MeterProvider | None = None) -> None:
    """Publishes the pool's figures on ``meter_provider`` (the global one by default). Durations recorded
    before this call stay out of the OTel histograms: call it right after ``instrument(engine)``."""
    if any(isinstance(getattr(metrics, attr), _Forwarding) for attr, _, _ in _DURATIONS):
        raise ValueError("export_pool was already called for these metrics")
    meter = otel.get_meter(METER, meter_provider=meter_provider)
    pool = {POOL_NAME: pool_name}
    for attr, name, text in _DURATIONS:
        sink = meter.create_histogram(name, unit="s", description=text, explicit_bucket_boundaries_advisory=BOUNDS)
        setattr(metrics, attr, _Forwarding(getattr(metrics, attr), sink, pool))
    read = _Readings(metrics, pool)
    for name, callback, unit, text in read.instruments():
        meter.create_observable_up_down_counter(name, [callback], unit=unit, description=text)
    meter.create_observable_counter(
        "db.client.connection.timeouts",
        [read.timeouts],
        unit="{timeout}",
        description="The number of connection timeouts that have occurred trying to obtain a connection from the pool.",
    )


class _Readings:
    """The callbacks of the asynchronous instruments: each reads the snapshot's gauges when collected.
    The limits exist only for a queue pool (it has a size): it keeps at most its size idle and opens
    nothing ahead of demand (idle.min 0); a max_overflow of -1 is no limit, so no max."""

    def __init__(self, metrics: PoolMetrics, pool: dict[str, str]) -> None:
        self.metrics, self.pool = metrics, pool

    def instruments(self) -> list[tuple[str, Callable[[CallbackOptions], Iterable[Observation]], str, str]]:
        return [
            (
                "db.client.connection.count",
                self.count,
                "{connection}",
                "The number of connections that are currently in state described by the state attribute.",
            ),
            (
                "db.client.connection.idle.max",
                self.idle_max,
                "{connection}",
                "The maximum number of idle open connections allowed.",
            ),
            (
                "db.client.connection.idle.min",
                self.idle_min,
                "{connection}",
                "The minimum number of idle open connections allowed.",
            ),
            ("db.client.connection.max", self.max, "{connection}", "The maximum number of open connections allowed."),
            (
                "db.client.connection.pending_requests",
                self.pending,
                "{request}",
                "The number of current pending requests for an open connection.",
            ),
        ]

    def _read(self, block: str) -> dict[str, Any]:
        figures: dict[str, Any] = self.metrics.snapshot(histograms=False)[block]
        return figures

    def count(self, options: CallbackOptions) -> Iterable[Observation]:
        gauges = self._read("gauges")
        out = [Observation(gauges.get("checked_out", 0), {**self.pool, STATE: "used"})]
        if "checked_in" in gauges:
            out.append(Observation(gauges["checked_in"], {**self.pool, STATE: "idle"}))
        return out

    def idle_max(self, options: CallbackOptions) -> Iterable[Observation]:
        gauges = self._read("gauges")
        return [Observation(gauges["size"], self.pool)] if "size" in gauges else []

    def idle_min(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(0, self.pool)] if "size" in self._read("gauges") else []

    def max(self, options: CallbackOptions) -> Iterable[Observation]:
        gauges = self._read("gauges")
        if "size" not in gauges or gauges.get("max_overflow", 0) < 0:
            return []
        return [Observation(gauges["size"] + gauges.get("max_overflow", 0), self.pool)]

    def pending(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(self._read("gauges").get("pending", 0), self.pool)]

    def timeouts(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(self._read("counters").get("timeouts", 0), self.pool)]
