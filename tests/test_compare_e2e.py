"""Compare on real repeated runs: an A/A comparison (good vs good) passes the default gates, an A/B
comparison (good vs bad) fails them with statistical significance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.compare import compare, load_side
from tests.conftest import run_bench

pytestmark = pytest.mark.e2e
SHORT = {"duration_s": "4s", "cooldown_s": "0", "users": 20, "spawn_rate": 20, "repeat": 4}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, pg_home: Path) -> tuple[Path, Path]:
    first = tmp_path_factory.mktemp("cmp") / "both"
    second = tmp_path_factory.mktemp("cmp") / "good-again"
    result, summary = run_bench("long-session", first, pg_home, **SHORT)
    assert result.exit_code in (0, 1), result.error
    assert [len(summary["repeats"][app]) for app in ("good", "bad")] == [4, 4]
    result, _ = run_bench("long-session", second, pg_home, app="good", **SHORT)
    assert result.exit_code in (0, 1), result.error
    return first, second


def test_repeats_are_interleaved_and_kept(runs: tuple[Path, Path]) -> None:
    first, _ = runs
    assert (first / "good" / "repeat-4" / "requests.csv").is_file()
    assert (first / "bad" / "repeat-2" / "samples.jsonl").is_file()


def test_a_a_passes(runs: tuple[Path, Path]) -> None:
    first, second = runs
    result = compare(load_side(first), load_side(second))
    assert not result.single_sample and result.pairs == [("good", "good")]
    assert not result.failed_gates, [(r.metric, r.base, r.current, r.p_value) for r in result.failed_gates]


def test_a_b_fails_significantly(runs: tuple[Path, Path]) -> None:
    first, _ = runs
    result = compare(load_side(first), load_side(first), base_app="good", current_app="bad")
    failed: dict[str, Any] = {r.metric: r for r in result.failed_gates}
    assert {"throughput_rps", "pool.wait_ms.p95", "db.idle_in_tx_long_per_request_ms"} <= set(failed)
    assert failed["throughput_rps"].p_value < 0.05 and failed["throughput_rps"].mark == "+"
