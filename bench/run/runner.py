"""Runs one scenario end to end: database, target app(s), collector, Locust, cool-down, integrity, summary.

``bench run`` calls ``run_scenario``; tests call it directly. Every child is stopped on every exit path.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import sys
import time
import traceback
import urllib.parse
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pandas as pd
import psutil
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bench.analysis import applog
from bench.analysis.summary import SCHEMA_VERSION, Check, Integrity, evaluate, median_summary, summarize_app
from bench.config.catalog import Scenario
from bench.config.options import RunConfig
from bench.db import embedded as postgres
from bench.errors import BenchError, InfraError, Interrupted
from bench.instrument import ENDPOINT_PATH
from bench.render.terminal import Console
from bench.results.folder import new_run_dir, write_json
from bench.run.collector import Collector
from bench.run.environment import describe
from bench.run.loadgen import LoadPlan, RequestTail, go_file, locust_child, read_locust_json, read_requests
from bench.run.processes import Child, free_port, stop_all, wait_for_http

_LOCUST_GRACE_S = 30.0  # Locust stops itself at --run-time; past this much longer it is killed


@dataclass
class RunResult:
    folder: Path
    summary: dict[str, Any] | None
    exit_code: int
    error: str | None = None


@dataclass(frozen=True)
class RunHooks:
    """What a command built on runs (bench capacity) changes: extra Locust files and env, the collector class."""

    locust_files: tuple[Path, ...] = ()
    locust_env: dict[str, str] = field(default_factory=dict)
    collector: type[Collector] = Collector


@dataclass
class _Run:
    config: RunConfig
    scenario: Scenario
    console: Console
    command: list[str]
    folder: Path
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    # The apps' pool endpoint is token-protected, as a real service's would be; only the collector knows it.
    pool_token: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)
    server: postgres.Server | None = None
    embedded: postgres.EmbeddedPostgres | None = None
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    repeats: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    _environment: dict[str, Any] | None = None
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    hooks: RunHooks = field(default_factory=RunHooks)

    def note(self, message: str) -> None:
        self.events.append({"t": time.time(), "message": message})
        self.console.info(message)

    def environment(self) -> dict[str, Any]:
        """Described once the server is known (describing runs git); before that, without it."""
        postgres_version = self.server.version if self.server else None
        if self._environment is None or self._environment.get("postgres") != postgres_version:
            self._environment = describe(postgres_version)
        return self._environment

    def run_json(self, status: str, error: str | None = None) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "status": status,
            "error": error,
            "scenario": self.config.scenario,
            "run_id": self.run_id,
            "started_at": self.started_at,
            "updated_at": datetime.now(UTC).isoformat(),
            "command": self.command,
            "config": self.config.to_json(),
            "database": (f"{self.server.safe_dsn('postgres').rsplit('/', 1)[0]} "
                         f"({'embedded' if self.server.embedded else 'external'}; a fresh database per app run)")
            if self.server else None,
            "environment": self.environment(),
            "timings": self.timings,
            "events": self.events,
            "apps_completed": list(self.apps),
        }


def process_started_at() -> float:
    """When this process was created (the user pressed enter), for the start-up figure.

    From /proc/self/stat in clock ticks since boot: psutil's create_time adds a boot time rounded
    to whole seconds, which made the figure read up to a second long.
    """
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22 (starttime); the split dropped pid and comm
        since_boot = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - since_boot
    except (OSError, ValueError, IndexError, AttributeError):
        try:
            return float(psutil.Process().create_time())
        except psutil.Error:
            return time.time()


async def run_scenario(config: RunConfig, scenario: Scenario, console: Console, command: list[str],
                       hooks: RunHooks | None = None) -> RunResult:
    folder = new_run_dir(config.scenario, config.out)
    run = _Run(config=config, scenario=scenario, console=console, command=command, folder=folder,
               hooks=hooks or RunHooks())
    write_json(folder / "run.json", run.run_json("running"))
    console.header(config, scenario, folder)
    status, error, exit_code = "completed", None, 0
    try:
        await _start_database(run)
        write_json(folder / "run.json", run.run_json("running"))
        # Repeats interleave the apps (good bad good bad ...) so drift hits both alike.
        for index in range(config.repeat):
            for app in config.apps:
                figures = await (_run_target(run, index) if config.target else _run_app(run, app, index))
                run.repeats.setdefault(app, []).append(figures)
                run.apps[app] = median_summary(run.repeats[app])
                write_json(folder / "run.json", run.run_json("running"))
                if run.faults:  # its figures are kept, but a run with a fault is not a measurement to trust
                    raise InfraError("; ".join(run.faults))
    except asyncio.CancelledError:
        status, error, exit_code = "interrupted", "interrupted by a signal", Interrupted.exit_code
    except BenchError as err:
        status, error, exit_code = "failed", postgres.redact(str(err)), err.exit_code
    except Exception as err:  # noqa: BLE001 - a bug or an unforeseen fault: keep the results, say what broke
        (folder / "harness-error.txt").write_text(postgres.redact(traceback.format_exc()), encoding="utf-8")
        status, exit_code = "failed", InfraError.exit_code
        error = postgres.redact(f"{type(err).__name__}: {err} (details in harness-error.txt)")
    finally:
        stop_all()
        if run.embedded is not None:
            await asyncio.shield(asyncio.to_thread(run.embedded.stop))
    summary = _write_summary(run, status, error)
    write_json(folder / "run.json", run.run_json(status, error))
    report = _render_report(run)
    if status == "completed" and any(not c["passed"] for c in summary["checks"]):
        exit_code = 1
    console.final(summary, folder, error, report)
    return RunResult(folder=folder, summary=summary, exit_code=exit_code, error=error)


async def _start_database(run: _Run) -> None:
    if run.config.dsn:
        run.server = await postgres.connect_external(run.config.dsn, need_createdb=not run.config.target)
        run.note(f"database: {run.server.safe_dsn('postgres')} ({run.server.version})")
        return
    started = time.monotonic()
    run.embedded = postgres.EmbeddedPostgres(notify=run.note)
    run.server = run.embedded.start()
    run.timings["database_start_s"] = round(time.monotonic() - started, 3)
    run.console.info(f"embedded {run.server.version} on 127.0.0.1:{run.server.port} "
                     f"(started in {run.timings['database_start_s']:.2f}s)")


async def _prepare_database(server: postgres.Server, name: str) -> None:
    from target_apps.common.models import create_schema  # the schema belongs to the paired apps

    await postgres.create_database(server, name)
    engine = create_async_engine(_sqlalchemy_url(server.dsn(name)), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await create_schema(conn)
    finally:
        await engine.dispose()


def _sqlalchemy_url(dsn: str) -> str:
    return "postgresql+asyncpg://" + dsn.split("://", 1)[1]


def _app_child(run: _Run, app: str, database: str, port: int, folder: Path) -> Child:
    assert run.server is not None
    cfg = run.config
    env = {
        "BENCH_APP_DSN": _sqlalchemy_url(run.server.dsn(database)),
        "BENCH_APP_POOL_SIZE": str(cfg.pool_size),
        "BENCH_APP_MAX_OVERFLOW": str(cfg.max_overflow),
        "BENCH_APP_POOL_TIMEOUT": str(cfg.pool_timeout_s),
        "BENCH_APP_UPSTREAM_MS": str(cfg.upstream_latency_ms),
        "BENCH_APP_IDLE_TX_TIMEOUT_MS": str(int(cfg.idle_tx_timeout_s * 1000)),
        "BENCH_APP_METRICS_TOKEN": run.pool_token,
        **run.scenario.app_env,
    }
    # uvloop and httptools explicitly (dependencies): 1.2x less CPU per request than asyncio + h11,
    # and "auto" would make the stack depend on what happens to be installed.
    argv = [sys.executable, "-m", "uvicorn", "--factory", f"target_apps.{app}.app:create",
            "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
            "--log-level", "warning", "--no-access-log"]
    if cfg.app_workers > 1:
        # Each worker has its own pool; they share their snapshots so the endpoint reports the sum.
        argv += ["--workers", str(cfg.app_workers)]
        env["BENCH_APP_METRICS_DIR"] = str(folder / "pool-metrics")
    return Child(name=f"{app} app", argv=argv, log_path=folder / "app.log", env=env)


async def _run_app(run: _Run, app: str, index: int = 0) -> dict[str, Any]:
    assert run.server is not None
    cfg = run.config
    folder = run.folder / app if index == 0 else run.folder / app / f"repeat-{index + 1}"
    folder.mkdir(parents=True, exist_ok=True)
    database = f"scopebench_{run.run_id}_{app}_{index + 1}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # The app and Locust start while the database is prepared: their imports overlap. Locust holds
    # its users until the go file exists, so no request is sent before the app is ready.
    app_child = _app_child(run, app, database, port, folder).start()
    plan = LoadPlan(locustfile=run.scenario.locustfile, host=base, users=cfg.users,
                    spawn_rate=cfg.spawn_rate, duration_s=cfg.duration_s, workers=cfg.workers,
                    master_bind=cfg.master_bind,
                    extra_files=run.hooks.locust_files, env=run.hooks.locust_env)
    locust = locust_child(plan, folder).start()
    try:
        await _prepare_database(run.server, database)
        await asyncio.to_thread(wait_for_http, base + "/healthz", app_child)
        collector = run.hooks.collector(
            admin_dsn=run.server.dsn("postgres"), database=database,
            application_name=f"scopebench-{app}", pool_url=base + ENDPOINT_PATH,
            samples_path=folder / "samples.jsonl", interval_s=cfg.sample_interval_s,
            idle_threshold_s=cfg.idle_threshold_ms / 1000, pool_token=run.pool_token,
        )
        await collector.open()
        try:
            await _drive_load(run, app, locust, collector, folder, app_child)
            app_child.stop(timeout=10)  # its backends exit and flush their pg_stat_database counters
            figures = await collector.finish()
            requests = read_requests(folder)
            integrity = await _integrity(run, database, requests)
        finally:
            await collector.close()
    finally:
        locust.stop(timeout=5)
        app_child.stop(timeout=10)
        await _drop_database(run, database)
    return summarize_app(requests=requests, pool=collector.last_pool, db=figures,
                         integrity=integrity, pool_capacity=cfg.pool_size + cfg.max_overflow,
                         locust_stats=read_locust_json(folder), app_log=applog.scan(folder / "app.log"))


async def _run_target(run: _Run, index: int) -> dict[str, Any]:
    """Target mode: load a running app; watch its database (and its pool endpoint, if it has one)."""
    cfg = run.config
    target, dsn = cfg.target, cfg.dsn
    assert run.server is not None and target and dsn
    folder = run.folder / "target" if index == 0 else run.folder / "target" / f"repeat-{index + 1}"
    folder.mkdir(parents=True, exist_ok=True)
    database = postgres.parse_dsn(dsn).database
    await asyncio.to_thread(_check_reachable, target)
    plan = LoadPlan(locustfile=run.scenario.locustfile, host=target, users=cfg.users,
                    spawn_rate=cfg.spawn_rate, duration_s=cfg.duration_s, workers=cfg.workers,
                    master_bind=cfg.master_bind)
    locust = locust_child(plan, folder).start()
    collector = Collector(
        admin_dsn=dsn, database=database, application_name=cfg.app_name, pool_url=cfg.pool_url,
        samples_path=folder / "samples.jsonl", interval_s=cfg.sample_interval_s,
        idle_threshold_s=cfg.idle_threshold_ms / 1000, pool_token=cfg.pool_token,
    )
    try:
        await collector.open()
        try:
            await _drive_load(run, "target", locust, collector, folder)
            figures = await collector.finish()
        finally:
            await collector.close()
    finally:
        locust.stop(timeout=5)
    if collector.last_pool is None:
        run.note(f"no pool metrics from {cfg.pool_url} (not exposed, or needs --pool-token); database-side figures only")
    return summarize_app(requests=read_requests(folder), pool=collector.last_pool, db=figures, integrity=None,
                         pool_capacity=cfg.pool_size + cfg.max_overflow, locust_stats=read_locust_json(folder))


async def _drop_database(run: _Run, database: str) -> None:
    if run.config.keep or run.server is None:
        return
    try:
        await postgres.drop_database(run.server, database)
    except BenchError as err:  # never mask the error that brought us here
        run.note(f"could not drop database {database}: {err}")


async def _drive_load(run: _Run, app: str, locust: Child, collector: Collector, folder: Path,
                      app_child: Child | None = None) -> None:
    cfg = run.config
    stop = asyncio.Event()
    collector.phase = "load"
    sampling = asyncio.create_task(collector.run(stop))
    tail = RequestTail(folder / "requests.csv")
    go_file(folder).touch()
    load_started = time.monotonic()
    try:
        while locust.exit_code() is None:
            await asyncio.sleep(0.25)
            tail.poll()
            elapsed = time.monotonic() - load_started
            if tail.first_start is not None and "startup_s" not in run.timings:
                run.timings["startup_s"] = round(tail.first_start - process_started_at(), 3)
            run.console.progress(app, "load", elapsed, cfg.duration_s, tail, collector)
            _check_app_alive(run, app, app_child)
            if elapsed > cfg.duration_s + _LOCUST_GRACE_S:
                run.note(f"{app}: Locust overran its run time by {_LOCUST_GRACE_S:.0f}s; stopped it")
                break
        locust.stop(timeout=5)
        tail.poll()
        if tail.requests == 0:
            raise InfraError(f"Locust sent no request (exit code {locust.exit_code()}): {locust.log_tail()}")
        collector.phase = "cooldown"
        cooldown_end = time.monotonic() + cfg.cooldown_s
        while time.monotonic() < cooldown_end:
            await asyncio.sleep(0.25)
            _check_app_alive(run, app, app_child)
            run.console.progress(app, "cool-down", cfg.cooldown_s - (cooldown_end - time.monotonic()),
                                 cfg.cooldown_s, tail, collector)
    finally:
        stop.set()
        await sampling
        run.console.end_progress()
        for event in collector.events:
            run.events.append({**event, "app": app})
            if event["event"] == "collector connection lost":
                run.faults.append(f"{app}: the collector lost its database connection ({event['detail']})")


def _check_reachable(url: str) -> None:
    """Any HTTP answer will do (even 404): what matters is that something listens there."""
    parts = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=5):
            return
    except OSError as err:
        raise InfraError(f"cannot reach --target {url}: {err.strerror or err}; is the app running?") from None


def _check_app_alive(run: _Run, app: str, child: Child | None) -> None:
    code = None if child is None else child.exit_code()
    if code is not None and child is not None:
        run.events.append({"t": time.time(), "app": app, "event": "app exited", "detail": f"exit code {code}"})
        raise InfraError(f"the {app} app exited with code {code} during the run: {child.log_tail(2)}")


async def _integrity(run: _Run, database: str, requests: pd.DataFrame) -> Integrity | None:
    """Successful responses of each write route vs the rows carrying that route's tag."""
    assert run.server is not None
    routes = run.scenario.write_routes
    if not routes:
        return None
    ok = requests[requests["failed"] == 0]
    acknowledged = {name: int((ok["name"] == name).sum()) for name in routes}
    try:
        conn = await asyncpg.connect(run.server.dsn(database), timeout=10)
        try:
            rows = await conn.fetch("SELECT route, count(*) AS n FROM orders GROUP BY route")
        finally:
            await conn.close()
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as err:
        raise InfraError(f"cannot count the rows written ({type(err).__name__}: {err}); "
                         "the database went away during the run") from None
    by_tag = {r["route"]: int(r["n"]) for r in rows}
    written = {name: by_tag.get(tag, 0) for name, tag in routes.items()}
    return Integrity(acknowledged=acknowledged, written=written)


def _render_report(run: _Run) -> Path | None:
    from bench.render.run_report import render_report

    try:
        _md, html = render_report(run.folder)
    except BenchError as err:  # the run's own results are safe on disk; say why there is no report
        run.console.info(f"no report: {err}")
        return None
    return html


def _write_summary(run: _Run, status: str, error: str | None) -> dict[str, Any]:
    checks = evaluate([Check.parse(c) for c in run.scenario.checks], run.apps) if status == "completed" else []
    summary = {
        "schema_version": SCHEMA_VERSION,
        "scenario": run.config.scenario,
        "status": status,
        "error": error,
        "started_at": run.started_at,
        "command": run.command,
        "environment": run.environment(),
        "config": run.config.to_json(),
        "timings": run.timings,
        "events": run.events,
        "apps": run.apps,
        "checks": checks,
    }
    if run.config.repeat > 1:
        summary["repeats"] = run.repeats
    write_json(run.folder / "summary.json", summary)
    return summary
