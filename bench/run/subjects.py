"""What a drive loads and watches: a paired app or the user's service (--serve), each started by the harness on a
fresh database, or the user's running app (--target).

bench.run.drive asks ``subject_for`` and then goes through the same steps for either; only these classes differ.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bench.config.appenv import AppEnv, application_name
from bench.config.options import TARGET
from bench.db import server as postgres
from bench.db.ports import free_port
from bench.errors import BenchError, InfraError
from bench.instrument import ENDPOINT_PATH
from bench.results.layout import AppFiles
from bench.run.collector import Collector
from bench.run.processes import Child, probe, wait_for_http
from bench.run.serve import MIGRATE_LOG, Fill, migrate, service_child, wait_until_ready
from bench.run.state import RunState

if TYPE_CHECKING:  # SQLAlchemy's asyncio layer and its ORM (50 ms) load while the app starts, beside it
    from sqlalchemy.ext.asyncio import AsyncEngine



@dataclass(frozen=True, kw_only=True)
class Watched:
    """Where the collector looks: the database's activity, and the app's pool endpoint if it has one."""

    admin_dsn: str
    database: str
    application_name: str | None
    pool_url: str | None
    pool_token: str | None = field(default=None, repr=False)


class Subject(Protocol):
    """The steps of a drive that depend on what is loaded; bench.run.drive calls them in this order."""

    name: str  # the app's folder and its key in summary.json: good, bad or target
    host: str  # the base URL Locust loads

    def watched(self) -> Watched: ...

    async def launch(self) -> None:
        """Start (or check) what the harness needs before Locust starts."""

    async def ready(self) -> None:
        """Return once the app can take load; Locust is held until then."""

    def check_alive(self) -> None:
        """Raise InfraError (and note it on the time line) if the app died during the run."""

    async def settle(self, collector: Collector) -> None:
        """After the cool-down, before the collector's final statistics."""

    async def written(self) -> dict[str, int] | None:
        """Rows written per route tag, for the integrity check; None when not counted."""

    async def close(self) -> None:
        """Stop and clean up whatever ``launch`` and ``ready`` started; safe after a failure."""


def subject_for(run: RunState, app: str, index: int, files: AppFiles) -> Subject:
    if run.config.target:
        return RunningTarget(run)
    if run.config.serve:
        return ServedApp(run, index, files)
    return PairedApp(run, app, index, files)


class PairedApp:
    """A paired app (good, bad): a fresh database with the schema, a uvicorn the harness starts and stops."""

    def __init__(self, run: RunState, app: str, index: int, files: AppFiles) -> None:
        self.run, self.name = run, app
        self.database = f"scopebench_{run.run_id}_{app}_{index + 1}"
        port = free_port()
        self.host = f"http://127.0.0.1:{port}"
        self._child = _app_child(run, app, self.database, port, files.root)
        self._engine: AsyncEngine | None = None

    def watched(self) -> Watched:
        assert self.run.server is not None
        return Watched(admin_dsn=self.run.server.dsn("postgres"), database=self.database,
                       application_name=application_name(self.name), pool_url=self.host + ENDPOINT_PATH,
                       pool_token=self.run.pool_token)

    async def launch(self) -> None:
        # The app and Locust start while the database is prepared: their imports overlap. Locust holds
        # its users until the go file exists, so no request is sent before the app is ready.
        self._child.start()

    async def ready(self) -> None:
        from sqlalchemy.ext.asyncio import create_async_engine
        from sqlalchemy.pool import NullPool

        from target_apps.common.models import create_schema  # the schema belongs to the paired apps

        assert self.run.server is not None
        await postgres.create_database(self.run.server, self.database)
        self._engine = create_async_engine(self.run.server.sqlalchemy_url(self.database),
                                           poolclass=NullPool, connect_args={"timeout": 10})
        async with self._engine.begin() as conn:
            await create_schema(conn)
        await asyncio.to_thread(wait_for_http, self.host + "/healthz", self._child)

    def check_alive(self) -> None:
        code = self._child.exit_code()
        if code is not None:
            self.run.events.append({"t": time.time(), "app": self.name, "event": "app exited",
                                    "detail": f"exit code {code}"})
            raise InfraError(f"the {self.name} app exited with code {code} during the run: {self._child.log_tail(2)}")

    async def settle(self, collector: Collector) -> None:
        self._child.stop(timeout=10)  # its backends exit and flush their pg_stat_database counters

    async def written(self) -> dict[str, int] | None:
        """What the database holds after the run, counted by the apps' own model (``count_orders``)."""
        from sqlalchemy.exc import SQLAlchemyError

        from target_apps.common.models import count_orders

        if not self.run.scenario.write_routes or self._engine is None:
            return None
        try:
            async with self._engine.connect() as conn:
                return await count_orders(conn)
        except (OSError, TimeoutError, SQLAlchemyError) as err:  # the database may have gone away during the run
            raise InfraError(f"cannot count the rows written ({_cause(err)}); "
                             "the database went away during the run") from None

    async def close(self) -> None:
        self._child.stop(timeout=10)
        if self._engine is not None:
            await self._engine.dispose()
        await _drop_database(self.run, self.database)


class ServedApp:
    """--serve: the user's service, which the harness starts with the user's command on a fresh database of its
    own (migrated by --migrate), loads on loopback, and stops, like a paired app; its output goes to app.log."""

    name = TARGET

    def __init__(self, run: RunState, index: int, files: AppFiles) -> None:
        assert run.config.serve is not None
        self.run, self.files = run, files
        self.database = f"scopebench_{run.run_id}_{TARGET}_{index + 1}"
        self.port = free_port()
        self.host = f"http://127.0.0.1:{self.port}"
        self._first = index == 0  # what every run of it would say alike is said once
        self._child: Child | None = None

    def watched(self) -> Watched:
        assert self.run.server is not None
        cfg = self.run.config
        pool_url = (cfg.pool_url or self.host + ENDPOINT_PATH).replace("{port}", str(self.port))
        return Watched(admin_dsn=self.run.server.dsn("postgres"), database=self.database,
                       application_name=cfg.app_name, pool_url=pool_url, pool_token=cfg.pool_token)

    async def launch(self) -> None:
        # The database first: a service may connect (or check its schema) as it starts.
        cfg, server = self.run.config, self.run.server
        assert server is not None and cfg.serve is not None
        await postgres.create_database(server, self.database)
        fill = Fill(port=self.port, dsn=server.dsn(self.database), pool_size=cfg.pool_size)
        if cfg.migrate:
            await migrate(cfg.migrate, fill, self.files.root / MIGRATE_LOG, cfg.ready_timeout_s)
        self._child = service_child(cfg.serve, fill, self.files.app_log).start()

    async def ready(self) -> None:
        assert self._child is not None
        cfg = self.run.config
        waited = await wait_until_ready(self.host + cfg.ready_path, self._child, cfg.ready_timeout_s)
        self.run.timings.setdefault("serve_ready_s", round(waited, 3))

    def check_alive(self) -> None:
        code = None if self._child is None else self._child.exit_code()
        if code is not None:
            self.run.events.append({"t": time.time(), "app": self.name, "event": "app exited",
                                    "detail": f"exit code {code}"})
            raise InfraError(f"the --serve command exited with code {code} during the run; its output is in "
                             f"{self.files.app_log}: {self._child.log_tail(2) if self._child else ''}")

    async def settle(self, collector: Collector) -> None:
        if self._child is not None:
            self._child.stop(timeout=10)  # its backends exit and flush their pg_stat_database counters
        if collector.last_pool is None and self._first:
            self.run.note(f"no pool metrics from {self.watched().pool_url} (not exposed, or needs --pool-token); "
                          "database-side figures only")

    async def written(self) -> dict[str, int] | None:
        return None  # the user's schema is not ours to count

    async def close(self) -> None:
        if self._child is not None:
            self._child.stop(timeout=10)
        await _drop_database(self.run, self.database)


class RunningTarget:
    """Target mode: an app the user runs; the harness loads it and watches its database (and pool endpoint)."""

    name = "target"

    def __init__(self, run: RunState) -> None:
        assert run.config.target and run.config.dsn
        self.run, self.host, self.dsn = run, run.config.target, run.config.dsn

    def watched(self) -> Watched:
        cfg = self.run.config
        # The DSN as asyncpg reads it: the user's may name another driver (postgresql+psycopg://) or a socket.
        parsed = postgres.parse_dsn(self.dsn)
        return Watched(admin_dsn=parsed.server.dsn(parsed.database), database=parsed.database,
                       application_name=cfg.app_name, pool_url=cfg.pool_url, pool_token=cfg.pool_token)

    async def launch(self) -> None:
        await asyncio.to_thread(_check_reachable, self.host)

    async def ready(self) -> None:
        return None  # the user started it; Locust's first requests find out

    def check_alive(self) -> None:
        return None  # not our process: a dead app shows as failed requests

    async def settle(self, collector: Collector) -> None:
        if collector.last_pool is None:
            self.run.note(f"no pool metrics from {self.run.config.pool_url} (not exposed, or needs --pool-token); "
                          "database-side figures only")

    async def written(self) -> dict[str, int] | None:
        return None  # the user's schema is not ours to count

    async def close(self) -> None:
        return None


def _app_child(run: RunState, app: str, database: str, port: int, folder: Path) -> Child:
    assert run.server is not None
    cfg = run.config
    settings = AppEnv(
        dsn=run.server.sqlalchemy_url(database),
        pool_size=cfg.pool_size,
        max_overflow=cfg.max_overflow,
        pool_timeout_s=cfg.pool_timeout_s,
        upstream_latency_ms=cfg.upstream_latency_ms,
        idle_tx_timeout_ms=round(cfg.idle_tx_timeout_s * 1000),
        idle_threshold_ms=cfg.idle_threshold_ms,
        metrics_token=run.pool_token,
        # Each uvicorn worker has its own pool; they share their snapshots so the endpoint reports the sum.
        metrics_dir=str(AppFiles(folder).pool_metrics) if cfg.app_workers > 1 else None,
    ).with_scenario(run.scenario.app_env)
    # uvloop and httptools explicitly (dependencies): 1.2x less CPU per request than asyncio + h11,
    # and "auto" would make the stack depend on what happens to be installed.
    argv = [sys.executable, "-m", "uvicorn", "--factory", f"target_apps.{app}.app:create",
            "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
            "--log-level", "warning", "--no-access-log"]
    if cfg.app_workers > 1:
        argv += ["--workers", str(cfg.app_workers)]
    return Child(name=f"{app} app", argv=argv, log_path=AppFiles(folder).app_log, env=settings.to_env())


async def _drop_database(run: RunState, database: str) -> None:
    if run.config.keep or run.server is None:
        return
    try:
        await postgres.drop_database(run.server, database)
    except BenchError as err:  # never mask the error that brought us here
        run.note(f"could not drop database {database}: {err}")


def _check_reachable(url: str) -> None:
    """Any HTTP answer will do (even 404): what matters is that something listens there."""
    try:
        probe(url, timeout=5)
    except OSError as err:
        raise InfraError(f"cannot reach --target {url}: {err.strerror or err}; is the app running?") from None


def _cause(err: BaseException) -> str:
    # SQLAlchemy wraps the driver's error and appends the statement and a help link; the user needs the cause.
    cause = getattr(err, "orig", None) or err
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"
