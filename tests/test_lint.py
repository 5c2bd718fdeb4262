"""``bench lint``: every ANTI-PATTERN marker of the bad app found by its rule, none in the good app, and code written
here in the styles real services use (a contextvar session middleware, a yield dependency, a service helper that
receives the session, a session passed through two calls before the await), wrong and right.

Each snippet marks the lines a rule must report with ``# expect: SB00N``; every other line must stay silent.
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import pytest

from bench.lint import RULES, Finding, LintConfig, lint_paths, load_config
from bench.lint.config import find_pyproject

ROOT = Path(__file__).resolve().parents[1]
_MARKER = re.compile(r"#\s*(ANTI-PATTERN|CORRECT)\((?P<id>[a-z-]+)\)")
_EXPECT = re.compile(r"#\s*expect:\s*(?P<rules>SB\d{3}(?:\s*,\s*SB\d{3})*)")
RULE_OF_SCENARIO = {rule.scenario: rule.id for rule in RULES.values()}


def _repo_config() -> LintConfig:
    return load_config(find_pyproject(ROOT))


def _marked_region(source: str, tree: ast.Module, marker_line: int) -> tuple[int, int]:
    """From the marker to the end of the code it annotates: the largest node (statement or keyword argument)
    starting on the first code line after the marker's comment."""
    lines = source.splitlines()
    code_line = next(n for n in range(marker_line + 1, len(lines) + 1) if not lines[n - 1].strip().startswith("#"))
    starting = [n for n in ast.walk(tree) if isinstance(n, ast.stmt | ast.keyword) and n.lineno == code_line]
    end = max((n.end_lineno or n.lineno for n in starting), default=code_line)
    return marker_line, end


def _markers(folder: Path, kind: str) -> list[tuple[Path, str, int]]:
    found = []
    for path in sorted(folder.glob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = _MARKER.search(line)
            if match and match.group(1) == kind:
                found.append((path, match.group("id"), number))
    return found


def test_every_anti_pattern_marker_is_found_by_the_rule_for_its_id() -> None:
    result = lint_paths([ROOT / "target_apps" / "bad"], _repo_config(), ROOT)
    markers = _markers(ROOT / "target_apps" / "bad", "ANTI-PATTERN")
    assert {scenario for _, scenario, _ in markers} == set(RULE_OF_SCENARIO), (
        "a scenario without a rule, or a rule without a marker"
    )
    missed = []
    for path, scenario, line in markers:
        source = path.read_text(encoding="utf-8")
        first, last = _marked_region(source, ast.parse(source), line)
        shown = path.relative_to(ROOT).as_posix()
        rule = RULE_OF_SCENARIO[scenario]
        if not any(f.rule == rule and f.path == shown and first <= f.line <= last for f in result.findings):
            missed.append(f"{shown}:{line} {scenario} ({rule}, lines {first}-{last})")
    assert missed == []
    assert len(markers) == 9  # scoped-session marks two mistakes


def test_the_good_app_has_no_findings() -> None:
    result = lint_paths([ROOT / "target_apps" / "good"], _repo_config(), ROOT)
    assert [f.where for f in result.findings] == []
    # The paced export holds its session across its page pause on purpose, suppressed in place (SB001).
    assert result.suppressed == 1
    unsuppressed = lint_paths([ROOT / "target_apps" / "good"], LintConfig(), ROOT)
    assert unsuppressed.suppressed == 1 and unsuppressed.findings == ()


def test_a_marker_region_check_can_fail() -> None:
    """The recall check above fails when the rule for a marker is turned off."""
    config = LintConfig(select=frozenset(RULES) - {"SB004"})
    result = lint_paths([ROOT / "target_apps" / "bad" / "unclosed_session.py"], config, ROOT)
    assert [f.rule for f in result.findings] == []


# --- code written here, in the styles real services use -----------------------------------------------------------

MIDDLEWARE = """
from contextvars import ContextVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.middleware.base import BaseHTTPMiddleware

SessionLocal = async_sessionmaker(expire_on_commit=False)
_db: ContextVar[AsyncSession | None] = ContextVar("db", default=None)


class LeakySessionMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request, call_next):
        session = SessionLocal()  # expect: SB004
        token = _db.set(session)
        try:
            response = await call_next(request)
            await session.commit()
        finally:
            _db.reset(token)
        return response


class SessionMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request, call_next):
        async with SessionLocal() as session:
            token = _db.set(session)
            try:
                response = await call_next(request)
                await session.commit()
            finally:
                _db.reset(token)
        return response


class ClosingSessionMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request, call_next):
        session = SessionLocal()
        token = _db.set(session)
        try:
            return await call_next(request)
        finally:
            _db.reset(token)
            await session.close()
"""

YIELD_DEPENDENCY = """
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import BackgroundTasks, Depends, FastAPI
from fastapi.responses import StreamingResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

engine = create_async_engine("postgresql+asyncpg://app@db/app")
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)
app = FastAPI()


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as session:
        yield session


def get_legacy_db():
    db = SessionLocal()  # expect: SB004
    yield db


async def get_closing_db() -> AsyncIterator[AsyncSession]:
    db = SessionLocal()
    try:
        yield db
    finally:
        await db.close()  # expect: SB006


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def send_receipt(session: AsyncSession, order_id: int) -> None:
    await session.execute(text("update orders set receipt_sent = true where id = :id"), {"id": order_id})
    await session.commit()


async def send_receipt_alone(order_id: int) -> None:
    async with SessionLocal() as session:
        await session.execute(text("update orders set receipt_sent = true where id = :id"), {"id": order_id})
        await session.commit()


@app.post("/orders/{order_id}/receipt")
async def receipt(order_id: int, tasks: BackgroundTasks, session: SessionDep) -> dict[str, int]:
    await session.execute(text("select 1"))
    tasks.add_task(send_receipt, session, order_id)  # expect: SB002
    return {"order_id": order_id}


@app.post("/orders/{order_id}/receipt-ok")
async def receipt_ok(order_id: int, tasks: BackgroundTasks, session: SessionDep) -> dict[str, int]:
    await session.execute(text("select 1"))
    tasks.add_task(send_receipt_alone, order_id)
    return {"order_id": order_id}


@app.get("/report")
async def report(session: AsyncSession = Depends(get_session)) -> StreamingResponse:
    rows = (await session.execute(text("select id from orders"))).all()  # expect: SB008

    async def lines() -> AsyncIterator[str]:
        for row in rows:
            yield f"{row.id}\\n"

    return StreamingResponse(lines(), media_type="text/csv")


@app.get("/report-ok")
async def report_ok() -> StreamingResponse:
    async with SessionLocal() as session:
        rows = (await session.execute(text("select id from orders"))).all()

    async def lines() -> AsyncIterator[str]:
        for row in rows:
            yield f"{row.id}\\n"

    return StreamingResponse(lines(), media_type="text/csv")
"""

SERVICE_HELPER = """
import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from elsewhere import Order, notify


async def charge_order(session: AsyncSession, client: httpx.AsyncClient, order_id: int) -> str:
    order = await session.get(Order, order_id)
    reply = await client.post("https://payments.example/charge", json={"amount": order.amount})  # expect: SB001
    order.payment_ref = reply.json()["ref"]
    await session.commit()
    return order.payment_ref


async def charge_order_ok(session: AsyncSession, client: httpx.AsyncClient, order_id: int) -> str:
    order = await session.get(Order, order_id)
    amount = order.amount
    await session.commit()  # the transaction ends and the connection goes back before the call
    reply = await client.post("https://payments.example/charge", json={"amount": amount})
    order = await session.get(Order, order_id)
    order.payment_ref = reply.json()["ref"]
    await session.commit()
    return order.payment_ref


async def ship(session: AsyncSession, order_id: int) -> None:
    order = await session.get(Order, order_id)
    await notify(order)  # a function of another package: whether it is slow cannot be decided, so nothing
"""

THROUGH_TWO_CALLS = """
import asyncio

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from elsewhere import Item

sessions = async_sessionmaker()


async def fetch_rates() -> dict[str, float]:
    await asyncio.sleep(0.2)  # stands for a slow HTTP API
    return {"EUR": 1.0}


async def price_in(session: AsyncSession, currency: str) -> float:
    rates = await fetch_rates()  # expect: SB001
    return rates[currency]


async def quote(session: AsyncSession, item_id: int, currency: str) -> float:
    item = await session.get(Item, item_id)
    return item.price * await price_in(session, currency)


async def checkout(item_id: int, currency: str) -> float:
    async with sessions() as session:
        return await quote(session, item_id, currency)


async def quote_ok(session: AsyncSession, item_id: int) -> float:
    item = await session.get(Item, item_id)
    return item.price


async def checkout_ok(item_id: int, currency: str) -> float:
    async with sessions() as session:
        price = await quote_ok(session, item_id)
    rates = await fetch_rates()
    return price * rates[currency]
"""


def _expected(source: str) -> set[tuple[str, int]]:
    expected = set()
    for number, line in enumerate(source.splitlines(), 1):
        match = _EXPECT.search(line)
        if match:
            expected |= {(rule.strip(), number) for rule in match.group("rules").split(",")}
    return expected


def _lint_source(
    tmp_path: Path, source: str, name: str = "app_module.py", config: LintConfig | None = None
) -> list[Finding]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return list(lint_paths([path], config or LintConfig(), tmp_path).findings)


@pytest.mark.parametrize(
    "source",
    [MIDDLEWARE, YIELD_DEPENDENCY, SERVICE_HELPER, THROUGH_TWO_CALLS],
    ids=["contextvar-middleware", "yield-dependency", "service-helper", "through-two-calls"],
)
def test_code_in_real_styles_is_found_and_its_correct_variants_are_not(tmp_path: Path, source: str) -> None:
    findings = _lint_source(tmp_path, source)
    assert {(f.rule, f.line) for f in findings} == _expected(source)
