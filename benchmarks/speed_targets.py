"""Wall-clock targets the test suite no longer asserts (a busy 2-core machine made them flaky there): the embedded
PostgreSQL's warm start, a run against an unreachable --dsn, a signal during the load, a short capacity sweep.

Prints each figure's median over ``--reps`` runs next to its target; passes or fails nothing. The tests keep the
properties these times stand for (the cluster is reused, the first refusal ends the run, a signal stops it well
before its phase would end, the sweep's figures agree with each other).

    python benchmarks/speed_targets.py [--reps 3] [--only warm,dsn,signal,capacity]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.db.embedded import EmbeddedPostgres

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The sweep this times is the test's own.
from tests.test_capacity_e2e import SWEEP

BENCH = [sys.executable, "-m", "bench.cli"]
# The targets the tests used to assert, with what an idle 2-core machine measured.
TARGETS_S = {
    "warm": (3.0, "warm start of the embedded PostgreSQL (cluster kept)"),
    "dsn": (10.0, "bench run against an unreachable --dsn, to exit 3"),
    "signal": (10.0, "SIGINT during the load to exit 130"),
    "capacity": (120.0, "tests/test_capacity_e2e.py's sweep (about 45 s idle)"),
}


def warm_start(work: Path) -> float:
    home = Path(tempfile.mkdtemp(prefix="sb", dir="/tmp"))  # short: the server's unix socket lives under it
    home.chmod(0o711)
    try:
        _start_stop(home)  # the cold start makes the cluster
        return _start_stop(home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _start_stop(home: Path) -> float:
    """Seconds until the server is up; it is stopped after."""
    pg = EmbeddedPostgres(home)
    began = time.perf_counter()
    asyncio.run(pg.start())
    took = time.perf_counter() - began
    pg.close()
    return took


def unreachable_dsn(work: Path) -> float:
    began = time.perf_counter()
    done = subprocess.run(
        [
            *BENCH,
            "run",
            "long-session",
            "--dsn",
            "postgresql://bench:x@127.0.0.1:1/postgres",
            "--out",
            str(work / f"dsn-{time.time_ns()}"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.perf_counter() - began
    if done.returncode != 3:
        raise RuntimeError(f"expected exit 3, got {done.returncode}: {done.stderr[-300:]}")
    return took


def signal_in_load(work: Path) -> float:
    out = work / f"signal-{time.time_ns()}"
    proc = subprocess.Popen(
        [
            *BENCH,
            "run",
            "long-session",
            "--app",
            "bad",
            "--duration",
            "60s",
            "--cooldown",
            "1s",
            "--users",
            "10",
            "--out",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "BENCH_HOME": str(work / "pg")},
    )
    try:
        samples = out / "bad" / "samples.jsonl"
        deadline = time.monotonic() + 120
        while not (samples.exists() and re.search(r'"phase":\s*"load"', samples.read_text())):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the run never reached its load")
            time.sleep(0.1)
        sent = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=90)
        return time.perf_counter() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def capacity_sweep(work: Path) -> float:
    out = work / f"capacity-{time.time_ns()}"
    began = time.perf_counter()
    done = subprocess.run(
        [*BENCH, "capacity", "long-session", *SWEEP, "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "BENCH_HOME": str(work / "pg")},
    )
    took = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"bench capacity exited {done.returncode}: {done.stderr[-300:]}")
    recorded = json.loads((out / "capacity.json").read_text()).get("wall_time_s")
    print(f"  (capacity.json's own wall_time_s: {recorded})")
    return took


MEASURES: dict[str, Callable[[Path], float]] = {
    "warm": warm_start,
    "dsn": unreachable_dsn,
    "signal": signal_in_load,
    "capacity": capacity_sweep,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--only", default=",".join(MEASURES), help="comma-separated: " + ", ".join(MEASURES))
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in MEASURES]
    if unknown:
        parser.error(f"--only: no measure {', '.join(unknown)}; choose from {', '.join(MEASURES)}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="sb-speed-") as tmp:
        work = Path(tmp)
        work.chmod(0o711)  # as root, the user that runs PostgreSQL must enter BENCH_HOME (work/pg) from here
        for name in chosen:
            times = [MEASURES[name](work) for _ in range(args.reps)]
            target, what = TARGETS_S[name]
            median = statistics.median(times)
            verdict = "within" if median < target else "OVER"
            print(
                f"{what}: median {median:.2f} s (range {min(times):.2f}-{max(times):.2f}, {args.reps} runs); "
                f"target < {target:g} s: {verdict}"
            )
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
