"""A real `bench run long-session --app bad`: the SB001 finding bench lint reports for the route is confirmed in
summary.json with the idle seconds of the hold site at its line, and the terminal and the report say so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.lint import LintConfig, lint_paths
from bench.render.terminal import render_summary
from tests.conftest import run_bench

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]
LONG = "target_apps/bad/long_session.py"


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory: pytest.TempPathFactory, pg_home: Path) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("run") / "long-session-bad"
    result, summary = run_bench("long-session", out, pg_home, app="bad", duration_s="5s", cooldown_s="2s")
    assert result.exit_code in (0, 1), result.error  # a check may fail on a busy machine; the figures stand
    return summary, out


def test_the_long_session_finding_is_confirmed_with_its_sites_idle_seconds(
    bad_run: tuple[dict[str, Any], Path],
) -> None:
    summary, _out = bad_run
    bad = summary["apps"]["bad"]
    [sb001] = [f for f in lint_paths([ROOT / LONG], LintConfig(), ROOT).findings if f.rule == "SB001"]
    lint = bad["lint"]
    assert LONG in lint["linted"]
    [confirmed] = [f for f in lint["confirmed"] if f["rule"] == "SB001"]
    assert confirmed["where"] == sb001.where and confirmed["matched_by"] == "line"
    # The hold sites at the finding's line, read straight from pool.hold_sites: the same seconds and holds.
    rows = [r for r in bad["pool"]["hold_sites"] if r["site"] in confirmed["sites"]]
    assert rows and all(sb001.covers(r["site"].rsplit(":", 1)[0], int(r["site"].rsplit(":", 1)[1])) for r in rows)
    assert confirmed["idle_s"] == pytest.approx(sum(r["idle_s"] for r in rows), abs=1e-3)
    assert confirmed["held_s"] == pytest.approx(sum(r["held_s"] for r in rows), abs=1e-3)
    assert confirmed["holds"] == sum(r["holds"] for r in rows)
    # The route idles across its upstream call: most of its hold time is idle in transaction.
    assert confirmed["idle_s"] > 0.5 * confirmed["held_s"] > 0
    assert not any(f["where"] == sb001.where for f in lint["not_exercised"])


def test_the_terminal_and_the_report_say_it(bad_run: tuple[dict[str, Any], Path]) -> None:
    summary, out = bad_run
    confirmed = next(f for f in summary["apps"]["bad"]["lint"]["confirmed"] if f["rule"] == "SB001")
    text = render_summary(summary, out)
    assert f"  bad: SB001 {confirmed['where']}, confirmed under load: {confirmed['idle_s']:.1f} s idle in " in text
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "Lint findings under load" in report and confirmed["where"] in report
