"""Locust workers on other hosts: their request rows reach the master, so the run's percentiles cover every worker.

The host is played by a network namespace of this machine, joined to it by a veth pair on a private /30: the
master and the target app listen on this side's address, a worker runs inside the namespace and dials it. No
packet leaves the machine (the namespace has no other link and no default route).
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.config.catalog import get_scenario
from bench.config.masterbind import MasterBind
from bench.config.options import resolve_config
from bench.db import server as postgres
from bench.db.ports import free_port
from bench.errors import UsageError
from bench.results.workers import read_workers
from bench.run.loadgen import LoadPlan, go_file, locust_child, missing_rows, workers_joined
from bench.run.processes import Child, wait_for_http
from tests.conftest import seed

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = ROOT / "scenarios" / "long_session.py"
PERCENTILES = (50, 95, 99)


@dataclass(frozen=True)
class Veth:
    namespace: str
    host_address: str  # this side: the master and the app listen here
    worker_address: str  # inside the namespace


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _free_subnet() -> int:
    """A third octet x with no address of 10.213.x.0/24 on this machine: concurrent runs pick different ones."""
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, timeout=10, check=True).stdout
    taken = {int(m) for m in re.findall(r"10\.213\.(\d+)\.", used)}
    free = [x for x in range(256) if x not in taken]
    return random.choice(free)


@pytest.fixture
def veth() -> Iterator[Veth]:
    if os.geteuid() != 0:
        pytest.skip("only root creates network namespaces")
    tag = f"{os.getpid() % 100000}{random.randrange(100)}"  # interface names: 15 characters at most
    namespace, outer, inner = f"sbns{tag}", f"sbo{tag}", f"sbi{tag}"
    x = _free_subnet()
    host, worker = f"10.213.{x}.1", f"10.213.{x}.2"
    try:
        _ip("netns", "add", namespace)
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", namespace)
        _ip("addr", "add", f"{host}/30", "dev", outer)
        _ip("link", "set", outer, "up")
        _ip("-n", namespace, "addr", "add", f"{worker}/30", "dev", inner)
        _ip("-n", namespace, "link", "set", inner, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        yield Veth(namespace=namespace, host_address=host, worker_address=worker)
    finally:
        # Whatever failed above or in the test: the link (its peer goes with it) and the namespace go.
        subprocess.run(["ip", "link", "del", outer], capture_output=True, timeout=10, check=False)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=10, check=False)
        leftover = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, timeout=10, check=False)
        assert outer not in leftover.stdout


def _nearest_rank(values: list[float], p: int) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p * len(ordered) / 100)) - 1]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _answered(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [row for row in rows if row["request_type"] != "UNFINISHED"]


def _peers(app_log: Path) -> Counter[str]:
    """Requests the app answered, by the address they came from (uvicorn's access log)."""
    return Counter(re.findall(r"(\d+\.\d+\.\d+\.\d+):\d+ - \"POST /orders/", app_log.read_text(errors="replace")))


@pytest.mark.e2e
def test_a_worker_in_another_namespace_is_in_the_percentiles(
    veth: Veth, pg_server: postgres.Server, database: str, tmp_path: Path
) -> None:
    seed(pg_server, database)
    app_port = free_port(veth.host_address)
    app_log = tmp_path / "app.log"
    app = Child(
        name="good app",
        log_path=app_log,
        argv=[
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "target_apps.good.app:create",
            "--host",
            veth.host_address,
            "--port",
            str(app_port),
            "--log-level",
            "info",
        ],
        env={"BENCH_APP_DSN": postgres.sqlalchemy_url(pg_server.dsn(database)), "BENCH_APP_POOL_SIZE": "5"},
    )
    worker: Child | None = None
    bench: subprocess.Popen[str] | None = None
    out = tmp_path / "run"
    try:
        app.start()
        target = f"http://{veth.host_address}:{app_port}"
        wait_for_http(target + "/healthz", app)
        master_port = free_port(veth.host_address)
        bench = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.cli",
                "run",
                "--locustfile",
                str(LOCUSTFILE),
                "--target",
                target,
                "--allow-remote",
                "--dsn",
                pg_server.dsn(database),
                "--app-name",
                "scopebench-good",
                "--users",
                "10",
                "--duration",
                "4s",
                "--cooldown",
                "1s",
                "--processes",
                "1",
                "--remote-workers",
                "1",
                "--master-bind",
                f"{veth.host_address}:{master_port}",
                "--out",
                str(out),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        # The harness says what to run on the other host; the test runs just that, inside the namespace.
        command = _wait_for_worker_command(bench)
        assert command == [
            "locust",
            "--worker",
            "-f",
            "-",
            "--master-host",
            veth.host_address,
            "--master-port",
            str(master_port),
        ]
        worker = Child(
            name="remote worker",
            log_path=tmp_path / "worker.log",
            argv=["ip", "netns", "exec", veth.namespace, sys.executable, "-m", *command],
        ).start()
        stdout, stderr = bench.communicate(timeout=180)
    finally:
        if bench is not None and bench.poll() is None:
            bench.kill()
            bench.wait()
        if worker is not None:
            worker.stop()
        app.stop()
    assert bench.returncode == 0, stdout[-2000:] + stderr[-2000:]
    assert worker.exit_code() == 0, worker.log_tail(10)
    _check_every_worker_is_in_the_summary(out / "target", app_log, veth, worker.pid)


def _wait_for_worker_command(bench: subprocess.Popen[str]) -> list[str]:
    assert bench.stderr is not None
    deadline = time.monotonic() + 120
    seen = []
    while time.monotonic() < deadline:
        line = bench.stderr.readline()
        if not line:
            break
        seen.append(line)
        if "on each other host run:" in line:
            return shlex.split(line.split("on each other host run:", 1)[1])
    raise AssertionError("the harness never said what to run on the other host: " + "".join(seen)[-2000:])


def _check_every_worker_is_in_the_summary(folder: Path, app_log: Path, veth: Veth, remote_pid: int) -> None:
    workers = read_workers(folder)
    assert len(workers) == 2 and all(w.complete and w.log for w in workers), workers
    remote = [w for w in workers if w.pid == remote_pid]
    assert len(remote) == 1, (remote_pid, workers)
    rows = {w.pid: _rows(folder / str(w.log)) for w in workers}
    for w in workers:
        assert w.rows == len(rows[w.pid]) > 0, w  # the master wrote every row it was sent, nothing else
    # Each worker's log holds that worker's requests: the app saw as many from its address (a request cut off at
    # the stop may have been answered after the worker stopped waiting).
    peers = _peers(app_log)
    local = next(w for w in workers if w.pid != remote_pid)
    for w, address in ((remote[0], veth.worker_address), (local, veth.host_address)):
        answered = len(_answered(rows[w.pid]))
        assert answered <= peers[address] <= len(rows[w.pid]), (w, address, peers)
    # The summary's count and percentiles are those of every worker's rows together, to the millisecond's
    # thousandth.
    every = [row for worker_rows in rows.values() for row in _answered(worker_rows)]
    times = [float(row["response_time_ms"]) for row in every]
    summary = json.loads((folder.parent / "summary.json").read_text())["apps"]["target"]
    assert summary["requests_recorded"] == len(every)
    assert summary["latency_ms"] == {**{f"p{p}": _nearest_rank(times, p) for p in PERCENTILES}, "max": max(times)}
    local_times = [float(row["response_time_ms"]) for row in _answered(rows[local.pid])]
    print(
        f"\nrequests: {len(every)} ({len(every) - len(local_times)} from the namespace), Locust's count "
        f"{summary['requests']}; from all rows: "
        + ", ".join(f"p{p} {_nearest_rank(times, p):.3f}" for p in PERCENTILES)
        + f"; summary: {summary['latency_ms']}; this host's worker alone: "
        + ", ".join(f"p{p} {_nearest_rank(local_times, p):.3f}" for p in PERCENTILES)
    )


@pytest.mark.e2e
def test_a_worker_killed_mid_load_is_named_as_missing_its_last_rows(tmp_path: Path) -> None:
    """No namespace needed: two workers dial the master on loopback; one is killed before the load ends."""
    responder_port, master_port = free_port(), free_port()
    responder = Child(
        name="responder",
        log_path=tmp_path / "responder.log",
        argv=[sys.executable, str(ROOT / "benchmarks" / "trivial_responder.py"), "--port", str(responder_port)],
    ).start()
    plan = LoadPlan(
        locustfile=LOCUSTFILE,
        host=f"http://127.0.0.1:{responder_port}",
        users=4,
        spawn_rate=100,
        duration_s=4,
        remote_workers=2,
        master_bind=f"127.0.0.1:{master_port}",
        env={"BENCH_LAST_ROWS_TIMEOUT": "3"},
    )
    folder = tmp_path / "app"
    workers: list[Child] = []
    locust = locust_child(plan, folder)
    try:
        wait_for_http(f"http://127.0.0.1:{responder_port}/_count", responder)
        locust.start()
        workers = [
            Child(
                name=f"worker {n}",
                log_path=tmp_path / f"worker-{n}.log",
                argv=[sys.executable, "-m", "locust", "--worker", "-f", "-", "--master-port", str(master_port)],
            ).start()
            for n in range(2)
        ]
        asyncio.run(workers_joined(plan, locust, folder, lambda _line: None))
        go_file(folder).touch()
        time.sleep(2)
        killed = workers[0]
        killed.stop(sig=signal.SIGKILL)
        deadline = time.monotonic() + 60
        while locust.exit_code() is None and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        for child in (*workers, locust, responder):
            child.stop()
    by_pid = {w.pid: w for w in read_workers(folder)}
    assert set(by_pid) == {w.pid for w in workers}, by_pid
    assert not by_pid[killed.pid].complete and by_pid[workers[1].pid].complete
    assert by_pid[killed.pid].rows > 0  # its batches up to the kill are kept, and counted
    missing = missing_rows(folder)
    assert len(missing) == 1 and f"pid {killed.pid}" in missing[0], missing


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("10.0.0.5", "10.0.0.5", None),
        ("10.0.0.5:6000", "10.0.0.5", 6000),
        ("0.0.0.0", "0.0.0.0", None),
        ("[fd00::5]:6000", "fd00::5", 6000),
        ("::", "::", None),
        ("*:5557", "*", 5557),
    ],
)
def test_master_bind_forms(text: str, host: str, port: int | None) -> None:
    assert MasterBind.parse(text) == MasterBind(host=host, port=port)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.0.0.5:0", "port must be"),
        ("10.0.0.5:x", "port must be"),
        ("10.0.0.5:70000", "port must be"),
        ("myhost", "IP address"),
    ],
)
def test_master_bind_refuses(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        MasterBind.parse(text)


def test_remote_workers_need_a_target_and_an_address_they_reach() -> None:
    scenario = get_scenario("long-session")
    with pytest.raises(UsageError, match="needs --target"):
        resolve_config(scenario, {"remote_workers": 2, "master_bind": "0.0.0.0"})
    remote = {"target": "http://127.0.0.1:8000", "dsn": "postgresql://u@127.0.0.1/db", "remote_workers": 1}
    with pytest.raises(UsageError, match="needs --master-bind on an address the workers reach"):
        resolve_config(scenario, remote)
    config = resolve_config(scenario, {**remote, "master_bind": "10.0.0.5:6000"})
    assert config.remote_workers == 1 and config.master_bind == "10.0.0.5:6000"
