"""cancelled-close, correct: the hand-written session shields its close from the cancellation.

Serves ``GET /exports/items`` (items as CSV, streamed a page at a time); its twin in ``bad`` streams the same bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import TracebackType

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from target_apps.common.app import state_of
from target_apps.common.models import Item

router = APIRouter()

PAGE_ITEMS = 100
# Pages are paced so one export does not hog the database; a client that leaves mid-export makes
# Starlette cancel the stream here, with the session still open.
PAGE_PAUSE_S = 0.2


class ExportSession(AsyncSession):
    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # CORRECT(cancelled-close): Starlette cancels through an anyio cancel scope, which a shielded
        # scope keeps out: the ROLLBACK finishes and the connection goes back to the pool intact.
        # The shield covers the close only. A hang-up noticed while a page's query is in flight cuts
        # that statement in half; SQLAlchemy treats a CancelledError inside execute as a disconnect and
        # invalidates the connection (asyncpg sends the server a cancel request). That is right, and it
        # is rare here: a page query takes a few ms of each 200 ms page, so it needs a hang-up at the load's
        # end or one noticed after the pause on a busy machine (see the catalog entry for the rate).
        with anyio.CancelScope(shield=True):
            await self.close()


@router.get("/exports/items")
async def export_items(request: Request) -> StreamingResponse:
    return StreamingResponse(_pages(state_of(request).engine), media_type="text/csv")


async def _pages(engine: AsyncEngine) -> AsyncIterator[str]:
    async with ExportSession(engine, expire_on_commit=False) as session:
        after = 0
        while True:
            query = select(Item.id, Item.name, Item.price_cents).where(Item.id > after)
            rows = (await session.execute(query.order_by(Item.id).limit(PAGE_ITEMS))).all()
            if not rows:
                return
            yield "".join(f"{row.id},{row.name},{row.price_cents}\n" for row in rows)
            after = rows[-1].id
            # The pace holds the page's snapshot open on purpose: this scenario is a stream cancelled with its
            # session open (bench lint's SB001 says so; long-session is the scenario about holding across a wait).
            await asyncio.sleep(PAGE_PAUSE_S)  # noqa: SB001
