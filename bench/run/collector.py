"""Samples pg_stat_activity and an app's pool endpoint on a fixed tick, through load and cool-down.

bench.run.drive starts one ``Collector`` per app run and moves it through its phases; its own asyncpg
connection never comes from a measured pool. What goes wrong is kept as typed ``CollectorEvent``s.
"""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import asyncpg

from bench.instrument import Histogram
from bench.results import jsonlines
from bench.results.records import DbFigures
from bench.run.poolclient import PoolClient
from bench.run.spells import IDLE_IN_TX, Backend, SpellBook

# One row per backend of the app, or one row with a null pid when it has none: every sample carries the server's
# time and its running count of sessions that ended abnormally (a leaked connection's end, a timeout).
_ACTIVITY = """
SELECT a.pid, extract(epoch FROM a.backend_start)::float8 AS backend_start, a.state,
       extract(epoch FROM a.state_change)::float8 AS state_change,
       extract(epoch FROM a.xact_start)::float8 AS xact_start, extract(epoch FROM now())::float8 AS now,
       left(a.query, 300) AS query, d.abnormal_ends
FROM (SELECT (sum(sessions_abandoned + sessions_fatal + sessions_killed))::float8 AS abnormal_ends
      FROM pg_stat_database WHERE datname = $1) d
LEFT JOIN pg_stat_activity a
  ON a.datname = $1 AND a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
 AND (a.application_name = $2 OR $2::text IS NULL)
"""
_DATABASE = """
SELECT idle_in_transaction_time, active_time, session_time, sessions, sessions_abandoned,
       sessions_fatal, sessions_killed, xact_commit, xact_rollback
FROM pg_stat_database WHERE datname = $1
"""
# bench.instrument.tag_statements prefixes each statement with the route and the app's line that checked the
# connection out, sqlcommenter style: /*route='GET /items/{item_id}',site='app/items.py:41'*/ (before it named
# the route alone: /* route: GET /items/{item_id} */).
_TAG = re.compile(r"^\s*/\*((?:\w+='(?:[^'\\]|\\.)*',?)+)\*/\s*")
_PAIR = re.compile(r"(\w+)='((?:[^'\\]|\\.)*)'")
_ROUTE_TAG = re.compile(r"/\* route: (.*?) \*/")
# Per-route histograms and hold sites are most of the pool endpoint's payload and its cost to the app, and only the
# last snapshot's are used (the summary, the report): every sample reads the rest, these once a second and at the end.
_FULL_EVERY_S = 1.0


def statement_tags(query: str) -> tuple[dict[str, str], str]:
    """A statement's tag comment as key -> value, and the statement without it."""
    tag = _TAG.match(query)
    if tag is None:
        return {}, query
    pairs = {k: re.sub(r"\\(.)", r"\1", v) for k, v in _PAIR.findall(tag.group(1))}
    return pairs, query[tag.end() :]


def statement_key(query: str | None) -> str:
    """What a backend's last statement says about who holds it: its route tag, else the statement."""
    if not query:
        return "?"
    tags, statement = statement_tags(query)
    if "route" in tags:
        return tags["route"]
    tag = _ROUTE_TAG.search(query)
    if tag:
        return tag.group(1)
    return "SQL: " + " ".join(statement.split())[:80]


class Phase(StrEnum):
    """Where a run is; each sample carries it (the report shades the cool-down)."""

    WARMUP = "warmup"
    LOAD = "load"
    COOLDOWN = "cooldown"


# A collector only moves forward: a run never goes back to warm-up, nor from cool-down to load.
_NEXT = {Phase.WARMUP: Phase.LOAD, Phase.LOAD: Phase.COOLDOWN}


class EventKind(StrEnum):
    """What happened to the collector; the value is the ``event`` the time line shows."""

    CONNECTION_LOST = "collector connection lost"
    RECONNECT_FAILED = "collector reconnect failed"
    RECONNECTED = "collector reconnected"
    FINAL_STATISTICS_UNAVAILABLE = "final statistics unavailable"
    STATISTICS_RESET = "server statistics were reset during the run"


# Kinds that leave a gap in the samples: the run's figures are kept, but it is not a measurement to trust.
_FAULTS = {EventKind.CONNECTION_LOST: "the collector lost its database connection"}


@dataclass(frozen=True)
class CollectorEvent:
    kind: EventKind
    detail: str | None = None
    t: float = field(default_factory=time.time)

    @property
    def fault(self) -> str | None:
        """Why this event spoils the run's figures, or None when it does not."""
        why = _FAULTS.get(self.kind)
        return None if why is None else f"{why} ({self.detail})"

    def to_json(self) -> dict[str, Any]:
        """The time line's shape: ``t``, ``event`` and, when there is one, ``detail``."""
        out: dict[str, Any] = {"t": self.t, "event": self.kind.value}
        if self.detail is not None:
            out["detail"] = self.detail
        return out


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error)[:200]}"


class Collector:
    def __init__(
        self,
        *,
        admin_dsn: str,
        database: str,
        application_name: str | None,
        pool_url: str | None,
        samples_path: Path,
        interval_s: float = 0.1,
        idle_threshold_s: float = 0.05,
        pool_token: str | None = None,
    ) -> None:
        self.pool_token = pool_token
        self.admin_dsn = admin_dsn
        self.database = database
        self.application_name = application_name
        self.pool_url = pool_url
        self.samples_path = samples_path
        self.interval_s = interval_s
        self.idle_threshold_s = idle_threshold_s
        self._phase = Phase.WARMUP
        self.figures = DbFigures()
        self.last_pool: dict[str, Any] | None = None
        self.pool_errors = 0
        self.events: list[CollectorEvent] = []  # what went wrong, for the run's time line
        self._conn: asyncpg.Connection | None = None
        self._server_start: dict[str, float] = {}
        self.spells = SpellBook()
        # The sampling interval is measured on this process's monotonic clock, never the server's: with a remote
        # --dsn the two differ, and a sample without rows has no server time at all.
        self._first_mono: float | None = None
        self._last_mono: float | None = None
        self._span_s = 0.0
        self._prev_wait: Histogram | None = None
        self._prev_use: Histogram | None = None
        self._pool = PoolClient(pool_url, pool_token) if pool_url else None
        self._full: dict[str, Any] | None = None  # the last full pool snapshot
        self._full_mono = 0.0

    @property
    def phase(self) -> Phase:
        return self._phase

    def start_load(self) -> None:
        """Locust is about to send its first request: samples from here on are the load window."""
        self._advance(Phase.LOAD)

    def start_cooldown(self) -> None:
        """Locust has stopped: samples from here on show what the load left behind."""
        self._advance(Phase.COOLDOWN)

    def _advance(self, to: Phase) -> None:
        if _NEXT.get(self._phase) is not to:
            raise RuntimeError(f"collector cannot go from {self._phase} to {to}")
        self._phase = to

    async def open(self) -> None:
        self._conn = await self._connect()
        self._server_start = await self._database_stats()

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            self.admin_dsn, timeout=10, server_settings={"application_name": "scopebench-collector"}
        )

    async def _reconnect(self, error: BaseException) -> bool:
        """The collector's connection dropped (server restart, terminated backend): note it, try again."""
        self.events.append(CollectorEvent(EventKind.CONNECTION_LOST, _describe(error)))
        if self._conn is not None:
            self._conn.terminate()
        try:
            self._conn = await self._connect()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as err:
            self._conn = None
            self.events.append(CollectorEvent(EventKind.RECONNECT_FAILED, _describe(err)))
            return False
        self.events.append(CollectorEvent(EventKind.RECONNECTED))
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Sample every ``interval_s`` until ``stop`` is set; one JSON line per sample."""
        with open(self.samples_path, "ab") as out:  # noqa: ASYNC230 -- once per run, before the load
            next_tick = time.monotonic()
            while not stop.is_set():
                try:
                    sample = await self.sample()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as err:
                    if not await self._reconnect(err):
                        await asyncio.sleep(1.0)  # the server may be restarting: keep trying, calmly
                    continue
                out.write(jsonlines.line(sample))
                next_tick += self.interval_s
                delay = next_tick - time.monotonic()
                if delay < 0:  # fell behind (a slow query): skip ticks rather than burst
                    next_tick = time.monotonic()
                    delay = 0
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                except TimeoutError:
                    pass
            try:  # a last sample, with the pool read in full: the per-route figures the run keeps are its
                out.write(jsonlines.line(await self.sample(full=True)))
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                pass  # already noted by the loop, or the next phase's reconnect notes it
            out.flush()

    async def sample(self, full: bool = False) -> dict[str, Any]:
        """One sample; ``full`` reads the pool's per-route figures too (else only once every ``_FULL_EVERY_S``)."""
        if self._conn is None:
            raise ConnectionError("collector has no database connection")
        wall, mono = time.time(), time.monotonic()
        full = full or self._full is None or mono - self._full_mono >= _FULL_EVERY_S
        fetched, pool = await asyncio.gather(
            self._conn.fetch(_ACTIVITY, self.database, self.application_name),
            self._fetch_pool(full, mono),
        )
        sample = self._activity(fetched, wall, mono)
        if pool is not None:
            sample.update(self._pool_fields(pool))
        return sample

    def _tick(self, mono: float) -> tuple[float, float]:
        """Seconds since the previous sample and since the first, on the monotonic clock."""
        if self._first_mono is None:
            self._first_mono = mono
        dt = 0.0 if self._last_mono is None else mono - self._last_mono
        self._last_mono = mono
        self._span_s += dt
        return dt, mono - self._first_mono

    def _activity(self, fetched: list[asyncpg.Record], wall: float, mono: float) -> dict[str, Any]:
        dt, elapsed = self._tick(mono)
        rows = [r for r in fetched if r["pid"] is not None]
        # Ages compare two of the server's own times (now() and state_change): right whatever its clock says.
        now: float = fetched[0]["now"]
        states: dict[str, int] = {}
        idle_ages: list[float] = []
        xact_ages = [now - r["xact_start"] for r in rows if r["xact_start"] is not None]
        for r in rows:
            state = r["state"] or "unknown"
            states[state] = states.get(state, 0) + 1
            if state in IDLE_IN_TX and r["state_change"] is not None:
                age = max(0.0, now - r["state_change"])
                idle_ages.append(age)
                if age > self.idle_threshold_s and dt:
                    key = statement_key(r["query"])
                    by_route = self.figures.idle_in_tx_long_by_route
                    by_route[key] = by_route.get(key, 0.0) + dt
                    site = statement_tags(r["query"] or "")[0].get("site")
                    if site:  # the app's line that checked the connection out, from the database's side
                        by_site = self.figures.idle_in_tx_long_by_site
                        by_site[site] = by_site.get(site, 0.0) + dt
        self.spells.observe(
            (Backend(r["pid"], r["backend_start"], r["state"], r["state_change"]) for r in rows),
            now,
            dt,
            elapsed,
            fetched[0]["abnormal_ends"],
        )
        idle, long = len(idle_ages), sum(1 for age in idle_ages if age > self.idle_threshold_s)
        self._add_up(len(rows), idle, long, idle_ages, xact_ages, dt)
        return {
            "t": wall,
            "phase": self._phase.value,
            "connections": len(rows),
            "active": states.get("active", 0),
            "idle": states.get("idle", 0),
            "idle_in_tx": idle,
            "idle_in_tx_long": long,
            "idle_in_tx_oldest_s": round(max(idle_ages, default=0.0), 4),
            "xact_oldest_s": round(max(xact_ages, default=0.0), 4),
        }

    def _add_up(
        self, connections: int, idle: int, long: int, idle_ages: list[float], xact_ages: list[float], dt: float
    ) -> None:
        f = self.figures
        f.samples += 1
        # Each sample stands for the interval before it: an unbiased estimate of connection-seconds
        # (checked against the server's own idle_in_transaction_time, which it matches within a few %).
        f.idle_in_tx_seconds_sampled += idle * dt
        f.idle_in_tx_long_seconds += long * dt
        f.idle_in_tx_max = max(f.idle_in_tx_max, idle)
        f.idle_in_tx_oldest_s = max([f.idle_in_tx_oldest_s, *idle_ages])
        f.xact_oldest_s = max([f.xact_oldest_s, *xact_ages])
        f.connections_max = max(f.connections_max, connections)
        # Time-weighted over every sample, load and cool-down: a late or skipped tick weighs what it stood for.
        f.idle_in_tx_mean = f.idle_in_tx_seconds_sampled / self._span_s if self._span_s else float(idle)
        f.idle_in_tx_unreported_s, f.idle_in_tx_unresolved_s = self.spells.unreported_s, self.spells.unresolved_s
        # What the load left behind, as of this sample: connections idle in transaction past the threshold. A
        # correct app caught between two statements at the last sample is idle for moments, not that long.
        f.idle_in_tx_after_load = long

    def _pool_fields(self, pool: dict[str, Any]) -> dict[str, Any]:
        self.last_pool = pool
        gauges, counters = pool.get("gauges", {}), pool.get("counters", {})
        fields: dict[str, Any] = {
            f"pool_{k}": v
            for k, v in gauges.items()
            if k in ("checked_out", "pending", "size", "overflow", "checked_in", "hold_open_s", "idle_in_tx_open_s")
        }
        fields.update({f"pool_{k}": v for k, v in counters.items()})
        wait, use = Histogram.from_json(pool["wait_time"]), Histogram.from_json(pool["use_time"])
        # Connection time so far, and the ended holds it is of (checkins, and reclaims by the garbage collector);
        # with the holds still open (pool_hold_open_s), the integral of checked-out connections, whose growth
        # over the load Little's law takes.
        fields["pool_hold_s"], fields["pool_checkins"] = round(use.total, 6), use.count
        for name, hist, prev in (("wait", wait, self._prev_wait), ("use", use, self._prev_use)):
            delta = hist if prev is None else hist.minus(prev)
            fields[f"pool_{name}_p95_ms"] = round(delta.percentile(95) * 1000, 3) if delta.count else None
            if name == "wait" and delta.count:  # the report's pool-wait distribution and per-second p95
                fields["wait_hist"] = delta.to_json()
        self._prev_wait, self._prev_use = wait, use
        return fields

    async def _fetch_pool(self, full: bool, mono: float) -> dict[str, Any] | None:
        if self._pool is None:
            return None
        try:
            pool = await self._pool.get("" if full else "routes=0")
        except (OSError, ValueError, TimeoutError):
            self.pool_errors += 1
            return None
        if full:
            self._full, self._full_mono = pool, mono
            return pool
        # Between full reads the per-route figures are the last full read's; everything else is this one's.
        return {**(self._full or {}), **pool}

    async def _database_stats(self) -> dict[str, float]:
        assert self._conn is not None
        row = await self._conn.fetchrow(_DATABASE, self.database)
        return {k: float(v or 0) for k, v in dict(row).items()} if row else {}

    async def finish(self) -> DbFigures:
        """Take the pg_stat_database deltas; call after the app has stopped so its backends flushed them."""
        self.spells.close()  # sampling is over: spells still open are the server's blind spot too
        self.figures.idle_in_tx_unreported_s = self.spells.unreported_s
        self.figures.idle_in_tx_unresolved_s = self.spells.unresolved_s
        if self._conn is None and not await self._reconnect(ConnectionError("closed before the end")):
            return self.figures
        try:
            end = await self._database_stats()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as err:
            self.events.append(CollectorEvent(EventKind.FINAL_STATISTICS_UNAVAILABLE, str(err)[:200]))
            return self.figures
        # pg_stat_database times are in milliseconds; sessions etc. are counts.
        deltas = {
            k: (end.get(k, 0.0) - v) / (1000.0 if k.endswith("_time") else 1.0) for k, v in self._server_start.items()
        }
        if any(v < 0 for v in deltas.values()):  # a crash or restart reset the server's counters
            self.events.append(CollectorEvent(EventKind.STATISTICS_RESET))
            return self.figures
        self.figures.server = deltas
        return self.figures

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        if self._conn is not None:
            await self._conn.close(timeout=5)
            self._conn = None


def _get_json(url: str, token: str | None = None) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=2.0) as response:
        data: dict[str, Any] = jsonlines.loads(response.read())
        return data
