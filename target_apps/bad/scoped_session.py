"""scoped-session, the anti-patterns: an ``async_scoped_session`` middleware that never calls ``remove()``,
and a registry whose scope is shared by every request. ``common.app.create_app`` calls ``install``.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from contextvars import ContextVar
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI, HTTPException, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from bench.instrument import ASGIApp, Receive, Scope, Send
from target_apps.common.models import Item, Order

ORDERS_PREFIX = "/scoped/orders/"
SHARED_PREFIX = "/scoped/shared/"

log = logging.getLogger(__name__)

_request_id: ContextVar[int | None] = ContextVar("scoped_session_request_id", default=None)
_next_id = itertools.count(1)

router = APIRouter()


@dataclass(frozen=True)
class Registries:
    orders: async_scoped_session[AsyncSession]
    shared: async_scoped_session[AsyncSession]


def registries_of(app: FastAPI) -> Registries:
    """The app's registries, made on first use: the sessionmaker only exists once the lifespan ran."""
    registries: Registries | None = getattr(app.state, "scoped_registries", None)
    if registries is None:
        sessions = app.state.bench.sessions
        registries = Registries(
            orders=async_scoped_session(sessions, scopefunc=_request_id.get),
            # ANTI-PATTERN(scoped-session): a constant scope: every concurrent request gets the same
            # session, so they interleave on one transaction and close it under each other.
            shared=async_scoped_session(sessions, scopefunc=lambda: "global"),
        )
        app.state.scoped_registries = registries
    return registries


class ForgetfulScopeMiddleware:
    """Pure ASGI, ``/scoped/orders/`` only: a fresh scope id per request, and nothing at the end."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(ORDERS_PREFIX):
            await self.app(scope, receive, send)
            return
        token = _request_id.set(next(_next_id))
        try:
            await call_logged(self.app, scope, receive, send)
        finally:
            # ANTI-PATTERN(scoped-session): no remove(): the registry keeps a strong reference to every
            # request's session (GC cannot help), its connection idle in transaction until the pool runs dry.
            _request_id.reset(token)


class SharedScopeMiddleware:
    """Pure ASGI, ``/scoped/shared/`` only: removes the registry's session after each request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(SHARED_PREFIX):
            await self.app(scope, receive, send)
            return
        try:
            await call_logged(self.app, scope, receive, send)
        finally:
            # Looks right, but with a constant scope this closes the session other requests are using.
            await registries_of(scope["app"]).shared.remove()


async def call_logged(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run the request and name what failed it in one line: an error raised later by ``remove()`` (in
    SQLAlchemy's greenlet) replaces it in uvicorn's traceback without a "During handling" chain."""
    try:
        await app(scope, receive, send)
    except Exception as exc:
        log.error("%s %s failed: %s: %s", scope["method"], scope["path"], type(exc).__name__, exc)
        raise


async def place_order(registry: async_scoped_session[AsyncSession], item_id: int, route: str) -> dict[str, object]:
    item = await registry.get(Item, item_id)
    if item is None:
        raise HTTPException(404, "no such item")
    order = Order(item_id=item.id, amount_cents=item.price_cents, route=route, payment_ref=uuid.uuid4().hex[:16])
    registry.add(order)
    await registry.commit()
    # created_at is set by the server: reading it back begins a new transaction that only remove() ends.
    await registry.refresh(order, ["created_at"])
    return {"order_id": order.id, "item_id": item.id, "amount_cents": order.amount_cents,
            "created_at": order.created_at.isoformat()}


@router.post("/scoped/orders/{item_id}")
async def order(item_id: int, request: Request) -> dict[str, object]:
    return await place_order(registries_of(request.app).orders, item_id, "scoped-order")


@router.post("/scoped/shared/orders/{item_id}")
async def shared_order(item_id: int, request: Request) -> dict[str, object]:
    return await place_order(registries_of(request.app).shared, item_id, "scoped-shared-order")


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.add_middleware(ForgetfulScopeMiddleware)
    app.add_middleware(SharedScopeMiddleware)
