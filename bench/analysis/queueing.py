"""Queueing arithmetic for a connection pool: Little's-law ceiling, Erlang C (M/M/c) and its M/D/c correction.

bench.run.capacity puts these model figures beside the measured ones; the pool is c servers, a request's hold time S.
"""

from __future__ import annotations

import math


def littles_ceiling(capacity: int, hold_s_per_request: float) -> float | None:
    """Requests/s at which ``capacity`` connections, each held ``hold_s_per_request`` per request, are all busy."""
    return capacity / hold_s_per_request if hold_s_per_request > 0 else None


def erlang_c(servers: int, load: float) -> float:
    """Probability that an arrival waits, for ``load`` = arrival rate x service time (Erlangs) on ``servers``."""
    if load <= 0:
        return 0.0
    if load >= servers:
        return 1.0
    blocked = 1.0  # Erlang B by its recurrence: stable for any number of servers
    for k in range(1, servers + 1):
        blocked = load * blocked / (k + load * blocked)
    return servers * blocked / (servers - load * (1 - blocked))


def _deterministic_factor(servers: int, rho: float) -> float:
    # Cosmetatos' approximation: M/D/c waits are about half of M/M/c's, a bit more for many servers.
    return 0.5 * (1 + (1 - rho) * (servers - 1) * (math.sqrt(4 + 5 * servers) - 2) / (16 * rho * servers))


def mdc_wait_s(servers: int, rate: float, service_s: float, quantile: float | None = None) -> float | None:
    """Queue wait of M/D/c (Poisson arrivals, fixed hold): the mean, or a quantile (0..1); None if unstable."""
    load = rate * service_s
    rho = load / servers
    if rate <= 0:
        return 0.0
    if rho >= 1:
        return None
    waits = erlang_c(servers, load)
    spare = servers / service_s - rate  # requests/s of capacity left over
    factor = _deterministic_factor(servers, rho)
    if quantile is None:
        return factor * waits / spare
    if waits <= 1 - quantile:
        return 0.0
    # M/M/c: P(wait > t) = C * exp(-spare * t); the same deterministic factor scales the tail.
    return factor * math.log(waits / (1 - quantile)) / spare


def max_rate(servers: int, service_s: float, limit_s: float, quantile: float | None = None) -> float | None:
    """The highest arrival rate whose M/D/c wait (mean, or the quantile) stays below ``limit_s``."""
    if service_s <= 0:
        return None
    low, high = 0.0, servers / service_s
    for _ in range(60):
        mid = (low + high) / 2
        wait = mdc_wait_s(servers, mid, service_s, quantile)
        if wait is not None and wait < limit_s:
            low = mid
        else:
            high = mid
    return low
