"""The ASGI side of the instrumentation: type aliases, and the middleware that tells the pool observers
which route is running. Apps mount ``RouteTagMiddleware``; ``pool`` and ``tag_statements`` read ``current_route``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# A context variable, not an attribute: the pool is shared by every task, and SQLAlchemy runs the pool
# code in a greenlet that inherits the calling task's context.
_request_scope: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("bench_request_scope", default=None)


def current_route() -> str:
    """The route template of the request running in this context ("-" outside a request)."""
    scope = _request_scope.get()
    if scope is None:
        return "-"
    route = scope.get("route")
    path = getattr(route, "path", None) or scope.get("path", "-")
    return f"{scope.get('method', 'WS') if scope.get('type') == 'http' else 'WS'} {path}"


class RouteTagMiddleware:
    """Pure ASGI middleware: makes the request's route visible to the pool observers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        token = _request_scope.set(scope)
        try:
            await self.app(scope, receive, send)
        finally:
            _request_scope.reset(token)
