"""What one instrumented pool has counted: ``PoolMetrics``, the figures ``TimedAsyncPool`` and ``instrument()`` record
(``pool``) and ``PoolEndpoint`` serves, and its ``snapshot()``, taken at one moment so that its parts add up."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.pool import AsyncAdaptedQueuePool, Pool

from bench.instrument.histogram import Histogram
from bench.instrument.holds import HOLD_KEY, Hold, HoldSites
from bench.instrument.idletime import IdleTime
from bench.instrument.loop import LoopLag

SCHEMA = "scopebench.pool/1"


@dataclass
class PoolMetrics:
    """Counters and histograms of one pool, named after the OpenTelemetry DB client conventions."""

    pool: Pool | None = None
    wait: Histogram = field(default_factory=Histogram)
    create: Histogram = field(default_factory=Histogram)
    use: Histogram = field(default_factory=Histogram)
    use_by_route: dict[str, Histogram] = field(default_factory=dict)
    wait_by_route: dict[str, Histogram] = field(default_factory=dict)
    timeouts: int = 0
    cancelled: int = 0  # checkouts cancelled (asyncio.CancelledError) before the app had its connection
    connect_failures: int = 0  # connects that raised: refused, timed out, rejected by the server
    checkouts: int = 0
    connections_opened: int = 0
    invalidated: int = 0
    reclaimed: int = 0  # checked-out connections the garbage collector took back (a leak, ended by a collection)
    detached: int = 0  # checked-out connections the app itself detached from the pool
    pending: int = 0
    pending_max: int = 0
    checked_out: int = 0
    checked_out_max: int = 0
    started_at: float = field(default_factory=time.time)
    timed: bool = False
    loop: LoopLag | None = None  # event-loop lag and CPU, when the app runs a LoopLag monitor
    sites: HoldSites | None = None  # where holds past the threshold come from (None: not looked for)
    # Holds not ended yet, by connection record: a connection the app never returns (a session kept forever) is
    # held all along, and the snapshot's connection time must say so, not wait for a checkin that never comes.
    open_holds: dict[Any, Hold] = field(default_factory=dict, repr=False)
    idle: IdleTime | None = None  # idle in transaction, exact, from the dialect's calls (``idletime``)

    def snapshot(self, histograms: bool = True, routes: bool = True) -> dict[str, Any]:
        """Every figure; ``histograms=False`` leaves out distributions, ``routes=False`` only the per-route ones
        and the hold sites (a 10 Hz collector needs those once a second, not every sample). Every age in it is
        taken at one moment, so its parts add up: the open holds by route to the gauge of them all."""
        now = time.perf_counter()
        data: dict[str, Any] = {
            "schema": SCHEMA,
            "time": time.time(),
            "timed_checkout": self.timed,
            "gauges": self._gauges(now),
            "counters": {
                "checkouts": self.checkouts,
                "timeouts": self.timeouts,
                "cancelled": self.cancelled,
                "connect_failures": self.connect_failures,
                "connections_opened": self.connections_opened,
                "invalidated": self.invalidated,
                "reclaimed": self.reclaimed,
                "detached": self.detached,
                "pending_max": self.pending_max,
                "checked_out_max": self.checked_out_max,
            },
        }
        if histograms:
            data["wait_time"] = self.wait.to_json()
            data["create_time"] = self.create.to_json()
            data["use_time"] = self.use.to_json()
        if histograms and routes:
            data["use_time_by_route"] = {k: h.to_json() for k, h in sorted(self.use_by_route.items())}
            data["wait_time_by_route"] = {k: h.to_json() for k, h in sorted(self.wait_by_route.items())}
            data["hold_open_s_by_route"] = self._open_by_route(now)
        if self.idle is not None:
            _add_idle(data, self.idle, histograms, self.sites, now)
        if self.loop is not None:
            data["loop"] = self.loop.to_json(histograms)
        if histograms and routes and self.sites is not None:
            data["hold_sites"] = self.sites.to_json(now)
        return data

    def _gauges(self, now: float) -> dict[str, Any]:
        pool = self.pool
        count, held_s, oldest_s = self._open_ages(now)
        gauges: dict[str, Any] = {"checked_out": self.checked_out, "pending": self.pending, "holds_open": count,
                                  "hold_open_s": round(held_s, 6), "hold_open_max_s": round(oldest_s, 6)}
        if isinstance(pool, AsyncAdaptedQueuePool):
            # The pool's own count where there is one: it is what the pool can still lend.
            gauges.update(
                checked_out=pool.checkedout(),
                size=pool.size(),
                checked_in=pool.checkedin(),
                overflow=pool.overflow(),
                max_overflow=pool._max_overflow,
                timeout_s=pool.timeout(),
            )
        return gauges

    def _open_holds(self, now: float) -> list[tuple[Hold, float]]:
        """The holds still open, each with its age so far. With the ended holds' total (``use``) their ages are
        the integral of checked-out connections over time.

        A snapshot may be taken on another thread (``shared.keep_writing``): the dict is copied at once, and an
        entry whose record holds another hold by now (reopened without a checkin) is skipped, not removed."""
        return [(hold, max(0.0, now - hold.at)) for record, hold in list(self.open_holds.items())
                if record.info.get(HOLD_KEY) is hold]

    def _open_ages(self, now: float) -> tuple[int, float, float]:
        """The holds still open: how many, their connection-seconds so far and the oldest one's age."""
        ages = [age for _, age in self._open_holds(now)]
        return len(ages), sum(ages), max(ages, default=0.0)

    def _open_by_route(self, now: float) -> dict[str, float]:
        """The holds still open, their connection-seconds so far by the route that checked them out: a connection
        kept forever belongs to its route's share of the pool's time, not to nobody's."""
        by_route: dict[str, float] = {}
        for hold, age in self._open_holds(now):
            by_route[hold.route] = by_route.get(hold.route, 0.0) + age
        return {route: round(seconds, 6) for route, seconds in sorted(by_route.items())}


def _add_idle(data: dict[str, Any], idle: IdleTime, histograms: bool, sites: HoldSites | None, now: float) -> None:
    """Ended transactions' idle time and count as counters, open ones' as gauges (summed over workers); by checkout
    line only where hold sites are looked for, past their threshold."""
    count, open_s = idle.open_idle(now)
    data["counters"].update(idle_in_tx_s=round(idle.idle_s, 6), transactions=idle.transactions)
    data["gauges"].update(transactions_open=count, idle_in_tx_open_s=round(open_s, 6))
    if histograms:
        data["idle_in_tx_by_route"] = idle.by_route_json()
        if sites is not None:
            data["idle_in_tx_by_site"] = idle.by_site_json(sites.threshold_s)
