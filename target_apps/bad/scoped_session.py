"""scoped-session, the anti-patterns: an ``async_scoped_session`` middleware that never calls ``remove()``,
and a registry whose scope is shared by every request. ``common.app.create_app`` calls ``install``.
"""

from __future__ import annotations

import itertools
from contextvars import ContextVar
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from bench.instrument import ASGIApp, Receive, Scope, Send
from target_apps.common.scoped_orders import call_logged, place_order

ORDERS_PREFIX = "/scoped/orders/"
SHARED_PREFIX = "/scoped/shared/"

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
