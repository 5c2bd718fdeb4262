"""`bench capacity` for real, as a subprocess: a short open-model sweep of the bad long-session app, pools 2 and 4.

Asserts what the command exists to show, with wide margins (2 shared cores): the plateau sits at the
Little's-law ceiling, a doubled pool roughly doubles it, the SLO rate lies below it, the pool is named. Bounds
are ratios between figures of the same sweep, never wall-clock targets (benchmarks/speed_targets.py times it).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

# upstream 50 ms: ceilings about 2/0.055 = 36 and 4/0.055 = 73 req/s; 120 req/s overloads both.
SWEEP = [
    "--app",
    "bad",
    "--pool-size",
    "2,4",
    "--rates",
    "15,30,60,120",
    "--step",
    "4s",
    "--settle",
    "1s",
    "--drain",
    "2s",
    "--upstream-ms",
    "50",
    "--max-concurrency",
    "40",
    "--quiet",
]


def bench(*args: str, env: dict[str, str] | None = None, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def sweep(
    tmp_path_factory: pytest.TempPathFactory, pg_home: Path
) -> tuple[subprocess.CompletedProcess[str], Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("capacity") / "sweep"
    result = bench("capacity", "long-session", *SWEEP, "--out", str(out), env={"BENCH_HOME": str(pg_home)})
    data = json.loads((out / "capacity.json").read_text()) if (out / "capacity.json").exists() else {}
    return result, out, data


def test_sweep_writes_a_self_describing_result(sweep: tuple[Any, Path, dict[str, Any]]) -> None:
    result, out, data = sweep
    assert result.returncode == 0, result.stderr[-2000:]
    assert data["schema"] == "scopebench.capacity/1" and data["schema_version"] == 1
    assert data["status"] == "completed" and data["command"][:3] == ["bench", "capacity", "long-session"]
    assert set(data["environment"]) >= {"python", "packages", "postgres", "git", "machine"}
    assert data["config"]["sweep"]["levels"] == [15, 30, 60, 120] and data["config"]["slo"]["objectives"]
    for name in (
        "capacity.md",
        "capacity.html",
        "pool-2/bad/requests.csv",
        "pool-4/bad/pacer.json",
        "pool-4/bad/samples.jsonl",
        "pool-4/summary.json",
    ):
        assert (out / name).is_file(), name
    assert (out / "capacity.html").read_text().count("<svg") >= 8
    assert "within SLO" in result.stdout and "pool-bound" in result.stdout


def test_the_pacer_keeps_the_schedule(sweep: tuple[Any, Path, dict[str, Any]]) -> None:
    for run in sweep[2]["results"]:
        for step in run["steps"]:
            # Arrivals start on the schedule whatever the responses do (an open model).
            assert step["offered_rps"] == pytest.approx(step["level"], rel=0.05), (run["pool_size"], step["level"])
        first, last, hold_ms = run["steps"][0], run["steps"][-1], run["littles_law"]["hold_ms_per_request"]
        assert first["error_rate"] == 0 and first["dropped"] == 0
        # 120 req/s against a ceiling of 36 or 73: requests queue up to the 40 in flight, the rest drop. Queued,
        # a request waits many holds (measured 12-20); at 15 req/s it waits none, so the p95 is 7-19x apart.
        assert last["dropped"] > 0 and last["pool_wait_ms"]["p95"] > 2 * hold_ms, (last, hold_ms)
        assert 3 * first["latency_ms"]["p95"] < last["latency_ms"]["p95"], (first["latency_ms"], last["latency_ms"])


def test_each_pool_summary_counts_dropped_arrivals_apart(sweep: tuple[Any, Path, dict[str, Any]]) -> None:
    for run in sweep[2]["results"]:
        folder = sweep[1] / f"pool-{run['pool_size']}"
        app = json.loads((folder / "summary.json").read_text())["apps"]["bad"]
        # Counted from the raw log by hand: the pacer's DROPPED rows (second field), every worker's file.
        rows = [row for path in (folder / "bad").glob("requests*.csv") for row in csv.DictReader(path.open())]
        dropped = sum(1 for row in rows if row["request_type"] == "DROPPED")
        # Never sent, so neither requests, failures nor latency samples; the steps (settling left out) saw some.
        assert app["requests_dropped"] == dropped >= sum(step["dropped"] for step in run["steps"]) > 0
        assert app["requests"] == app["requests_recorded"], (app["requests"], app["requests_recorded"])
        # The pool's ceiling, over answered requests only, is the sweep's own Little's-law ceiling.
        ceiling = app["pool"]["littles_law_ceiling_rps"]
        assert ceiling == pytest.approx(run["littles_law"]["ceiling_rps"], rel=0.25), (ceiling, run["littles_law"])


def test_plateau_meets_littles_law_and_the_pool_is_named(sweep: tuple[Any, Path, dict[str, Any]]) -> None:
    for run in sweep[2]["results"]:
        law, plateau = run["littles_law"], run["saturation"]["plateau_rps"]
        # The 50 ms upstream call plus the queries: never less; and what the pool's own histogram says a checkout
        # holds (one per request in the bad app), measured 57 ms both ways on a busy machine.
        pool = json.loads((sweep[1] / f"pool-{run['pool_size']}" / "summary.json").read_text())["apps"]["bad"]["pool"]
        assert 50 <= law["hold_ms_per_request"], law
        assert law["hold_ms_per_request"] == pytest.approx(pool["hold_ms"]["mean"], rel=0.2), (law, pool["hold_ms"])
        assert plateau is not None and 0.75 * law["ceiling_rps"] <= plateau <= 1.15 * law["ceiling_rps"], run
        assert run["knee"] is not None and run["bottleneck"]["name"] == "pool", run["bottleneck"]
        top = run["max_slo"]
        assert top is None or top["level"] < law["ceiling_rps"]
    scaling = sweep[2]["pool_scaling"][0]
    assert (scaling["from_pool"], scaling["to_pool"]) == (2, 4)
    assert 1.5 <= scaling["plateau_ratio"] <= 2.5, scaling
    assert "pool 2 sustains" in sweep[2]["recommendation"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["capacity", "lng-session"], "did you mean 'long-session'"),
        (["capacity", "long-session", "--slo", "p95<fast"], "--slo: cannot read 'p95<fast'"),
        (["capacity", "long-session", "--rates", "100,50"], "levels must increase"),
        (["capacity", "long-session", "--pool-size", "5,x"], "--pool-size"),
        (["capacity", "long-session", "--rates", "10", "--users", "10"], "not both"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = bench(*args, "--out", str(tmp_path / "never"), timeout=30)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "never").exists()
