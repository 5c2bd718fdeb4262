"""Idle-in-transaction spells of an app's backends, followed from one pg_stat_activity sample to the next.

bench.run.collector feeds it every sample: it finds the idle time the server never counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

IDLE_IN_TX = ("idle in transaction", "idle in transaction (aborted)")


@dataclass(frozen=True)
class Backend:
    """One row of pg_stat_activity, as far as spells go; times are the server's epoch seconds."""

    pid: int
    backend_start: float
    state: str | None
    state_change: float | None


class SpellBook:
    """Which backends are idle in transaction since when, and what became of the spells that ended.

    PostgreSQL adds a spell to pg_stat_database.idle_in_transaction_time only when the backend's state changes
    (its next statement, COMMIT, ROLLBACK), never when the session ends in the middle of one. A spell seen at one
    sample whose backend is gone at the next ended one of these ways, and the server tells only some apart:

    - the session ended abnormally (idle_in_transaction_session_timeout, pg_terminate_backend, a client gone
      without a goodbye): never counted; the server's count of such ends grew by as many, and the longest
      vanished spells are taken to be those.
    - it ended normally, the client saying goodbye: after a COMMIT or ROLLBACK (a pool's overflow connection, an
      app without a pool), the spell was counted; in the middle of the transaction (asyncpg's terminate(), which
      SQLAlchemy uses on a garbage-collected connection, says goodbye too), it was not. These are
      ``unresolved_s``: between none and all of it is missing, and bench.analysis.summary lets the samples'
      estimate decide.

    ``unreported_s`` is the time certainly missing from the server's figure: those abnormal ends, and the spells
    still open when sampling stops. Ages are on the server's clock, counted from the first sample; a vanished
    spell's unseen end adds half an interval.
    """

    def __init__(self) -> None:
        # (pid, backend start: pids are reused) -> (when its spell began, when a sample last saw it), server time
        self._open: dict[tuple[int, float], tuple[float, float]] = {}
        self._origin: float | None = None  # the server's time at the first sample: nothing before it counts
        self._abnormal: float | None = None  # the server's count of abnormal session ends at the last sample
        self.unreported_s = 0.0
        self.unresolved_s = 0.0

    def observe(self, backends: Iterable[Backend], now: float, dt: float, elapsed: float,
                abnormal_ends: float | None) -> None:
        """One sample: ``now`` is the server's time, ``dt`` the seconds since the previous sample and ``elapsed``
        since the first (on the collector's monotonic clock), ``abnormal_ends`` the server's running count of
        sessions that ended abnormally (abandoned, fatal, killed; None when unknown)."""
        rows = list(backends)
        if self._origin is None:
            self._origin = now - elapsed
        present = {(b.pid, b.backend_start) for b in rows}
        idle: dict[tuple[int, float], float] = {}
        for b in rows:
            if b.state in IDLE_IN_TX and b.state_change is not None:
                idle[(b.pid, b.backend_start)] = b.state_change
        vanished = sorted((self._age(began, seen) + dt / 2 for backend, (began, seen) in self._open.items()
                           if backend not in present), reverse=True)
        ended = 0 if abnormal_ends is None or self._abnormal is None else max(0, round(abnormal_ends - self._abnormal))
        self.unreported_s += sum(vanished[:ended])
        self.unresolved_s += sum(vanished[ended:])
        self._abnormal = abnormal_ends
        # A backend still here but no longer in the same spell changed state: the server counted that spell.
        self._open = {backend: (began, now) for backend, began in idle.items()}

    def close(self) -> None:
        """Sampling is over: spells still open are uncounted up to the last sample (the run's window ends there)."""
        self.unreported_s += sum(self._age(began, seen) for began, seen in self._open.values())
        self._open = {}

    def _age(self, began: float, seen: float) -> float:
        return max(0.0, seen - max(began, self._origin if self._origin is not None else began))
