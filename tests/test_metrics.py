"""The metric registry: docs/metrics.md is generated from it, and real result files hold exactly its figures.

Recorded summaries (tests/data) and, end to end, a fresh `bench run` and `bench capacity` are walked number by
number: a number with no registry entry fails, and so does an entry that matches nothing in any of them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from bench.analysis.compare import METRICS, compare, load_side
from bench.config import gates as gates_module
from bench.config.gates import Gate, default_gates, merge_gates
from bench.config.slo import METRICS as SLO_METRICS
from bench.errors import UsageError
from bench.render.terminal import HEADLINE, ROWS, SHOWN_WHEN_NONZERO
from bench.results import metrics, summary_figures
from bench.results.metric import Direction, Metric, Scope

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
RECORDED = (DATA / "long-session-run" / "summary.json", DATA / "compare" / "base.json",
            DATA / "compare" / "current.json")


def _read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _unknown(documents: Iterable[dict[str, Any]], scope: Scope) -> list[str]:
    return sorted({f"{where.value}: {'.'.join(parts)}" for doc in documents
                   for where, parts in metrics.figures(doc, scope) if metrics.match(parts, where) is None})


def _matched(documents: Iterable[dict[str, Any]], scope: Scope) -> set[Metric]:
    return {m for doc in documents for where, parts in metrics.figures(doc, scope)
            if (m := metrics.match(parts, where)) is not None}


# --- the generated page -------------------------------------------------------------------------

def test_docs_metrics_md_is_generated_from_the_registry() -> None:
    page = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    assert page == metrics.render_markdown(), "docs/metrics.md drifted: python -m bench.results.metrics > docs/metrics.md"


def test_the_page_defines_every_registry_figure() -> None:
    page = metrics.render_markdown()
    for m in metrics.REGISTRY:
        assert f"| `{m.path}` | {m.label} |" in page, m.path
    assert "python -m bench.results.metrics > docs/metrics.md" in page.split("\n## ")[0]


def test_the_module_prints_the_page() -> None:
    done = subprocess.run([sys.executable, "-m", "bench.results.metrics"], capture_output=True, text=True,
                          check=False, timeout=60, cwd=ROOT)
    assert done.returncode == 0 and done.stdout == metrics.render_markdown()
    assert subprocess.run([sys.executable, "-m", "bench.results.metrics", "--bogus"], capture_output=True,
                          check=False, timeout=60, cwd=ROOT).returncode == 2


# --- recorded result files ----------------------------------------------------------------------

def test_recorded_summaries_hold_only_registry_figures() -> None:
    assert _unknown((_read(p) for p in RECORDED), Scope.RUN) == []


def test_the_walk_sees_an_unregistered_figure() -> None:
    """The check above can fail: a figure the registry does not know is reported, with its place."""
    summary = _read(RECORDED[0])
    summary["apps"]["good"]["pool"]["made_up_ms"] = 1.5
    summary["timings"]["made_up_s"] = 2.0
    assert _unknown([summary], Scope.RUN) == ["apps.<app>: pool.made_up_ms", "summary.json: timings.made_up_s"]


# --- the registry's own consistency -------------------------------------------------------------

def test_every_path_is_defined_once_with_a_description() -> None:
    keys = [(m.scope, m.path) for m in metrics.REGISTRY]
    assert len(keys) == len(set(keys))
    assert all(m.description.endswith(".") and m.label and m.unit for m in metrics.REGISTRY)


def test_default_gates_name_registry_figures_and_parse() -> None:
    by_path = {m.path: m for m in metrics.COMPARED}
    gates = {g.metric: g for g in default_gates()}
    assert set(gates) <= set(by_path) and len(gates) == len(gates_module.DEFAULT_GATES)
    # Speed gates are exactly the relative gates on speed figures; counts are gated through their rates, tested as
    # the counts they are made of; the invariants are absolute (the first lost write fails).
    assert {g.text for g in gates.values() if by_path[g.metric].speed} == set(gates_module.SPEED_GATES)
    assert all(by_path[Gate.parse(t).metric].rate_of for t in gates_module.COUNT_GATES)
    assert all(Gate.parse(t).op == ">" and Gate.parse(t).bound == 0 for t in gates_module.INVARIANT_GATES)
    assert gates["integrity.lost_writes"].fails(3, 1) and not gates["db.idle_in_tx_after_load"].fails(0, 0)


def test_readme_states_the_default_gates() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Comparing runs and gating CI")[1].split("\n## ")[0]
    assert [g for g in gates_module.DEFAULT_GATES if f"`{g}`" not in section] == []
    assert "docs/metrics.md" in section and "any increase of `failures`" not in section


def test_an_unknown_fail_on_metric_is_refused_with_a_suggestion() -> None:
    with pytest.raises(UsageError, match="did you mean 'pool.wait_ms.p95'") as caught:
        merge_gates(["pool.wiat_ms.p95:+20%"])
    assert caught.value.exit_code == 2
    # every figure bench compare lists can be gated, families included
    assert {g.metric for g in merge_gates(["pool.connect_ms.p99:+50%", "app_log.exceptions.X:>0"])} >= {
        "pool.connect_ms.p99", "app_log.exceptions.X"}


def test_compare_lists_every_per_app_figure() -> None:
    assert METRICS == tuple(m for m in metrics.REGISTRY if m.scope is Scope.APP)
    result = compare(load_side(DATA / "compare" / "base.json"), load_side(DATA / "compare" / "current.json"))
    listed = {row.metric for row in result.rows}
    assert {"pool.connect_ms.p95", "db.server.sessions_fatal", "endpoints.POST /orders/{item_id}/checkout.requests",
            "pool.checkouts"} <= listed
    # a figure with no better direction moves with a "*", never a verdict
    assert {row.mark for row in result.rows if row.metric == "pool.checkouts"} == {"*"}


def test_terminal_and_report_rows_come_from_the_registry() -> None:
    shown = {m.path: m for m in metrics.SHOWN}
    assert [path for _, path, _, _ in ROWS] == list(shown)
    assert set(HEADLINE) | set(SHOWN_WHEN_NONZERO) <= set(shown)
    assert all(m.direction is not Direction.NEITHER for m in shown.values())  # the report marks better / worse
    assert ("throughput (req/s)", "throughput_rps", "{:.1f}", False) in ROWS
    assert ("idle in tx per request (ms)", "db.idle_in_tx_per_request_ms", "{:.2f}", True) in ROWS


def test_slo_vocabulary_comes_from_the_capacity_step_figures() -> None:
    assert SLO_METRICS["p95"] == ("latency_ms.p95", "ms") and SLO_METRICS["errors"] == ("error_rate", "ratio")
    assert {m.unit for m in metrics.SLO.values()} == {"ms", "fraction"}
    assert set(SLO_METRICS) == {"p50", "p90", "p95", "p99", "max", "pool_wait_p50", "pool_wait_p95",
                                "pool_wait_p99", "pool_wait_mean", "loop_lag_p50", "loop_lag_p95", "loop_lag_p99",
                                "errors"}


@pytest.mark.parametrize(("base", "current", "expected"), [
    (None, 1.0, None), (2.0, None, None), (0.0, 0.0, 1.0), (0.0, 3.0, float("inf")), (4.0, 2.0, 0.5)])
def test_one_ratio(base: float | None, current: float | None, expected: float | None) -> None:
    assert metrics.ratio(base, current) == expected


def test_families_expand_over_the_keys_either_side_has() -> None:
    route = next(m for m in metrics.REGISTRY if m.path == "endpoints.<route>.requests")
    base = {"endpoints": {"GET /a": {"requests": 1}}}
    current = {"endpoints": {"GET /b": {"requests": 2}, "GET /a": {"requests": 3}}}
    assert [name for name, _ in metrics.expand(route, base, current)] == [
        "endpoints.GET /a.requests", "endpoints.GET /b.requests"]


# --- real runs ----------------------------------------------------------------------------------

def _bench(*args: str, pg_home: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True, check=False,
                          timeout=timeout, env={**os.environ, "BENCH_HOME": str(pg_home)}, cwd=ROOT)


@pytest.mark.e2e
def test_a_real_run_holds_every_summary_figure_and_no_other(tmp_path: Path, pg_home: Path) -> None:
    # A checkout timeout of 0.5 s makes the bad app fail requests and log exceptions; two repeats write repeats[].
    out = tmp_path / "run"
    done = _bench("run", "long-session", "--app", "both", "--duration", "4s", "--cooldown", "1s",
                  "--pool-timeout", "0.5", "--repeat", "2", "--out", str(out), "--quiet", pg_home=pg_home)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    fresh = _read(out / "summary.json")
    documents = [fresh, *(_read(p) for p in RECORDED)]
    assert _unknown([fresh], Scope.RUN) == []
    wanted = {m for m in metrics.REGISTRY if m.scope in (Scope.APP, Scope.RUN)}
    assert sorted(m.path for m in wanted - _matched(documents, Scope.RUN)) == []


@pytest.mark.e2e
def test_a_real_sweep_holds_every_capacity_figure_and_no_other(tmp_path: Path, pg_home: Path) -> None:
    # upstream 50 ms: Little's-law ceilings about 36 (pool 2) and 73 (pool 4) req/s; 120 req/s overloads both.
    out = tmp_path / "sweep"
    done = _bench("capacity", "long-session", "--app", "bad", "--pool-size", "2,4", "--rates", "15,60,120",
                  "--step", "3s", "--settle", "1s", "--drain", "2s", "--upstream-ms", "50", "--max-concurrency",
                  "40", "--out", str(out), "--quiet", pg_home=pg_home)
    assert done.returncode == 0, done.stderr[-2000:]
    sweep = _read(out / "capacity.json")
    assert _unknown([sweep], Scope.CAPACITY) == []
    wanted = {m for m in metrics.REGISTRY if m.scope is Scope.CAPACITY}
    assert sorted(m.path for m in wanted - _matched([sweep], Scope.CAPACITY)) == []


def test_the_readmes_result_contract_names_every_figure() -> None:
    """Every name in every registry path of a run's summary (apps.<app>.… and the run's own) is in the README's
    "Result contract" outline, so the outline cannot fall behind the figures."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    outline = readme[readme.index("schema_version, scenario, status"):readme.index("repeats.<app>[]: per-repeat")]
    words = set(re.findall(r"[a-z_0-9]+", outline))
    missing = sorted({
        (part, metric.path)
        for metric in (*summary_figures.APP, *summary_figures.RUN)
        for part in metric.path.replace("[]", "").split(".")
        if part and not part.startswith("<") and part not in words
    })
    assert not missing, f"README's result contract lacks {missing}"
