"""Idle in transaction as the app sees it, exactly: per transaction, the time inside it with no statement running.

``pool.instrument`` calls ``track_idle``, which wraps the engine's dialect (the object both the engine's connections
and the pool's reset-on-return call): ``do_execute`` and its two siblings time each statement, ``do_commit`` and
``do_rollback`` end the transaction. A transaction begins at its first statement, as it does on the server (the
drivers send BEGIN with the first statement of a transaction). No sampling, and no engine event: an engine with a
listener of its own dispatches events on every connection it hands out (``tags``), these cost a statement a few
perf_counter calls and nothing at all to a checkout that runs none.

What the server alone sees (other clients, apps without this instrumentation) stays the collector's sample of
``pg_stat_activity``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry

from bench.instrument.asgi import current_route
from bench.instrument.frames import RESOLVER, CodePosition
from bench.instrument.holds import HOLD_KEY

log = logging.getLogger("bench.instrument.idletime")

TX_KEY = "bench_tx"  # the open transaction's ``_Tx`` in its connection record's ``info``
_ON_DIALECT = "_bench_idle_time"
_MAX_ROWS = 1000  # distinct (route, checkout line) rows kept; past it, their time goes to the totals only


class _Tx:
    """One transaction still open: its idle time so far and when its last statement ended (None while one runs)."""

    __slots__ = ("first", "idle_from", "idle_s", "route")

    def __init__(self, route: str, first: CodePosition | None) -> None:
        self.route = route
        self.first = first  # the checkout line of the hold it runs on (``holds.Hold.first``), the sites' key
        self.idle_from: float | None = None
        self.idle_s = 0.0

    def idle_until(self, now: float) -> float:
        return self.idle_s + (now - self.idle_from if self.idle_from is not None else 0.0)


class IdleTime:
    """Idle in transaction of one engine's transactions: ended ones summed, overall, by route and by checkout line
    (the hold sites' ``checkout_site``); open ones kept to report their idle time so far."""

    def __init__(self) -> None:
        self.idle_s = 0.0
        self.transactions = 0
        # [idle_s, transactions, the longest one transaction was idle]
        self.by_site: dict[tuple[str, CodePosition | None], list[float]] = {}
        self.open: dict[_Tx, None] = {}  # an ordered set: the snapshot may read it from another thread
        self.dropped = 0

    # --- on the statement path: cheap -------------------------------------------------------------------------

    def statement_starts(self, info: dict[Any, Any]) -> _Tx:
        now = time.perf_counter()
        tx: _Tx | None = info.get(TX_KEY)
        if tx is None:
            hold = info.get(HOLD_KEY)
            tx = info[TX_KEY] = _Tx(
                hold.route if hold is not None else current_route(), hold.first if hold is not None else None
            )
            self.open[tx] = None
        elif tx.idle_from is not None:
            tx.idle_s += now - tx.idle_from
            tx.idle_from = None
        return tx

    def ends(self, info: dict[Any, Any]) -> None:
        """The transaction ends here (a commit or rollback starts, or its connection is lost): the idle time since
        its last statement is its last."""
        tx: _Tx | None = info.pop(TX_KEY, None)
        if tx is None:
            return
        idle = tx.idle_until(time.perf_counter())
        self.open.pop(tx, None)
        self.idle_s += idle
        self.transactions += 1
        key = (tx.route, tx.first)
        row = self.by_site.get(key)
        if row is None:
            if len(self.by_site) >= _MAX_ROWS:
                self.dropped += 1
                return
            row = self.by_site[key] = [0.0, 0, 0.0]
        row[0] += idle
        row[1] += 1
        row[2] = max(row[2], idle)

    # --- the snapshot ----------------------------------------------------------------------------------------

    def open_idle(self, now: float) -> tuple[int, float]:
        """Transactions open now and their idle time so far (a session left idle in transaction for good)."""
        open_txs = list(self.open)
        return len(open_txs), sum(tx.idle_until(now) for tx in open_txs)

    def by_route_json(self) -> dict[str, dict[str, float | int]]:
        routes: dict[str, dict[str, float | int]] = {}
        for (route, _first), (idle, count, _longest) in list(self.by_site.items()):
            into = routes.setdefault(route, {"idle_s": 0.0, "transactions": 0})
            into["idle_s"] += idle
            into["transactions"] += int(count)
        return {
            r: {"idle_s": round(float(v["idle_s"]), 6), "transactions": v["transactions"]}
            for r, v in sorted(routes.items())
        }

    def by_site_json(self, threshold_s: float) -> list[dict[str, Any]]:
        """Rows by route and checkout line, most idle first: the hold sites' ``route`` and ``checkout_site``. Only the
        lines where some transaction was idle for ``threshold_s`` at once (the hold sites' threshold): a line is
        resolved once per process, and the lines of short transactions alone are not worth it."""
        rows = []
        for (route, first), (idle, count, longest) in list(self.by_site.items()):
            if longest < threshold_s:
                continue
            site = RESOLVER.site(first) if first is not None else None
            rows.append(
                {
                    "route": route,
                    "checkout_site": site.where if site else "?",
                    "checkout_function": site.function if site else "?",
                    "transactions": int(count),
                    "idle_s": round(idle, 6),
                    "longest_idle_s": round(longest, 6),
                }
            )
        return sorted(rows, key=lambda r: -float(r["idle_s"]))


def _info_of(context: Any) -> dict[Any, Any] | None:
    """The pool record's ``info`` of the connection a statement runs on, as ``tags`` finds its hold."""
    try:
        info: dict[Any, Any] = context.root_connection.info
    # No context (a statement SQLAlchemy runs for itself), the dialect's first connect (no pool record), or a
    # connection already invalidated.
    except (AttributeError, NotImplementedError, exc.SQLAlchemyError):
        return None
    return info


def _conn_info(connection: Any) -> dict[Any, Any] | None:
    """``info`` of what ``do_commit``/``do_rollback`` get: the pool's proxy (the engine's connection or the pool's
    reset), or a bare driver connection on the dialect's first connect (not tracked)."""
    try:
        info = connection.info
    except (AttributeError, NotImplementedError, exc.SQLAlchemyError):
        return None
    return info if isinstance(info, dict) else None


def track_idle(engine: AsyncEngine) -> IdleTime:
    """Times every transaction of ``engine`` from its first statement to its commit or rollback."""
    dialect = engine.sync_engine.dialect
    known: IdleTime | None = getattr(dialect, _ON_DIALECT, None)
    if known is not None:  # instrumented twice: its statements are timed once
        return known
    idle = IdleTime()
    setattr(dialect, _ON_DIALECT, idle)
    for name in ("do_execute", "do_executemany", "do_execute_no_params"):
        setattr(dialect, name, _timed_statement(idle, getattr(dialect, name)))
    for name in ("do_commit", "do_rollback"):
        setattr(dialect, name, _ending(idle, getattr(dialect, name)))

    pool = engine.sync_engine.pool

    # A connection lost or taken back by the garbage collector ends its transaction on the server (the connection
    # is closed or terminated) with no rollback through the dialect.
    @event.listens_for(pool, "invalidate")
    def _on_invalidate(dbapi_conn: Any, record: ConnectionPoolEntry, exception: BaseException | None) -> None:
        _safely(idle.ends, record.info)

    @event.listens_for(pool, "detach")
    def _on_detach(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
        _safely(idle.ends, record.info)

    return idle


def _timed_statement(idle: IdleTime, run: Callable[..., Any]) -> Callable[..., Any]:
    def timed(cursor: Any, *args: Any) -> Any:
        # The context is the last argument (do_execute_no_params has no parameters).
        info = _info_of(args[-1]) if args else None
        tx = None
        if info is not None:
            try:
                tx = idle.statement_starts(info)
            except Exception:  # pragma: no cover - an observer must never break a statement
                log.exception("idle time observer failed")
        try:
            return run(cursor, *args)
        finally:
            if tx is not None:  # failed or not: the server is idle in the (aborted) transaction from here
                tx.idle_from = time.perf_counter()

    return timed


def _ending(idle: IdleTime, end: Callable[[Any], None]) -> Callable[[Any], None]:
    def ending(connection: Any) -> None:
        # No transaction open on the engine, none to end here: the pool's reset of a checkout that ran no statement
        # pays this test only. Otherwise a lookup finds whether this connection's is one of them.
        if idle.open:
            info = _conn_info(connection)
            if info is not None and TX_KEY in info:
                _safely(idle.ends, info)
        end(connection)

    return ending


def _safely(fn: Callable[..., None], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:  # pragma: no cover - an observer must never break a commit or a checkin
        log.exception("idle time observer failed")
