"""The harness's error types and their exit codes (0 ok, 1 gate failed, 2 bad usage, 3 infrastructure).

Every error a user can cause is one of these, with a one-line message naming the fix.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_GATE = 1
EXIT_USAGE = 2
EXIT_INFRA = 3


class BenchError(Exception):
    """A failure reported to the user as one line and an exit code."""

    exit_code = EXIT_INFRA


class UsageError(BenchError):
    """Bad flags, names or input files: the user can fix it (exit 2)."""

    exit_code = EXIT_USAGE


class InfraError(BenchError):
    """The harness or something it runs failed: database, app, Locust (exit 3)."""

    exit_code = EXIT_INFRA


class Interrupted(BenchError):
    """Ctrl-C or SIGTERM: the run stopped early; what was collected is kept."""

    exit_code = 130
