"""stdout and stderr that outlive their reader: ``bench run … | head -2`` or ``| true`` closes the pipe early.

Python ignores SIGPIPE, so the next write raises BrokenPipeError; raised from a progress line, it ended the run
midway with its folder still "running". bench.cli.root installs the guard before any command runs.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO


class ClosedReaderGuard:
    """A text stream whose writes and flushes never raise BrokenPipeError: once the reader is gone the file
    descriptor is pointed at /dev/null, so the rest of the output (and the interpreter's last flush) goes
    nowhere, and the command carries on to its own end and exit code."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._drop()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._drop()

    def _drop(self) -> None:
        self.reader_gone = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # no file descriptor (a test's StringIO): nothing is left to flush
            return
        try:
            self._stream.flush()  # what the failed write left in the buffer now goes to /dev/null
        except OSError:
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard_streams() -> None:
    """Wrap sys.stdout and sys.stderr (once) so a closed pipe on either never stops a command."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, ClosedReaderGuard):
            setattr(sys, name, ClosedReaderGuard(stream))
