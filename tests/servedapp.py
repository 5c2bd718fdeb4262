"""A small FastAPI/SQLAlchemy service in two versions, written into a test's folder for ``--serve``.

tests/test_serve.py and tests/test_ab.py start it through the harness; version "held" keeps its session (and its
transaction) open across the await of a slow upstream call, version "short" does not.
"""

from __future__ import annotations

import contextlib
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

SERVICE = '''"""A service that reads an item, calls a slow upstream (a sleep) and reads again."""
import asyncio
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from bench.instrument import ENDPOINT_PATH, PoolEndpoint, RouteTagMiddleware, TimedAsyncPool, instrument

HOLD_ACROSS_UPSTREAM = {held}
READ = text("SELECT name FROM items WHERE id = :id")


@asynccontextmanager
async def lifespan(app):
    engine = create_async_engine(os.environ["APP_DSN"], poolclass=TimedAsyncPool, pool_size=5, max_overflow=0)
    app.state.metrics = instrument(engine)
    app.state.sessions = async_sessionmaker(engine)
    print("service started", flush=True)
    yield
    await engine.dispose()


app = FastAPI(lifespan=lifespan)
app.add_route(ENDPOINT_PATH, PoolEndpoint(lambda: getattr(app.state, "metrics", None)))
app.add_middleware(RouteTagMiddleware)


@app.get("/items/{{item_id}}")
async def item(item_id: int) -> dict:
    sessions = app.state.sessions
    if HOLD_ACROSS_UPSTREAM:
        async with sessions() as session:
            name = await session.scalar(READ, {{"id": item_id}})
            await asyncio.sleep({upstream_s})  # the upstream call, the session's transaction still open
            again = await session.scalar(READ, {{"id": item_id}})
    else:
        async with sessions() as session:
            name = await session.scalar(READ, {{"id": item_id}})
        await asyncio.sleep({upstream_s})  # the upstream call, no connection held
        async with sessions() as session:
            again = await session.scalar(READ, {{"id": item_id}})
    return {{"id": item_id, "name": name, "same": name == again}}
'''

MIGRATION = '''"""Creates and seeds the service's table on the fresh database named by argv[1]."""
import asyncio
import sys

import asyncpg


async def main(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")
    await conn.execute("INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 100) AS i")
    await conn.close()
    print("migrated", flush=True)


asyncio.run(main(sys.argv[1]))
'''

LOCUSTFILE = '''import random

from locust import FastHttpUser, constant, task


class Reader(FastHttpUser):
    wait_time = constant(0)

    @task
    def item(self) -> None:
        self.client.get(f"/items/{random.randint(1, 100)}", name="GET /items/{item_id}")
'''


@dataclass(frozen=True)
class Service:
    """The files written and the commands that serve each version (``{port}`` etc. left for the harness)."""

    folder: Path
    locustfile: Path
    migrate: str

    def serve(self, version: str) -> str:
        python = shlex.quote(sys.executable)
        return (f"env APP_DSN={{sqlalchemy_url}} {python} -m uvicorn --app-dir {shlex.quote(str(self.folder))} "
                f"service_{version}:app --host 127.0.0.1 --port {{port}} --no-access-log")


def write_service(folder: Path, upstream_s: float = 0.05) -> Service:
    """Both versions, whose upstream call takes ``upstream_s``."""
    folder.mkdir(parents=True, exist_ok=True)
    for version, held in (("short", False), ("held", True)):
        (folder / f"service_{version}.py").write_text(SERVICE.format(held=held, upstream_s=upstream_s))
    (folder / "migrate.py").write_text(MIGRATION)
    (folder / "loadtest.py").write_text(LOCUSTFILE)
    migrate = f"{shlex.quote(sys.executable)} {shlex.quote(str(folder / 'migrate.py'))} {{dsn}}"
    return Service(folder=folder, locustfile=folder / "loadtest.py", migrate=migrate)


@dataclass(frozen=True)
class Watched:
    """A command's exit code and output, and every process seen in its tree while it ran."""

    returncode: int
    output: str
    seen: tuple[str, ...]  # "pid command line" of each process seen under it
    survivors: tuple[str, ...]  # those still running after it exited (and a grace period for reaping)


def run_watched(argv: list[str], env: dict[str, str], timeout: float,
                during: Callable[[subprocess.Popen[str]], bool] | None = None) -> Watched:
    """Run ``argv``, noting its process tree every 0.2 s (whatever a process's command line says: the service,
    its migration, Locust, PostgreSQL); ``during`` is called after each look until it says it is done."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    seen: dict[int, psutil.Process] = {}
    lines: dict[int, str] = {}  # read while it runs: a process gone has no command line to read
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read() if proc.stdout else ""), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"{argv[:4]} still running after {timeout:.0f}s")
            try:
                for child in psutil.Process(proc.pid).children(recursive=True):
                    seen.setdefault(child.pid, child)
                    with contextlib.suppress(psutil.Error):  # again each look: a fork shows its parent's until it execs
                        line = " ".join(child.cmdline())
                        # A process on its way out reads as [] (its memory is gone before it is a zombie): keep what
                        # it ran. A service looked at as it exited had lost its line, one fresh-clone run in ~10.
                        if line:
                            lines[child.pid] = f"{child.pid} {line[:400]}"
            except psutil.Error:
                pass
            if during is not None and during(proc):
                during = None
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(10)
    gone_by = time.monotonic() + 5  # orphans are reparented and reaped a moment later
    while _alive(seen.values()) and time.monotonic() < gone_by:
        time.sleep(0.1)
    return Watched(proc.returncode, "".join(chunks), tuple(lines.values()), tuple(_alive(seen.values())))


def _line(proc: psutil.Process) -> str:
    try:
        return f"{proc.pid} {' '.join(proc.cmdline())[:120]}"
    except psutil.Error:
        return f"{proc.pid} (gone)"


def _alive(procs: Iterable[psutil.Process]) -> list[str]:
    alive = []
    for proc in procs:
        try:  # is_running compares the start time too: a reused pid is not the process seen
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(_line(proc))
        except psutil.Error:
            continue
    return alive
