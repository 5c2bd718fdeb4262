"""Where long holds come from: every hold that runs past the threshold, by the line of the app that holds it.

``pool.instrument`` makes one ``HoldSites`` per pool and calls ``opened`` / ``closed`` at each checkout and checkin
(``TimedAsyncPool``'s own methods, or the pool's events) and ``lost`` from its invalidate listener; a watchdog on the
event loop samples the holding tasks; ``to_json`` feeds the pool snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bench.instrument.frames import (
    DB,
    RESOLVER,
    CallPath,
    Classifier,
    CodePosition,
    Site,
    call_path,
    checkout_frame,
    task_chain,
)

log = logging.getLogger("bench.instrument.holds")

# Where a checkout's ``Hold`` lives: its pool record's ``info`` (cleared by SQLAlchemy when it reopens the record).
HOLD_KEY = "bench_checkout"
_MAX_ROWS = 1000  # distinct (route, site, checkout site) rows kept; past it, new ones are counted, not kept
_MAX_PATHS = 10_000  # call paths whose whole stack is remembered
_CALLERS = 12  # the app's frames a call path's whole stack keeps
SHOWN_ROWS = 50  # rows a snapshot carries, most held first


class Hold:
    """One checkout, from its checkout to its checkin: kept in the connection record's ``info``."""

    __slots__ = ("at", "first", "lost", "path", "proxy", "route", "tag", "task")

    def __init__(
        self,
        at: float,
        route: str,
        proxy: weakref.ref[Any],
        task: weakref.ref[Any] | None,
        first: CodePosition | None = None,
        path: int = 0,
    ) -> None:
        self.at = at
        self.route = route
        self.proxy = proxy  # the app's connection proxy: dead at a garbage-collector reclaim
        self.task = task  # the task that checked the connection out
        self.first = first  # the app's frame nearest the checkout: the checkout line, as code and offset
        self.path = path  # the key of its call path in ``HoldSites``: route, checkout line, caller's line
        self.tag: str | None = None  # the statement comment, made at the hold's first statement
        self.lost: CodePosition | None = None  # where its task was when it lost the connection (invalidated)


@dataclass
class _Long:
    """A hold past the threshold as the watchdog sees it: where its task sat, for how long, idle or not."""

    checkout: tuple[Site, ...]  # the checkout site, then its callers
    codes: frozenset[int]  # identities of the codes that may hold it (``HoldSites._paths`` keeps them alive)
    last: float  # perf_counter of the last sample (the checkout before the first)
    leak: Site | None = None  # where it is placed once that code returned (None: the checkout line)
    idle_s: float = 0.0
    sampled: bool = False
    last_idle: bool = False
    last_site: Site | None = None
    by_site: dict[Site | None, float] = field(default_factory=dict)

    def site(self) -> tuple[Site, bool]:
        """The line the hold spent most of its time at, and whether the code that took it had returned (then the
        checkout line, or the middleware whose scope a scoped session belongs to); the checkout line too when no
        sample was taken."""
        if not self.by_site:
            return self.checkout[0], False
        site = max(self.by_site, key=lambda k: self.by_site[k])
        return (self.leak or self.checkout[0], True) if site is None else (site, False)


@dataclass
class _Row:
    stack: tuple[Site, ...]  # the checkout site and its callers
    holds: int = 0
    held_s: float = 0.0
    idle_s: float = 0.0
    reclaimed: int = 0
    lost: int = 0
    open: int = 0
    open_age_s: float = 0.0


class HoldSites:
    """The holds past ``threshold_s`` of one pool, summed by route, holding line and checkout line."""

    def __init__(self, threshold_s: float, library: Iterable[str] = ()) -> None:
        self.threshold_s = threshold_s
        self.period_s = min(1.0, max(0.005, threshold_s / 2))
        self.classifier = Classifier(library)
        self.resolver = RESOLVER
        self.open: dict[Any, Hold] = {}
        # The whole stack of the app's frames, middleware included, walked once per route, checkout line and its
        # caller's line: those decide the rest (the same helper called from the same line of the same route, under
        # the same middleware), so every later checkout pays a lookup, not the walk (each frame walked costs a
        # frame object).
        self._paths: dict[int, CallPath] = {}
        self._long: dict[Hold, _Long] = {}
        self._rows: dict[tuple[str, Site, bool, Site], _Row] = {}
        self.dropped = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- at checkout and checkin: cheap ----------------------------------------------------------------------

    def opened(self, record: Any, at: float, route: str, proxy: weakref.ref[Any]) -> Hold:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no running loop: a synchronous engine
            task = None
        else:
            task = asyncio.current_task(loop)
            if self._loop is not loop:  # the watchdog sleeps while nothing is checked out
                self._arm(loop)
        first, line = checkout_frame(self.classifier)
        path = hash((route, line))
        if path not in self._paths and len(self._paths) < _MAX_PATHS:
            self._paths[path] = call_path(self.classifier, _CALLERS)
        hold = self.open[record] = Hold(at, route, proxy, weakref.ref(task) if task is not None else None, first, path)
        return hold

    def closed(self, record: Any, hold: Hold, now: float, reclaimed: bool) -> None:
        self.open.pop(record, None)
        long = self._long.pop(hold, None)
        if long is None and now - hold.at < self.threshold_s and hold.lost is None:
            return
        long = long or self._start(hold)
        if long.sampled:  # the time since the last sample counts as that sample's state
            self._count(long, long.last_site, long.last_idle, now)
        site, returned = (self.resolver.site(hold.lost), False) if hold.lost is not None else long.site()
        row = self._row(hold.route, site, returned, long)
        if row is not None:
            row.holds += 1
            row.held_s += now - hold.at
            row.idle_s += long.idle_s
            row.reclaimed += int(reclaimed)
            row.lost += int(hold.lost is not None)

    def lost(self, record: Any) -> None:
        """The hold's connection was invalidated: a statement or a close cut short (a cancellation, a broken
        socket). Placed at the app's innermost frame running then, whatever the hold's length: every such hold
        costs a new connection. Only when its own task lost it; another's (a dispose) says nothing of its code."""
        hold = self.open.get(record)
        if hold is None or hold.lost is not None or hold.proxy() is None:  # a dead proxy: the GC's reclaim
            return
        try:
            task = asyncio.current_task()
        except RuntimeError:
            task = None
        if task is None or hold.task is None or hold.task() is not task:
            return
        hold.lost = checkout_frame(self.classifier)[0] or hold.first

    # --- the watchdog: only holds past the threshold ---------------------------------------------------------

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.call_later(self.period_s, self._tick)

    def _tick(self) -> None:
        loop, self._loop = self._loop, None
        try:
            self.sample(time.perf_counter())
        except Exception:  # pragma: no cover - said once per tick in the app's log, never raised into its loop
            log.exception("hold site watchdog failed")
        finally:
            if self.open and loop is not None and not loop.is_closed():
                self._arm(loop)

    def sample(self, now: float) -> None:
        """Where each hold past the threshold is: its task's frames, between two steps of the event loop."""
        for hold in list(self.open.values()):
            if now - hold.at < self.threshold_s:
                continue
            long = self._long.get(hold)
            if long is None:
                long = self._long[hold] = self._start(hold)
            task = hold.task() if hold.task is not None else None
            site, idle = self._where(task, long)
            self._count(long, site, idle, now)

    def _start(self, hold: Hold) -> _Long:
        """The hold's checkout line, its callers and the codes that may hold it, resolved now it passed the
        threshold. The checkout's own run of calls holds it; the middleware around them runs on whether the
        connection went back or not. Once that run returned, the hold is placed at the checkout line, unless the
        checkout went through a scoped session's proxy: the registry keeps that session for its scope, which the
        request's middleware opens and ends (``remove()``), so it is placed at the innermost middleware's line
        (where the task sits while that frame runs, the line that called in once it returned)."""
        path = self._paths.get(hold.path)
        if hold.first is None:
            return _Long(checkout=(_UNKNOWN,), codes=frozenset(), last=hold.at)
        if path is None or not path.stack or path.stack[0] != hold.first:  # past _MAX_PATHS: the checkout line
            path = CallPath((hold.first,), 1)
        stack, owner = path.stack, path.owner
        codes = {id(code) for code, _ in stack[: path.run]}
        if owner >= 0:  # the middleware holds it too, while it runs: its remove() is what gives it back
            codes.add(id(stack[owner][0]))
        return _Long(
            checkout=tuple(self.resolver.site(p) for p in stack),
            codes=frozenset(codes),
            last=hold.at,
            leak=self.resolver.site(stack[owner]) if owner >= 0 else None,
        )

    def _where(self, task: asyncio.Task[Any] | None, long: _Long) -> tuple[Site | None, bool]:
        """The holding line: the innermost frame of the checkout's code still running in the task (None when that
        code returned, or the task ended, with the connection still out); idle unless a frame below it is
        SQLAlchemy's or a driver's. The task's other frames say nothing about a connection it no longer holds
        in its code: a middleware around a streamed response, say."""
        if task is None or task.done():
            return None, True
        chain = task_chain(task)
        holding = None
        for index, frame in enumerate(chain):
            if id(frame.f_code) in long.codes:
                holding = index
        kind = self.classifier.kind
        idle = not any(kind(f.f_code.co_filename) == DB for f in chain[(holding or 0) :])
        if holding is None:
            return None, idle
        frame = chain[holding]
        return self.resolver.site((frame.f_code, frame.f_lasti)), idle

    def _count(self, long: _Long, site: Site | None, idle: bool, now: float) -> None:
        elapsed = max(0.0, now - long.last)
        long.last = now
        long.by_site[site] = long.by_site.get(site, 0.0) + elapsed
        if idle:
            long.idle_s += elapsed
        long.sampled, long.last_site, long.last_idle = True, site, idle

    def _row(self, route: str, site: Site, returned: bool, long: _Long) -> _Row | None:
        key = (route, site, returned, long.checkout[0])
        row = self._rows.get(key)
        if row is None:
            if len(self._rows) >= _MAX_ROWS:
                self.dropped += 1
                return None
            row = self._rows[key] = _Row(long.checkout)
        return row

    # --- the snapshot ----------------------------------------------------------------------------------------

    def to_json(self, now: float) -> dict[str, Any]:
        """The rows, holds still open past the threshold included (as open, with their age), most held first
        (then most idle)."""
        rows = {key: _Row(**vars(row)) for key, row in self._rows.items()}
        for hold in list(self.open.values()):
            age = now - hold.at
            if age < self.threshold_s:
                continue
            long = self._long.get(hold) or self._start(hold)
            site, returned = (self.resolver.site(hold.lost), False) if hold.lost is not None else long.site()
            key = (hold.route, site, returned, long.checkout[0])
            row = rows.setdefault(key, _Row(long.checkout))
            row.holds += 1
            row.held_s += age
            row.idle_s += long.idle_s
            row.open += 1
            row.open_age_s = max(row.open_age_s, age)
        ordered = sorted(rows.items(), key=lambda kv: (-kv[1].held_s, -kv[1].idle_s))[:SHOWN_ROWS]
        return {
            "threshold_s": self.threshold_s,
            "dropped": self.dropped,
            "sites": [self._row_json(key, row) for key, row in ordered],
        }

    def _row_json(self, key: tuple[str, Site, bool, Site], row: _Row) -> dict[str, Any]:
        route, site, returned, checkout = key
        return {
            "route": route,
            "site": site.where,
            "function": site.function,
            "code": site.code,
            "returned": returned,
            "checkout_site": checkout.where,
            "checkout_function": checkout.function,
            "checkout_code": checkout.code,
            "stack": [s.describe() for s in row.stack],
            "holds": row.holds,
            "held_s": round(row.held_s, 4),
            "idle_s": round(row.idle_s, 4),
            "reclaimed": row.reclaimed,
            "lost": row.lost,
            "open": row.open,
            "open_age_s": round(row.open_age_s, 4),
        }


_UNKNOWN = Site("?", 0, "?", "")  # a checkout with none of the app's frames on its stack (the pool warming up)
