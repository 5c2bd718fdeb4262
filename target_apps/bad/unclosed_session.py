"""unclosed-session, the anti-pattern: a session made without ``async with`` and never closed.

Serves ``GET /items/{item_id}/price``; its twin in ``good`` answers identically.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import select

from target_apps.common.app import state_of
from target_apps.common.gc_schedule import collect_on_schedule
from target_apps.common.models import Item

router = APIRouter()


@router.get("/items/{item_id}/price")
async def price(item_id: int, request: Request) -> dict[str, object]:
    collect_on_schedule(request.app)
    # ANTI-PATTERN(unclosed-session): nothing closes this session, so its connection stays checked out and
    # idle in transaction after the return, until the cyclic GC finds the session and terminates it.
    session = state_of(request).sessions()
    item = await session.scalar(select(Item).where(Item.id == item_id))
    if item is None:
        raise HTTPException(404, "no such item")
    return {"id": item.id, "price_cents": item.price_cents}
