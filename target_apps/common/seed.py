"""Create the target apps' tables and seed rows in the database ``BENCH_APP_DSN`` names.

``python -m target_apps.common.seed [--reset] [--wait SECONDS]`` is for running the apps without the harness
(docker-compose.yml's one-shot ``schema`` service); ``bench run`` makes a fresh database per app run itself.
Safe to run again: tables are created if missing and items are seeded only into an empty table.
``--reset`` drops and recreates the tables first (orders written by earlier load are gone).
Exit codes as the harness's: 0 ok · 2 bad usage (no or malformed DSN) · 3 the database is unreachable or failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

from sqlalchemy import func, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from target_apps.common.models import SEED_ITEMS, Base, Item, create_schema

DSN_ENV = "BENCH_APP_DSN"
_LOCK_KEY = 0x5C0BE5EED  # one seeder at a time per database (pg_advisory_xact_lock)


def asyncpg_url(dsn: str) -> URL:
    """``postgresql://`` or ``postgres://`` -> ``postgresql+asyncpg://``; an asyncpg URL is kept as it is."""
    try:
        url = make_url(dsn)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        url = None
    if url is None or url.drivername.lower() not in ("postgresql", "postgres", "postgresql+asyncpg"):
        raise ValueError(f"{DSN_ENV} must be a postgresql+asyncpg:// (or postgresql://) URL")
    return url.set(drivername="postgresql+asyncpg")


def _shown(url: URL, message: str) -> str:
    """`message` with the URL's password masked, should an error repeat it."""
    return message.replace(url.password, "***") if url.password else message


async def seed(dsn: str, reset: bool = False) -> str:
    """Create the schema and seed rows unless present; returns what it did, in one line."""
    engine = create_async_engine(asyncpg_url(dsn), poolclass=NullPool,
                                 connect_args={"server_settings": {"application_name": "scopebench-seed"}})
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
            if reset:
                await conn.run_sync(Base.metadata.drop_all)
            await conn.run_sync(Base.metadata.create_all)
            if await conn.scalar(select(func.count()).select_from(Item)):
                return "schema present; left as it is (--reset drops and recreates it)"
            await create_schema(conn)  # create_all again (a no-op now), then the seed rows
            return f"{'recreated' if reset else 'created'} the schema and {SEED_ITEMS} items"
    finally:
        await engine.dispose()


def _cannot_connect(err: BaseException) -> bool:
    """A server that is not up (yet) — worth another try — as opposed to a wrong password or database."""
    cause = err.orig if isinstance(err, DBAPIError) else err
    while cause is not None:
        if isinstance(cause, (ConnectionError, OSError)) or type(cause).__name__ == "CannotConnectNowError":
            return True
        cause = cause.__cause__
    return False


async def seed_with_retry(dsn: str, reset: bool, wait_s: float) -> str:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return await seed(dsn, reset)
        except (OSError, SQLAlchemyError) as err:
            if not _cannot_connect(err) or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m target_apps.common.seed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--reset", action="store_true", help="drop and recreate the tables first")
    parser.add_argument("--wait", type=float, default=30.0, metavar="SECONDS",
                        help="keep retrying this long while the server refuses connections (default 30)")
    args = parser.parse_args(argv)
    dsn = os.environ.get(DSN_ENV)
    if not dsn:
        print(f"error: {DSN_ENV} is not set; point it at postgresql+asyncpg://user:password@host:5432/db",
              file=sys.stderr)
        return 2
    try:
        url = asyncpg_url(dsn)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    shown = url.render_as_string(hide_password=True)
    try:
        message = asyncio.run(seed_with_retry(dsn, args.reset, args.wait))
    except (OSError, SQLAlchemyError) as err:
        lines = str(getattr(err, "orig", None) or err).strip().splitlines()
        reason = lines[0] if lines else type(err).__name__
        print(f"error: cannot prepare {shown}: {_shown(url, reason)}", file=sys.stderr)
        return 3
    print(f"{shown}: {message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
