"""scoped-session, correct: an ``async_scoped_session`` keyed by a per-request ContextVar, removed in ``finally``.

``common.app.create_app`` calls ``install``; the pure ASGI middleware only touches paths under ``/scoped/``.
"""

from __future__ import annotations

import itertools
from contextvars import ContextVar

from fastapi import APIRouter, FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from bench.instrument import ASGIApp, Receive, Scope, Send
from target_apps.common.scoped_orders import call_logged, place_order

PREFIX = "/scoped/"

_request_id: ContextVar[int | None] = ContextVar("scoped_session_request_id", default=None)
_next_id = itertools.count(1)

router = APIRouter()


def _scope_id() -> int:
    request_id = _request_id.get()
    if request_id is None:  # a session outside the middleware would have no owner to remove it
        raise RuntimeError(f"scoped session used outside a request under {PREFIX}")
    return request_id


def registry_of(app: FastAPI) -> async_scoped_session[AsyncSession]:
    """The app's registry, made on first use: the sessionmaker only exists once the lifespan ran."""
    registry: async_scoped_session[AsyncSession] | None = getattr(app.state, "scoped_session", None)
    if registry is None:
        registry = async_scoped_session(app.state.bench.sessions, scopefunc=_scope_id)
        app.state.scoped_session = registry
    return registry


class ScopedSessionMiddleware:
    """Pure ASGI: a fresh scope id per request, and the request's session removed however it ends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        # CORRECT(scoped-session): one scope per request (a ContextVar, which tasks the request spawns
        # inherit, unlike current_task), and remove() in finally closes the session and returns its connection.
        token = _request_id.set(next(_next_id))
        try:
            await call_logged(self.app, scope, receive, send)
        finally:
            try:
                await registry_of(scope["app"]).remove()
            finally:
                _request_id.reset(token)


@router.post("/scoped/orders/{item_id}")
async def order(item_id: int, request: Request) -> dict[str, object]:
    return await place_order(registry_of(request.app), item_id, "scoped-order")


@router.post("/scoped/shared/orders/{item_id}")
async def shared_order(item_id: int, request: Request) -> dict[str, object]:
    # The bad app serves this path from a registry shared by all requests; here it is the same
    # per-request registry as /scoped/orders.
    return await place_order(registry_of(request.app), item_id, "scoped-shared-order")


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.add_middleware(ScopedSessionMiddleware)
