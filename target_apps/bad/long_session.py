"""long-session, the anti-pattern: one session held across the slow upstream call."""

from __future__ import annotations

import itertools

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import select

from target_apps.common.app import state_of
from target_apps.common.models import Item, Order
from target_apps.common.upstream import charge
from target_apps.good import long_session as correct

router = APIRouter()
_arrivals = itertools.count(1)


@router.post("/orders/{item_id}/checkout")
async def checkout(item_id: int, request: Request) -> dict[str, object]:
    state = state_of(request)
    if next(_arrivals) % state.settings.hold_every:
        # BENCH_APP_HOLD_EVERY=k: the culprit in 1 request in k, the correct twin's route in the others, so the
        # gates' smallest detectable effect can be measured (benchmarks/ci_verdicts.py).
        return await correct.checkout(item_id, request)
    # ANTI-PATTERN(long-session): one session spans the slow upstream call, so its connection sits
    # idle in transaction for the whole call and the pool caps throughput at pool/latency.
    async with state.sessions() as session:
        item = await session.scalar(select(Item).where(Item.id == item_id))
        if item is None:
            raise HTTPException(404, "no such item")
        ref = await charge(item.price_cents, state.upstream_latency_s)
        order = Order(item_id=item.id, amount_cents=item.price_cents, route="checkout", payment_ref=ref)
        session.add(order)
        await session.commit()
    return {"order_id": order.id, "payment_ref": ref}
