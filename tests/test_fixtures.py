"""The run fixtures in tests/data are what the current code makes of their raw files, and their figures agree with
those raw files recomputed here another way: plain Python over requests.csv, samples.jsonl and locust.json.

tests/data/regenerate.py makes the fixtures from real runs (``run``) and summarises them again (``digest``).
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import operator
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from bench.config.catalog import get_scenario
from bench.instrument.histogram import GROWTH, MIN_S
from bench.results.layout import POOL_JSON
from bench.results.summaryfile import SCHEMA_VERSION
from tests.data.regenerate import MEASURED, redigest

DATA = Path(__file__).parent / "data"
RUNS = ("long-session-run", "mixed-run", "compare/current-run")
FIX = "python tests/data/regenerate.py digest (or run, for new raw files)"


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _differences(stored: Any, computed: Any, path: str = "") -> list[str]:
    if isinstance(stored, dict) and isinstance(computed, dict):
        return [
            d
            for k in sorted(set(stored) | set(computed), key=str)
            for d in _differences(stored.get(k), computed.get(k), f"{path}.{k}")
        ]
    return [] if stored == computed else [f"{path}: stored {stored!r}, computed {computed!r}"]


@pytest.mark.parametrize("name", RUNS)
def test_summary_is_what_the_current_code_makes_of_the_raw_files(name: str) -> None:
    stored = _json(DATA / name / "summary.json")
    assert stored["schema_version"] == SCHEMA_VERSION, f"tests/data/{name} is of another schema; {FIX}"
    computed = redigest(DATA / name)
    differ = _differences({k: stored[k] for k in computed}, computed)
    assert not differ, f"tests/data/{name} is stale; {FIX}:\n" + "\n".join(differ[:20])


@pytest.mark.parametrize("name", RUNS)
def test_a_repeats_summary_reads_the_samples_as_a_first_runs_does(name: str) -> None:
    """An app's first run finds Little's-law window in the report's time line (one read of samples.jsonl for both); a
    repeat, not plotted, reads the samples for its summary alone. Same files, same figures."""
    plotted, alone = redigest(DATA / name), redigest(DATA / name, plotted=False)
    assert not _differences(plotted, alone), _differences(plotted, alone)[:20]
    assert any(app["pool"]["wait_ms"]["count"] for app in alone["apps"].values())


def test_compare_fixtures_are_the_run_fixtures_summaries() -> None:
    for name, run in (("base.json", "long-session-run"), ("current.json", "compare/current-run")):
        assert _json(DATA / "compare" / name) == _json(DATA / run / "summary.json"), f"compare/{name} is stale; {FIX}"


# --- the figures, from the raw files ------------------------------------------------------------------------


def _nearest(values: list[float], p: int) -> float:
    """The p-th percentile by nearest rank, in exact arithmetic: the value at rank ceil(p·n / 100)."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(Fraction(p) * len(ordered) / 100)) - 1]


def _latency(values: list[float]) -> dict[str, float]:
    return {**{f"p{p}": round(_nearest(values, p), 3) for p in (50, 95, 99)}, "max": round(max(values), 3)}


def _requests(app_dir: Path) -> list[dict[str, Any]]:
    with (app_dir / "requests.csv").open(newline="", encoding="utf-8") as handle:
        return [
            {
                **row,
                "start": float(row["start_epoch_s"]),
                "ms": float(row["response_time_ms"]),
                "failed": row["failed"] == "1",
            }
            for row in csv.DictReader(handle)
        ]


def _apps(name: str) -> list[tuple[str, Path, dict[str, Any]]]:
    summary = _json(DATA / name / "summary.json")
    return [(app, DATA / name / app, figures) for app, figures in summary["apps"].items()]


@pytest.mark.parametrize("name", RUNS)
def test_requests_throughput_and_latency_from_the_request_log(name: str) -> None:
    for app, app_dir, figures in _apps(name):
        rows = _requests(app_dir)
        answered = [r for r in rows if r["request_type"] != "UNFINISHED"]
        ok = [r for r in answered if not r["failed"]]
        locust = _json(app_dir / "locust.json")
        load = _json(app_dir / MEASURED)["load"]
        window = load["end"] - load["start"]
        assert figures["requests"] == sum(e["num_requests"] for e in locust), app
        assert figures["failures"] == sum(e["num_failures"] for e in locust), app
        assert (figures["requests_recorded"], figures["requests_unfinished"]) == (
            len(answered),
            len(rows) - len(answered),
        ), app
        assert figures["load_window_s"] == round(window, 3)
        assert figures["throughput_rps"] == pytest.approx(len(ok) / window, abs=0.0006), app
        assert figures["latency_ms"] == _latency([r["ms"] for r in answered]), app
        assert figures["success_latency_ms"] == _latency([r["ms"] for r in ok]), app
        for route, shown in figures["endpoints"].items():
            mine = [r for r in answered if r["name"] == route]
            assert (shown["requests"], shown["failures"]) == (len(mine), sum(r["failed"] for r in mine)), route
            assert shown["latency_ms"] == _latency([r["ms"] for r in mine]), route


def _samples(app_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (app_dir / "samples.jsonl").read_text(encoding="utf-8").splitlines()]


def _ends(app_dir: Path) -> list[float]:
    """When each answered request got its response (or failed)."""
    return [r["start"] + r["ms"] / 1000 for r in _requests(app_dir) if r["request_type"] != "UNFINISHED"]


def _window(app_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Little's-law window's first and last sample: the load's pool readings up to the last response."""
    last_end = max(_ends(app_dir))
    load = [s for s in _samples(app_dir) if s["phase"] == "load" and s.get("pool_hold_s") is not None
            and s["t"] <= last_end]
    return load[0], load[-1]


@pytest.mark.parametrize("name", RUNS)
def test_littles_law_from_the_samples_and_the_request_log(name: str) -> None:
    for app, app_dir, figures in _apps(name):
        ends = _ends(app_dir)
        # The pool's readings over the load, up to the last response: connection time (ended holds and the open
        # ones' age so far) and answers in between.
        first, last = _window(app_dir)
        answered = sum(1 for end in ends if first["t"] < end <= last["t"])
        held = sum(last.get(k) or 0.0 for k in ("pool_hold_s", "pool_hold_open_s")) - sum(
            first.get(k) or 0.0 for k in ("pool_hold_s", "pool_hold_open_s")
        )
        window = last["t"] - first["t"]
        pool = figures["pool"]
        assert pool["littles_law"] == {
            "window_s": round(window, 3),
            "hold_s": round(held, 4),
            "requests": answered,
            "rps": round(answered / window, 3),
        }, app
        capacity = last["pool_size"] + _json(app_dir / POOL_JSON)["gauges"]["max_overflow"]
        ceiling = capacity / (held / answered)  # connections / seconds held per request
        assert pool["capacity"] == capacity and pool["hold_ms_per_request"] == round(held * 1000 / answered, 3)
        assert pool["littles_law_ceiling_rps"] == pytest.approx(ceiling, abs=0.0006), app
        assert pool["ceiling_utilisation"] == pytest.approx(answered / window / ceiling, abs=0.00006), app


def _ms(seconds: float) -> float:
    """summary.json's milliseconds, as docs/metrics.md words them: 3 decimals, 4 significant digits under 1 ms."""
    value = seconds * 1000
    return float(f"{value:.4g}") if 0 < value < 1 else round(value, 3)


def _percentile(buckets: dict[int, int], count: int, top: float, q: int) -> float:
    """A log-bucketed histogram's nearest-rank percentile: the middle of the bucket holding rank ceil(q·n/100)."""
    rank, seen = max(1, math.ceil(Fraction(q) * count / 100)), 0
    for index in sorted(buckets):
        seen += buckets[index]
        if seen >= rank:
            return 0.0 if index < 0 else min(MIN_S * GROWTH**index * (1 + GROWTH) / 2, top)
    return top


@pytest.mark.parametrize("name", RUNS)
def test_pool_figures_from_the_samples(name: str) -> None:
    for app, app_dir, figures in _apps(name):
        samples, pool = _samples(app_dir), figures["pool"]
        read = [s for s in samples if "pool_checkouts" in s]
        for counter in ("checkouts", "timeouts", "connections_opened", "invalidated", "checked_out_max"):
            assert pool[counter] == read[-1][f"pool_{counter}"], (app, counter)
        # Each sample's wait_hist is the waits since the one before: together, every wait of the run.
        every = [s["wait_hist"] for s in samples if s.get("wait_hist")]
        assert sum(h["count"] for h in every) == _json(app_dir / POOL_JSON)["wait_time"]["count"], app
        # pool.wait_ms ranks those inside Little's-law window: after its first sample, up to its last.
        first, last = _window(app_dir)
        inside = [s["wait_hist"] for s in samples if s.get("wait_hist") and first["t"] < s["t"] <= last["t"]]
        buckets: dict[int, int] = {}
        for hist in inside:
            for key, n in hist["buckets"].items():
                buckets[int(key)] = buckets.get(int(key), 0) + n
        count = sum(buckets.values())
        top = max(h["max_s"] for h in inside)
        total = sum(h["sum_s"] for h in inside)
        expected = {f"p{q}": _ms(_percentile(buckets, count, top, q)) for q in (50, 95, 99)}
        expected.update(max=_ms(top), mean=_ms(total / count), count=count)
        # The mean's total is a float sum, added in another order than the pool's: one unit in the last digit.
        assert pool["wait_ms"] == pytest.approx(expected, rel=1e-9, abs=1e-9), app


@pytest.mark.parametrize("name", RUNS)
def test_database_figures_from_the_samples(name: str) -> None:
    for app, app_dir, figures in _apps(name):
        samples, db = _samples(app_dir), figures["db"]
        assert db["samples"] == len(samples)
        assert db["idle_in_tx_max"] == max(s["idle_in_tx"] for s in samples)
        assert db["connections_max"] == max(s["connections"] for s in samples)
        assert db["idle_in_tx_oldest_s"] == max(s["idle_in_tx_oldest_s"] for s in samples)
        # Each sample stands for the interval before it (the collector times it on its own monotonic clock).
        sampled = sum(s["idle_in_tx"] * (s["t"] - p["t"]) for p, s in itertools.pairwise(samples))
        assert db["idle_in_tx_seconds_sampled"] == pytest.approx(sampled, rel=0.002, abs=0.01), app
        long = sum(s["idle_in_tx_long"] * (s["t"] - p["t"]) for p, s in itertools.pairwise(samples))
        assert db["idle_in_tx_long_seconds"] == pytest.approx(long, rel=0.002, abs=0.01), app


@pytest.mark.parametrize("name", RUNS)
def test_writes_and_checks(name: str) -> None:
    summary = _json(DATA / name / "summary.json")
    routes = get_scenario(summary["scenario"]).write_routes
    for app, app_dir, figures in _apps(name):
        written = _json(app_dir / MEASURED)["written"]
        ok = [r for r in _requests(app_dir) if r["request_type"] != "UNFINISHED" and not r["failed"]]
        acknowledged = {route: sum(1 for r in ok if r["name"] == route) for route in routes}
        rows = {route: written.get(tag, 0) for route, tag in routes.items()}
        integrity = figures["integrity"]
        assert integrity["acknowledged_writes"] == sum(acknowledged.values()), app
        assert integrity["rows_written"] == sum(rows.values()), app
        assert integrity["lost_writes"] == sum(max(0, acknowledged[r] - rows[r]) for r in routes), app
    ops = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
    for check in summary["checks"]:
        who, metric, op, threshold = re.fullmatch(r"(\S+): (\S+) (\S+) (\S+)", check["name"]).groups()  # type: ignore[union-attr]
        apps = [summary["apps"][a] for a in who.split("/")]
        values = [_figure(a, metric) for a in apps]
        value = values[0] if len(values) == 1 else values[0] / values[1] if values[1] else math.inf
        assert float(check["value"]) == pytest.approx(value, abs=0.00006), check
        assert check["passed"] is ops[op](value, float(threshold)), check


def _figure(app: dict[str, Any], metric: str) -> float:
    value: Any = app
    for part in metric.split("."):
        value = value[part]
    return float(value)
