"""Pool instrumentation for SQLAlchemy async apps, the public API: apps and the harness import from here.

Needs only SQLAlchemy and the standard library; the ``scopebench-instrument`` distribution ships it alone.
"""

from bench.instrument.asgi import ASGIApp, Receive, RouteTagMiddleware, Scope, Send, current_route
from bench.instrument.endpoint import ENDPOINT_PATH, PoolEndpoint
from bench.instrument.frames import Site
from bench.instrument.histogram import Histogram
from bench.instrument.holds import HoldSites
from bench.instrument.loop import LoopLag
from bench.instrument.pool import SCHEMA, PoolMetrics, TimedAsyncPool, instrument
from bench.instrument.prometheus import prometheus_text
from bench.instrument.shared import keep_writing
from bench.instrument.tags import tag_statements

__all__ = [
    "ENDPOINT_PATH",
    "SCHEMA",
    "ASGIApp",
    "Histogram",
    "HoldSites",
    "LoopLag",
    "PoolEndpoint",
    "PoolMetrics",
    "Receive",
    "RouteTagMiddleware",
    "Scope",
    "Send",
    "Site",
    "TimedAsyncPool",
    "current_route",
    "instrument",
    "keep_writing",
    "prometheus_text",
    "tag_statements",
]
