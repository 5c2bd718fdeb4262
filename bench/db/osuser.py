"""Who the embedded PostgreSQL runs as (we, or an unprivileged user when we are root, which postgres refuses),
what that user may reach, and running a command as it. Used by the other bench.db.* embedded modules.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.db.server import PostgresError

PG_OS_USER = "scopebench"


@dataclass(frozen=True)
class OsUser:
    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class Finished:
    """A command run to its end by run_as."""

    returncode: int
    stdout: str
    stderr: str

    def last_line(self) -> str:
        return (self.stderr.strip() or self.stdout.strip() or "no output").splitlines()[-1]


async def pg_os_user() -> OsUser | None:
    """None when not root; otherwise the unprivileged user postgres must run as, created if missing."""
    if os.geteuid() != 0:
        return None
    for attempt in range(2):
        try:
            entry = pwd.getpwnam(PG_OS_USER)
            return OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid)
        except KeyError:
            useradd = shutil.which("useradd", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
            if attempt or useradd is None:
                break
            args = [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_OS_USER]
            try:
                await run_as(None, args, timeout=30.0)
            except OSError:  # TimeoutError included: fall back to nobody below
                break
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        raise PostgresError(
            "running as root and no unprivileged user exists to run PostgreSQL; "
            f"create one: useradd --system {PG_OS_USER}"
        ) from None
    return OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


async def run_as(os_user: OsUser | None, args: list[str], timeout: float) -> Finished:
    """Run `args` to its end as `os_user`. Cancelling the caller (Ctrl-C) or the timeout (TimeoutError)
    kills the command and everything it started, and waits for it, so nothing outlives the call."""
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd="/",
        env=child_env(),
        start_new_session=True,  # its own group: one killpg reaches initdb's postgres children too
        **as_user(os_user),
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except BaseException:
        if proc.returncode is None:  # not yet reaped, so the group id is still its own
            kill_group(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise
    return Finished(proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))


def kill_group(pid: int, sig: int) -> None:
    try:  # started with start_new_session: the process leads a group holding all it started
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        signal_pid(pid, sig)


def signal_pid(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def as_user(os_user: OsUser | None) -> dict[str, Any]:
    """Keyword arguments for subprocess (and asyncio's) to start a child as `os_user`."""
    # extra_groups=[] drops root's supplementary groups too, not just uid/gid.
    return {} if os_user is None else {"user": os_user.uid, "group": os_user.gid, "extra_groups": []}


def child_env() -> dict[str, str]:
    # PG* variables of the caller (PGDATA, PGPORT...) must not steer our private server.
    return {**{k: v for k, v in os.environ.items() if not k.startswith("PG")}, "LC_ALL": "C"}


def uid_of(os_user: OsUser | None) -> int:
    return os.geteuid() if os_user is None else os_user.uid


def first_blocked(path: Path) -> Path | None:
    """The first directory on the way to `path` that others may not traverse."""
    for directory in [*reversed(path.parents), path]:
        if not os.stat(directory).st_mode & stat.S_IXOTH:
            return directory
    return None


def private_dir(path: Path, os_user: OsUser | None) -> None:
    """A 0700 directory of the postgres user, emptied (we hold the slot lock, so nothing in it is live)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700)
    if os_user:
        os.chown(path, os_user.uid, os_user.gid)
