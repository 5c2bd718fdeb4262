"""scoped-session for real: the apps' middlewares against PostgreSQL under uvicorn, then one `bench run`.

The fast tests look inside the registry; the run shows what the bad app's scoping costs under load.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bench.db import server as postgres
from target_apps.bad.app import create as create_bad
from target_apps.bad.scoped_session import registries_of
from target_apps.common.models import create_schema
from target_apps.good.app import create as create_good
from target_apps.good.scoped_session import registry_of
from tests.conftest import run_bench

ORDERS = "POST /scoped/orders/{item_id}"
SHARED = "POST /scoped/shared/orders/{item_id}"
POOL_SIZE = 5


# --- fast: the middlewares, one request at a time ---------------------------------------------------


@pytest.fixture
def app_env(pg_server: postgres.Server, database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A seeded database and the BENCH_APP_* settings pointing at it; yields the plain asyncpg DSN."""
    url = postgres.sqlalchemy_url(pg_server.dsn(database))
    asyncio.run(_seed(url))
    monkeypatch.setenv("BENCH_APP_DSN", url)
    monkeypatch.setenv("BENCH_APP_POOL_SIZE", str(POOL_SIZE))
    monkeypatch.setenv("BENCH_APP_MAX_OVERFLOW", "0")
    monkeypatch.setenv("BENCH_APP_POOL_TIMEOUT", "2")
    yield pg_server.dsn(database)


async def _seed(url: str) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await create_schema(conn)
    finally:
        await engine.dispose()


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """The app under a real uvicorn on a free port, lifespan included; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                raise RuntimeError(f"uvicorn did not start: {task.exception()!r}")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


async def post(url: str) -> tuple[int, dict[str, Any]]:
    def send() -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, {}

    return await asyncio.to_thread(send)


async def idle_in_transaction(dsn: str, application_name: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state LIKE 'idle in transaction%'",
            application_name,
        )
        return count
    finally:
        await conn.close()


def checked_out(app: FastAPI) -> int:
    count: int = app.state.bench.engine.sync_engine.pool.checkedout()
    return count


async def settle(done: Callable[[], bool], timeout_s: float = 2.0) -> None:
    """Wait until ``done()`` or the timeout: the middleware's finally runs after the client has the response."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not done() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)


def test_good_middleware_leaves_the_registry_empty(app_env: str) -> None:
    async def scenario() -> None:
        app = create_good()
        async with serving(app) as base:
            paths = [f"{base}/scoped/orders/{i}" for i in range(1, 7)] + [
                f"{base}/scoped/shared/orders/{i}" for i in range(7, 13)]
            concurrent = await asyncio.gather(*(post(path) for path in paths))
            one_by_one = [await post(path) for path in paths[:3]]
            sessions = registry_of(app).registry.registry
            await settle(lambda: not sessions)
            assert [status for status, _ in concurrent + one_by_one] == [200] * 15
            assert {body["item_id"] for _, body in concurrent} == set(range(1, 13))
            assert len(sessions) == 0
            assert checked_out(app) == 0
            assert await idle_in_transaction(app_env, "scopebench-good") == 0

    asyncio.run(scenario())


def test_bad_middleware_keeps_every_session_and_its_connection(app_env: str) -> None:
    async def scenario() -> None:
        app = create_bad()
        async with serving(app) as base:
            for item_id in (1, 2, 3):
                status, _body = await post(f"{base}/scoped/orders/{item_id}")
                assert status == 200
            leaked = registries_of(app).orders.registry.registry
            await settle(lambda: len(leaked) < 3, timeout_s=0.5)
            try:
                # Sequential requests, nothing running: still one session and one connection per request.
                assert len(leaked) == 3
                assert checked_out(app) == 3
                assert await idle_in_transaction(app_env, "scopebench-bad") == 3
            finally:
                for session in list(leaked.values()):
                    await session.close()

    asyncio.run(scenario())


# --- end to end: one `bench run scoped-session`, good then bad --------------------------------------


@pytest.fixture(scope="module")
def both_run(tmp_path_factory: pytest.TempPathFactory, pg_home: Path) -> tuple[Any, dict[str, Any]]:
    out = tmp_path_factory.mktemp("run") / "scoped-session"
    return run_bench("scoped-session", out, pg_home, duration_s="8s", cooldown_s="2s")


@pytest.fixture(scope="module")
def apps(both_run: tuple[Any, dict[str, Any]]) -> Callable[[str], dict[str, Any]]:
    summary = both_run[1]
    return lambda name: summary["apps"][name]


@pytest.mark.e2e
def test_run_completes_and_its_checks_pass(both_run: tuple[Any, dict[str, Any]]) -> None:
    result, summary = both_run
    assert result.exit_code == 0, result.error
    assert summary["status"] == "completed" and summary["scenario"] == "scoped-session"
    assert summary["checks"] and all(check["passed"] for check in summary["checks"]), summary["checks"]
    assert summary["config"]["pool_size"] + summary["config"]["max_overflow"] == POOL_SIZE


@pytest.mark.e2e
def test_bad_leaks_its_pool_for_good(apps: Callable[[str], dict[str, Any]]) -> None:
    good, bad = apps("good"), apps("bad")
    # Every connection is still idle in transaction at the end of the cool-down, held since the first second.
    assert bad["db"]["idle_in_tx_after_load"] == POOL_SIZE
    assert bad["db"]["idle_in_tx_oldest_s"] >= 5.0
    assert bad["pool"]["timeouts"] >= 1 and bad["app_log"]["timeouts"] >= 1
    # The route that forgets remove() served at most one request per connection, then only timed out.
    assert 1 <= bad["integrity"]["by_route"][ORDERS]["acknowledged_writes"] <= POOL_SIZE
    assert bad["endpoints"][ORDERS]["failures"] >= 1
    assert good["db"]["idle_in_tx_after_load"] == 0 and good["db"]["idle_in_tx_oldest_s"] < 1.0
    assert good["pool"]["timeouts"] == 0 and good["app_log"]["timeouts"] == 0
    assert good["integrity"]["by_route"][ORDERS]["acknowledged_writes"] > 3 * POOL_SIZE


@pytest.mark.e2e
def test_bad_shares_one_session_between_requests(apps: Callable[[str], dict[str, Any]]) -> None:
    good, bad = apps("good"), apps("bad")
    assert bad["app_log"]["concurrent_use"] >= 1 and bad["app_log"]["illegal_state"] >= 1
    shared = bad["endpoints"][SHARED]
    assert shared["failures"] >= 0.8 * shared["requests"] > 0
    assert good["app_log"]["concurrent_use"] == good["app_log"]["illegal_state"] == 0
    assert good["app_log"]["unhandled_errors"] == 0 and good["failures"] == 0
    assert good["endpoints"][SHARED]["requests"] > 10 * POOL_SIZE


@pytest.mark.e2e
def test_acknowledged_writes_are_in_the_database(apps: Callable[[str], dict[str, Any]]) -> None:
    # The handler reads created_at back after its commit, so an order whose row was rolled back under
    # it fails with 500 rather than being acknowledged: bad loses requests, not acknowledged writes.
    for app in ("good", "bad"):
        integrity = apps(app)["integrity"]
        assert integrity["lost_writes"] == 0, (app, integrity)
        for route in (ORDERS, SHARED):
            by_route = integrity["by_route"][route]
            assert by_route["rows_written"] >= by_route["acknowledged_writes"], (app, route, by_route)
    assert apps("good")["integrity"]["acknowledged_writes"] > 50
