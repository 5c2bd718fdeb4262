"""use-after-close, correct: every use of the session stays inside its ``async with`` block.

Serves ``POST /orders/{item_id}/repeat`` (order an item, answer with how often it was ordered); its twin in
``bad`` answers identically.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import func, select

from target_apps.common.app import state_of
from target_apps.common.gc_schedule import collect_on_schedule
from target_apps.common.models import Item, Order

ROUTE_TAG = "repeat"

router = APIRouter()


@router.post("/orders/{item_id}/repeat")
async def repeat_order(item_id: int, request: Request) -> dict[str, object]:
    collect_on_schedule(request.app)
    async with state_of(request).sessions() as session:
        item = await session.get(Item, item_id)
        if item is None:
            raise HTTPException(404, "no such item")
        order = Order(item_id=item.id, amount_cents=item.price_cents, route=ROUTE_TAG, payment_ref=uuid.uuid4().hex[:16])
        session.add(order)
        await session.commit()
        # CORRECT(use-after-close): the read after the commit is inside the block, so the transaction it
        # begins ends with the block and the connection goes back to the pool.
        times = await session.scalar(select(func.count()).select_from(Order).where(Order.item_id == item.id))
    return {"order_id": order.id, "item_id": item.id, "times_ordered": times}
