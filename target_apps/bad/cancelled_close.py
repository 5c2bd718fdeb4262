"""cancelled-close, the anti-pattern: a hand-written session whose ``__aexit__`` closes without a shield.

Serves ``GET /exports/items`` (items as CSV, streamed a page at a time); its twin in ``good`` streams the same bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import TracebackType

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
        # ANTI-PATTERN(cancelled-close): when the stream is cancelled, the cancellation hits the
        # ROLLBACK inside close(); the pool then invalidates the connection and drops its backend.
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
