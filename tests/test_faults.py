"""Faults during a real run: the app killed, the collector's connection terminated, PostgreSQL stopped.

Each run must end on its own (no hang), say what happened, keep what it collected, exit 3 and leave
no process behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import pytest

pytestmark = pytest.mark.e2e


def _start_run(out: Path, pg_home: Path, duration: str = "12s") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "run", "long-session", "--app", "bad", "--duration", duration,
         "--cooldown", "1s", "--users", "10", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "BENCH_HOME": str(pg_home)},
    )


def _wait_for_load(out: Path) -> None:
    requests = out / "bad" / "requests.csv"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not requests.exists() or requests.stat().st_size < 500):
        time.sleep(0.1)
    assert requests.exists(), "load never started"


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(pid).children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]
    except psutil.Error:
        return []


def _alive(procs: list[psutil.Process]) -> list[str]:
    alive = []
    for p in procs:
        try:  # is_running also checks the start time, so a reused pid is not mistaken for the old process
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{p.pid} {' '.join(p.cmdline())[:80]}")
        except psutil.Error:
            continue
    return alive


def _run_with_fault(out: Path, pg_home: Path, fault: Callable[[subprocess.Popen[str]], None]) -> tuple[int, str, Any]:
    proc = _start_run(out, pg_home)
    try:
        _wait_for_load(out)
        time.sleep(1.0)
        # Everything the run started, whatever its command line says: PostgreSQL, the app, Locust.
        tree = _descendants(proc.pid)
        assert {"postgres", "locust", "app"} <= {_role(p) for p in tree}, [p.cmdline()[:4] for p in tree]
        fault(proc)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    gone_by = time.monotonic() + 5  # orphans of a killed parent take a moment to be reaped
    while _alive(tree) and time.monotonic() < gone_by:
        time.sleep(0.1)
    assert not _alive(tree), _alive(tree)
    return proc.returncode, output, json.loads((out / "summary.json").read_text())


def _role(proc: psutil.Process) -> str:
    try:
        line = " ".join(proc.cmdline())
    except psutil.Error:
        return ""
    return "postgres" if proc.name() == "postgres" else "locust" if "-m locust" in line else \
        "app" if "target_apps." in line else ""


def test_app_killed_mid_run(tmp_path: Path, pg_home: Path) -> None:
    def kill_app(proc: subprocess.Popen[str]) -> None:
        apps = [p for p in _descendants(proc.pid) if "target_apps.bad.app:create" in " ".join(p.cmdline())]
        assert len(apps) == 1
        apps[0].send_signal(signal.SIGKILL)

    out = tmp_path / "run"
    code, output, summary = _run_with_fault(out, pg_home, kill_app)
    assert code == 3, output
    assert "the bad app exited with code -9 during the run" in output and "Traceback" not in output
    assert summary["status"] == "failed" and "exited" in summary["error"]
    assert any(e.get("event") == "app exited" for e in summary["events"])
    assert json.loads((out / "run.json").read_text())["status"] == "failed"
    assert (out / "bad" / "requests.csv").stat().st_size > 0 and (out / "report.html").is_file()


def _server_dsn(out: Path) -> str:
    database = json.loads((out / "run.json").read_text())["database"]
    match = re.match(r"(postgresql://\S+)", database)
    assert match, database
    return match.group(1) + "/postgres"


def test_collector_connection_terminated(tmp_path: Path, pg_home: Path) -> None:
    out = tmp_path / "run"

    def terminate_collector(proc: subprocess.Popen[str]) -> None:
        async def go() -> int:
            conn = await asyncpg.connect(_server_dsn(out))
            try:
                return int(await conn.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = 'scopebench-collector'"))
            finally:
                await conn.close()

        assert asyncio.run(go()) == 1

    code, output, summary = _run_with_fault(out, pg_home, terminate_collector)
    assert code == 3, output
    assert "the collector lost its database connection" in output
    events = [e["event"] for e in summary["events"]]
    assert "collector connection lost" in events and "collector reconnected" in events
    # What was measured is kept, marked failed: the samples have a gap, the load did not.
    assert summary["status"] == "failed" and summary["apps"]["bad"]["requests"] > 50
    assert summary["apps"]["bad"]["db"]["idle_in_tx_oldest_s"] > 0.08


def test_postgres_stopped_mid_run(tmp_path: Path, pg_home: Path) -> None:
    out = tmp_path / "run"

    def stop_postgres(proc: subprocess.Popen[str]) -> None:
        servers = [p for p in _descendants(proc.pid) if p.name() == "postgres"]
        if not servers:  # started in its own session: find it by its data directory
            servers = [p for p in psutil.process_iter(["name", "cmdline"])
                       if p.info["name"] == "postgres" and str(pg_home) in " ".join(p.info["cmdline"] or [])
                       and "-D" in (p.info["cmdline"] or []) and p.ppid() != 0
                       and "slot" in " ".join(p.info["cmdline"] or [])]
        postmasters = [p for p in servers if p.parent() is None or p.parent().name() != "postgres"]
        assert postmasters
        # Use the newest: the test session's own server holds another slot of the same home.
        newest = max(postmasters, key=lambda p: p.create_time())
        newest.send_signal(signal.SIGINT)

    code, output, summary = _run_with_fault(out, pg_home, stop_postgres)
    assert code == 3, output
    assert summary["status"] == "failed" and "Traceback" not in output


def test_locust_killed_mid_load(tmp_path: Path, pg_home: Path) -> None:
    """A load cut short is a fault, not a completed measurement of a load the app never got."""
    out = tmp_path / "run"

    def kill_locust(proc: subprocess.Popen[str]) -> None:
        locusts = [p for p in _descendants(proc.pid) if _role(p) == "locust"]
        assert len(locusts) == 1
        locusts[0].send_signal(signal.SIGKILL)

    code, output, summary = _run_with_fault(out, pg_home, kill_locust)
    assert code == 3, output
    assert "Locust stopped" in output and "into a 12 s load" in output and "Traceback" not in output
    cut = [e for e in summary["events"] if e.get("event") == "load cut short"]
    assert len(cut) == 1 and cut[0]["app"] == "bad"
    assert summary["status"] == "failed" and summary["apps"]["bad"]["requests"] > 0  # what it measured is kept
