"""A user's service as the harness runs it (``--serve``): its migration on the fresh database, the service started
with its placeholders filled in, and the wait until it answers; the output of each goes to the app's folder.

bench.run.subjects' ``ServedApp`` calls these. Each command is a bench.run.processes ``Child``, like the harness's
own apps: its own process group (stopping it stops what it forked), a parent-death signal, stopped on every exit.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.config.command import CommandTemplate
from bench.db import server as postgres
from bench.errors import InfraError
from bench.run.processes import Child

MIGRATE_LOG = "migrate.log"  # beside the app's app.log, in the app run's folder
_POLL_S = 0.1


@dataclass(frozen=True)
class Fill:
    """What the placeholders of one app run's commands stand for (bench.config.command.PLACEHOLDERS)."""

    port: int
    dsn: str = field(repr=False)  # holds the database's password, if it has one
    pool_size: int = 5  # the run's --pool-size

    def values(self) -> dict[str, str]:
        return {"port": str(self.port), "dsn": self.dsn, "sqlalchemy_url": postgres.sqlalchemy_url(self.dsn),
                "pool_size": str(self.pool_size)}


def service_child(command: str, fill: Fill, log_path: Path) -> Child:
    """The service's process, not started yet; its output (stdout and stderr) goes to ``log_path``."""
    argv = CommandTemplate.parse(command, "--serve").expand(**fill.values())
    return Child(name="served app", argv=argv, log_path=log_path)


async def migrate(command: str, fill: Fill, log_path: Path, timeout_s: float) -> None:
    """Run the migration (or seed) command to its end; a failure or a hang is the run's failure (exit 3)."""
    argv = CommandTemplate.parse(command, "--migrate").expand(**fill.values())
    child = Child(name="migration", argv=argv, log_path=log_path).start()
    started = time.monotonic()
    try:
        while child.exit_code() is None:
            if time.monotonic() - started > timeout_s:
                raise InfraError(f"--migrate still running after {timeout_s:g}s (--ready-timeout); its output is in "
                                 f"{log_path}: {child.log_tail()}")
            await asyncio.sleep(_POLL_S)
    finally:
        child.stop(timeout=5)  # on success too: whatever it left running in its group goes with it
    code = child.exit_code()
    if code != 0:
        raise InfraError(f"--migrate exited with code {code}; its output is in {log_path}: {child.log_tail()}")


async def wait_until_ready(url: str, child: Child, timeout_s: float) -> float:
    """Poll ``url`` until it answers anything but a 5xx: uvicorn and its kind listen only once the app's start-up
    (its lifespan) is done, so any answer, a 404 from an app without the path included, means it takes load.
    Returns the seconds waited; fails fast when the service exits."""
    started = time.monotonic()
    while True:
        code = child.exit_code()
        if code is not None:
            raise InfraError(f"the --serve command exited with code {code} before it was ready; its output is in "
                             f"{child.log_path}: {child.log_tail()}")
        status = await asyncio.to_thread(_status, url)
        if status is not None and status < 500:
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            said = f"it answered {status}" if status is not None else "nothing answered"
            raise InfraError(f"the --serve command was not ready at {url} after {timeout_s:g}s ({said}); check that "
                             f"it listens on {{port}}, or set --ready PATH / --ready-timeout; its output is in "
                             f"{child.log_path}: {child.log_tail()}")
        await asyncio.sleep(_POLL_S)


def _status(url: str) -> int | None:
    """The HTTP status ``url`` answers with, or None when nothing answers (yet)."""
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return None
