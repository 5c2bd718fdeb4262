"""The ``scopebench`` pytest plugin on a team's own tests: inner test files, run by pytester in a child pytest, drive
the paired apps in-process (httpx.AsyncClient over ASGITransport; Starlette's TestClient for the websocket) against
the embedded PostgreSQL. Each bad route fails naming its line, each good one passes, and without the plugin all pass.
"""

from __future__ import annotations

import asyncio
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.db.server import Server, create_database, drop_database, sqlalchemy_url
from tests.conftest import seed

pytest_plugins = ("pytester",)
ROOT = Path(__file__).resolve().parents[1]
BAD = ROOT / "target_apps" / "bad"

INNER = '''
import asyncio
import contextlib
import dataclasses
import time

import httpx
import pytest
from starlette.testclient import TestClient

from bench.config.appenv import AppEnv
from target_apps.common.app import create_app, scenario_modules

SETTINGS = AppEnv(dsn={dsn!r}, pool_size=3, upstream_latency_ms=150, metrics=False)
VARIANTS = pytest.mark.parametrize("variant", ["good", "bad"])


def app_for(variant, **changes):
    return create_app(variant, scenario_modules(f"target_apps.{{variant}}"), dataclasses.replace(SETTINGS, **changes))


def call(variant, method, path, hang_up=False, **changes):
    """One request through the app's lifespan; ``hang_up``: the client leaves after the first chunk."""

    async def main():
        app = app_for(variant, **changes)
        first = asyncio.Event()

        async def watched(scope, receive, send):
            async def sent(message):
                await send(message)
                if message["type"] == "http.response.body" and message.get("body"):
                    first.set()

            await app(scope, receive, sent)

        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=watched)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                request = asyncio.ensure_future(client.request(method, path))
                if hang_up:
                    await first.wait()
                    request.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await request
                    return
                response = await request
                assert response.status_code == 200, response.text

    asyncio.run(main())


@VARIANTS
def test_checkout(variant):
    call(variant, "POST", "/orders/1/checkout")


@VARIANTS
def test_accept(variant):
    call(variant, "POST", "/orders/1/accept")


@VARIANTS
def test_price(variant):
    call(variant, "GET", "/items/1/price")


@VARIANTS
def test_repeat(variant):
    call(variant, "POST", "/orders/1/repeat")


@VARIANTS
def test_chat(variant):
    call(variant, "POST", "/orders/1/chat", upstream_latency_ms=40)


@VARIANTS
@pytest.mark.scopebench(hold_ms=1000)  # the export paces its pages holding its snapshot on purpose (200 ms)
def test_export_hang_up(variant):
    call(variant, "GET", "/exports/items", hang_up=True)


@VARIANTS
def test_scoped_order(variant):
    call(variant, "POST", "/scoped/orders/1")


@VARIANTS
def test_websocket(variant):
    with TestClient(app_for(variant)) as client, client.websocket_connect("/ws/items") as socket:
        for item_id in (1, 2):
            socket.send_text(str(item_id))
            assert socket.receive_json()["id"] == item_id
            time.sleep(0.3)  # the user reads the answer before asking again
'''

# Each bad route's failure names this line of the bad app (found by its text, so edits above it do not matter).
EXPECTED = {
    "test_checkout": ("long_session.py", "ref = await charge(", "held"),
    "test_accept": ("background_task.py", "order.payment_ref = await charge(", "held"),
    "test_price": ("unclosed_session.py", "item = await session.scalar(", "reclaimed"),
    "test_repeat": ("use_after_close.py", "times = await session.scalar(", "reclaimed"),
    "test_chat": ("streaming_session.py", "await asyncio.sleep(token_s)", "held"),
    "test_export_hang_up": ("cancelled_close.py", "await self.close()", "lost"),
    "test_scoped_order": ("scoped_session.py", "await call_logged(self.app, scope, receive, send)", "reclaimed"),
    "test_websocket": ("websocket_loop.py", "item_id = await websocket.receive_text()", "held"),
}


def _line(file: str, text: str) -> int:
    lines = (BAD / file).read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, 1) if text in line)


@pytest.fixture(scope="module")
def dsn(pg_server: Server) -> Iterator[str]:
    name = f"scopebench_plugin_{uuid.uuid4().hex[:8]}"
    asyncio.run(create_database(pg_server, name))
    seed(pg_server, name)
    yield sqlalchemy_url(pg_server.dsn(name))
    asyncio.run(drop_database(pg_server, name))


def _run(pytester: pytest.Pytester, source: str, *args: str) -> dict[str, str]:
    """Run the inner file in a child pytest; each test's outcome: "passed", or its failure or error message."""
    pytester.makepyfile(test_inner=source)
    pytester.runpytest_subprocess(
        "-p", "no:locust", "-p", "no:cacheprovider", "--junitxml=inner.xml", *args, timeout=600
    )
    outcomes = {}
    for case in ET.parse(pytester.path / "inner.xml").getroot().iter("testcase"):
        problems = [child for child in case if child.tag in ("failure", "error")]
        outcomes[case.get("name", "")] = "\n".join(p.get("message", "") + (p.text or "") for p in problems) or "passed"
    return outcomes


def test_bad_routes_fail_naming_their_line_and_good_routes_pass(pytester: pytest.Pytester, dsn: str) -> None:
    outcomes = _run(pytester, INNER.format(dsn=dsn), "-p", "scopebench")
    assert len(outcomes) == 16
    for name, (file, text, kind) in EXPECTED.items():
        assert outcomes[f"{name}[good]"] == "passed", (name, outcomes[f"{name}[good]"])
        failure = outcomes[f"{name}[bad]"]
        site = f"target_apps/bad/{file}:{_line(file, text)}"
        assert re.search(rf"{kind} at (\S*/)?{re.escape(site)} in ", failure), (name, site, failure)


def test_without_the_plugin_every_route_passes(pytester: pytest.Pytester, dsn: str) -> None:
    """The failures above are the plugin's: off (its default), the same tests all pass."""
    outcomes = _run(pytester, INNER.format(dsn=dsn))
    assert set(outcomes.values()) == {"passed"} and len(outcomes) == 16


OWN_CODE = """
import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

DSN = {dsn!r}


@pytest.fixture(scope="module")
def engine():
    return create_async_engine(DSN, pool_size=2)


def test_session_across_a_sleep(engine):
    async def main():
        async with AsyncSession(engine) as session:
            await session.execute(text("select 1"))
            await asyncio.sleep(0.2)  # stands for an HTTP call
        await engine.dispose()

    asyncio.run(main())


def test_short_session(engine):
    async def main():
        async with AsyncSession(engine) as session:
            await session.execute(text("select 1"))
        await asyncio.sleep(0.2)
        await engine.dispose()

    asyncio.run(main())


def test_returned_idle_in_transaction():
    async def main():
        engine = create_async_engine(DSN, pool_reset_on_return=None)
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            await raw.driver_connection.execute("BEGIN")
        await engine.dispose()

    asyncio.run(main())


@pytest.mark.scopebench(off=True)
def test_marked_off(engine):
    test_session_across_a_sleep(engine)


KEPT = []


def test_kept_in_a_global():
    async def main():
        engine = create_async_engine(DSN)
        session = AsyncSession(engine)
        await session.execute(text("select 1"))
        KEPT.append(session)

    asyncio.run(main())


@pytest.fixture
def loop_and_session():
    loop = asyncio.new_event_loop()
    engine = create_async_engine(DSN)
    session = AsyncSession(engine)
    yield loop, session
    loop.run_until_complete(session.close())
    loop.run_until_complete(engine.dispose())
    loop.close()


def test_session_closed_by_its_fixture(loop_and_session):
    loop, session = loop_and_session
    assert loop.run_until_complete(session.scalar(text("select 1"))) == 1
"""


def test_the_tests_own_code_and_its_options(pytester: pytest.Pytester, dsn: str) -> None:
    outcomes = _run(pytester, OWN_CODE.format(dsn=dsn), "--scopebench", "--scopebench-hold-ms", "100")
    written = (pytester.path / "test_inner.py").read_text(encoding="utf-8").splitlines()
    sleep_line = written.index("            await asyncio.sleep(0.2)  # stands for an HTTP call") + 1
    assert f"held at test_inner.py:{sleep_line}" in outcomes["test_session_across_a_sleep"]
    assert "100 ms threshold" in outcomes["test_session_across_a_sleep"]
    assert outcomes["test_short_session"] == "passed"
    assert "idle in transaction at test_inner.py:" in outcomes["test_returned_idle_in_transaction"]
    assert outcomes["test_marked_off"] == "passed"
    kept_line = written.index(
        '        await session.execute(text("select 1"))', written.index("def test_kept_in_a_global():")
    )
    assert re.search(
        rf"not returned at test_inner.py:{kept_line + 1} in .*idle in transaction", outcomes["test_kept_in_a_global"]
    ), outcomes["test_kept_in_a_global"]
    assert outcomes["test_session_closed_by_its_fixture"] == "passed"
