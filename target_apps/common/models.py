"""Tables shared by both target apps; the harness creates them in each run's fresh database.

Items are read by every route, orders are written; lost writes are counted against orders.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SEED_ITEMS = 1000


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    price_cents: Mapped[int]


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    amount_cents: Mapped[int]
    route: Mapped[str] = mapped_column(String(64))
    payment_ref: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


async def create_schema(conn: AsyncConnection) -> None:
    """Create the tables and seed ``SEED_ITEMS`` items (ids 1..SEED_ITEMS)."""
    await conn.run_sync(Base.metadata.create_all)
    await conn.execute(
        text("INSERT INTO items (id, name, price_cents) "
             "SELECT g, 'item ' || g, 100 + g % 900 FROM generate_series(1, :n) AS g"),
        {"n": SEED_ITEMS},
    )


async def count_orders(conn: AsyncConnection) -> dict[str, int]:
    """Rows actually written, per route that wrote them."""
    rows = await conn.execute(select(Order.route, func.count()).group_by(Order.route))
    return {route: int(n) for route, n in rows.all()}
