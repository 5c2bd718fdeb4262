"""The real `bench` command as a subprocess: exit codes, one-line errors, no secrets, run folders kept."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

PASSWORD = "s3cr3t-Pa55"


def bench(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def _all_text(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())


def test_scenarios_lists_the_catalog() -> None:
    result = bench("scenarios")
    assert result.returncode == 0 and "long-session" in result.stdout and "symptom:" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "lng-session"], "did you mean 'long-session'"),
        (["run", "long-session", "--duration", "soon"], "is not a duration"),
        (["run", "long-session", "--users", "0"], "--users must be at least 1"),
        (["run", "long-session", "--app", "ugly"], "--app must be good, bad or both"),
        (["run", "long-session", "--dsn", "mysql://u:" + PASSWORD + "@h/db"], "invalid --dsn"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], message: str) -> None:
    result = bench(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and PASSWORD not in result.stderr


def test_unreachable_dsn_exits_3_fast_and_keeps_run_json(tmp_path: Path) -> None:
    out = tmp_path / "run"
    start = time.monotonic()
    result = bench("run", "long-session", "--dsn", f"postgresql://bench:{PASSWORD}@127.0.0.1:1/postgres",
                   "--out", str(out))
    assert time.monotonic() - start < 10
    assert result.returncode == 3, result.stderr
    assert "127.0.0.1:1" in result.stderr and "Traceback" not in result.stderr
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "failed" and "127.0.0.1:1" in run["error"]
    assert PASSWORD not in result.stdout + result.stderr + _all_text(out)


def test_broken_locustfile_fails_with_exit_3_and_a_readable_folder(tmp_path: Path, pg_home: Path) -> None:
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "broken.py").write_text("this is not python\n")
    (scenarios / "catalog.toml").write_text('[broken]\nlocustfile = "broken.py"\nduration_s = 3\n')
    out = tmp_path / "run"
    result = bench("run", "broken", "--out", str(out), "--app", "good",
                   env={"BENCH_SCENARIOS": str(scenarios), "BENCH_HOME": str(pg_home)})
    assert result.returncode == 3, result.stderr
    assert "Locust sent no request" in result.stdout + result.stderr
    assert json.loads((out / "run.json").read_text())["status"] == "failed"
    assert json.loads((out / "summary.json").read_text())["status"] == "failed"
    assert (out / "good" / "locust.log").read_text()


def _children_of_run(out: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and str(out) in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _wait_for_phase(out: Path, phase: str, pid: int) -> None:
    deadline = time.monotonic() + 30
    if phase == "startup":  # PostgreSQL is up, the app and Locust not yet serving
        while time.monotonic() < deadline:
            # (other short-lived children come and go: git, while run.json is written)
            if any(_name(p) == "postgres" for p in psutil.Process(pid).children()):
                return
            time.sleep(0.02)
        raise AssertionError("PostgreSQL never started")
    marker = '"phase": "cooldown"' if phase == "cooldown" else '"phase": "load"'
    samples = out / "bad" / "samples.jsonl"
    while time.monotonic() < deadline:
        if samples.exists() and marker in samples.read_text():
            return
        time.sleep(0.1)
    raise AssertionError(f"never reached the {phase} phase")


def _name(proc: psutil.Process) -> str:
    try:
        return proc.name()
    except psutil.Error:
        return ""


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.Error:
            continue
    return alive


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("phase", "sig"),
    [("startup", signal.SIGINT), ("load", signal.SIGINT), ("load", signal.SIGTERM), ("cooldown", signal.SIGTERM)],
)
def test_signal_stops_everything_and_keeps_results(tmp_path: Path, pg_home: Path, phase: str, sig: int) -> None:
    out = tmp_path / "run"
    duration, cooldown = ("2s", "60s") if phase == "cooldown" else ("60s", "1s")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "run", "long-session", "--app", "bad", "--duration", duration,
         "--cooldown", cooldown, "--users", "10", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "BENCH_HOME": str(pg_home)},
    )
    try:
        _wait_for_phase(out, phase, proc.pid)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children, "expected PostgreSQL, the app or Locust to be running"
        sent = time.monotonic()
        proc.send_signal(sig)
        output, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.monotonic() - sent < 10
    assert proc.returncode == 130, output
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    assert json.loads((out / "summary.json").read_text())["status"] == "interrupted"
    time.sleep(0.5)
    assert not _alive(children), [p.cmdline()[:4] for p in _alive(children)]
    assert "Traceback" not in output


@pytest.mark.e2e
def test_short_cli_run_of_one_app(tmp_path: Path, pg_home: Path) -> None:
    out = tmp_path / "run"
    result = bench("run", "long-session", "--app", "good", "--duration", "3s", "--cooldown", "0",
                   "--users", "5", "--out", str(out), env={"BENCH_HOME": str(pg_home)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "throughput (req/s)" in result.stdout and "completed:" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["apps"]) == ["good"] and summary["apps"]["good"]["failures"] == 0


@pytest.mark.e2e
def test_sigkill_leaves_nothing_running_and_the_next_run_cleans_up(tmp_path: Path) -> None:
    # A home of its own, so the stale server found afterwards is this test's.
    home = Path("/tmp") / f"sbk-{os.getpid()}"
    env = {**os.environ, "BENCH_HOME": str(home)}
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "run", "long-session", "--app", "bad", "--duration", "60s",
         "--users", "5", "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )
    try:
        requests = out / "bad" / "requests.csv"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not requests.exists() or requests.stat().st_size < 500):
            time.sleep(0.2)
        assert requests.exists(), "load never started"
        children = _children_of_run(out)
        assert children
        proc.kill()
        proc.wait(5)
        # Locust and the app die with the harness (parent-death signal); only PostgreSQL stays.
        gone_by = time.monotonic() + 10
        while time.monotonic() < gone_by and _children_of_run(out):
            time.sleep(0.2)
        assert not _children_of_run(out)
        second = bench("run", "long-session", "--app", "good", "--duration", "2s", "--cooldown", "0",
                       "--users", "2", "--out", str(tmp_path / "next"), env={"BENCH_HOME": str(home)})
        assert second.returncode == 0, second.stderr
        assert "stopped a stale embedded PostgreSQL" in second.stderr
        assert "stale run database" in second.stderr
        assert json.loads((out / "run.json").read_text())["status"] == "running"  # what it had written
    finally:
        proc.kill()
        # Starting and stopping on the same home stops any server a failed assertion left behind.
        script = f"import asyncio\nfrom pathlib import Path\nfrom bench.db.embedded import EmbeddedPostgres\n" \
                 f"pg = EmbeddedPostgres(home=Path({str(home)!r}))\nasyncio.run(pg.start())\npg.close()\n"
        subprocess.run([sys.executable, "-c", script], check=False, env=env, capture_output=True, timeout=60)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.e2e
def test_dsn_password_appears_in_no_output(tmp_path: Path, pg_server: Any) -> None:
    # The embedded server trusts loopback, so any password connects: the run really uses this DSN.
    dsn = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{pg_server.port}/postgres"
    out = tmp_path / "run"
    result = bench("run", "long-session", "--dsn", dsn, "--duration", "3s", "--cooldown", "1s",
                   "--users", "10", "--out", str(out))
    assert result.returncode in (0, 1), result.stdout + result.stderr  # 1: a short run's checks may fail
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["database"] == "external" and "***" in run["database"]
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {"run.json", "summary.json", "report.html", "report.md", "app.log", "locust.log"} <= {p.name for p in files}
    for path in files:
        assert PASSWORD not in path.read_text(errors="replace"), path
    assert PASSWORD not in result.stdout + result.stderr


def test_unreachable_target_exits_3(tmp_path: Path, pg_server: Any) -> None:
    locustfile = Path(__file__).resolve().parent.parent / "scenarios" / "long_session.py"
    result = bench("run", "--locustfile", str(locustfile), "--target", "http://127.0.0.1:1",
                   "--dsn", pg_server.dsn("postgres"), "--out", str(tmp_path / "r"))
    assert result.returncode == 3 and "cannot reach --target http://127.0.0.1:1" in result.stderr
    assert json.loads((tmp_path / "r" / "run.json").read_text())["status"] == "failed"


def test_unwritable_out_and_missing_report_folder_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = bench("run", "long-session", "--out", str(blocker / "run"))
    assert result.returncode == 2 and "cannot write the run folder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    report = bench("report", str(tmp_path / "nope"))
    assert report.returncode == 2 and "does not exist" in report.stderr and "Traceback" not in report.stderr
