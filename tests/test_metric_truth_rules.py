"""Rules that hold whatever the data: a stall in any repeat fails the run, and one percentile rule, sorted once.

The repeats are digested from request logs written as the recorder writes them, through the runner's own steps
(summarize each drive, the median over repeats, summary.json's checks).
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bench.analysis.loadperiod import LoadPeriod
from bench.analysis.stats import nearest_rank
from bench.analysis.summary import latency_ms, median_summary
from bench.config.catalog import get_scenario
from bench.config.options import resolve_config
from bench.render.terminal import Console
from bench.results.layout import RunFiles
from bench.results.records import DbFigures
from bench.results.requestlog import COLUMNS, UNFINISHED
from bench.run.digest import summarize, write_summary
from bench.run.drive import Driven
from bench.run.state import COMPLETED, RunState

NO_STALL = "bad: stalls == 0"


def _run_state(tmp_path: Path, repeat: int) -> RunState:
    scenario = get_scenario("long-session")
    config = resolve_config(scenario, {"out": tmp_path / "run", "app": "bad", "repeat": repeat})
    folder = tmp_path / "run"
    folder.mkdir()
    return RunState(
        config=config, scenario=scenario, console=Console(quiet=True), command=["bench", "run"], folder=folder
    )


def _drive(run: RunState, index: int, stalled: bool) -> Driven:
    """A 20 s load of 50 ms requests every 50 ms; a stalled one answers nothing after 5 s, 7 requests waiting."""
    files = RunFiles(run.folder).app("bad", index)
    files.root.mkdir(parents=True)
    answered = 100 if stalled else 400
    rows = [f'{100 + i * 0.05:.6f},"GET","GET /x",50.000,2,0,""\n' for i in range(answered)]
    if stalled:
        rows += [f'{104.96 + u * 0.001:.6f},"{UNFINISHED}","GET /x",15000.000,0,1,"Unfinished"\n' for u in range(7)]
    files.request_log.write_text(",".join(COLUMNS) + "\n" + "".join(rows))
    return Driven(app="bad", files=files, db=DbFigures(), pool=None, written=None, load=LoadPeriod(100.0, 120.0))


@pytest.mark.parametrize("stalled_repeat", [0, 1, 2])
def test_a_stall_in_any_repeat_fails_the_check(tmp_path: Path, stalled_repeat: int) -> None:
    run = _run_state(tmp_path, repeat=3)
    for index in range(3):  # as bench.run.runner digests each drive
        figures = summarize(run, _drive(run, index, stalled=index == stalled_repeat))
        run.repeats.setdefault("bad", []).append(figures)
        run.apps["bad"] = median_summary(run.repeats["bad"])
    assert [r["stalls"] for r in run.repeats["bad"]] == [int(i == stalled_repeat) for i in range(3)]
    assert run.apps["bad"]["stalls"] == 0  # the median hides it
    summary = write_summary(run, COMPLETED)
    [check] = [c for c in summary["checks"] if c["name"] == NO_STALL]
    assert check["passed"] is False and check["value"] == 1
    assert [e["event"] for e in summary["events"]] == ["stall"]


def test_repeats_without_a_stall_pass(tmp_path: Path) -> None:
    run = _run_state(tmp_path, repeat=3)
    for index in range(3):
        run.repeats.setdefault("bad", []).append(summarize(run, _drive(run, index, stalled=False)))
    run.apps["bad"] = median_summary(run.repeats["bad"])
    [check] = [c for c in write_summary(run, COMPLETED)["checks"] if c["name"] == NO_STALL]
    assert check["passed"] is True and check["value"] == 0


def _by_the_book(values: list[float], p: float) -> float:
    """docs/metrics.md's rule, written out: the value at rank ceil(p·n / 100) of the n sorted values."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p * len(ordered) / 100)) - 1]


def _samples() -> list[list[float]]:
    rng = random.Random(12)
    out = [[rng.expovariate(1 / 40) for _ in range(n)] for n in (*range(1, 60), 99, 100, 101, 1000, 10_007)]
    out += [[float(rng.randint(1, 5)) for _ in range(n)] for n in (3, 20, 21, 400)]  # ties
    return out


def test_several_percentiles_in_one_call_are_each_ones() -> None:
    percentiles = (50, 90, 95, 99, 99.9)
    for values in _samples():
        ranked = nearest_rank(values, percentiles)
        assert ranked == [nearest_rank(values, p) for p in percentiles], len(values)
        assert ranked == [_by_the_book(values, p) for p in percentiles], len(values)
    assert nearest_rank([], (50, 95)) is None and nearest_rank([], 95) is None


def test_summary_latency_is_nearest_rank_exactly() -> None:
    for values in _samples():
        rounded = [round(v, 3) for v in values]  # requests.csv keeps 3 decimals
        expected: dict[str, Any] = {f"p{p}": _by_the_book(rounded, p) for p in (50, 95, 99)}
        assert latency_ms(pd.Series(rounded)) == expected | {"max": max(rounded)}, len(values)
    assert latency_ms(pd.Series(dtype=float)) == {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
