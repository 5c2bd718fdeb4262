"""Pool instrumentation for SQLAlchemy async apps, the public API: apps and the harness import from here.

Needs only SQLAlchemy and the standard library; the ``scopebench-instrument`` distribution ships it alone. Each name
loads its module when first used: the harness's collector takes ``Histogram`` before a run's first request without
SQLAlchemy's asyncio layer, which the pool's module brings.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.instrument.asgi import ASGIApp, Receive, RouteTagMiddleware, Scope, Send, current_route
    from bench.instrument.endpoint import ENDPOINT_PATH, PoolEndpoint
    from bench.instrument.frames import Site
    from bench.instrument.histogram import Histogram
    from bench.instrument.holds import HoldSites
    from bench.instrument.loop import LoopLag
    from bench.instrument.pool import TimedAsyncPool, instrument
    from bench.instrument.poolmetrics import SCHEMA, PoolMetrics
    from bench.instrument.prometheus import prometheus_text
    from bench.instrument.shared import keep_writing
    from bench.instrument.tags import tag_statements

# Each public name and the module it lives in.
_MODULES = {
    "ASGIApp": "asgi",
    "Receive": "asgi",
    "RouteTagMiddleware": "asgi",
    "Scope": "asgi",
    "Send": "asgi",
    "current_route": "asgi",
    "ENDPOINT_PATH": "endpoint",
    "PoolEndpoint": "endpoint",
    "Site": "frames",
    "Histogram": "histogram",
    "HoldSites": "holds",
    "LoopLag": "loop",
    "SCHEMA": "poolmetrics",
    "PoolMetrics": "poolmetrics",
    "TimedAsyncPool": "pool",
    "instrument": "pool",
    "prometheus_text": "prometheus",
    "keep_writing": "shared",
    "tag_statements": "tags",
}

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


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
