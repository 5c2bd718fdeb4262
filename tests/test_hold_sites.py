"""Hold sites against a real PostgreSQL: the line behind each hold past the threshold, idle or in the database,
leaked or still out, on statements too; and the harness's reading of them (summary, multi-worker sum, compare).
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import inspect
import itertools
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_scoped_session,
    async_sessionmaker,
    create_async_engine,
)

from bench.analysis.compare import compare, load_side
from bench.analysis.holdsites import hold_sites, new_sites
from bench.db import server as postgres
from bench.instrument import PoolMetrics, RouteTagMiddleware, TimedAsyncPool, instrument, tag_statements
from bench.instrument.frames import RESOLVER
from bench.instrument.shared import merge
from bench.render.compare_render import render_json, render_markdown, render_text
from bench.run.collector import statement_key, statement_tags

Sessions = async_sessionmaker[AsyncSession]


def _line(fn: Callable[..., Any], marker: str) -> str:
    """``test_hold_sites.py:<n>``: the line of ``fn`` that carries ``marker``."""
    lines, first = inspect.getsourcelines(fn)
    return f"test_hold_sites.py:{first + next(i for i, ln in enumerate(lines) if marker in ln)}"


def _marker(marker: str) -> str:
    source = inspect.getsource(inspect.getmodule(_marker)).splitlines()  # type: ignore[arg-type]
    return f"test_hold_sites.py:{1 + next(i for i, ln in enumerate(source) if ln.endswith(marker))}"


def _test_name() -> str:
    return inspect.stack()[1].function


def _rows(metrics: PoolMetrics) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = metrics.snapshot()["hold_sites"]["sites"]
    return rows


async def _helper(session: AsyncSession) -> object:
    return await session.scalar(text("select 1"))  # HELPER-QUERY


async def _upstream() -> None:
    """Slow work of the app's own, like a payment call: the task's innermost frame, not the one holding."""
    await asyncio.sleep(0.3)


async def _culprit(sessions: Sessions) -> None:
    async with sessions() as session:
        await _helper(session)  # CULPRIT-CALL
        await _upstream()  # CULPRIT-AWAIT


async def _innocent(sessions: Sessions) -> None:
    async with sessions() as session:
        await _helper(session)


async def _in_database(sessions: Sessions) -> None:
    async with sessions() as session:
        await session.execute(text("select pg_sleep(0.3)"))  # SLOW-QUERY


async def _leaky(sessions: Sessions) -> None:
    session = sessions()
    await session.scalar(text("select 2"))  # LEAK-CHECKOUT


async def _short_only(sessions: Sessions) -> None:
    async with sessions() as session:
        await session.scalar(text("select 4"))


async def _pages(sessions: Sessions) -> AsyncIterator[int]:
    async with sessions() as session:
        await session.scalar(text("select 3"))
        for page in range(3):
            await asyncio.sleep(0.1)  # PAGE-PAUSE
            yield page


async def _stream(sessions: Sessions) -> None:
    async for _ in _pages(sessions):
        pass


class _UnshieldedSession(AsyncSession):
    """cancelled-close's session: its close is cut short when the cancellation that ended its block comes again."""

    async def __aexit__(self, *exc: object) -> None:
        await self.close()  # LOST-CLOSE


async def _export(engine: AsyncEngine, started: asyncio.Event) -> None:
    async with _UnshieldedSession(engine) as session:
        await session.scalar(text("select 6"))
        started.set()
        await asyncio.sleep(5)


_request_id: contextvars.ContextVar[int] = contextvars.ContextVar("test_request_id", default=0)
_ids = itertools.count(1)


async def _scoped_order(registry: async_scoped_session[AsyncSession]) -> None:
    """Shared code that uses the registry's session: the checkout is here, the scope is the middleware's."""
    await registry.scalar(text("select 7"))  # SCOPED-CHECKOUT


async def _plain_leak(sessions: Sessions) -> None:
    await sessions().scalar(text("select 8"))  # PLAIN-LEAK


class _ForgetfulScope:
    """Pure ASGI middleware: a scope id per request and no ``remove()``, as in scoped-session's bad app."""

    def __init__(self, handler: Callable[[], Any]) -> None:
        self.handler = handler

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        token = _request_id.set(next(_ids))
        try:
            await self.handler()  # SCOPE-OPEN
        finally:
            _request_id.reset(token)


def _engine(server: postgres.Server, database: str) -> AsyncEngine:
    url = postgres.sqlalchemy_url(server.dsn(database))
    return create_async_engine(url, poolclass=TimedAsyncPool, pool_size=20)


def test_the_holding_line_is_the_callers_await_not_the_shared_helper(pg_server: postgres.Server, database: str) -> None:
    async def scenario() -> PoolMetrics:
        engine = _engine(pg_server, database)
        metrics = instrument(engine)
        sessions = async_sessionmaker(engine)
        try:
            await asyncio.gather(*(_innocent(sessions) for _ in range(13)))  # connections open, codecs loaded
            await asyncio.gather(*(_culprit(sessions) for _ in range(3)), *(_innocent(sessions) for _ in range(10)))
            return metrics
        finally:
            await engine.dispose()

    rows = _rows(asyncio.run(scenario()))
    # The innocent caller never idles holding a connection. (On a busy machine a new connection's first statement,
    # asyncpg loading its type codecs, can pass 50 ms: in the database, not idle.)
    assert [r for r in rows if r["function"] != "_culprit" and r["idle_s"] > 0] == [], rows
    (row,) = [r for r in rows if r["function"] == "_culprit"]
    assert row["site"].endswith(_line(_culprit, "CULPRIT-AWAIT")) and row["function"] == "_culprit"
    assert row["code"] == "await _upstream()  # CULPRIT-AWAIT" and row["returned"] is False
    assert row["checkout_site"].endswith(_line(_helper, "HELPER-QUERY")) and row["checkout_function"] == "_helper"
    # The checkout line, then its callers (then the event loop's caller, this test: pytest is no library to skip).
    assert [s.split(" in ")[1] for s in row["stack"][:3]] == ["_helper", "_culprit", _test_name()]
    assert (
        row["stack"][1].startswith(row["site"].rsplit(":", 1)[0]) and _line(_culprit, "CULPRIT-CALL") in row["stack"][1]
    )
    # Three holds of a 300 ms sleep, idle but for a query and a rollback, sampled every 25 ms.
    assert row["holds"] == 3 and 0.85 <= row["held_s"] < 2.0 and row["idle_s"] >= 0.75 * row["held_s"]
    assert row["open"] == 0 and row["reclaimed"] == 0


def test_a_hold_in_the_database_is_held_not_idle(pg_server: postgres.Server, database: str) -> None:
    async def scenario() -> PoolMetrics:
        engine = _engine(pg_server, database)
        metrics = instrument(engine)
        try:
            await _in_database(async_sessionmaker(engine))
            return metrics
        finally:
            await engine.dispose()

    (row,) = _rows(asyncio.run(scenario()))
    assert row["site"].endswith(_line(_in_database, "SLOW-QUERY")) and row["held_s"] >= 0.3
    assert row["idle_s"] <= 0.2 * row["held_s"], row


@pytest.mark.filterwarnings("ignore:The garbage collector is trying to clean up")
def test_a_leak_names_its_checkout_line_and_age_then_its_reclaim(pg_server: postgres.Server, database: str) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        engine = _engine(pg_server, database)
        metrics = instrument(engine)
        try:
            # Its own task, which ends: nothing of the app's is left holding the connection.
            await asyncio.create_task(_leaky(async_sessionmaker(engine)))
            await asyncio.sleep(0.25)
            still_out = _rows(metrics)
            gc.collect()  # the session's reference cycle goes; SQLAlchemy's finalizer detaches its connection
            await asyncio.sleep(0.05)
            return still_out, _rows(metrics)
        finally:
            await engine.dispose()

    still_out, reclaimed = asyncio.run(scenario())
    (row,) = still_out
    assert row["site"].endswith(_line(_leaky, "LEAK-CHECKOUT")) and row["site"] == row["checkout_site"]
    assert row["returned"] is True and row["open"] == 1 and 0.25 <= row["open_age_s"] < 2
    assert row["holds"] == 1 and row["idle_s"] >= 0.2
    (row,) = reclaimed
    assert row["reclaimed"] == 1 and row["open"] == 0 and row["returned"] is True and row["held_s"] >= 0.25


def test_a_connection_lost_in_a_cancelled_close_is_placed_at_the_close(
    pg_server: postgres.Server, database: str
) -> None:
    """Starlette cancels a hung-up stream through an anyio cancel scope, which cancels every await inside it again:
    the close's ROLLBACK too, so the connection is invalidated. The hold is short, yet recorded at the close."""

    async def scenario() -> PoolMetrics:
        engine = _engine(pg_server, database)
        metrics = instrument(engine, long_hold_ms=10_000)  # far past the hold: it is recorded for its loss
        try:
            async with engine.connect():  # the pool's first connection, codecs loaded: not the export's
                pass
            started = asyncio.Event()
            async with anyio.create_task_group() as group:
                group.start_soon(_export, engine, started)
                await started.wait()
                group.cancel_scope.cancel()
            return metrics
        finally:
            await engine.dispose()

    metrics = asyncio.run(scenario())
    (row,) = _rows(metrics)
    assert metrics.invalidated == 1 and row["lost"] == 1 and row["holds"] == 1, row
    assert row["site"].endswith(_line(_UnshieldedSession.__aexit__, "LOST-CLOSE")) and row["returned"] is False
    assert row["function"] == "_UnshieldedSession.__aexit__" and row["checkout_function"] == "_export"
    assert 0 < row["held_s"] < 10, row


@pytest.mark.filterwarnings("ignore:The garbage collector is trying to clean up")
def test_a_scoped_sessions_leak_is_placed_at_the_middleware_that_opened_its_scope(
    pg_server: postgres.Server, database: str
) -> None:
    """The registry keeps the session after the code that used it returned: its scope is the middleware's, where
    ``remove()`` belongs. A plain session leaked under the same middleware stays at its checkout line."""

    async def scenario() -> list[dict[str, Any]]:
        engine = _engine(pg_server, database)
        metrics = instrument(engine)
        sessions = async_sessionmaker(engine)
        registry = async_scoped_session(sessions, scopefunc=_request_id.get)
        scopes: list[int] = []

        async def order() -> None:
            scopes.append(_request_id.get())
            await _scoped_order(registry)

        try:
            await asyncio.create_task(_ForgetfulScope(order)(None, None, None))
            await asyncio.create_task(_ForgetfulScope(lambda: _plain_leak(sessions))(None, None, None))
            await asyncio.sleep(0.25)
            return _rows(metrics)
        finally:
            _request_id.set(scopes[0])  # the forgotten scope, removed now
            await registry.remove()
            # The plain leak is reclaimed here, on this loop: a reclaim left to a later collection (inside Python
            # 3.11's ast.parse, say, which a collection then can break: CPython gh-106905) is no test's to leave.
            gc.collect()
            await asyncio.sleep(0.05)
            await engine.dispose()

    rows = {row["checkout_function"]: row for row in asyncio.run(scenario())}
    scoped, plain = rows["_scoped_order"], rows["_plain_leak"]
    assert scoped["site"].endswith(_line(_ForgetfulScope.__call__, "SCOPE-OPEN")), scoped
    assert scoped["function"] == "_ForgetfulScope.__call__" and scoped["code"] == "await self.handler()  # SCOPE-OPEN"
    assert scoped["checkout_site"].endswith(_line(_scoped_order, "SCOPED-CHECKOUT"))
    assert scoped["returned"] is True and scoped["open"] == 1 and scoped["idle_s"] >= 0.2
    assert plain["site"] == plain["checkout_site"] and plain["site"].endswith(_line(_plain_leak, "PLAIN-LEAK"))
    assert plain["returned"] is True and plain["open"] == 1


def test_an_async_generator_holds_at_its_own_await(pg_server: postgres.Server, database: str) -> None:
    """A StreamingResponse's body is an async generator: the task waits in ``__anext__``, followed into it."""

    async def scenario() -> PoolMetrics:
        engine = _engine(pg_server, database)
        metrics = instrument(engine)
        try:
            await _stream(async_sessionmaker(engine))
            return metrics
        finally:
            await engine.dispose()

    (row,) = _rows(asyncio.run(scenario()))
    assert row["site"].endswith(_line(_pages, "PAGE-PAUSE")) and row["function"] == "_pages"
    assert row["returned"] is False and row["idle_s"] >= 0.8 * row["held_s"]


def test_short_holds_resolve_nothing_and_the_switch_turns_sites_off(pg_server: postgres.Server, database: str) -> None:
    async def scenario() -> tuple[PoolMetrics, PoolMetrics]:
        engine, plain = _engine(pg_server, database), _engine(pg_server, database)
        metrics = instrument(engine, statement_tags=False)
        unlooked = instrument(plain, long_hold_ms=None)
        try:
            for _ in range(20):
                await _short_only(async_sessionmaker(engine))
            await _culprit(async_sessionmaker(plain))
            return metrics, unlooked
        finally:
            await engine.dispose()
            await plain.dispose()

    metrics, unlooked = asyncio.run(scenario())
    assert _rows(metrics) == [] and metrics.checkouts == 20
    assert not [position for position in RESOLVER._sites if position[0] is _short_only.__code__]
    assert "hold_sites" not in unlooked.snapshot() and unlooked.sites is None
    assert hold_sites(unlooked.snapshot()) is None and hold_sites(metrics.snapshot()) == []


def test_statements_carry_the_route_and_checkout_line_to_pg_stat_activity(
    pg_server: postgres.Server, database: str
) -> None:
    class _Route:
        path = "/it's/{id}"

    async def scenario() -> str:
        engine = _engine(pg_server, database)
        instrument(engine)
        tag_statements(engine)  # the README's old lines called it too: still one comment
        sessions = async_sessionmaker(engine)
        idle = asyncio.Event()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            async with sessions() as session:
                await session.scalar(text("select 5"))  # TAGGED-QUERY
                idle.set()
                await asyncio.sleep(0.5)

        scope = {"type": "http", "method": "POST", "path": "/it's/1", "route": _Route()}
        task = asyncio.create_task(RouteTagMiddleware(app)(scope, None, None))  # type: ignore[arg-type]
        await idle.wait()
        watcher = await asyncpg.connect(pg_server.dsn(database))
        try:
            query: str = await watcher.fetchval(
                "select query from pg_stat_activity where state = 'idle in transaction' and datname = $1", database
            )
        finally:
            await watcher.close()
            await task
            await engine.dispose()
        return query

    query = asyncio.run(scenario())
    tags, statement = statement_tags(query)
    assert query.startswith("/*route=") and query.count("/*") == 1 and statement == "select 5"
    assert tags["route"] == "POST /it's/{id}" and statement_key(query) == "POST /it's/{id}"
    assert tags["site"].endswith(_marker("# TAGGED-QUERY"))


def test_workers_rows_add_up_and_the_summary_shares_them() -> None:
    def row(site: str, held: float, idle: float, **more: Any) -> dict[str, Any]:
        return {
            "route": "POST /x",
            "site": site,
            "function": "f",
            "code": "await g()",
            "returned": False,
            "checkout_site": "app.py:3",
            "checkout_function": "f",
            "checkout_code": "await q()",
            "stack": ["app.py:3 in f"],
            "holds": 2,
            "held_s": held,
            "idle_s": idle,
            "reclaimed": 0,
            "open": 0,
            "open_age_s": 0.0,
            **more,
        }

    def snapshot(*rows: dict[str, Any]) -> dict[str, Any]:
        return {
            "time": 1.0,
            "gauges": {},
            "counters": {},
            "wait_time": {},
            "create_time": {},
            "use_time": {},
            "hold_sites": {"threshold_s": 0.05, "dropped": 0, "sites": list(rows)},
        }

    merged = merge(
        [
            snapshot(row("app.py:9", 3.0, 2.5, open=1, open_age_s=4.0)),
            snapshot(row("app.py:9", 1.0, 0.5, open_age_s=0.0), row("app.py:7", 4.0, 1.0)),
        ]
    )
    first, second = merged["hold_sites"]["sites"]
    assert first["site"] == "app.py:9" and first["holds"] == 4 and first["held_s"] == 4.0 and first["idle_s"] == 3.0
    assert first["open"] == 1 and first["open_age_s"] == 4.0 and second["site"] == "app.py:7"
    summary = hold_sites(merged)
    assert summary is not None and [r["share"] for r in summary] == [0.5, 0.5]

    # bench compare: a site is new by its file, function, code and route, not its line (an edit above moves it).
    base = {"pool": {"hold_sites": [row("app.py:9", 4.0, 3.0)]}}
    moved = {
        "pool": {
            "hold_sites": [
                row("app.py:12", 4.0, 3.0),
                row("app.py:30", 5.0, 5.0, code="await h()"),
                row("app.py:40", 0.2, 0.2, code="await k()"),
            ]
        }
    }
    assert [s.site for s in new_sites("bad", base, moved)] == ["app.py:30"]  # 0.2 s held is a stray hold
    assert new_sites("bad", {"pool": {"hold_sites": None}}, moved) == []


def test_bench_compare_lists_the_sites_new_in_the_current_run(tmp_path: Path) -> None:
    data = Path(__file__).resolve().parent / "data" / "compare"
    sides = []
    for name, rows in (
        ("base", []),
        (
            "current",
            [
                {
                    "site": "app/orders.py:41",
                    "function": "checkout",
                    "code": "await upstream.pay()",
                    "route": "POST /orders/{item_id}/checkout",
                    "held_s": 51.9,
                    "idle_s": 51.2,
                }
            ],
        ),
    ):
        summary = json.loads((data / f"{name}.json").read_text(encoding="utf-8"))
        summary["apps"]["bad"]["pool"]["hold_sites"] = rows
        (tmp_path / f"{name}.json").write_text(json.dumps(summary), encoding="utf-8")
        sides.append(load_side(tmp_path / f"{name}.json"))
    result = compare(*sides)
    line = "bad: app/orders.py:41 in checkout — await upstream.pay() (POST /orders/{item_id}/checkout): 51.2 s idle"
    assert line in render_text(result) and "new in the current run" in render_text(result)
    assert line in render_markdown(result)
    assert json.loads(render_json(result))["new_sites"][0]["site"] == "app/orders.py:41"
    assert "new in the current run" not in render_text(compare(sides[1], sides[1]))


def test_what_runs_the_app_is_not_the_apps_code() -> None:
    """uvicorn started from its command line runs the app under click, and serves it through h11 or websockets:
    their frames are on a hold's stack, but none is a line of the app's (a long-session stack once listed
    click/core.py beside the app's middleware). The app's own files stay the app's."""
    import click
    import h11

    from bench.instrument.frames import APP, LIBRARY, Classifier

    classifier = Classifier()
    for module in (click.core, h11._connection, anyio, asyncio.tasks):
        assert classifier.kind(inspect.getfile(module)) == LIBRARY, module
    assert classifier.kind(__file__) == APP
