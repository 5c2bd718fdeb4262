"""Shared fixtures: one real embedded PostgreSQL for the whole test session, in a private home."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.db.embedded import EmbeddedPostgres
from bench.db.server import Server, create_database, drop_database, sqlalchemy_url

# Hooks: under CI=true a skip is a failure unless tests/skip-allowlist.txt names its reason.
from tests.skip_policy import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401


@pytest.fixture(scope="session")
def pg_home() -> Iterator[Path]:
    # Short path: the server's unix socket lives under it and sun_path is 107 bytes.
    # EmbeddedPostgres creates it with the modes it needs (0711 as root, 0700 otherwise).
    home = Path(tempfile.gettempdir()) / f"sbt-{uuid.uuid4().hex[:8]}"
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server(pg_home: Path) -> Iterator[Server]:
    # Started in a loop of its own: the server outlives it, and each test runs its own loops against it.
    embedded = EmbeddedPostgres(home=pg_home)
    try:
        yield asyncio.run(embedded.start())
    finally:
        embedded.close()


@pytest.fixture
def database(pg_server: Server) -> Iterator[str]:
    """A fresh, empty database for one test."""
    name = f"scopebench_t{uuid.uuid4().hex[:10]}"
    asyncio.run(create_database(pg_server, name))
    yield name
    asyncio.run(drop_database(pg_server, name))


def database_names(server: Server) -> set[str]:
    """The databases on `server`, as PostgreSQL lists them."""

    async def names() -> set[str]:
        import asyncpg

        conn = await asyncpg.connect(server.dsn("postgres"))
        try:
            return {row[0] for row in await conn.fetch("SELECT datname FROM pg_database")}
        finally:
            await conn.close()

    return asyncio.run(names())


def run_bench(scenario_name: str, out: Path, pg_home: Path, **flags: object) -> tuple[Any, dict[str, Any]]:
    """Run a scenario in-process the way `bench run` does, on the test session's PostgreSQL home.

    Returns (RunResult, summary.json as read back from disk).
    """
    from bench.config.catalog import get_scenario
    from bench.config.options import resolve_config
    from bench.render.terminal import Console
    from bench.run.runner import run_scenario

    scenario = get_scenario(scenario_name)
    config = resolve_config(scenario, {**flags, "out": out})
    previous = os.environ.get("BENCH_HOME")
    os.environ["BENCH_HOME"] = str(pg_home)
    try:
        result = asyncio.run(run_scenario(config, scenario, Console(quiet=True), ["bench", "run", scenario_name]))
    finally:
        if previous is None:
            os.environ.pop("BENCH_HOME", None)
        else:
            os.environ["BENCH_HOME"] = previous
    return result, json.loads((out / "summary.json").read_text())


def seed(server: Server, database: str) -> None:
    """Create the paired apps' tables and seed rows in ``database``."""
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    from target_apps.common.models import create_schema

    async def schema() -> None:
        engine = create_async_engine(sqlalchemy_url(server.dsn(database)), poolclass=NullPool)
        async with engine.begin() as conn:
            await create_schema(conn)
        await engine.dispose()

    asyncio.run(schema())


def start_app(server: Server, database: str, folder: Path, variant: str = "good",
              **env: str) -> tuple[Any, str]:
    """A target app under a real uvicorn on a free loopback port; returns (Child, base URL)."""
    import sys

    from bench.db.ports import free_port
    from bench.run.processes import Child, wait_for_http

    port = free_port()
    child = Child(name=f"{variant} app", log_path=folder / f"{variant}-app.log",
                  argv=[sys.executable, "-m", "uvicorn", "--factory", f"target_apps.{variant}.app:create",
                        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                  env={"BENCH_APP_DSN": sqlalchemy_url(server.dsn(database)), "BENCH_APP_POOL_SIZE": "2", **env})
    child.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(base + "/healthz", child)
    except BaseException:
        child.stop()
        raise
    return child, base
