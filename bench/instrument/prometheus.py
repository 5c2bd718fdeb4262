"""Renders ``PoolMetrics`` as Prometheus text exposition, named after the OpenTelemetry DB client
conventions (``db.client.connection.*``); ``PoolEndpoint`` serves it for ``?format=prometheus``.
"""

from __future__ import annotations

import math

from bench.instrument.histogram import GROWTH, Histogram, bucket_bounds
from bench.instrument.pool import PoolMetrics

# Upper bounds (seconds) of the exported buckets; the in-process histogram is much finer.
BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _cumulative(hist: Histogram) -> list[tuple[str, int]]:
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
    return out


def _histogram(name: str, help_text: str, hist: Histogram, labels: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} histogram", *_histogram_samples(name, hist, labels)]


def _histogram_samples(name: str, hist: Histogram, labels: str) -> list[str]:
    lines = []
    for le, count in _cumulative(hist):
        lines.append(f'{name}_bucket{{{labels},le="{le}"}} {count}')
    total = hist.total if math.isfinite(hist.total) else 0.0
    lines += [f"{name}_sum{{{labels}}} {total:.6f}", f"{name}_count{{{labels}}} {hist.count}"]
    return lines


def _metric(kind: str, name: str, help_text: str, samples: list[tuple[str, float]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{{{labels}}} {value:g}" for labels, value in samples]
    return lines


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(metrics: PoolMetrics, pool_name: str = "default") -> str:
    pool = f'db_client_connection_pool_name="{_escape(pool_name)}"'
    snap = metrics.snapshot(histograms=False)
    gauges, counters = snap["gauges"], snap["counters"]
    used = float(gauges.get("checked_out", 0))
    idle = float(gauges.get("checked_in", 0))
    lines: list[str] = []
    lines += _histogram("db_client_connection_wait_time_seconds",
                        "Time to obtain an open connection from the pool (queue wait, without connect time).",
                        metrics.wait, pool)
    lines += _histogram("db_client_connection_use_time_seconds",
                        "Time between borrowing a connection and returning it to the pool.", metrics.use, pool)
    lines += _histogram("db_client_connection_create_time_seconds",
                        "Time it took to create a new connection (a reopened one included).", metrics.create, pool)
    by_route = "scopebench_connection_use_time_by_route_seconds"
    lines += [f"# HELP {by_route} Connection use time by the route that checked the connection out.",
              f"# TYPE {by_route} histogram"]
    for route, hist in sorted(metrics.use_by_route.items()):
        lines += _histogram_samples(by_route, hist, f'{pool},http_route="{_escape(route)}"')
    lines += _metric("gauge", "db_client_connection_count", "Connections currently in the state.",
                     [(f'{pool},db_client_connection_state="used"', used),
                      (f'{pool},db_client_connection_state="idle"', idle)])
    lines += _metric("gauge", "db_client_connection_pending_requests",
                     "Pending requests for an open connection.", [(pool, float(gauges.get("pending", 0)))])
    if "size" in gauges:
        lines += _metric("gauge", "db_client_connection_max", "Maximum number of open connections allowed.",
                         [(pool, float(gauges["size"]) + max(0.0, float(gauges.get("max_overflow", 0))))])
    lines += _metric("counter", "db_client_connection_timeouts_total",
                     "Connection checkouts that timed out.", [(pool, float(counters["timeouts"]))])
    lines += _metric("counter", "scopebench_connect_failures_total",
                     "Connects the pool tried that failed (refused, timed out, rejected by the server).",
                     [(pool, float(counters["connect_failures"]))])
    lines += _metric("counter", "scopebench_checkouts_cancelled_total",
                     "Checkouts cancelled before they had a connection.", [(pool, float(counters["cancelled"]))])
    lines += _metric("counter", "scopebench_connection_invalidated_total",
                     "Connections invalidated (terminated) by the pool.", [(pool, float(counters["invalidated"]))])
    lines += _metric("counter", "scopebench_connections_opened_total",
                     "Connections opened by the pool, reopened ones included.",
                     [(pool, float(counters["connections_opened"]))])
    lines += _metric("counter", "scopebench_connections_reclaimed_total",
                     "Checked-out connections the garbage collector took back (leaked, never checked in).",
                     [(pool, float(counters["reclaimed"]))])
    lines += _metric("counter", "scopebench_connections_detached_total",
                     "Checked-out connections the app detached from the pool.", [(pool, float(counters["detached"]))])
    return "\n".join(lines) + "\n"
