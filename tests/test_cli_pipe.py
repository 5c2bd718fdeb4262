"""A reader that goes away does not stop a run: `bench run … | true` and `bench run … 2>&1 | head -1` complete,
their folders say so, and the exit code is the run's own. Also the short flags and time units of a real run, as
run.json records them."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = str(Path(sys.executable).with_name("bench"))


def _piped(command: list[str], pipe: str, tmp_path: Path, pg_home: Path) -> tuple[int, str]:
    """Run ``command | pipe`` in bash; bench's own exit status (PIPESTATUS) and what the reader printed."""
    status = tmp_path / "status"
    script = f"{shlex.join(command)} {pipe}; echo ${{PIPESTATUS[0]}} > {shlex.quote(str(status))}"
    done = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={"PATH": "/usr/bin:/bin", "BENCH_HOME": str(pg_home), "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    return int(status.read_text()), done.stdout


def _finished(out: Path, code: int) -> dict[str, Any]:
    run, summary = json.loads((out / "run.json").read_text()), json.loads((out / "summary.json").read_text())
    assert run["status"] == summary["status"] == "completed"
    assert code == (1 if any(not c["passed"] for c in summary["checks"]) else 0), summary["checks"]
    assert (out / "report.html").is_file()
    return dict(run["config"])


@pytest.mark.e2e
def test_a_closed_stdout_does_not_stop_the_run(tmp_path: Path, pg_home: Path) -> None:
    out = tmp_path / "run"
    command = [
        BENCH,
        "run",
        "long-session",
        "--app",
        "good",
        "-u",
        "2",
        "-r",
        "2",
        "-t",
        "2s",
        "--cooldown",
        "0",
        "--idle-threshold",
        "0.08s",
        "--upstream-ms",
        "0.05s",
        "--pool-timeout",
        "5000ms",
        "--out",
        str(out),
    ]
    code, _printed = _piped(command, "| true", tmp_path, pg_home)
    config = _finished(out, code)
    assert (config["users"], config["spawn_rate"], config["duration_s"]) == (2, 2.0, 2.0)
    assert (config["idle_threshold_ms"], config["upstream_latency_ms"], config["pool_timeout_s"]) == (80.0, 50.0, 5.0)


@pytest.mark.e2e
def test_a_reader_of_both_streams_that_stops_after_one_line(tmp_path: Path, pg_home: Path) -> None:
    out = tmp_path / "run"
    command = [
        BENCH,
        "run",
        "long-session",
        "--app",
        "good",
        "-u",
        "2",
        "-t",
        "2s",
        "--cooldown",
        "0",
        "--out",
        str(out),
    ]
    code, printed = _piped(command, "2>&1 | head -1", tmp_path, pg_home)
    assert printed.startswith("scopebench · long-session") and len(printed.splitlines()) == 1
    _finished(out, code)
