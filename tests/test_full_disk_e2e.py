"""A run whose --out fills up mid-run: one line naming the cause and the fix, exit 3, and what was written kept.

The disk is a real one: a 64 KiB tmpfs, mounted in a mount namespace of the run's own (unshare), so nothing
outside the test sees it. Writing to /dev/full gives the same error for the pieces that need no mount.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.db import server as postgres
from bench.errors import UsageError
from bench.results.layout import HARNESS_ERROR, AppFiles
from bench.run.collector import Collector
from bench.run.drive import _keep_pool_reading
from bench.run.state import ended_by

ROOT = Path(__file__).resolve().parents[1]


def test_a_full_disk_is_named_not_a_bug(tmp_path: Path) -> None:
    try:
        with open("/dev/full", "w", encoding="utf-8") as full:
            full.write("x")
            full.flush()
    except OSError as err:
        outcome = ended_by(err, tmp_path)
    assert outcome.exit_code == 3 and "\n" not in (outcome.error or "")
    assert "is full (No space left on device): free some space there, or pick another --out" in (outcome.error or "")
    assert not (tmp_path / HARNESS_ERROR).exists()  # no traceback: it is not a bug


def test_a_pool_reading_that_cannot_be_kept_never_hides_why_the_drive_failed(tmp_path: Path) -> None:
    """pool.json is written as the drive ends, also when it ends by an error: that write failing too must not
    replace the error the user needs to see; after a drive that went well it is the error."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    files = AppFiles(blocker / "good")  # its folder cannot be made: the parent is a file
    collector = Collector(admin_dsn="postgresql://localhost/x", database="x", application_name=None,
                          pool_url=None, samples_path=tmp_path / "samples.jsonl")
    collector.last_pool = {"gauges": {"size": 5}}
    _keep_pool_reading(collector, files, failed=True)  # dropped: the drive's own error is on its way up
    with pytest.raises(UsageError, match="cannot write .*pool.json"):
        _keep_pool_reading(collector, files, failed=False)
    ok = AppFiles(tmp_path / "ok")
    _keep_pool_reading(collector, ok, failed=True)  # kept whenever it can be, for a failed run's folder too
    assert json.loads(ok.pool_json.read_text()) == collector.last_pool


@pytest.mark.e2e
def test_a_run_that_fills_its_disk(pg_server: postgres.Server, tmp_path: Path) -> None:
    if shutil.which("unshare") is None:
        pytest.fail("the test needs unshare (util-linux) to mount a small disk in a namespace of its own")
    small, kept = tmp_path / "small", tmp_path / "kept"
    small.mkdir()
    run = [sys.executable, "-m", "bench.cli", "run", "long-session", "--app", "good", "--duration", "12s",
           "--cooldown", "1s", "--dsn", pg_server.dsn("postgres"), "--out", str(small / "run")]
    # The tmpfs lives as long as the namespace: copy what the run left before it goes.
    script = (f"mount -t tmpfs -o size=64k tmpfs {shlex.quote(str(small))} && "
              f"{shlex.join(run)}; code=$?; cp -a {shlex.quote(str(small / 'run'))} {shlex.quote(str(kept))}; "
              "exit $code")
    namespace = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-r", "-m"]
    done = subprocess.run([*namespace, "sh", "-c", script], capture_output=True, text=True, timeout=180,
                          check=False, cwd=ROOT)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 3, done.stdout[-2000:] + done.stderr[-2000:]
    assert len(errors) == 1 and "internal failure" not in done.stderr, done.stderr[-2000:]
    assert f"the disk holding the run folder {small / 'run'} is full" in errors[0]
    assert "free some space there, or pick another --out" in errors[0]
    # What was written stays: run.json whole (its last complete version), the requests logged before the end.
    assert json.loads((kept / "run.json").read_text())["scenario"] == "long-session"
    assert (kept / "good" / "requests.csv").stat().st_size > 0
    harness_error = kept / HARNESS_ERROR
    assert not harness_error.exists() or harness_error.stat().st_size > 0
