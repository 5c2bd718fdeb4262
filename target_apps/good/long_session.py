"""long-session, correct: two short sessions around the slow upstream call."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import select

from target_apps.common.app import state_of
from target_apps.common.models import Item, Order
from target_apps.common.upstream import charge

router = APIRouter()


@router.post("/orders/{item_id}/checkout")
async def checkout(item_id: int, request: Request) -> dict[str, object]:
    state = state_of(request)
    # CORRECT(long-session): read in one short session, call the upstream holding no connection,
    # write in a second short session.
    async with state.sessions() as session:
        item = await session.scalar(select(Item).where(Item.id == item_id))
    if item is None:
        raise HTTPException(404, "no such item")
    ref = await charge(item.price_cents, state.upstream_latency_s)
    async with state.sessions() as session:
        order = Order(item_id=item.id, amount_cents=item.price_cents, route="checkout", payment_ref=ref)
        session.add(order)
        await session.commit()
    return {"order_id": order.id, "payment_ref": ref}
