"""The measured target for ``harness_perf``: an embedded PostgreSQL, one seeded database, good-app processes.

``harness_perf`` opens a ``Target`` once; the app ceiling, collector and pool sections share it.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from perf_drivers import get_json
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bench.db.embedded import EmbeddedPostgres
from bench.db.ports import free_port
from bench.db.server import Server, create_database, drop_database, sqlalchemy_url
from bench.instrument import ENDPOINT_PATH
from bench.run.processes import Child, wait_for_http

POOL_SIZE = 5  # the harness's default pool (long-session), so the pool figures mean what they mean in a run


@dataclass(frozen=True, kw_only=True)
class AppServer:
    """One uvicorn serving the good app: how it was started, where, and its pool endpoint."""

    label: str
    child: Child
    base: str
    token: str
    workers: int

    @property
    def pool_url(self) -> str:
        return self.base + ENDPOINT_PATH

    def pool(self) -> dict[str, object]:
        # A separate worker answers each request under --workers, so only one-worker apps are read.
        return get_json(self.pool_url, self.token)


@dataclass
class Target:
    server: Server
    database: str
    postmaster_pid: int | None
    workdir: Path
    apps: list[AppServer] = field(default_factory=list)

    @property
    def sqlalchemy_url(self) -> str:
        return sqlalchemy_url(self.server.dsn(self.database))

    def start_app(self, label: str, *, loop: str | None, http: str | None, workers: int = 1,
                  pool_size: int = POOL_SIZE) -> AppServer:
        """Start ``target_apps.good`` under uvicorn; ``loop``/``http`` None leave uvicorn's ``auto``."""
        port, token = free_port(), secrets.token_hex(8)
        argv = [sys.executable, "-m", "uvicorn", "--factory", "target_apps.good.app:create", "--host", "127.0.0.1",
                "--port", str(port), "--log-level", "warning", "--no-access-log"]
        argv += ["--loop", loop] if loop else []
        argv += ["--http", http] if http else []
        argv += ["--workers", str(workers)] if workers > 1 else []
        env = {"BENCH_APP_DSN": self.sqlalchemy_url, "BENCH_APP_POOL_SIZE": str(pool_size),
               "BENCH_APP_MAX_OVERFLOW": "0", "BENCH_APP_POOL_TIMEOUT": "30", "BENCH_APP_METRICS_TOKEN": token}
        slug = "".join(c if c.isalnum() else "_" for c in label)
        child = Child(name=f"good app ({label})", argv=argv, log_path=self.workdir / f"app-{slug}.log", env=env)
        child.start()
        app = AppServer(label=label, child=child, base=f"http://127.0.0.1:{port}", token=token, workers=workers)
        wait_for_http(app.base + "/healthz", child, timeout=30)
        self.apps.append(app)
        return app


@contextmanager
def open_target(workdir: Path) -> Iterator[Target]:
    """Embedded PostgreSQL (the harness's own), a fresh seeded database; everything stopped on exit."""
    embedded = EmbeddedPostgres()
    server = asyncio.run(embedded.start())  # the server outlives this loop; the sections run their own
    database = f"scopebench_perf_{uuid.uuid4().hex[:8]}"
    target = Target(server=server, database=database, postmaster_pid=embedded.pid, workdir=workdir)
    try:
        asyncio.run(_prepare(server, database))
        yield target
    finally:
        for app in reversed(target.apps):
            app.child.stop(timeout=10)
        try:
            asyncio.run(drop_database(server, database))
        finally:
            embedded.close()


async def _prepare(server: Server, database: str) -> None:
    from target_apps.common.models import create_schema  # the schema belongs to the paired apps

    await create_database(server, database)
    engine = create_async_engine(sqlalchemy_url(server.dsn(database)), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await create_schema(conn)
    finally:
        await engine.dispose()

