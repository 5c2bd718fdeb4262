"""unclosed-session, correct: the session lives in an ``async with`` block that closes it.

Serves ``GET /items/{item_id}/price``; its twin in ``bad`` answers identically.
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
    # CORRECT(unclosed-session): the block ends the transaction and returns the connection on every exit,
    # the 404 included; nothing is left for the GC.
    async with state_of(request).sessions() as session:
        item = await session.scalar(select(Item).where(Item.id == item_id))
    if item is None:
        raise HTTPException(404, "no such item")
    return {"id": item.id, "price_cents": item.price_cents}
