"""`bench run cancelled-close` for real, and the cancellation mechanism on its own against the real database.

Shows the bad app's unshielded close losing a connection per cancelled export, the shielded twin's close losing
none, and a query cut in half by the hang-up costing its connection whatever the close does.
"""

# What we measured (SQLAlchemy 2.1.9, Starlette 1.10, anyio 4.16, asyncpg 0.32, PostgreSQL 18.6): a client
# that hangs up after the first chunk makes Starlette cancel the stream through an anyio cancel scope,
# which re-delivers the cancellation at every await, so an unshielded `await session.close()` is itself
# cancelled during its ROLLBACK; the pool invalidates the connection ("Invalidate connection ... (reason:
# CancelledError ...)"), its terminate is cancelled too and the socket force-closed, which the server
# counts as `sessions_abandoned` (not `sessions_killed`). In a 15 s run every one of 1,573
# exports cost a new connection (1,573 opened, invalidated and abandoned; good: 5 opened, 0, 0). A single
# asyncio `task.cancel()` does not do it (spent at the pause), and 2.1.9's own `AsyncSession.__aexit__`
# finishes the close in a task of its own. The pool logs the invalidation at INFO, below uvicorn's
# warning level, so `app_log.invalidations` stays 0: the pool's counter is the figure to gate on.
# The good twin is not always at 0. Where each cancellation landed was recorded for every export of 30
# runs: 4 runs lost 1-2 connections, each to a cancellation inside a page query, 3 at the load's very end
# (Locust's --stop-timeout 0 kills users mid-request) and 2 to a hang-up noticed 248-330 ms after the
# first chunk, past the 200 ms pause, at load 4.5-7.5. With 20 runs of this file (10 with a core kept
# busy): 7 of 50 runs lost 1-2, 0.16 per 1,000 exports overall, 3.6 in the worst run.

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from bench.db import server as postgres
from target_apps.bad.cancelled_close import ExportSession as UnshieldedSession
from target_apps.good.cancelled_close import ExportSession as ShieldedSession
from tests.conftest import run_bench

pytestmark = pytest.mark.e2e

ROUTE = "GET /exports/items"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, pg_home: Path) -> tuple[Any, dict[str, Any]]:
    out = tmp_path_factory.mktemp("run") / "cancelled-close"
    return run_bench("cancelled-close", out, pg_home, duration_s="8s", cooldown_s="2s")


def test_run_completes_and_its_checks_pass(runs: tuple[Any, dict[str, Any]]) -> None:
    result, summary = runs
    assert result.exit_code == 0, (result.error, summary["checks"])
    assert summary["status"] == "completed" and summary["checks"]
    assert all(check["passed"] for check in summary["checks"]), summary["checks"]
    for app in ("good", "bad"):
        figures = summary["apps"][app]
        assert set(figures["endpoints"]) == {ROUTE}
        # Hanging up is the client's choice, not a failure: every export delivered its first chunk.
        assert figures["requests"] > 100 and figures["failures"] == 0


def test_every_cancelled_close_costs_the_bad_app_a_connection(runs: tuple[Any, dict[str, Any]]) -> None:
    bad = runs[1]["apps"]["bad"]
    pool, server = bad["pool"], bad["db"]["server"]
    # Each export checks out once and is cancelled once; its close is cut short, so (almost) every
    # checkout ends in an invalidated connection, a killed backend and a fresh connect for the next one.
    assert pool["invalidated"] >= 0.9 * pool["checkouts"]
    assert pool["connections_opened"] >= 0.9 * pool["checkouts"]
    # An invalidated connection is still checked in: none of this is a garbage-collector reclaim.
    assert pool["reclaimed"] == 0
    # The server counts many of these backends as abandoned: all of them on a quiet machine, 27-51% in
    # 29 runs at load 4-7.5 on 2 cores, where the force-close often still gets its Terminate message out.
    assert server["sessions_abandoned"] >= 0.15 * pool["invalidated"]
    assert server["sessions"] >= 0.9 * pool["connections_opened"]
    # The connect happens inside checkout: every request pays it (measured: ~17 ms mean on a quiet machine,
    # 21-145 ms at load 5-7). This, not a latency ratio against the good run, is the churn's cost: the two
    # apps run one after the other, and on a shared machine the load can change between them (good's p50
    # read 134 ms against bad's 175 ms in one such run).
    assert pool["connect_ms"]["mean"] > 1


def test_the_shielded_close_keeps_its_connections(runs: tuple[Any, dict[str, Any]]) -> None:
    good, bad = (runs[1]["apps"][app] for app in ("good", "bad"))
    pool = good["pool"]
    # The shield covers the close, not a page query cut in half by the hang-up (see the mechanism tests
    # below): good loses a connection only when the cancellation lands in a query, at the load's end
    # or after the page pause on a busy machine. Measured 0-2 per run, at most 3.6 per 1,000 exports
    # (catalog entry); bad loses one per export.
    assert pool["invalidated"] <= 0.02 * pool["checkouts"], pool
    assert pool["invalidated"] <= 0.02 * bad["pool"]["invalidated"]
    # Every connection beyond the pool's first fill replaced an invalidated one, and no other backend ended.
    assert pool["connections_opened"] <= pool["capacity"] + pool["invalidated"]
    assert good["db"]["server"]["sessions_abandoned"] <= pool["invalidated"]
    assert bad["pool"]["connections_opened"] >= 10 * pool["connections_opened"]


# --- the mechanism, without HTTP ---------------------------------------------------------------------
# Each export announces where it is (the pause between pages, or a page query handed to the driver) and
# the canceller waits for that announcement, so where the cancellation lands never depends on timing.

PAUSE, QUERY = "pause", "query"
Export = Callable[[], Coroutine[Any, Any, None]]
Canceller = Callable[[Export, asyncio.Event], Awaitable[None]]


async def _cancel_scope(body: Export, landed: asyncio.Event) -> None:
    # What Starlette does to a stream whose client left: cancel the task group's scope.
    async with anyio.create_task_group() as group:
        group.start_soon(body)
        await landed.wait()
        group.cancel_scope.cancel()


async def _task_cancel(body: Export, landed: asyncio.Event) -> None:
    task = asyncio.ensure_future(body())
    await landed.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def _invalidations(engine: AsyncEngine, session_class: type[AsyncSession], cancel: Canceller, at: str) -> int:
    reasons: list[BaseException | None] = []
    event.listen(engine.sync_engine.pool, "invalidate", lambda _c, _r, err: reasons.append(err))
    landed = asyncio.Event()

    def next_page_sent(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # Fires as the statement goes to the driver: from here on the cancellation lands inside its reply.
        if "pg_sleep" in statement:
            landed.set()

    event.listen(engine.sync_engine, "before_cursor_execute", next_page_sent)

    async def export() -> None:
        async with session_class(engine) as session:
            await session.execute(text("SELECT 1"))
            if at == QUERY:
                await session.execute(text("SELECT pg_sleep(5)"))  # the next page's query, slow enough to cut
            else:
                landed.set()
                await asyncio.sleep(5)  # the pause between pages

    for _ in range(3):
        landed.clear()
        await cancel(export, landed)
    assert all(isinstance(err, asyncio.CancelledError) for err in reasons), reasons
    return len(reasons)


@pytest.mark.parametrize(
    ("session_class", "cancel", "at", "expected"),
    [
        (UnshieldedSession, _cancel_scope, PAUSE, 3),  # the anti-pattern: the close itself is cancelled
        (ShieldedSession, _cancel_scope, PAUSE, 0),    # the twin: the shield keeps the scope's cancellation out
        (AsyncSession, _cancel_scope, PAUSE, 0),       # plain `async with`: 2.1.9 runs the close to completion
        (UnshieldedSession, _task_cancel, PAUSE, 0),   # one task.cancel() is spent at the pause; close runs clean
        # A statement cut in half costs its connection whatever the close does: SQLAlchemy treats a
        # CancelledError inside execute as a disconnect. This is the good twin's only source of invalidations.
        (ShieldedSession, _cancel_scope, QUERY, 3),
        (AsyncSession, _cancel_scope, QUERY, 3),
        (UnshieldedSession, _cancel_scope, QUERY, 3),  # once per export: the close finds it invalidated already
        (ShieldedSession, _task_cancel, QUERY, 3),
    ],
    ids=["unshielded-scope", "shielded-scope", "plain-scope", "unshielded-task-cancel", "shielded-scope-in-query",
         "plain-scope-in-query", "unshielded-scope-in-query", "shielded-task-cancel-in-query"],
)
def test_which_closes_survive_cancellation(
    pg_server: postgres.Server, database: str, session_class: type[AsyncSession], cancel: Canceller, at: str,
    expected: int,
) -> None:
    async def measure() -> int:
        url = postgres.sqlalchemy_url(pg_server.dsn(database))
        engine = create_async_engine(url, pool_size=1, max_overflow=0)
        try:
            return await _invalidations(engine, session_class, cancel, at)
        finally:
            await engine.dispose()

    assert asyncio.run(measure()) == expected
