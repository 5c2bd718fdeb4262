"""The PostgreSQL processes of one slot: initdb, the postmaster's start, readiness and shutdown, and the
removal of a stale one a killed run left behind. bench.db.embedded drives them; every wait here is async.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import BinaryIO

from bench.db.osuser import OsUser, as_user, child_env, kill_group, private_dir, run_as, signal_pid, uid_of
from bench.db.server import PostgresError
from bench.db.slots import Slot

# sun_path holds 107 bytes; postgres appends "/.s.PGSQL.NNNNN" (15) to the directory.
_SOCKET_DIR_MAX = 107 - 15
_POLL_S = 0.005
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
_INITDB_FLAGS = ("-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync", "--locale=C", "--no-instructions")
_INITDB_TIMEOUT_S = 300.0
# Fast shutdown first; SIGKILL to the whole group comes after these.
_ESCALATION = ((signal.SIGINT, 10.0), (signal.SIGQUIT, 2.0))


async def ensure_cluster(bindir: Path, datadir: Path, major: str, os_user: OsUser | None) -> None:
    """initdb once per slot; a cluster from another major version or another OS user is rebuilt.
    Cancelled, it kills initdb and removes the half-made cluster."""
    try:
        if (datadir / "PG_VERSION").read_text().strip() == major and datadir.stat().st_uid == uid_of(os_user):
            return
    except OSError:
        pass
    shutil.rmtree(datadir, ignore_errors=True)
    staging = datadir.with_name(datadir.name + ".init")  # renamed only when complete: no half-made cluster
    private_dir(staging, os_user)
    try:
        done = await run_as(os_user, [str(bindir / "initdb"), "-D", str(staging), *_INITDB_FLAGS], _INITDB_TIMEOUT_S)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, TimeoutError):
            raise PostgresError(f"initdb did not finish within {_INITDB_TIMEOUT_S:g} s in {staging}") from None
        raise
    if done.returncode != 0:
        raise PostgresError(f"initdb failed in {staging}: {done.last_line()}; remove {datadir.parent} and retry")
    (staging / "pg_hba.conf").write_text(_PG_HBA)
    if os_user:
        os.chown(staging / "pg_hba.conf", os_user.uid, os_user.gid)
    os.rename(staging, datadir)


def spawn(bindir: Path, slot: Slot, port: int, log: BinaryIO, os_user: OsUser | None) -> subprocess.Popen[bytes]:
    """Start the postmaster; it is not ready yet (see wait_ready).

    A plain Popen, not an asyncio subprocess: the server outlives the event loop that started it when sync
    code (a test session, a benchmark) runs several loops against it, and asyncio would kill it with its loop.
    """
    # A long BENCH_HOME would overflow sun_path; we connect over TCP anyway, so drop the socket then.
    sockets = str(slot.sockdir) if len(str(slot.sockdir)) <= _SOCKET_DIR_MAX else ""
    settings = {**_SERVER_SETTINGS, "port": str(port), "unix_socket_directories": sockets}
    args = [str(bindir / "postgres"), "-D", str(slot.datadir)]
    for name, value in settings.items():
        args += ["-c", f"{name}={value}"]
    return subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        cwd="/",
        env=child_env(),
        start_new_session=True,
        **as_user(os_user),
    )


async def wait_ready(proc: subprocess.Popen[bytes], datadir: Path, timeout: float) -> bool:
    """True once postmaster.pid says "ready" for this process; False if it exits or the time runs out."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            lines = (datadir / "postmaster.pid").read_text().splitlines()
        except OSError:
            lines = []
        if len(lines) >= 8 and lines[0] == str(proc.pid) and lines[7].strip() == "ready":
            return True
        await asyncio.sleep(_POLL_S)
    return False


async def shutdown(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT (fast shutdown), SIGQUIT, then SIGKILL to the whole group; returns once it is reaped."""
    for sig, wait in _ESCALATION:
        if proc.poll() is not None:
            return
        proc.send_signal(sig)
        if await _reaped(proc, wait):
            return
    kill_group(proc.pid, signal.SIGKILL)  # not yet reaped, so the group id is still ours
    await _reaped(proc, 5.0)
    proc.wait()  # past SIGKILL: at most a moment in the kernel


async def _reaped(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(_POLL_S)
    return True


def log_since(log_path: Path, offset: int) -> str:
    with open(log_path, "rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def reason(output: str) -> str:
    """The line of a server log that says why it stopped, without its timestamp and pid."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    serious = [line for line in lines if "FATAL" in line or "ERROR" in line or "PANIC" in line]
    last = (serious or lines or ["it exited without a message"])[-1]
    return re.sub(r"^.*? UTC \[\d+\] ", "", last)  # the timestamp and pid say nothing to the user


async def stop_stale(datadir: Path) -> int | None:
    """Stop a server a killed run left in our (now locked) slot; returns its pid if there was one."""
    pidfile = datadir / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    if not _is_postmaster(pid, datadir):
        pidfile.unlink(missing_ok=True)  # postgres would refuse to start if the pid now belongs to someone else
        return None
    signal_pid(pid, signal.SIGINT)
    if not await _gone(pid, 5.0):
        kill_group(pid, signal.SIGKILL)
        await _gone(pid, 2.0)
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


async def _gone(pid: int, timeout: float) -> bool:
    """Wait for a process that is not our child (we cannot reap it) to go away."""
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True
