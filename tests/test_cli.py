"""The real `bench` command as a subprocess: exit codes, one-line errors, no secrets, run folders kept."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

PASSWORD = "s3cr3t-Pa55"
TOKEN = "tk-9f3Qz7LmW2"  # a pool endpoint's bearer token
BENCH = str(Path(sys.executable).with_name("bench"))  # the installed console script, as a user runs it
LOCUSTFILE = str(Path(__file__).resolve().parents[1] / "scenarios" / "long_session.py")


def bench(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, check=False)


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
    result = bench("run", "long-session", "--dsn", f"postgresql://bench:{PASSWORD}@127.0.0.1:1/postgres",
                   "--out", str(out))
    assert result.returncode == 3, result.stderr
    # Fast: it gave up on the first refusal, not after the connect timeout (benchmarks/speed_targets.py times it).
    assert "127.0.0.1:1: connection refused;" in result.stderr and "(timeout)" not in result.stderr, result.stderr
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


def _wait_for_phase(out: Path, phase: str, pid: int) -> None:
    deadline = time.monotonic() + 30
    if phase == "startup":  # PostgreSQL is up, the app and Locust not yet serving
        while time.monotonic() < deadline:
            # (other short-lived children come and go: git, while run.json is written)
            if any(_name(p) == "postgres" for p in psutil.Process(pid).children()):
                return
            time.sleep(0.02)
        raise AssertionError("PostgreSQL never started")
    samples = out / "bad" / "samples.jsonl"
    while time.monotonic() < deadline:
        if samples.exists() and _phase_began(samples, phase) is not None:
            return
        time.sleep(0.1)
    raise AssertionError(f"never reached the {phase} phase")


def _phase_began(samples: Path, phase: str) -> float | None:
    """The time of the first sample of ``phase`` in samples.jsonl (a last line may be half written)."""
    for line in samples.read_text().splitlines():
        try:
            sample = json.loads(line)
        except ValueError:
            continue
        if sample.get("phase") == phase:
            return float(sample["t"])
    return None


def _run_time_left(out: Path, phase: str, phase_s: float) -> float:
    """Seconds of the 60 s phase the run is in still ahead of it, from the phase's first sample: what the run
    would take if it ignored a signal (at start-up, the whole load is ahead)."""
    samples = out / "bad" / "samples.jsonl"
    if phase == "startup" or not samples.exists():
        return phase_s
    began = _phase_began(samples, phase)
    return phase_s if began is None else phase_s - (time.time() - began)


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
        sent, left = time.monotonic(), _run_time_left(out, phase, 60.0)
        proc.send_signal(sig)
        output, _ = proc.communicate(timeout=left + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # It stopped on the signal, not at the end of the 60 s phase it was in: well inside what was left of it.
    assert time.monotonic() - sent < left / 2, (time.monotonic() - sent, left)
    assert proc.returncode == 130, output
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    assert json.loads((out / "summary.json").read_text())["status"] == "interrupted"
    gone_by = time.monotonic() + 30  # a deadline to poll against, not a speed: the tree is reaped a moment later
    while _alive(children) and time.monotonic() < gone_by:
        time.sleep(0.05)
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
        # The whole tree the run started, whatever each command line says.
        tree = psutil.Process(proc.pid).children(recursive=True)
        server = [p for p in tree if _name(p) == "postgres"]
        postmaster = [p for p in server if p.ppid() == proc.pid]
        others = [p for p in tree if p not in server]
        assert server and len(others) >= 2, [p.cmdline()[:4] for p in tree]  # PostgreSQL, the app, Locust
        proc.kill()
        proc.wait(5)
        # Locust and the app die with the harness (parent-death signal); only PostgreSQL stays.
        gone_by = time.monotonic() + 10
        while time.monotonic() < gone_by and _alive(others):
            time.sleep(0.2)
        assert not _alive(others), [p.cmdline()[:4] for p in _alive(others)]
        assert len(_alive(postmaster)) == 1  # kept for the next run to stop
        second = bench("run", "long-session", "--app", "good", "--duration", "2s", "--cooldown", "0",
                       "--users", "2", "--out", str(tmp_path / "next"), env={"BENCH_HOME": str(home)})
        assert second.returncode == 0, second.stderr
        assert "stopped a stale embedded PostgreSQL" in second.stderr
        assert "stale run database" in second.stderr
        assert not _alive(server), [p.cmdline()[:4] for p in _alive(server)]  # the next run stopped it
        assert json.loads((out / "run.json").read_text())["status"] == "running"  # what it had written
    finally:
        proc.kill()
        # Starting and stopping on the same home stops any server a failed assertion left behind.
        script = f"import asyncio\nfrom pathlib import Path\nfrom bench.db.embedded import EmbeddedPostgres\n" \
                 f"pg = EmbeddedPostgres(home=Path({str(home)!r}))\nasyncio.run(pg.start())\npg.close()\n"
        subprocess.run([sys.executable, "-c", script], check=False, env=env, capture_output=True, timeout=60)
        shutil.rmtree(home, ignore_errors=True)


def _assert_no_secret(out: Path, result: subprocess.CompletedProcess[str], *secrets: str) -> None:
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {"run.json", "summary.json", "report.html", "report.md", "locust.log"} <= {p.name for p in files}
    for secret in secrets:
        for path in files:
            assert secret not in path.read_text(errors="replace"), (secret, path)
        assert secret not in result.stdout + result.stderr, secret


@pytest.mark.e2e
def test_dsn_password_and_token_appear_in_no_output(tmp_path: Path, pg_server: Any) -> None:
    # The embedded server trusts loopback, so any password connects: the run really uses this DSN.
    dsn = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{pg_server.port}/postgres"
    out = tmp_path / "run"
    result = bench("run", "long-session", "--dsn", dsn, "--duration", "3s", "--cooldown", "1s",
                   "--users", "10", "--out", str(out), f"--pool-token={TOKEN}")
    assert result.returncode in (0, 1), result.stdout + result.stderr  # 1: a short run's checks may fail
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["database"] == "external" and "***" in run["database"]
    assert "--pool-token=***" in run["command"] and (out / "good" / "app.log").is_file()
    _assert_no_secret(out, result, PASSWORD, TOKEN)


@pytest.mark.e2e
@pytest.mark.parametrize("given", ["flag", "env"])
def test_target_mode_pool_token_appears_in_no_output(tmp_path: Path, pg_server: Any, database: str,
                                                      given: str) -> None:
    from tests.conftest import seed, start_app

    seed(pg_server, database)
    child, base = start_app(pg_server, database, tmp_path, variant="good", BENCH_APP_METRICS_TOKEN=TOKEN)
    dsn = dataclasses.replace(pg_server, password=PASSWORD).dsn(database)  # loopback is trusted: any password works
    out = tmp_path / "run"
    by_flag = ["--pool-token", TOKEN] if given == "flag" else []
    try:
        result = subprocess.run([BENCH, "run", "--locustfile", LOCUSTFILE, "--target", base, "--dsn", dsn,
                                 "--duration", "3s", "--cooldown", "0", "--users", "5", "--out", str(out), *by_flag],
                                capture_output=True, text=True, timeout=120, check=False,
                                env={**os.environ, **({"BENCH_POOL_TOKEN": TOKEN} if given == "env" else {})})
    finally:
        child.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["apps"]["target"]["pool"]["checkouts"] > 0  # the token was used: the endpoint answered
    command = json.loads((out / "run.json").read_text())["command"]
    assert command[command.index("--dsn") + 1].count("***") == 1
    assert (command[command.index("--pool-token") + 1] == "***") if given == "flag" else "--pool-token" not in command
    _assert_no_secret(out, result, PASSWORD, TOKEN)


def _run_bench(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BENCH, *args], capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, **env}, cwd=cwd)


@pytest.mark.parametrize("command", ["run", "capacity"])
def test_a_non_empty_out_is_refused_before_anything_runs(tmp_path: Path, command: str) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = _run_bench(command, "long-session", "--out", str(out), env={})
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip() == f"error: --out {out} is not empty; pick a new folder, or add --force to move it aside first"
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and [p.name for p in tmp_path.iterdir()] == ["taken"]


@pytest.mark.e2e
def test_reusing_out_is_refused_and_force_moves_the_old_run_aside(tmp_path: Path, pg_home: Path) -> None:
    out = tmp_path / "X"
    args = ["run", "long-session", "--app", "good", "--duration", "3s", "--cooldown", "0", "--users", "5",
            "--out", str(out)]
    env = {"BENCH_HOME": str(pg_home)}
    assert _run_bench(*args, env=env).returncode == 0
    first = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    refused = _run_bench(*args, env=env)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1 and "--force" in refused.stderr
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == first
    here, scratch = tmp_path / "cwd", tmp_path / "tmp"
    here.mkdir()
    scratch.mkdir()
    forced = _run_bench(*args, "--force", env={**env, "TMPDIR": str(scratch)}, cwd=here)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    (aside,) = tmp_path.glob("X.old-*")
    # Every file the run wrote is in its folder: none in its working directory or the temporary directory.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["X", aside.name, "cwd", "tmp"])
    assert list(here.iterdir()) == [] and list(scratch.iterdir()) == []
    assert f"--force: moved what was in {out} to {aside}" in forced.stderr
    assert {p.relative_to(aside): p.read_bytes() for p in aside.rglob("*") if p.is_file()} == first
    # The second run's folder holds only what it wrote, from after it started.
    started = datetime.fromisoformat(json.loads((out / "run.json").read_text())["started_at"]).timestamp()
    samples = (out / "good" / "samples.jsonl").read_text().splitlines()
    assert samples and min(json.loads(line)["t"] for line in samples) >= started
    # Locust waited for this run's go file, created once the app was ready.
    go = (out / "good" / ".go").stat().st_mtime
    with (out / "good" / "requests.csv").open() as handle:
        first_request = min(float(row["start_epoch_s"]) for row in csv.DictReader(handle))
    assert started < go <= first_request + 0.05
    summary = json.loads((out / "summary.json").read_text())["apps"]["good"]
    assert summary["requests"] > 10 and summary["failures"] == 0


@pytest.mark.e2e
def test_capacity_force_moves_the_old_folder_aside(tmp_path: Path, pg_home: Path) -> None:
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "capacity.json").write_text("an older sweep")
    result = _run_bench("capacity", "long-session", "--app", "good", "--pool-size", "5", "--rates", "10",
                        "--step", "2s", "--quiet", "--out", str(out), "--force", env={"BENCH_HOME": str(pg_home)})
    assert result.returncode == 0, result.stdout + result.stderr
    (aside,) = tmp_path.glob("sweep.old-*")
    assert f"--force: moved what was in {out} to {aside}" in result.stderr
    assert [p.name for p in aside.iterdir()] == ["capacity.json"] and (aside / "capacity.json").read_text() == "an older sweep"
    assert json.loads((out / "capacity.json").read_text())["status"] == "completed"
    assert sorted(p.name for p in out.iterdir()) == ["capacity.html", "capacity.json", "capacity.md", "pool-5"]


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


@pytest.mark.e2e
def test_start_up_counts_from_bench_not_from_the_shell_that_ran_other_commands_first(tmp_path: Path) -> None:
    """``bash -c 'pip install … && bench run …'`` execs bench in the shell's process: start-up is bench's own."""
    out = tmp_path / "run"
    command = (f"sleep 6 && exec {shlex.quote(sys.executable)} -m bench.cli run long-session --app good "
               f"--duration 2s --cooldown 0 --users 2 --quiet --out {shlex.quote(str(out))}")
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    startup = json.loads((out / "summary.json").read_text())["timings"]["startup_s"]
    assert 0 < startup < 6, startup  # the 6 s sleep is not start-up
