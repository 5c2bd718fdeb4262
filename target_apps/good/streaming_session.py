"""streaming-session, correct: read in a short session closed before the token stream, write in another after it.

Serves ``POST /orders/{item_id}/chat`` (an assistant streams a quote for the item token by token as server-sent
events, like an LLM, then records the order); its twin in ``bad`` streams the same events.

Why no ``yield`` dependency here (measured with FastAPI 0.165, Starlette 1.10, SQLAlchemy 2.1.9, PostgreSQL
18.6): with the default ``scope="request"`` a dependency's exit code runs after the last chunk is sent, so a
request session used before the stream holds its connection through it. ``scope="function"`` exits before the
stream, but a session used inside the generator then quietly checks out a new connection. Sessions opened
with ``async with`` exactly where the database is needed say when the connection goes back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from target_apps.common.app import state_of
from target_apps.common.models import Item, Order

ROUTE_TAG = "chat"
# The reply's length in tokens; each one takes the upstream latency (BENCH_APP_UPSTREAM_MS) to arrive.
TOKENS = 20

router = APIRouter()


@router.post("/orders/{item_id}/chat")
async def chat(item_id: int, request: Request) -> StreamingResponse:
    state = state_of(request)
    token_s = state.upstream_latency_s
    # CORRECT(streaming-session): the read's session ends (ROLLBACK, connection returned) before the
    # response starts; the stream holds no connection between tokens, and the write at the end opens
    # a short session of its own.
    async with state.sessions() as session:
        item = await session.scalar(select(Item).where(Item.id == item_id))
    if item is None:
        raise HTTPException(404, "no such item")

    async def reply() -> AsyncIterator[str]:
        for token in quote_tokens(item):
            await asyncio.sleep(token_s)
            yield f"data: {token}\n\n"
        order = Order(item_id=item.id, amount_cents=item.price_cents, route=ROUTE_TAG, payment_ref="chat")
        async with state.sessions() as session:
            session.add(order)
            await session.commit()
        yield f"event: done\ndata: {json.dumps({'order_id': order.id})}\n\n"

    return StreamingResponse(reply(), media_type="text/event-stream")


def quote_tokens(item: Item) -> list[str]:
    """The assistant's answer, ``TOKENS`` words long."""
    words = f"{item.name} costs {item.price_cents} cents today.".split()
    return [words[i % len(words)] for i in range(TOKENS)]
