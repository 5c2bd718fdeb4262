"""The parts of the scoped-session routes that are the same in both apps: the order itself and the
one-line error log; only how the session is scoped and removed differs (good/ and bad/scoped_session.py).
"""

from __future__ import annotations

import logging
import uuid

from fastapi import HTTPException
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from bench.instrument import ASGIApp, Receive, Scope, Send
from target_apps.common.models import Item, Order

log = logging.getLogger("target_apps.scoped_session")


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
