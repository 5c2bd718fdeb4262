"""Each ``bench lint`` rule on small code written here: what it reports, where, and what it leaves alone.

Lines a rule must report carry ``# expect: SB00N``; every other line must stay silent (the rules say nothing
where they cannot decide).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bench.lint import LintConfig, lint_paths
from tests.test_lint import _expected

HEADER = """
import asyncio
import threading
from contextvars import ContextVar

import anyio
from fastapi import Depends, WebSocket
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session, async_sessionmaker

SessionLocal = async_sessionmaker(expire_on_commit=False)
"""

CASES = {
    "SB001 branches and loops": """
async def maybe(flag: bool) -> None:
    async with SessionLocal() as session:
        if flag:
            await session.execute(text("select 1"))
        await asyncio.sleep(1)  # expect: SB001


async def after_commit() -> None:
    async with SessionLocal() as session:
        await session.execute(text("select 1"))
        await session.commit()
        await asyncio.sleep(1)


async def before_first_query() -> None:
    async with SessionLocal() as session:
        await asyncio.sleep(1)
        await session.execute(text("select 1"))


async def paced() -> None:
    async with SessionLocal() as session:
        for _ in range(3):
            await asyncio.sleep(1)  # expect: SB001
            await session.execute(text("select 1"))
""",
    "SB002 tasks and threads": """
async def spawn(session: AsyncSession) -> None:
    await session.execute(text("select 1"))
    asyncio.create_task(audit(session))  # expect: SB002
    threading.Thread(target=audit_sync, args=(session,)).start()  # expect: SB002
    await asyncio.to_thread(audit_sync, session)  # expect: SB002
    asyncio.create_task(audit_alone(1))


async def closure(session: AsyncSession) -> None:
    async def later() -> None:
        await session.commit()

    asyncio.create_task(later())  # expect: SB002


async def audit(session: AsyncSession) -> None: ...


def audit_sync(session: AsyncSession) -> None: ...


async def audit_alone(order_id: int) -> None: ...
""",
    "SB003 websocket loops": """
async def feed(websocket: WebSocket) -> None:
    async with SessionLocal() as session:  # expect: SB003
        async for message in websocket.iter_text():
            await session.execute(text("select 1"))


async def feed_ok(websocket: WebSocket) -> None:
    async for message in websocket.iter_text():
        async with SessionLocal() as session:
            await session.execute(text("select 1"))


async def feed_unused(websocket: WebSocket) -> None:
    async with SessionLocal() as session:
        while True:
            await websocket.receive_text()


async def get_session():
    async with SessionLocal() as session:
        yield session


async def feed_dependency(websocket: WebSocket, session: AsyncSession = Depends(get_session)) -> None:  # expect: SB003
    while True:
        await websocket.receive_text()
        await session.execute(text("select 1"))
""",
    "SB004 and SB005": """
async def returned() -> AsyncSession:
    session = SessionLocal()
    return session


async def inline() -> None:
    await SessionLocal().execute(text("select 1"))  # expect: SB004


async def begin_block() -> None:
    session = SessionLocal()
    async with session.begin():
        await session.execute(text("select 1"))


async def used_by_helper() -> None:
    async with SessionLocal() as session:
        await session.execute(text("select 1"))
    await count(session)  # expect: SB005


async def count(session: AsyncSession) -> int:
    return await session.scalar(text("select count(*) from orders"))
""",
    "SB006 shields": """
class Shielded(AsyncSession):
    async def __aexit__(self, *exc) -> None:
        with anyio.CancelScope(shield=True):
            await self.close()


class ShieldedByAsyncio(AsyncSession):
    async def __aexit__(self, *exc) -> None:
        await asyncio.shield(self.close())


class UnitOfWork:
    def __init__(self) -> None:
        self.session = SessionLocal()

    async def __aexit__(self, *exc) -> None:
        await self.session.rollback()  # expect: SB006
""",
    "SB007 scopes": """
_request: ContextVar[int] = ContextVar("request")


def _thread_scope() -> str:
    return "all"


per_thread = async_scoped_session(SessionLocal, scopefunc=threading.get_ident)  # expect: SB007
constant = async_scoped_session(SessionLocal, scopefunc=_thread_scope)  # expect: SB007
per_request = async_scoped_session(SessionLocal, scopefunc=_request.get)


async def middleware(app, scope, receive, send) -> None:
    token = _request.set(1)
    await app(scope, receive, send)
    await per_request.remove()  # expect: SB007
    _request.reset(token)


async def middleware_ok(app, scope, receive, send) -> None:
    token = _request.set(1)
    try:
        await app(scope, receive, send)
    finally:
        await per_request.remove()
        _request.reset(token)
""",
}


@pytest.mark.parametrize("body", list(CASES.values()), ids=list(CASES))
def test_rule_reports_what_it_can_decide_and_nothing_else(tmp_path: Path, body: str) -> None:
    source = textwrap.dedent(HEADER) + textwrap.dedent(body)
    path = tmp_path / "case.py"
    path.write_text(source, encoding="utf-8")
    findings = lint_paths([path], LintConfig(), tmp_path).findings
    assert {(f.rule, f.line) for f in findings} == _expected(source)
