"""The progress lines of `bench run` written to a log (CI, a pipe): every app and phase gets the same lines, one every
5 s of the phase and one at its end, where a terminal redraws one line in place."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.render.terminal import PROGRESS_EVERY_S, Console
from bench.results.records import DbFigures
from bench.results.requestlog import RequestTail


@dataclass
class Figures:  # what the collector shows the progress line
    last_pool: dict[str, Any] | None = field(default_factory=lambda: {"gauges": {"checked_out": 5, "size": 5}})
    figures: DbFigures = field(default_factory=DbFigures)


def test_each_phase_of_each_app_ends_with_its_line(tmp_path: Path) -> None:
    err = io.StringIO()  # not a terminal
    console, tail = Console(err=err), RequestTail(tmp_path)
    for app, load_s, pending in (("good", 3.0, 0), ("bad", 12.0, 45)):
        pool = Figures({"gauges": {"checked_out": 5, "size": 5, "pending": pending}})
        for phase, total in (("load", load_s), ("cool-down", 5.0)):
            elapsed = 0.0
            while elapsed < total + 0.5:  # the drive's tick, a little past the phase's length
                elapsed += 0.25
                console.progress(app, phase, elapsed, total, tail, pool)
            console.progress(app, phase, total, total, tail, pool, last=True)
    text = err.getvalue().splitlines()
    # The cool-down keeps the load's columns, whatever the counts' widths; the idle column says what it counts.
    for column in (" failed", " out,", " idle in tx past threshold "):
        assert len({line.index(column) for line in text}) == 1, column
    lines = [line.split()[:3] for line in text]
    assert [line[:2] for line in lines] == [["good", "load"], ["good", "cool-down"], ["bad", "load"], ["bad", "load"],
                                            ["bad", "load"], ["bad", "cool-down"]]
    # Each phase's end, once: a 5 s cool-down's 5 s mark is its end, not a line of its own as well.
    assert [lines[i][2] for i in (0, 1, 4, 5)] == ["3.0/3s", "5.0/5s", "12.0/12s", "5.0/5s"]
    # A 12 s load also has a line at the first tick past each 5 s of it.
    assert [lines[i][2] for i in (2, 3)] == [f"{PROGRESS_EVERY_S:.1f}/12s", f"{2 * PROGRESS_EVERY_S:.1f}/12s"]
