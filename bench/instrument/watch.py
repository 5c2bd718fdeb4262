"""Every SQLAlchemy pool of a process watched for one owner at a time (a test): connections held past a threshold
while their task awaits non-database work, leaked (reclaimed by the GC, or still out at the end), left idle in
transaction, or lost to a cancelled close. ``bench.pytest_plugin`` drives it; SQLAlchemy and the standard library.

Pool events are listened to on the ``Pool`` class, so engines the code under test makes are watched with nothing to
wire; the lines are found by ``holds.HoldSites``, the instrumentation's own hold sites.
"""

from __future__ import annotations

import asyncio
import gc
import time
import types
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.pool import Pool

from bench.instrument.frames import APP, DB, Site, task_chain
from bench.instrument.holds import Hold, HoldSites, _Long


@dataclass(frozen=True)
class Problem:
    """One connection that broke a rule, and the line of the code under test to blame."""

    kind: str  # "held", "reclaimed", "not returned", "idle in transaction", "lost"
    site: Site
    detail: str

    def describe(self) -> str:
        code = f"\n      {self.site.code}" if self.site.code else ""
        return f"{self.kind} at {self.site.describe()}: {self.detail}{code}"


class _Sites(HoldSites):
    """Hold sites that also keep, per hold, where its task sat idle (awaiting non-database work) past the threshold.

    When the code that checked the connection out has returned with it still out, the task's innermost frame of a
    function nested in that code (a streaming response's generator) is where it sits."""

    def __init__(self, threshold_s: float, library: Iterable[str]) -> None:
        super().__init__(threshold_s, library)
        self.idle: dict[Hold, dict[Site, float]] = {}
        self._holds: dict[int, tuple[Hold, frozenset[int]]] = {}  # id(_Long) -> its hold, its nested codes

    def _start(self, hold: Hold) -> _Long:
        long = super()._start(hold)
        path = self._paths.get(hold.path)
        nested = _nested_codes([code for code, _ in path.stack[: path.run]]) if path is not None else frozenset()
        self._holds[id(long)] = (hold, nested)
        return long

    def _where(self, task: asyncio.Task[Any] | None, long: _Long) -> tuple[Site | None, bool]:
        site, idle = super()._where(task, long)
        entry = self._holds.get(id(long))
        if idle and entry is not None and task is not None and not task.done():
            hold, nested = entry
            shown = site if site is not None else self._nested_site(task, nested)
            if shown is not None:
                spent = self.idle.setdefault(hold, {})
                spent[shown] = spent.get(shown, 0.0) + max(0.0, time.perf_counter() - long.last)
        return site, idle

    def _nested_site(self, task: asyncio.Task[Any], nested: frozenset[int]) -> Site | None:
        """The innermost frame of a function nested in the checkout's code, in the holding task or, since a
        streaming response runs its body in a task of its own, in another task of its loop; None when that frame
        is in the database (not idle) or nowhere."""
        if not nested:
            return None
        kind = self.classifier.kind
        for other in [task, *(t for t in asyncio.all_tasks(task.get_loop()) if t is not task)]:
            chain = task_chain(other)
            for index in range(len(chain) - 1, -1, -1):
                frame = chain[index]
                if id(frame.f_code) in nested and kind(frame.f_code.co_filename) == APP:
                    if any(kind(f.f_code.co_filename) == DB for f in chain[index:]):
                        return None
                    return self.resolver.site((frame.f_code, frame.f_lasti))
        return None

    def closed(self, record: Any, hold: Hold, now: float, reclaimed: bool) -> None:
        long = self._long.get(hold)
        super().closed(record, hold, now, reclaimed)
        if long is not None:
            self._holds.pop(id(long), None)

    def forget(self, record: Any, hold: Hold) -> None:
        """A hold no longer followed (reported as not returned): whatever becomes of it later says nothing."""
        self.open.pop(record, None)
        long = self._long.pop(hold, None)
        if long is not None:
            self._holds.pop(id(long), None)
        self.idle.pop(hold, None)


def _nested_codes(codes: list[types.CodeType]) -> frozenset[int]:
    found: set[int] = set()
    stack = [const for code in codes for const in code.co_consts if isinstance(const, types.CodeType)]
    while stack:
        code = stack.pop()
        found.add(id(code))
        stack += [const for const in code.co_consts if isinstance(const, types.CodeType)]
    return frozenset(found)


@dataclass
class _Out:
    hold: Hold
    owner: str
    record: Any


class PoolWatch:
    """Call ``start``, then ``begin(owner)`` before the code under test runs and ``problems(owner)`` /
    ``outstanding(owner)`` after it; checkouts made while no owner is set are not watched."""

    def __init__(self, hold_ms: float = 50.0, library: Iterable[str] = ()) -> None:
        self.sites = _Sites(hold_ms / 1000.0, library)
        self.owner: str | None = None
        self._out: dict[int, _Out] = {}  # by id(record): a record is not hashable in every SQLAlchemy version
        self._found: dict[str, list[Problem]] = {}
        self._listeners = (
            ("checkout", self._checkout),
            ("checkin", self._checkin),
            ("detach", self._detach),
            ("invalidate", self._invalidate),
        )

    def start(self) -> None:
        for name, listener in self._listeners:
            event.listen(Pool, name, listener)

    def stop(self) -> None:
        for name, listener in self._listeners:
            if event.contains(Pool, name, listener):
                event.remove(Pool, name, listener)

    def set_threshold(self, hold_ms: float) -> None:
        self.sites.threshold_s = hold_ms / 1000.0
        self.sites.period_s = min(1.0, max(0.005, self.sites.threshold_s / 2))

    def begin(self, owner: str) -> None:
        self.owner = owner
        self._found[owner] = []

    # --- pool events -------------------------------------------------------------------------------------------

    def _checkout(self, dbapi_conn: Any, record: Any, proxy: Any) -> None:
        if self.owner is None:
            return
        # One route for every test: the call paths of a line are walked once, not once per test.
        hold = self.sites.opened(record, time.perf_counter(), "test", weakref.ref(proxy, _ignore))
        self._out[id(record)] = _Out(hold, self.owner, record)

    def _checkin(self, dbapi_conn: Any, record: Any) -> None:
        out = self._out.pop(id(record), None)
        if out is None:
            return
        if _in_transaction(record):
            self._problem(
                out,
                "idle in transaction",
                self._checkout_site(out.hold),
                "returned to the pool with its transaction open (no reset on return)",
            )
        self._close(out, reclaimed=False)

    def _detach(self, dbapi_conn: Any, record: Any) -> None:
        out = self._out.pop(id(record), None)
        if out is None:
            return
        reclaimed = out.hold.proxy() is None
        if reclaimed:
            self._problem(
                out,
                "reclaimed",
                self._leak_site(out.hold),
                f"leaked: never returned, the garbage collector reclaimed it "
                f"{time.perf_counter() - out.hold.at:.2f} s after its checkout",
            )
        self._close(out, reclaimed)

    def _invalidate(self, dbapi_conn: Any, record: Any, exception: BaseException | None) -> None:
        out = self._out.get(id(record))
        if out is None:
            return
        self.sites.lost(record)
        if out.hold.lost is not None:
            why = type(exception).__name__ if exception is not None else "invalidated"
            self._problem(
                out,
                "lost",
                self.sites.resolver.site(out.hold.lost),
                f"the pool dropped the connection ({why}): a close or a statement cut short, a new "
                f"connection for the next checkout",
            )

    def _close(self, out: _Out, reclaimed: bool) -> None:
        hold = out.hold
        self.sites.closed(out.record, hold, time.perf_counter(), reclaimed)
        self._idle_problems(out)

    # --- what the owner gets -----------------------------------------------------------------------------------

    def problems(self, owner: str, collect: bool = True) -> list[Problem]:
        """What went wrong so far, holds still out first given to the garbage collector (a leak unreachable by
        now is reclaimed and reported as such)."""
        if collect and any(out.owner == owner for out in self._out.values()):
            gc.collect()
        for out in list(self._out.values()):
            if out.owner == owner:
                self._idle_problems(out)
        found, self._found[owner] = self._found.get(owner, []), []
        return found

    def outstanding(self, owner: str) -> list[Problem]:
        """Connections the owner checked out that are still out: not returned by its end. They are not reported
        again when they come back or are reclaimed later."""
        found = []
        for key, out in list(self._out.items()):
            if out.owner != owner:
                continue
            del self._out[key]
            in_tx = _in_transaction(out.record)
            state = ", idle in transaction" if in_tx else ""
            found.append(
                Problem(
                    "not returned",
                    self._leak_site(out.hold),
                    f"still checked out at the end of the test{state}, "
                    f"{time.perf_counter() - out.hold.at:.2f} s after its checkout",
                )
            )
            self.sites.forget(out.record, out.hold)
        if self.owner == owner:
            self.owner = None
        return found + self._found.pop(owner, [])

    def _idle_problems(self, out: _Out) -> None:
        spent = self.sites.idle.pop(out.hold, None)
        if not spent:
            return
        site = max(spent, key=lambda s: spent[s])
        held = time.perf_counter() - out.hold.at
        self._problem(
            out,
            "held",
            site,
            f"holds a connection idle in transaction while its task awaits non-database work "
            f"({sum(spent.values()) * 1000:.0f} ms idle past the {self.sites.threshold_s * 1000:.0f} ms "
            f"threshold, {held:.2f} s since its checkout at {self._checkout_site(out.hold).where})",
        )

    def _problem(self, out: _Out, kind: str, site: Site, detail: str) -> None:
        if out.owner in self._found:
            self._found[out.owner].append(Problem(kind, site, detail))

    def _checkout_site(self, hold: Hold) -> Site:
        return self.sites.resolver.site(hold.first) if hold.first is not None else _UNKNOWN

    def _leak_site(self, hold: Hold) -> Site:
        """Where a connection never returned is placed: the checkout line, or the middleware that owns a scoped
        session's request scope (as the hold sites place it)."""
        long = self.sites._start(hold)
        self.sites._holds.pop(id(long), None)
        return long.leak or long.checkout[0]


_UNKNOWN = Site("?", 0, "?", "")


def _ignore(ref: weakref.ref[Any]) -> None:
    pass


def _in_transaction(record: Any) -> bool | None:
    """Whether the connection's server session is inside a transaction, as its driver knows it without a round
    trip (asyncpg, psycopg 3); None when the driver does not say."""
    conn = getattr(record, "driver_connection", None)
    check = getattr(conn, "is_in_transaction", None)
    if callable(check):
        return bool(check())
    status = getattr(getattr(conn, "info", None), "transaction_status", None)
    return None if status is None else int(status) in (2, 3)  # psycopg: INTRANS, INERROR
