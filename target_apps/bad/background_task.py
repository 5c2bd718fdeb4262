"""background-task, the anti-pattern: the request's session, committed in the dependency's teardown, handed to a task.

Serves ``POST /orders/{item_id}/accept`` (accept an order now, price and charge it in the background); its
twin in ``good`` answers identically.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from target_apps.common.app import state_of
from target_apps.common.models import Item, Order
from target_apps.common.upstream import charge

ROUTE_TAG = "accept"

router = APIRouter()


async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request, committed when the request is done: the common unit-of-work dependency."""
    async with state_of(request).sessions() as session:
        yield session
        # With the default scope="request" this runs after the response and after its background tasks.
        await session.commit()


@router.post("/orders/{item_id}/accept")
async def accept(
    item_id: int,
    request: Request,
    tasks: BackgroundTasks,
    session: Annotated[AsyncSession, Depends(request_session)],
) -> dict[str, object]:
    # The INSERT waits in the session's unit of work; the foreign key on item_id checks it when it is flushed.
    order = Order(item_id=item_id, amount_cents=0, route=ROUTE_TAG, payment_ref="pending")
    session.add(order)
    # ANTI-PATTERN(background-task): the task gets the request's session and ORM object, so its connection
    # stays checked out, idle in transaction, across the slow charge, and the order is flushed and committed
    # only after the client got its 200: a failing write is acknowledged and lost.
    tasks.add_task(settle, session, order, state_of(request).upstream_latency_s)
    return {"status": "accepted", "item_id": item_id}


async def settle(session: AsyncSession, order: Order, latency_s: float) -> None:
    """Price the order and charge it; the dependency's teardown commits."""
    # This query autoflushes the pending INSERT: an unknown item fails here, after the response.
    price = await session.scalar(select(Item.price_cents).where(Item.id == order.item_id))
    order.payment_ref = await charge(price or 0, latency_s)
    order.amount_cents = price or 0
