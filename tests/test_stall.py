"""A frozen app must not read as a healthy run: stalls, the load period, and requests left waiting.

The unit tests build request logs by hand; the drills freeze a real run's app (SIGSTOP on uvicorn) and its
PostgreSQL backends mid-load through the real CLI, and expect a stall event, exit 1 and the whole period.
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
import pandas as pd
import psutil
import pytest

from bench.analysis.loadperiod import LoadPeriod, Quiet
from bench.config.catalog import get_scenario
from bench.config.options import resolve_config
from bench.render.terminal import Console, render_summary
from bench.results.layout import AppFiles, RunFiles
from bench.results.records import DbFigures
from bench.results.requestlog import COLUMNS, UNFINISHED, read_requests
from bench.run.digest import render_report, summarize, write_summary
from bench.run.drive import Driven
from bench.run.state import COMPLETED, RunState

STALL = re.compile(r"no response for (\d+\.\d) s while (\d+) requests were waiting \(from (\d+\.\d) s into the load\)")


def _frame(rows: list[tuple[float, float]], unfinished: list[float] = ()) -> pd.DataFrame:
    """(start, response time in s) per answered request; the start of each request left waiting."""
    data = [(s, "GET", "GET /x", rt * 1000, 2, 0, "") for s, rt in rows]
    data += [(s, UNFINISHED, "GET /x", 1.0, 0, 1, "Unfinished") for s in unfinished]
    return pd.DataFrame(data, columns=list(COLUMNS))


def test_a_frozen_app_is_a_stall_over_the_whole_period() -> None:
    # 10 users answered every 0.1 s from 100 s to 108 s, then nothing until the load stopped at 120 s.
    answered = [(100 + i * 0.01, 0.1) for i in range(800)]
    requests = _frame(answered, unfinished=[107.95 + u * 0.005 for u in range(10)])
    period = LoadPeriod(100.0, 120.0)
    quiet = Quiet.of(requests, period)
    [stall] = quiet.stalls()
    assert stall.waiting == 10 and stall.seconds == pytest.approx(120 - 108.09, abs=0.02)
    assert STALL.fullmatch(stall.describe(period)).groups() == ("11.9", "10", "8.1")
    figures = quiet.figures()
    assert quiet.events("bad") == [{"t": stall.start, "event": "stall", "app": "bad", "detail": stall.describe(period)}]
    assert figures == {"load_window_s": 20.0, "stalls": 1, "longest_stall_s": pytest.approx(11.91, abs=0.02)}


def test_quiet_stretches_that_are_not_stalls() -> None:
    period = LoadPeriod(0.0, 60.0)
    # Nothing waiting: a pause between requests is not a stall, however long.
    idle = _frame([(1.0, 0.1), (20.0, 0.1), (40.0, 0.1)])
    assert Quiet.of(idle, period).stalls() == [] and Quiet.of(idle, period).figures()["longest_stall_s"] == \
        pytest.approx(0.1)
    # One user whose requests take 6 s each: slow, but answering as it always does (5 medians = 30 s).
    slow = _frame([(6.0 * i, 6.0) for i in range(10)])
    assert Quiet.of(slow, period).stalls() == [] and Quiet.of(slow, period).figures()["longest_stall_s"] == \
        pytest.approx(6.0)
    # The same user, then a request that waits 20 s past the load's end: that one is.
    [stall] = Quiet.of(_frame([(6.0 * i, 6.0) for i in range(5)], unfinished=[30.0]), period).stalls()
    assert (stall.start, stall.seconds, stall.waiting) == (30.0, 30.0, 1)


def _run_state(tmp_path: Path) -> RunState:
    scenario = get_scenario("long-session")
    config = resolve_config(scenario, {"out": tmp_path / "run", "app": "bad"})
    folder = tmp_path / "run"
    folder.mkdir()
    return RunState(config=config, scenario=scenario, console=Console(quiet=True), command=["bench", "run"],
                    folder=folder)


def test_a_stall_fails_the_checks_and_is_named_in_the_terminal_and_the_report(tmp_path: Path) -> None:
    run = _run_state(tmp_path)
    files = AppFiles(run.folder / "bad")
    files.root.mkdir()
    rows = [f"{100 + i * 0.05:.6f},\"GET\",\"GET /x\",50.000,2,0,\"\"\n" for i in range(100)]
    rows += [f"{104.96 + u * 0.001:.6f},\"{UNFINISHED}\",\"GET /x\",15000.000,0,1,\"Unfinished\"\n" for u in range(7)]
    files.request_log.write_text(",".join(COLUMNS) + "\n" + "".join(rows))
    driven = Driven(app="bad", files=files, db=DbFigures(), pool=None, written=None, load=LoadPeriod(100.0, 120.0))
    run.apps["bad"] = summarize(run, driven)
    figures = run.apps["bad"]
    assert (figures["stalls"], figures["requests_unfinished"], figures["failures"]) == (1, 7, 0)
    assert figures["throughput_rps"] == pytest.approx(100 / 20)  # over the whole period, not the 5 s that answered
    summary = write_summary(run, COMPLETED)
    failed = [c["name"] for c in summary["checks"] if not c["passed"]]
    assert "bad: stalls == 0" in failed
    [event] = [e for e in summary["events"] if e.get("event") == "stall"]
    assert event["app"] == "bad" and STALL.fullmatch(event["detail"]).groups() == ("15.0", "7", "5.0")
    assert f"bad: {event['detail']}" in render_summary(summary, run.folder)
    write_json_run(run)
    assert render_report(run) is not None
    assert event["detail"] in RunFiles(run.folder).report_md.read_text()


def write_json_run(run: RunState) -> None:
    RunFiles(run.folder).run_json.write_text(json.dumps(run.run_json("completed")))


# --- drills: the real CLI, a real app, real Locust, the embedded PostgreSQL --------------------------------------

DURATION_S = 12
FREEZE_AFTER_S = 3.0


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(pid).children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]
    except psutil.Error:
        return []


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _drill(out: Path, pg_home: Path, freeze: Callable[[subprocess.Popen[str]], list[int]]) -> tuple[int, str, Any]:
    """Run long-session's bad app; FREEZE_AFTER_S into the load, SIGSTOP what ``freeze`` returns, SIGCONT it once
    Locust has stopped (the app is stopped cleanly afterwards); always SIGCONT in the end."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "run", "long-session", "--app", "bad", "--duration", f"{DURATION_S}s",
         "--cooldown", "3s", "--users", "10", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "BENCH_HOME": str(pg_home)})
    frozen: list[int] = []
    files = AppFiles(out / "bad")
    try:
        deadline = time.monotonic() + 60
        while not (files.request_log.exists() and files.request_log.stat().st_size > 500):
            assert time.monotonic() < deadline and proc.poll() is None, "the load never started"
            time.sleep(0.05)
        time.sleep(FREEZE_AFTER_S)
        frozen = freeze(proc)
        assert frozen, "nothing to freeze"
        _signal(frozen, signal.SIGSTOP)
        while not files.locust_json.exists():
            assert time.monotonic() < deadline + DURATION_S, "Locust never stopped"
            time.sleep(0.1)
        _signal(frozen, signal.SIGCONT)
        output, _ = proc.communicate(timeout=120)
    finally:
        _signal(frozen, signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, output, json.loads((out / "summary.json").read_text())


def _assert_stalled(out: Path, code: int, output: str, summary: dict[str, Any]) -> None:
    assert code == 1, output
    assert summary["status"] == "completed"
    bad = summary["apps"]["bad"]
    stalls = [e for e in summary["events"] if e.get("event") == "stall" and e.get("app") == "bad"]
    assert len(stalls) == bad["stalls"] >= 1, summary["events"]
    seconds, waiting, since = map(float, STALL.fullmatch(stalls[-1]["detail"]).groups())
    # Frozen FREEZE_AFTER_S after the first rows were flushed until the load's end: the stall runs to that end.
    assert 5.0 <= seconds <= DURATION_S - FREEZE_AFTER_S + 1, stalls
    assert 1 <= waiting <= 10 and since + seconds == pytest.approx(bad["load_window_s"], abs=0.15)
    assert stalls[-1]["detail"] in output and stalls[-1]["detail"] in (out / "report.md").read_text()
    assert {"name": "bad: stalls == 0", "passed": False}.items() <= next(
        c for c in summary["checks"] if c["name"] == "bad: stalls == 0").items()
    # Requests in flight at the stop are their own count, not failures.
    assert bad["requests_unfinished"] > 0 and bad["failures"] == 0
    # The load period is the one driven, not first request to last response; throughput is over all of it.
    assert DURATION_S - 0.5 <= bad["load_window_s"] <= DURATION_S + 0.1
    log = read_requests(out / "bad").frame
    answered = log[log["request_type"] != UNFINISHED]
    ok = int((answered["failed"] == 0).sum())
    responses = answered["start_epoch_s"] + answered["response_time_ms"] / 1000
    assert float(responses.max() - answered["start_epoch_s"].min()) < bad["load_window_s"] - 5
    assert bad["throughput_rps"] == pytest.approx(ok / bad["load_window_s"], rel=1e-3)
    assert bad["requests_unfinished"] == int((log["request_type"] == UNFINISHED).sum())


@pytest.mark.e2e
def test_drill_app_frozen_mid_load(tmp_path: Path, pg_home: Path) -> None:
    def the_app(proc: subprocess.Popen[str]) -> list[int]:
        return [p.pid for p in _descendants(proc.pid) if "target_apps.bad.app:create" in " ".join(p.cmdline())]

    out = tmp_path / "run"
    _assert_stalled(out, *_drill(out, pg_home, the_app))


@pytest.mark.e2e
def test_drill_database_backends_frozen_mid_load(tmp_path: Path, pg_home: Path) -> None:
    out = tmp_path / "run"

    def the_apps_backends(_proc: subprocess.Popen[str]) -> list[int]:
        database = json.loads((out / "run.json").read_text())["database"]
        dsn = re.match(r"(postgresql://\S+)", database).group(1) + "/postgres"

        async def pids() -> list[int]:
            conn = await asyncpg.connect(dsn)
            try:
                rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE application_name = 'scopebench-bad'")
                return [int(r["pid"]) for r in rows]
            finally:
                await conn.close()

        return asyncio.run(pids())

    _assert_stalled(out, *_drill(out, pg_home, the_apps_backends))
