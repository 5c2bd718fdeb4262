"""What one run shares across its drives: config, folder, database server, time line, faults; and how it ended.

bench.run.runner and bench.run.capacity create a ``RunState``; bench.run.drive and bench.run.digest read and add to it.
"""

from __future__ import annotations

import asyncio
import errno
import secrets
import time
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.config.catalog import Scenario
from bench.config.options import RunConfig, redact_argv
from bench.db import server as postgres
from bench.db.embedded import EmbeddedPostgres
from bench.errors import EXIT_OK, BenchError, InfraError, Interrupted
from bench.render.terminal import Console
from bench.results.folder import write_text
from bench.results.layout import HARNESS_ERROR, RunFiles
from bench.results.summaryfile import SCHEMA_VERSION
from bench.run.collector import Collector
from bench.run.environment import describe

if TYPE_CHECKING:  # pandas loads once the first load is over
    from bench.analysis.timeline import Timeline


@dataclass(frozen=True)
class RunHooks:
    """What a command built on runs (bench capacity) changes: extra Locust files and env, the collector class."""

    locust_files: tuple[Path, ...] = ()
    locust_env: dict[str, str] = field(default_factory=dict)
    collector: type[Collector] = Collector


@dataclass
class RunState:
    """Mutable on purpose: the drives add timings, events and faults, the digest adds each app's figures."""

    config: RunConfig
    scenario: Scenario
    console: Console
    command: list[str]
    folder: Path
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    # The apps' pool endpoint is token-protected, as a real service's would be; only the collector knows it.
    pool_token: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)
    server: postgres.Server | None = None
    embedded: EmbeddedPostgres | None = None
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    repeats: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    # The apps' time lines the digest made from the reads it shares with the summary, by folder, for the report.
    timelines: dict[Path, Timeline] = field(default_factory=dict)
    _environment: dict[str, Any] | None = None
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    hooks: RunHooks = field(default_factory=RunHooks)

    def __post_init__(self) -> None:
        # run.json, summary.json and the reports record this command: whoever built it, no secret goes there.
        self.command = redact_argv(self.command)

    def note(self, message: str) -> None:
        self.events.append({"t": time.time(), "message": message})
        self.console.info(message)

    def environment(self) -> dict[str, Any]:
        """Described once the server is known (describing runs git); before that, without it."""
        postgres_version = self.server.version if self.server else None
        if self._environment is None or self._environment.get("postgres") != postgres_version:
            self._environment = describe(postgres_version)
        return self._environment

    def run_json(self, status: str, error: str | None = None) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "status": status,
            "error": error,
            "scenario": self.config.scenario,
            "run_id": self.run_id,
            "started_at": self.started_at,
            "updated_at": datetime.now(UTC).isoformat(),
            "command": self.command,
            "config": self.config.to_json(),
            "database": (f"{self.server.safe_server()} "
                         f"({'embedded' if self.server.embedded else 'external'}; a fresh database per app run)")
            if self.server else None,
            "environment": self.environment(),
            "timings": self.timings,
            "events": self.events,
            "apps_completed": list(self.apps),
        }


@dataclass(frozen=True)
class Outcome:
    """How a run (or one pool size of a sweep) ended: run.json's status and error, and the exit code."""

    status: str
    error: str | None = None
    exit_code: int = EXIT_OK


COMPLETED = Outcome("completed")


def ended_by(err: BaseException, folder: Path) -> Outcome:
    """The outcome of a run stopped by ``err``; call it in the ``except`` block (a bug's traceback is saved)."""
    if isinstance(err, asyncio.CancelledError):
        return Outcome("interrupted", "interrupted by a signal", Interrupted.exit_code)
    full = _no_space(err)  # first: a write of run.json that found the disk full is a BenchError wrapping it
    if full is not None:  # not a bug, and no traceback could be written anyway: say what to do
        return Outcome("failed", f"the disk holding the run folder {folder} is full ({full.strerror}): free some "
                       "space there, or pick another --out; what was written is kept", InfraError.exit_code)
    if isinstance(err, BenchError):
        return Outcome("failed", postgres.redact(str(err)), err.exit_code)
    # A bug or an unforeseen fault: keep the results, say what broke, and where the details are.
    try:
        write_text(RunFiles(folder).harness_error, postgres.redact(traceback.format_exc()))
    except BenchError as unsaved:  # atomic: never an empty or half file in its place
        where = f"its traceback could not be saved: {unsaved}"
    else:
        where = f"details in {HARNESS_ERROR}"
    return Outcome("failed", postgres.redact(f"{type(err).__name__}: {err} ({where})"), InfraError.exit_code)


def _no_space(err: BaseException) -> OSError | None:
    """The full-disk error (ENOSPC, or a quota: EDQUOT) behind ``err``, if one is: itself or what it wraps."""
    seen: BaseException | None = err
    for _ in range(5):  # a short chain: a library may wrap the OSError once or twice
        if seen is None:
            return None
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
