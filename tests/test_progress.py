"""The progress lines of `bench run` written to a log (CI, a pipe): every app and phase gets the same lines, one every
5 s of the phase and one at its end, where a terminal redraws one line in place."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bench.render import terminal
from bench.render.terminal import PROGRESS_EVERY_S, Console
from bench.results.records import DbFigures
from bench.results.requestlog import RequestTail


@dataclass
class Figures:  # what the collector shows the progress line
    last_pool: dict[str, Any] | None = field(default_factory=lambda: {"gauges": {"checked_out": 5, "size": 5}})
    figures: DbFigures = field(default_factory=DbFigures)


def test_each_phase_of_each_app_ends_with_its_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(terminal.time, "monotonic", lambda: clock[0])
    err = io.StringIO()  # not a terminal
    console, tail = Console(err=err), RequestTail(tmp_path)
    for app, load_s in (("good", 3.0), ("bad", 12.0)):
        for phase, total in (("load", load_s), ("cool-down", 2.0)):
            elapsed = 0.0
            while elapsed < total:
                clock[0] += 0.25
                elapsed += 0.25
                console.progress(app, phase, elapsed, total, tail, Figures())
            console.progress(app, phase, total, total, tail, Figures(), last=True)
    text = err.getvalue().splitlines()
    # The cool-down keeps the load's columns; the idle column says what it counts (connections past the threshold).
    assert len({line.index(" failed") for line in text}) == 1 and all(" idle in tx past threshold 0" in line
                                                                       for line in text)
    lines = [line.split()[:3] for line in text]
    assert [line[:2] for line in lines] == [["good", "load"], ["good", "cool-down"], ["bad", "load"], ["bad", "load"],
                                            ["bad", "load"], ["bad", "cool-down"]]
    assert [lines[i][2] for i in (0, 1, 4, 5)] == ["3.0/3s", "2.0/2s", "12.0/12s", "2.0/2s"]  # each phase's end
    # A 12 s load also has a line every 5 s, counted from the phase's first tick (0.25 s in).
    periodic = [float(lines[i][2].split("/")[0]) for i in (2, 3)]
    assert periodic == pytest.approx([0.25 + PROGRESS_EVERY_S, 0.25 + 2 * PROGRESS_EVERY_S], abs=0.051)
