"""websocket-loop, correct: a short session per message, so sockets share a few connections.

Serves ``WS /ws/items`` (send an item id, get the item back); its twin in ``bad`` answers identically.
"""

from __future__ import annotations

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from sqlalchemy import exc, select

from target_apps.common.app import AppState
from target_apps.common.models import Item

router = APIRouter()

# A checkout that times out closes the socket with this code ("internal error"): the client sees why.
POOL_TIMEOUT_CLOSE = 1011


@router.websocket("/ws/items")
async def item_feed(websocket: WebSocket) -> None:
    state: AppState = websocket.app.state.bench
    await websocket.accept()
    try:
        while True:
            item_id = await websocket.receive_text()
            # CORRECT(websocket-loop): a session per message; the connection goes back to the pool
            # before the reply is sent, so an idle socket holds nothing.
            async with state.sessions() as session:
                item = await session.scalar(select(Item).where(Item.id == _as_id(item_id)))
            await websocket.send_json(_reply(item))
    except WebSocketDisconnect:
        pass
    except exc.TimeoutError:
        await websocket.close(code=POOL_TIMEOUT_CLOSE, reason="database pool exhausted")


def _as_id(text: str) -> int:
    return int(text) if text.strip().isdigit() else 0


def _reply(item: Item | None) -> dict[str, object]:
    if item is None:
        return {"error": "no such item"}
    return {"id": item.id, "name": item.name, "price_cents": item.price_cents}
