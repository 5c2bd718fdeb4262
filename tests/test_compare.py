"""bench compare: the table against a checked-in golden text, marks, gates, statistics, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.analysis.compare import Side, compare, load_side
from bench.analysis.stats import mann_whitney_p
from bench.config.gates import Gate, merge_gates
from bench.errors import UsageError
from bench.render.compare_render import render_json, render_junit, render_markdown, render_text

DATA = Path(__file__).parent / "data" / "compare"


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True,
                          timeout=60, env=os.environ.copy(), check=False)


def test_golden_text_table() -> None:
    result = compare(load_side(DATA / "base.json"), load_side(DATA / "current.json"))
    assert render_text(result) + "\n" == (DATA / "expected.txt").read_text()


def test_a_b_on_recorded_runs_fails_the_gates() -> None:
    base, current = load_side(DATA / "base.json"), load_side(DATA / "current.json")
    result = compare(base, current, base_app="good", current_app="bad")
    failed = {row.metric for row in result.failed_gates}
    assert {"throughput_rps", "latency_ms.p95", "pool.wait_ms.p95"} <= failed
    assert all(row.app == "good->bad" for row in result.rows)
    markdown = render_markdown(result)
    assert markdown.startswith("### ❌") and "| `+` | good->bad | `pool.wait_ms.p95` |" in markdown
    junit = render_junit(result)
    assert junit.count("<testcase") == len([r for r in result.rows if r.gate]) and "<failure" in junit
    assert json.loads(render_json(result))["failed_gates"]


def test_same_run_against_itself_is_unchanged() -> None:
    side = load_side(DATA / "current.json")
    result = compare(side, side)
    assert not result.failed_gates and all(row.mark == " " for row in result.rows)


def _side(app_values: dict[str, list[float]], metric: str = "throughput_rps") -> Side:
    repeats = {app: [{metric: v} for v in values] for app, values in app_values.items()}
    apps = {app: {metric: sorted(values)[len(values) // 2]} for app, values in app_values.items()}
    summary: dict[str, Any] = {"schema_version": 1, "scenario": "s", "apps": apps, "repeats": repeats}
    return Side("x", summary)


def test_significance_needs_a_real_difference() -> None:
    # Overlapping repeats: a 6% drop in the median is not significant -> "~", gate does not fail.
    noisy = compare(_side({"good": [100, 104, 96, 101, 99]}), _side({"good": [94, 103, 97, 92, 100]}))
    assert noisy.rows[0].mark == "~" and not noisy.failed_gates and not noisy.single_sample
    # Separated repeats: significant and past the gate's 15% -> "+" and a failed gate.
    real = compare(_side({"good": [100, 104, 96, 101, 99]}), _side({"good": [60, 63, 58, 61, 62]}))
    assert real.rows[0].mark == "+" and real.rows[0].p_value is not None and real.rows[0].p_value < 0.05
    assert [r.metric for r in real.failed_gates] == ["throughput_rps"]


def test_mann_whitney_exact_values() -> None:
    assert mann_whitney_p([1, 2, 3, 4], [5, 6, 7, 8]) == pytest.approx(2 / 70)
    assert mann_whitney_p([1, 2, 3], [4, 5, 6]) == pytest.approx(0.1)
    assert mann_whitney_p([1, 5, 2, 6], [3, 7, 4, 8]) > 0.3
    assert mann_whitney_p([1.0] * 5, [1.0] * 5) == 1.0
    tied = mann_whitney_p([1, 1, 2, 2, 3, 3], [7, 7, 8, 8, 9, 9])  # ties: normal approximation
    assert tied < 0.01


@pytest.mark.parametrize(
    ("text", "base", "current", "fails"),
    [
        ("pool.wait_ms.p95:+20%", 10, 12.5, True),
        ("pool.wait_ms.p95:+20%", 10, 11.5, False),
        ("throughput_rps:-10%", 100, 85, True),
        ("throughput_rps:-10%", 100, 120, False),
        ("integrity.lost_writes:>0", 0, 1, True),
        ("integrity.lost_writes:>0", 5, 0, False),
        ("failures:+0%", 0, 3, True),
    ],
)
def test_gates(text: str, base: float, current: float, fails: bool) -> None:
    assert Gate.parse(text).fails(base, current) is fails


def test_fail_on_replaces_the_default_for_its_metric() -> None:
    gates = {g.metric: g.text for g in merge_gates(["pool.wait_ms.p95:+50%", "db.connections_max:>10"])}
    assert gates["pool.wait_ms.p95"] == "pool.wait_ms.p95:+50%" and gates["db.connections_max"] == "db.connections_max:>10"
    with pytest.raises(UsageError, match="malformed"):
        Gate.parse("pool.wait_ms.p95 up 20")


def test_cli_exit_codes(tmp_path: Path) -> None:
    assert bench("compare", str(DATA / "current.json"), str(DATA / "current.json")).returncode == 0
    ab = bench("compare", str(DATA / "base.json"), str(DATA / "current.json"),
               "--base-app", "good", "--current-app", "bad", "--junit", str(tmp_path / "gates.xml"))
    assert ab.returncode == 1 and "gate(s) failed" in ab.stdout and (tmp_path / "gates.xml").is_file()
    loose = bench("compare", str(DATA / "base.json"), str(DATA / "current.json"),
                  "--fail-on", "db.idle_in_tx_long_per_request_ms:+1000%")
    assert loose.returncode == 0, loose.stdout


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: {**s, "scenario": "background-task"}, "different scenarios"),
        (lambda s: {**s, "schema_version": 2}, "schema_version 2; this bench reads 1"),
        (lambda s: {**s, "apps": {}}, "holds no app results"),
        (lambda s: json.dumps(s)[:200], "is truncated or not valid JSON"),
        (lambda s: [1, 2], "not a scopebench summary"),
    ],
)
def test_incompatible_inputs_exit_2(tmp_path: Path, mutate: Any, message: str) -> None:
    base = json.loads((DATA / "base.json").read_text())
    broken = _write(tmp_path / "summary.json", mutate(base))
    result = bench("compare", str(DATA / "base.json"), str(broken))
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_run_folder_exits_2(tmp_path: Path) -> None:
    result = bench("compare", str(tmp_path / "nope"), str(DATA / "base.json"))
    assert result.returncode == 2 and "does not exist" in result.stderr
