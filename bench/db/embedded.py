"""The embedded PostgreSQL 18 a run uses by default: the shipped binaries, driven by us, in private slots.

The runner awaits EmbeddedPostgres().start() for a Server and stop() when done; both can be cancelled.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Self

import asyncpg

from bench.db.osuser import OsUser, pg_os_user, private_dir
from bench.db.pginstall import shipped_pginstall, usable_install
from bench.db.ports import free_port
from bench.db.postmaster import ensure_cluster, log_since, reason, shutdown, spawn, stop_stale, wait_ready
from bench.db.server import PostgresError, Server, version_label
from bench.db.slots import Slot, lock_slot, prepare_home

RUN_DB_PREFIX = "scopebench_"
_LOG_MAX_BYTES = 10 * 1024 * 1024
_READY_TIMEOUT_S = 15.0
_STALE_DBS_SQL = "SELECT datname FROM pg_database WHERE datname LIKE $1"


class EmbeddedPostgres:
    """A private PostgreSQL in one of the slots under `home`, locked from start() to stop().

    Async code awaits start() and stop() (or uses ``async with``); code without an event loop runs
    ``asyncio.run(pg.start())`` and ``pg.close()``: the server outlives the loop that started it.
    """

    def __init__(
        self,
        home: Path | None = None,
        notify: Callable[[str], None] = lambda message: None,
        *,
        pginstall: Path | None = None,
    ) -> None:
        default = Path(tempfile.gettempdir()) / f"scopebench-{os.getuid()}"
        self.home = Path(home or os.environ.get("BENCH_HOME") or default).absolute()
        self._notify = notify
        self._pginstall = pginstall
        self._slot: Slot | None = None
        self._lock_fd: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._server: Server | None = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def server(self) -> Server:
        if self._server is None:
            raise PostgresError("the embedded PostgreSQL is not running; call start() first")
        return self._server

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def log_path(self) -> Path | None:
        return None if self._slot is None else self._slot.log_path

    async def start(self) -> Server:
        """Lock a slot, initdb if needed, start postgres and wait until it serves. Cancelled (Ctrl-C) or
        failed, it stops what it started and frees the slot before the error goes on."""
        if self._server is not None:
            return self._server
        atexit.register(self.close)  # a caller that never reaches stop(): the interpreter's exit does
        try:
            self._server = await self._start()
        except BaseException:
            await self.stop()
            raise
        return self._server

    async def _start(self) -> Server:
        os_user = await pg_os_user()
        pgdir = prepare_home(self.home, os_user)
        self._slot, self._lock_fd = lock_slot(pgdir)
        stale = await stop_stale(self._slot.datadir)
        if stale is not None:
            self._notify(f"stopped a stale embedded PostgreSQL (pid {stale}) left by an interrupted run")
        install, version = await usable_install(
            self._pginstall or shipped_pginstall(), self.home, os_user, self._notify
        )
        await ensure_cluster(install / "bin", self._slot.datadir, version.split(".")[0], os_user)
        private_dir(self._slot.sockdir, os_user)
        port = await self._spawn_ready(install / "bin", self._slot, os_user)
        server = Server("127.0.0.1", port, "postgres", None, True, "")
        label, dropped = await _inspect(server)
        if dropped:
            self._notify(f"dropped {dropped} stale run database{'s' if dropped != 1 else ''}")
        return Server(server.host, port, server.user, None, True, label)

    async def _spawn_ready(self, bindir: Path, slot: Slot, os_user: OsUser | None) -> int:
        """Start postgres on a free port and wait until it accepts connections; retries a port taken meanwhile."""
        with _open_log(slot.log_path) as log:
            for attempt in range(3):
                port, offset = free_port(), log.tell()
                self._proc = proc = spawn(bindir, slot, port, log, os_user)  # kept at once: stop() must see it
                if await wait_ready(proc, slot.datadir, _READY_TIMEOUT_S):
                    return port
                timed_out = proc.poll() is None
                await shutdown(proc)
                self._proc = None
                output = log_since(slot.log_path, offset)
                if "Address already in use" in output and attempt < 2:
                    continue  # someone took the port between our probe and postgres's bind
                why = f"no sign of readiness after {_READY_TIMEOUT_S:g} s" if timed_out else reason(output)
                raise PostgresError(f"embedded PostgreSQL did not start: {why}; see {slot.log_path}")
        raise AssertionError("unreachable")

    async def stop(self) -> None:
        """Fast shutdown, then harder signals; leaves no server process and frees the slot. Idempotent; if it
        is itself cancelled, the server stays recorded so a later stop() or close() finishes the job."""
        self._server = None
        if self._proc is not None:
            await shutdown(self._proc)
            self._proc = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None
        atexit.unregister(self.close)

    def close(self) -> None:
        """stop() for code without a running event loop: sync fixtures, scripts, the interpreter's exit."""
        if self._proc is not None or self._lock_fd is not None:
            asyncio.run(self.stop())


def _open_log(log_path: Path) -> BinaryIO:
    """The slot's server log for appending, started afresh past _LOG_MAX_BYTES (a local file: no wait)."""
    if log_path.exists() and log_path.stat().st_size > _LOG_MAX_BYTES:
        log_path.unlink()
    return open(log_path, "ab")


async def _inspect(server: Server) -> tuple[str, int]:
    """Version label, and drop databases of killed runs (the slot lock says none of them is in use)."""
    conn = await asyncpg.connect(server.dsn("postgres"), timeout=10.0)
    try:
        version = await conn.fetchval("SHOW server_version")
        stale = [row[0] for row in await conn.fetch(_STALE_DBS_SQL, RUN_DB_PREFIX.replace("_", "\\_") + "%")]
        for name in stale:
            await conn.execute('DROP DATABASE IF EXISTS "{}" WITH (FORCE)'.format(name.replace('"', '""')))
    finally:
        await conn.close()
    return version_label(version), len(stale)
