"""background-task, correct: commit what the response acknowledges, then a task that opens its own sessions.

Serves ``POST /orders/{item_id}/accept`` (accept an order now, price and charge it in the background); its
twin in ``bad`` answers identically.
"""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, HTTPException, Request
from sqlalchemy import exc, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from target_apps.common.app import state_of
from target_apps.common.models import Item, Order
from target_apps.common.upstream import charge

ROUTE_TAG = "accept"

router = APIRouter()


@router.post("/orders/{item_id}/accept")
async def accept(item_id: int, request: Request, tasks: BackgroundTasks) -> dict[str, object]:
    state = state_of(request)
    order = Order(item_id=item_id, amount_cents=0, route=ROUTE_TAG, payment_ref="pending")
    # CORRECT(background-task): the order is committed before the response, so a failing write reaches
    # the client; the task gets ids and the sessionmaker, and holds no connection across the charge.
    async with state.sessions() as session:
        session.add(order)
        try:
            await session.commit()
        except exc.IntegrityError:
            raise HTTPException(404, "no such item") from None
    tasks.add_task(settle, state.sessions, order.id, item_id, state.upstream_latency_s)
    return {"status": "accepted", "item_id": item_id}


async def settle(sessions: async_sessionmaker[AsyncSession], order_id: int, item_id: int, latency_s: float) -> None:
    """Price the order and charge it, each database step in its own short session."""
    async with sessions() as session:
        price = await session.scalar(select(Item.price_cents).where(Item.id == item_id)) or 0
    payment_ref = await charge(price, latency_s)
    async with sessions() as session:
        await session.execute(
            update(Order).where(Order.id == order_id).values(amount_cents=price, payment_ref=payment_ref)
        )
        await session.commit()
