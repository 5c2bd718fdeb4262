"""A pool snapshot as Prometheus metric families, named after the OpenTelemetry DB client conventions
(``db.client.connection.*``): ``PoolEndpoint`` renders them for ``?format=prometheus`` and ``promclient``
hands the same families to prometheus_client.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.instrument.histogram import GROWTH, Histogram, bucket_bounds

if TYPE_CHECKING:  # for annotations: the pool module brings SQLAlchemy's asyncio layer
    from bench.instrument.poolmetrics import PoolMetrics

# Upper bounds (seconds) of the exported buckets; the in-process histogram is much finer.
BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
POOL_LABEL = "db_client_connection_pool_name"
STATE_LABEL = "db_client_connection_state"

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Sample:
    labels: Labels
    value: float


@dataclass(frozen=True)
class HistogramSample:
    labels: Labels
    buckets: tuple[tuple[str, int], ...]  # (le, observations at or below it), cumulative, "+Inf" last
    total: float
    count: int


@dataclass(frozen=True)
class Family:
    """One metric family; a counter's ``name`` is without ``_total``, which the exposition adds (as
    prometheus_client does)."""

    name: str
    kind: str  # gauge, counter or histogram
    help: str
    samples: tuple[Sample, ...] = ()
    histograms: tuple[HistogramSample, ...] = ()


def cumulative(hist: Histogram) -> tuple[tuple[str, int], ...]:
    """Counts at or below each bound; a fine bucket counts where its upper edge falls (<= 1% off)."""
    counts = [0] * len(BOUNDS)
    for index, n in hist.buckets.items():
        upper = 0.0 if index < 0 else bucket_bounds(index)[1]
        for i, bound in enumerate(BOUNDS):
            if upper <= bound * GROWTH:
                counts[i] += n
                break
    out, running = [], 0
    for bound, n in zip(BOUNDS, counts, strict=True):
        running += n
        out.append((f"{bound:g}", running))
    out.append(("+Inf", hist.count))
    return tuple(out)


def _histogram(labels: Labels, data: dict[str, Any] | None) -> HistogramSample:
    hist = Histogram.from_json(data or {})
    total = hist.total if math.isfinite(hist.total) else 0.0
    return HistogramSample(labels, cumulative(hist), total, hist.count)


_DURATIONS = (
    (
        "db_client_connection_wait_time_seconds",
        "wait_time",
        "Time to obtain an open connection from the pool (queue wait, without connect time).",
    ),
    (
        "db_client_connection_use_time_seconds",
        "use_time",
        "Time between borrowing a connection and returning it to the pool.",
    ),
    (
        "db_client_connection_create_time_seconds",
        "create_time",
        "Time it took to create a new connection (a reopened one included).",
    ),
)
_COUNTERS = (
    ("db_client_connection_timeouts", "timeouts", "Connection checkouts that timed out."),
    (
        "scopebench_connect_failures",
        "connect_failures",
        "Connects the pool tried that failed (refused, timed out, rejected by the server).",
    ),
    ("scopebench_checkouts_cancelled", "cancelled", "Checkouts cancelled before they had a connection."),
    ("scopebench_connection_invalidated", "invalidated", "Connections invalidated (terminated) by the pool."),
    ("scopebench_connections_opened", "connections_opened", "Connections opened by the pool, reopened ones included."),
    (
        "scopebench_connections_reclaimed",
        "reclaimed",
        "Checked-out connections the garbage collector took back (leaked, never checked in).",
    ),
    ("scopebench_connections_detached", "detached", "Checked-out connections the app detached from the pool."),
)


def families(snapshot: dict[str, Any], pool_name: str = "default") -> list[Family]:
    """The figures of a snapshot (``PoolMetrics.snapshot()``, or several workers' ``shared.merge``)."""
    pool: Labels = ((POOL_LABEL, pool_name),)
    out = [
        Family(name, "histogram", text, histograms=(_histogram(pool, snapshot.get(key)),))
        for name, key, text in _DURATIONS
    ]
    by_route = snapshot.get("use_time_by_route") or {}
    out.append(
        Family(
            "scopebench_connection_use_time_by_route_seconds",
            "histogram",
            "Connection use time by the route that checked the connection out.",
            histograms=tuple(_histogram((*pool, ("http_route", route)), by_route[route]) for route in sorted(by_route)),
        )
    )
    out += _gauges(snapshot.get("gauges") or {}, pool)
    counters = snapshot.get("counters") or {}
    out += [
        Family(name, "counter", text, (Sample(pool, float(counters.get(key, 0))),)) for name, key, text in _COUNTERS
    ]
    return out


def _gauges(gauges: dict[str, Any], pool: Labels) -> list[Family]:
    """In use and idle (idle only where the pool counts it), the limits, and the checkouts waiting."""
    count = [Sample((*pool, (STATE_LABEL, "used")), float(gauges.get("checked_out", 0)))]
    if "checked_in" in gauges:
        count.append(Sample((*pool, (STATE_LABEL, "idle")), float(gauges["checked_in"])))
    out = [
        Family("db_client_connection_count", "gauge", "Connections currently in the state.", tuple(count)),
        Family(
            "db_client_connection_pending_requests",
            "gauge",
            "Pending requests for an open connection.",
            (Sample(pool, float(gauges.get("pending", 0))),),
        ),
    ]
    if "size" in gauges:
        size, overflow = float(gauges["size"]), float(gauges.get("max_overflow", 0))
        # A queue pool keeps up to its size idle and opens none ahead of demand; max_overflow -1 is no limit.
        out += [
            Family(
                "db_client_connection_idle_max",
                "gauge",
                "Maximum number of idle open connections allowed.",
                (Sample(pool, size),),
            ),
            Family(
                "db_client_connection_idle_min",
                "gauge",
                "Minimum number of idle open connections allowed.",
                (Sample(pool, 0.0),),
            ),
        ]
        if overflow >= 0:
            out.append(
                Family(
                    "db_client_connection_max",
                    "gauge",
                    "Maximum number of open connections allowed.",
                    (Sample(pool, size + overflow),),
                )
            )
    return out


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: Labels) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels) + "}" if labels else ""


def render(items: list[Family]) -> str:
    """Prometheus text exposition 0.0.4."""
    lines: list[str] = []
    for family in items:
        name = family.name + ("_total" if family.kind == "counter" else "")
        lines += [f"# HELP {name} {family.help}", f"# TYPE {name} {family.kind}"]
        lines += [f"{name}{_labels(s.labels)} {s.value:g}" for s in family.samples]
        for h in family.histograms:
            lines += [f"{name}_bucket{_labels((*h.labels, ('le', le)))} {n}" for le, n in h.buckets]
            lines += [f"{name}_sum{_labels(h.labels)} {h.total:.6f}", f"{name}_count{_labels(h.labels)} {h.count}"]
    return "\n".join(lines) + "\n"


def prometheus_text(source: PoolMetrics | dict[str, Any], pool_name: str = "default") -> str:
    """A pool's figures as Prometheus text: from its ``PoolMetrics``, or from a (merged) snapshot."""
    snapshot = source if isinstance(source, dict) else source.snapshot()
    return render(families(snapshot, pool_name))
