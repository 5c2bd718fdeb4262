"""A run's folder on disk: where it goes, and atomic writes so a crash never leaves half a file.

The runner, capacity and the renderers write through here; bench.results.layout names the files,
bench.results.summaryfile and the other readers in bench.results read them back.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.errors import UsageError
from bench.results.layout import ASIDE_SUFFIX, DEFAULT_FOLDER, TAKEN_SUFFIX, WRITE_PROBE


def default_results_dir() -> Path:
    return Path(os.environ.get("BENCH_RESULTS", "results"))


def new_run_dir(name: str, out: Path | None, force: bool = False,
                notify: Callable[[str], None] | None = None) -> Path:
    """``out`` exactly, or ``results/<UTC timestamp>_<name>/``; must be creatable and writable, and hold nothing.

    A run never writes into another's folder: it would keep that run's go file (Locust would start before the
    app is ready) and append to its samples and logs. A non-empty ``out`` is refused, or with ``force`` moved
    aside to ``<out>.old-<UTC timestamp>`` (``notify`` is told where); nothing is deleted."""
    if out is None:
        base = DEFAULT_FOLDER.format(stamp=_stamp(), name=name)
        out = default_results_dir() / base
        suffix = 1
        while out.exists():
            suffix += 1
            out = default_results_dir() / (base + TAKEN_SUFFIX.format(n=suffix))
    elif _holds_something(out):
        aside = _move_aside(out, force)
        if notify is not None:
            notify(f"--force: moved what was in {out} to {aside}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / WRITE_PROBE
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise UsageError(f"cannot write the run folder {out}: {err.strerror}; pick another --out") from None
    return out


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _holds_something(out: Path) -> bool:
    try:
        return out.is_dir() and next(out.iterdir(), None) is not None
    except OSError:
        return False  # unreadable: the write probe says why


def _move_aside(out: Path, force: bool) -> Path:
    if not force:
        raise UsageError(f"--out {out} is not empty; pick a new folder, or add --force to move it aside first")
    resolved, here = out.resolve(), Path.cwd().resolve()
    if resolved == here or resolved in here.parents:
        raise UsageError(f"--out {out} holds the current directory; --force will not move it, pick another --out")
    aside = out.with_name(f"{out.name}{ASIDE_SUFFIX.format(stamp=_stamp())}")
    suffix = 1
    while aside.exists() or aside.is_symlink():
        suffix += 1
        aside = out.with_name(f"{out.name}{ASIDE_SUFFIX.format(stamp=_stamp())}{TAKEN_SUFFIX.format(n=suffix)}")
    try:
        out.rename(aside)
    except OSError as err:
        raise UsageError(f"--force could not move {out} to {aside}: {err.strerror}; pick another --out") from None
    return aside


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically: a temporary file in the same folder, fsync, then rename over the target."""
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def write_text(path: Path, text: str) -> None:
    """Write a file atomically, so a crash never leaves half of it where a reader looks.

    The file gets the mode any other new file gets (0666 less the umask), not mkstemp's 0600: a teammate, a web
    server or a CI artifact viewer running as another user must be able to open a report."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~current_umask())
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {err.strerror}; free some space or pick a writable folder") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process's umask, read without changing it where Linux tells it (/proc/self/status): setting it to
    read it back would, for a moment, give files other threads create (the collector's, the logs) the wrong mode."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
