"""Start, wait for and stop the harness's child processes (uvicorn, Locust), always reaping them.

Each child gets its own process group, so stopping it stops whatever it forked, and a parent-death
signal, so a harness killed with SIGKILL does not leave an app or Locust behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import InfraError

_PR_SET_PDEATHSIG = 1
_children: list[Child] = []


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the process group stop still applies
        pass


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            try:
                self.popen = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **self.env},
                    start_new_session=True,
                    preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, async-signal-safe
                )
            except OSError as err:
                raise InfraError(f"cannot start {self.name} ({self.argv[0]}): {err.strerror}") from None
        _children.append(self)
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def exit_code(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])

    def stop(self, timeout: float = 5.0, sig: int = signal.SIGTERM) -> int | None:
        """Signal the whole process group, wait, then SIGKILL it; returns the exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            _signal_group(self.popen.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        # Anything the child forked that outlived it dies with the group.
        _signal_group(self.popen.pid, signal.SIGKILL)
        if self in _children:
            _children.remove(self)
        return self.popen.returncode


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_all(timeout: float = 5.0) -> None:
    """Stop every child still running, newest first (Locust before the app it loads)."""
    for child in reversed(list(_children)):
        child.stop(timeout)


def probe(url: str, timeout: float) -> None:
    """Open and close a TCP connection to ``url``'s host and port: raises ``OSError`` unless something listens."""
    import socket
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=timeout).close()


def wait_for_http(url: str, child: Child, timeout: float = 15.0) -> float:
    """Poll ``url`` until it answers 200; returns seconds waited. Fails fast if the child exits."""
    import urllib.error
    import urllib.request

    start = time.monotonic()
    while True:
        code = child.exit_code()
        if code is not None:
            raise InfraError(f"{child.name} exited with code {code} before it was ready: {child.log_tail()}")
        # A refused connect costs microseconds, a urllib request a millisecond of the CPU the starting child
        # needs: every 10 ms the port, and the request once something listens there.
        try:
            probe(url, timeout=1.0)
            with urllib.request.urlopen(url, timeout=1.0) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        if time.monotonic() - start > timeout:
            raise InfraError(f"{child.name} not ready at {url} after {timeout:.0f}s: {child.log_tail()}")
        time.sleep(0.01)
