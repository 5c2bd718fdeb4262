"""Lint findings set against a run's hold sites (bench.analysis.lintmatch), on hand-made hold-site rows over the
paired apps' real files: confirmed, not exercised and found only under load, and how the terminal and the report
say each. The e2e check on a real run is in test_lint_confirmed_e2e.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.analysis.lintmatch import lint_section
from bench.lint import LintConfig, lint_paths
from bench.render.lint_lines import report_table, terminal_lines
from bench.results import metrics
from bench.results.metric import Scope
from bench.results.summaryfile import load_run

ROOT = Path(__file__).resolve().parents[1]
LONG = "target_apps/bad/long_session.py"
SCOPED = "target_apps/bad/scoped_session.py"


def _sb001_line() -> int:
    """The line bench lint itself reports for the long-session route, so an edit of the app moves the test too."""
    found = lint_paths([ROOT / LONG], LintConfig(), ROOT).findings
    return next(f.line for f in found if f.rule == "SB001")


def _row(site: str, idle_s: float, held_s: float, holds: int, **extra: Any) -> dict[str, Any]:
    return {"site": site, "checkout_site": site, "function": "f", "code": "await x()", "route": "GET /x",
            "returned": False, "stack": [], "holds": holds, "held_s": held_s, "idle_s": idle_s, "share": 0.5,
            "reclaimed": 0, "lost": 0, "open": 0, "open_age_s": 0.0, **extra}


def _sites() -> list[dict[str, Any]]:
    line = _sb001_line()
    return [
        _row(f"{LONG}:{line}", 40.53, 43.555, 381),  # the finding's own line: confirmed
        _row(f"{LONG}:{line}", 1.5, 2.0, 7, route="GET /y"),  # the same line for another route adds to it
        _row(f"{LONG}:1", 3.25, 4.0, 12),  # a line no rule flags: found only under load
        _row(f"{SCOPED}:1", 0.2, 0.6, 3),  # idle under the floor: neither confirms nor is news
    ]


def test_a_hold_at_a_finding_confirms_it_and_the_rest_is_sorted_out() -> None:
    lint = lint_section(_sites(), [ROOT])
    assert lint is not None
    assert lint["linted"] == [LONG, SCOPED]
    line = _sb001_line()
    [confirmed] = lint["confirmed"]
    assert (confirmed["rule"], confirmed["where"]) == ("SB001", f"{LONG}:{line}")
    assert (confirmed["holds"], confirmed["held_s"], confirmed["idle_s"]) == (388, 45.555, 42.03)
    # scoped_session.py's SB007 findings: no costly hold fell in them (its one row idled under the floor)
    assert {f["rule"] for f in lint["not_exercised"]} == {"SB007"}
    assert all(f["where"].startswith(SCOPED) for f in lint["not_exercised"])
    assert [row["site"] for row in lint["load_only"]] == [f"{LONG}:1"]


def test_a_leak_counts_though_it_never_idled() -> None:
    """A connection left open (or reclaimed, or lost) costs the pool whatever the idle seconds say."""
    lint = lint_section([_row(f"{LONG}:1", 0.0, 9.0, 1, open=1)], [ROOT])
    assert lint is not None and [row["site"] for row in lint["load_only"]] == [f"{LONG}:1"]


def test_nothing_to_lint_is_null() -> None:
    assert lint_section(None, [ROOT]) is None  # the app served no hold sites
    assert lint_section([_row("elsewhere/app.py:3", 5.0, 5.0, 1)], [ROOT]) is None  # its files are not here
    assert lint_section([], [ROOT]) is None  # no long hold: no file named


def test_the_terminal_and_the_report_say_each(tmp_path: Path) -> None:
    sites = _sites()
    app = {"pool": {"hold_sites": sites}, "lint": lint_section(sites, [ROOT])}
    lines = terminal_lines({"bad": app})
    line = _sb001_line()
    assert lines[0] == (f"  bad: SB001 {LONG}:{line}, confirmed under load: 42.0 s idle in transaction (388 long "
                        "holds, 45.6 s held)")
    assert sum("not exercised" in text for text in lines) == len(app["lint"]["not_exercised"])
    assert lines[-1] == (f"  bad: {LONG}:1 in f, found only under load (no rule): 3.2 s idle in transaction (12 "
                         "long holds, 4.0 s held)")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps({"schema_version": 1, "scenario": "long-session",
                                                     "status": "completed", "config": {}, "apps": {"bad": app}}))
    table = report_table(load_run(folder))
    assert (table.rows[0][1].text, table.rows[0][3].text) == ("confirmed", f"{LONG}:{line}")
    assert [row[1].text for row in table.rows].count("found only under load") == 1
    assert table.rows[-1][6].text == "3.25"


def test_its_figures_are_in_the_registry() -> None:
    doc = {"apps": {"bad": {"lint": lint_section(_sites(), [ROOT])}}}
    parts = [p for _, p in metrics.figures(doc, Scope.RUN)]
    assert parts and all(metrics.match(p, Scope.APP) is not None for p in parts)



def _line_of(path: str, text: str) -> int:
    lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, 1) if text in line)


def test_a_scoped_sessions_hold_at_the_middleware_confirms_the_missing_remove() -> None:
    """The runtime places a scoped session's hold at the middleware's await, lines above the finding (the
    `finally` without `remove()`): the try block around the finding holds it. The same middleware's pass-through
    await, outside that try, is no evidence for it."""
    inside = _line_of(SCOPED, "await call_logged(self.app, scope, receive, send)")
    passing = _line_of(SCOPED, "await self.app(scope, receive, send)")
    lint = lint_section([_row(f"{SCOPED}:{inside}", 37.0, 37.0, 4, open=4),
                         _row(f"{SCOPED}:{passing}", 8.7, 8.7, 2)], [ROOT])
    assert lint is not None
    [confirmed] = lint["confirmed"]
    assert (confirmed["rule"], confirmed["matched_by"], confirmed["sites"]) == ("SB007", "block", [f"{SCOPED}:{inside}"])
    assert confirmed["where"].startswith(SCOPED) and int(confirmed["where"].rsplit(":", 1)[1]) > inside
    assert [row["site"] for row in lint["load_only"]] == [f"{SCOPED}:{passing}"]
    assert [f["rule"] for f in lint["not_exercised"]] == ["SB007"]  # the constant scope: no hold in its block
