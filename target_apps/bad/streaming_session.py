"""streaming-session, the anti-pattern: the request's session (a ``yield`` dependency) kept open by a token stream.

Serves ``POST /orders/{item_id}/chat`` (an assistant streams a quote for the item token by token as server-sent
events, like an LLM, then records the order); its twin in ``good`` streams the same events.

What FastAPI 0.165 does (measured with Starlette 1.10, SQLAlchemy 2.1.9, asyncpg 0.32, PostgreSQL 18.6): with
the default ``Depends(..., scope="request")`` a ``yield`` dependency's exit code runs after the response has
been sent, its last chunk included (by the release notes, 0.106-0.117 ran it before the response and 0.118
went back). So a session the endpoint used once, before it returned the ``StreamingResponse``, keeps its
connection checked out and idle in transaction for the whole stream, even if the stream never touches it
again; the same holds for FastAPI's own ``EventSourceResponse``. A dependency never used checks out nothing.
With ``scope="function"`` the exit runs before the stream, but a generator that then uses the closed session
silently checks out a new connection (``close_resets_only=True``) and holds it from that use to its commit.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from target_apps.common.app import state_of
from target_apps.common.models import Item, Order

ROUTE_TAG = "chat"
# The reply's length in tokens; each one takes the upstream latency (BENCH_APP_UPSTREAM_MS) to arrive.
TOKENS = 20

router = APIRouter()


async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request: the common FastAPI dependency."""
    async with state_of(request).sessions() as session:
        yield session


@router.post("/orders/{item_id}/chat")
async def chat(
    item_id: int, request: Request, session: Annotated[AsyncSession, Depends(request_session)]
) -> StreamingResponse:
    token_s = state_of(request).upstream_latency_s
    # ANTI-PATTERN(streaming-session): the read begins a transaction on the request's session, and the
    # dependency closes it only after the last chunk: the connection sits idle in transaction between
    # tokens for the whole stream, and the pool caps concurrent streams at its size.
    item = await session.scalar(select(Item).where(Item.id == item_id))
    if item is None:
        raise HTTPException(404, "no such item")

    async def reply() -> AsyncIterator[str]:
        for token in quote_tokens(item):
            await asyncio.sleep(token_s)
            yield f"data: {token}\n\n"
        order = Order(item_id=item.id, amount_cents=item.price_cents, route=ROUTE_TAG, payment_ref="chat")
        session.add(order)
        await session.commit()
        yield f"event: done\ndata: {json.dumps({'order_id': order.id})}\n\n"

    return StreamingResponse(reply(), media_type="text/event-stream")


def quote_tokens(item: Item) -> list[str]:
    """The assistant's answer, ``TOKENS`` words long."""
    words = f"{item.name} costs {item.price_cents} cents today.".split()
    return [words[i % len(words)] for i in range(TOKENS)]
