"""The embedded PostgreSQL's home (BENCH_HOME) and its SLOTS private slots, each held by one run through a lock.

bench.db.embedded locks a slot for the life of a server; a slot's data, socket and log live beside its lock.
"""

from __future__ import annotations

import fcntl
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.db.osuser import OsUser, first_blocked
from bench.db.server import PostgresError

SLOTS = 8


@dataclass(frozen=True)
class Slot:
    """Where one slot keeps its cluster, unix socket and server log."""

    pgdir: Path
    index: int

    @property
    def datadir(self) -> Path:
        return self.pgdir / f"slot-{self.index}"

    @property
    def sockdir(self) -> Path:
        return self.pgdir / f"sock-{self.index}"

    @property
    def log_path(self) -> Path:
        return self.pgdir / f"slot-{self.index}.log"

    @property
    def lock_path(self) -> Path:
        return self.pgdir / f"slot-{self.index}.lock"


def prepare_home(home: Path, os_user: OsUser | None) -> Path:
    """Create `home` and its pg/ directory (private), check they are ours; returns pg/."""
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
    blocked = first_blocked(home / "pg") if os_user else None
    if os_user and blocked:
        raise PostgresError(
            f"user '{os_user.name}' that runs PostgreSQL cannot enter {blocked} (no o+x); "
            f"set BENCH_HOME to a directory under {tempfile.gettempdir()}"
        )
    return home / "pg"


def lock_slot(pgdir: Path) -> tuple[Slot, int]:
    """The first free slot and the descriptor holding its lock; closing the descriptor frees the slot."""
    for index in range(SLOTS):
        slot = Slot(pgdir, index)
        # O_CLOEXEC: a postgres child must not inherit the lock, or a killed run's slot would stay taken.
        fd = os.open(slot.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
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
