"""Pool instrumentation overhead (TimedAsyncPool + instrument() vs the stock pool, interleaved blocks of
checkouts) and the CPU per call of the ORM read path and of raw asyncpg, against the embedded PostgreSQL.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import asyncpg
from perf_database import POOL_SIZE, Target
from perf_drivers import have_module
from perf_options import Options
from perf_table import Section, median, ratio, spread
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from bench.instrument import Histogram, TimedAsyncPool, instrument
from target_apps.common.models import SEED_ITEMS, Item

Figures = dict[str, float | None]
_CALLS = 2000  # ORM / asyncpg calls per block
_ORM_BLOCKS = 5


def run(opts: Options, target: Target) -> tuple[Figures, dict[str, list[float]]]:
    """Median figures and the per-block samples; on uvloop when installed, as the apps run."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if have_module("uvloop"):
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_measure(opts, target.sqlalchemy_url, target.server.dsn(target.database)))


async def _measure(opts: Options, url: str, dsn: str) -> tuple[Figures, dict[str, list[float]]]:
    timed = create_async_engine(url, poolclass=TimedAsyncPool, pool_size=POOL_SIZE, max_overflow=0)
    metrics = instrument(timed)
    stock = create_async_engine(url, pool_size=POOL_SIZE, max_overflow=0)
    blocks: dict[str, list[float]] = {"timed": [], "stock": [], "orm_timed": [], "orm_stock": [], "core": [],
                                      "asyncpg": []}
    try:
        for engine in (timed, stock):
            async with engine.connect() as conn:  # the connection exists before any timing
                await conn.execute(text("SELECT 1"))
            await _checkouts(engine, opts.checkout_block)  # warm-up: code paths, caches
        engines = {"timed": timed, "stock": stock}
        for block in range(opts.checkout_blocks):
            # Alternate which pool goes first: a slow moment of the machine hits both alike.
            for name in ("timed", "stock") if block % 2 == 0 else ("stock", "timed"):
                blocks[name].append(await _checkouts(engines[name], opts.checkout_block))
        for engine in (timed, stock):
            await _orm_cpu(engine, _CALLS // 4)  # warm-up: compiled-statement cache, prepared statements
        hold_before = Histogram.from_json(metrics.use.to_json())
        for block in range(_ORM_BLOCKS):
            for name in ("orm_timed", "orm_stock") if block % 2 == 0 else ("orm_stock", "orm_timed"):
                blocks[name].append(await _orm_cpu(engines[name.removeprefix("orm_")], _CALLS))
            blocks["core"].append(await _core_cpu(stock, _CALLS))
            blocks["asyncpg"].append(await _asyncpg_cpu(dsn, _CALLS))
        # Hold time of the ORM read with nothing else on the loop: what a checkout costs without queueing.
        idle_hold_ms = metrics.use.minus(hold_before).mean * 1000
    finally:
        await timed.dispose()
        await stock.dispose()
    paired = [t - s for t, s in zip(blocks["timed"], blocks["stock"], strict=True)]
    figures: Figures = {name: median(values) for name, values in blocks.items()}
    figures.update(added_us=median(paired), checkouts_recorded=float(metrics.checkouts), idle_hold_ms=idle_hold_ms,
                   orm_cpu_us=figures["orm_timed"], core_cpu_us=figures["core"], asyncpg_cpu_us=figures["asyncpg"])
    return figures, blocks


async def _checkouts(engine: AsyncEngine, n: int) -> float:
    """Wall µs per ``async with engine.connect()``: no statement, so no I/O, only pool and adapter code."""
    started = time.perf_counter()
    for _ in range(n):
        async with engine.connect():
            pass
    return (time.perf_counter() - started) / n * 1e6


async def _orm_cpu(engine: AsyncEngine, n: int) -> float:
    """CPU µs of this process per request-shaped read: the app's read route without HTTP."""
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    started = time.process_time()
    for _ in range(n):
        async with sessions() as session:
            await session.scalar(select(Item).where(Item.id == random.randint(1, SEED_ITEMS)))
    return (time.process_time() - started) / n * 1e6


async def _core_cpu(engine: AsyncEngine, n: int) -> float:
    """The same read through SQLAlchemy Core: checkout, BEGIN, SELECT, ROLLBACK on checkin; no ORM."""
    query = select(Item.id, Item.name, Item.price_cents)
    started = time.process_time()
    for _ in range(n):
        async with engine.connect() as conn:
            (await conn.execute(query.where(Item.id == random.randint(1, SEED_ITEMS)))).first()
    return (time.process_time() - started) / n * 1e6


async def _asyncpg_cpu(dsn: str, n: int) -> float:
    """The same three round trips straight on asyncpg (BEGIN, SELECT, end of transaction): the driver's share."""
    conn = await asyncpg.connect(dsn)
    try:
        sql = "SELECT id, name, price_cents FROM items WHERE id = $1"
        await conn.fetchrow(sql, 1)  # prepared and cached before timing, as SQLAlchemy's dialect does
        started = time.process_time()
        for _ in range(n):
            async with conn.transaction():
                await conn.fetchrow(sql, random.randint(1, SEED_ITEMS))
        return (time.process_time() - started) / n * 1e6
    finally:
        await conn.close()


def section(opts: Options, figures: Figures, blocks: dict[str, list[float]], app_cpu_us: float | None) -> Section:
    loop = "uvloop" if have_module("uvloop") else "asyncio"
    s = Section(f"pool instrumentation overhead: `async with engine.connect()` loop, {opts.checkout_blocks} x "
                f"{opts.checkout_block:,} checkouts per pool, interleaved, on {loop}, medians")
    s.add("stock AsyncAdaptedQueuePool", figures["stock"], "µs", "{:.1f}", note="per checkout; "
          + spread(blocks["stock"], "{:.1f}"))
    s.add("TimedAsyncPool + instrument()", figures["timed"], "µs", "{:.1f}", note="per checkout; "
          + spread(blocks["timed"], "{:.1f}"))
    s.add("added per checkout", figures["added_us"], "µs", "{:.1f}", note="median of paired blocks")
    s.ratio("instrumented / stock, bare checkout", figures["timed"], figures["stock"])
    s.add("ORM read (session + select), stock pool", figures["orm_stock"], "µs",
          note="CPU per call; " + spread(blocks["orm_stock"]))
    s.add("ORM read, instrumented pool", figures["orm_timed"], "µs", note="CPU per call; " + spread(blocks["orm_timed"]))
    s.ratio("instrumented / stock, ORM read", figures["orm_timed"], figures["orm_stock"])
    # The whole cost a request pays, not the bare checkout's: a read's statement and transaction end go through the
    # statement tags and the idle-time wrappers too.
    added = None if figures["orm_timed"] is None or figures["orm_stock"] is None else \
        figures["orm_timed"] - figures["orm_stock"]
    s.add("added per ORM read", added, "µs", "{:.1f}", note="checkout, statement, rollback on return, checkin")
    share = ratio(added, app_cpu_us)
    s.add("added per ORM read / app CPU per request", None if share is None else share * 100, "%", "{:.2f}",
          note=f"one read per GET /items (app CPU {app_cpu_us or 0:,.0f} µs per request)")
    return s
