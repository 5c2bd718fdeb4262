"""A real `bench run long-session --app bad`, its figures checked against each other and against its raw files.

Connection time measured three independent ways must agree: the pool instrumentation's total hold, the
server's own idle-in-transaction + active time for the app's database, and Little's law (requests × connection
time per request; mean connections checked out = rate × hold per request). And the latency percentiles in
summary.json must be exactly what the documented rule gives on requests.csv.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest

from bench.instrument import Histogram
from tests.conftest import run_bench

pytestmark = pytest.mark.e2e
UNFINISHED = "UNFINISHED"  # requests.csv's request_type for a request still waiting when the load stopped


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory: pytest.TempPathFactory, pg_home: Path) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("run") / "long-session-bad"
    # The catalog's 3 s cool-down: the 45 requests still queued at the stop are all served (5 x 110 ms at a time).
    result, summary = run_bench("long-session", out, pg_home, app="bad", duration_s="10s")
    assert result.exit_code == 0, result.error
    return summary["apps"]["bad"], out / "bad"


def test_three_measures_of_connection_time_agree(bad_run: tuple[dict[str, Any], Path]) -> None:
    bad, _folder = bad_run
    pool, server = bad["pool"], bad["db"]["server"]
    instrumentation = pool["hold_s"]
    database = server["idle_in_transaction_time"] + server["active_time"]
    # Little's law: every request the app served (answered, and those still queued at the stop, served in the
    # cool-down) times the connection time one request needs.
    served = bad["requests_recorded"] + bad["requests_unfinished"]
    littles = served * pool["hold_ms_per_request"] / 1000
    assert instrumentation == pytest.approx(database, rel=0.05), (instrumentation, database)
    assert littles == pytest.approx(instrumentation, rel=0.05), (littles, instrumentation)
    assert littles == pytest.approx(database, rel=0.05), (littles, database)


def test_littles_law_holds_over_the_load(bad_run: tuple[dict[str, Any], Path]) -> None:
    """L = λW: connections checked out on average (the pool's own gauge, sampled) = rate × hold per request."""
    bad, folder = bad_run
    pool, law = bad["pool"], bad["pool"]["littles_law"]
    samples = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    load = [s for s in samples if s["phase"] == "load" and "pool_checked_out" in s]
    start = next(s["t"] for s in load if s.get("pool_hold_s") is not None)
    inside = [s for s in load if start <= s["t"] <= start + law["window_s"] + 1e-6]
    # Each sample stands for the interval since the one before it.
    spans = [(b["t"] - a["t"], b["pool_checked_out"]) for a, b in itertools.pairwise(inside)]
    mean_checked_out = sum(dt * n for dt, n in spans) / sum(dt for dt, _ in spans)
    assert mean_checked_out == pytest.approx(law["rps"] * pool["hold_ms_per_request"] / 1000, rel=0.05)
    # The ceiling is the arithmetic the note shows: capacity / (connection time / requests), never rounded.
    assert pool["hold_ms_per_request"] == pytest.approx(law["hold_s"] * 1000 / law["requests"], rel=1e-4)
    assert pool["littles_law_ceiling_rps"] == pytest.approx(pool["capacity"] * 1000 / pool["hold_ms_per_request"],
                                                            rel=1e-4)
    assert pool["ceiling_utilisation"] == pytest.approx(law["rps"] / pool["littles_law_ceiling_rps"], rel=1e-3)


def _nearest_rank(values: list[float], p: float) -> float:
    """docs/metrics.md's rule: the value at rank ceil(p·n / 100) of the n sorted values."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p * len(ordered) / 100)) - 1]


def _raw(folder: Path) -> tuple[list[tuple[float, bool]], list[dict[str, Any]]]:
    """(each answered request's response time and whether it succeeded, the samples in time order)."""
    with open(folder / "requests.csv", newline="", encoding="utf-8") as handle:
        answered = [(float(r["start_epoch_s"]) + float(r["response_time_ms"]) / 1000, r["failed"] == "0")
                    for r in csv.DictReader(handle) if r["request_type"] != UNFINISHED]
    samples = sorted((json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()),
                     key=lambda s: s["t"])
    return answered, samples


def _window(answered: list[tuple[float, bool]], samples: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    """docs/metrics.md's Little's-law window: its first and last sample, the load's pool readings up to the last
    response."""
    last_end = max(end for end, _ in answered)
    load = [s for s in samples if s["phase"] == "load" and s.get("pool_hold_s") is not None and s["t"] <= last_end]
    return load[0], load[-1]


def test_idle_per_request_is_over_littles_window(bad_run: tuple[dict[str, Any], Path]) -> None:
    """Recomputed from samples.jsonl and requests.csv with the standard library: idle in transaction inside
    Little's-law window over the successes answered inside it. Over the whole run (load and cool-down) per
    successful request, the bad app's read 10% to 15% above its connection time per request: the cool-down serves
    the requests Locust left waiting at its stop, which the load's successes do not count."""
    bad, folder = bad_run
    pool, db, law = bad["pool"], bad["db"], bad["pool"]["littles_law"]
    answered, samples = _raw(folder)
    first, last = _window(answered, samples)
    assert last["t"] - first["t"] == pytest.approx(law["window_s"], abs=1e-3)
    successes = sum(1 for end, ok in answered if ok and first["t"] < end <= last["t"])

    def inside(field: str) -> float:
        return sum(b.get(field, 0) * (b["t"] - a["t"]) for a, b in itertools.pairwise(samples)
                   if first["t"] < b["t"] <= last["t"])

    def app_idle(sample: dict[str, Any]) -> float:
        return sample["pool_idle_in_tx_s"] + sample["pool_idle_in_tx_open_s"]

    outside = max(0.0, db["idle_in_tx_seconds_sampled"] - inside("idle_in_tx"))
    server = db["idle_in_tx_seconds"] - outside
    assert db["idle_in_tx_per_request_ms"] == pytest.approx(server * 1000 / successes, rel=0.01)
    assert db["idle_in_tx_long_per_request_ms"] == pytest.approx(inside("idle_in_tx_long") * 1000 / successes,
                                                                 rel=1e-3)
    app = (app_idle(last) - app_idle(first)) * 1000 / successes
    assert pool["idle_in_tx_app_per_request_ms"] == pytest.approx(app, rel=1e-3)
    # Idle in transaction is part of holding a connection: the app's own timing of both, over one window and one
    # count of requests (none failed), and the server's, whose spell lies inside the app's hold.
    assert bad["failures"] == 0
    assert pool["idle_in_tx_app_per_request_ms"] <= pool["hold_ms_per_request"]
    assert db["idle_in_tx_per_request_ms"] <= pool["hold_ms_per_request"] * 1.03
    # The totals stay load and cool-down: the server's idle time lies inside the pool's connection time.
    assert db["idle_in_tx_seconds"] <= pool["hold_s"] + pool["hold_open_s"]


def test_pool_wait_is_over_littles_window(bad_run: tuple[dict[str, Any], Path]) -> None:
    """The waits summary.json ranks, merged from samples.jsonl's intervals inside the window one by one. Over the
    whole run they also counted the 45 requests queued at Locust's stop, which get their connection in the
    cool-down and are in no latency figure."""
    bad, folder = bad_run
    pool, law = bad["pool"], bad["pool"]["littles_law"]
    answered, samples = _raw(folder)
    first, last = _window(answered, samples)
    waits = Histogram()
    for sample in samples:
        if "wait_hist" in sample and first["t"] < sample["t"] <= last["t"]:
            waits.merge(Histogram.from_json(sample["wait_hist"]))
    assert pool["wait_ms"] == pytest.approx({
        **{f"p{p}": waits.percentile(p) * 1000 for p in (50, 95, 99)},
        "max": waits.max * 1000, "mean": waits.mean * 1000, "count": waits.count}, abs=0.0011)
    # One checkout per request, held for the whole request, none timed out: the waits that ended inside the
    # window are the requests answered in it, but for those holding a connection at either end of it, and the
    # checkouts made while the collector's last pool read was under way (a sample's time is its reads' start).
    # Measured +5 (every connection held at the last sample) in each run but one, +6 once in CI on a busy machine.
    assert pool["timeouts"] == 0 and pool["checkouts_per_request"] == pytest.approx(1.0, abs=0.01)
    assert abs(pool["wait_ms"]["count"] - law["requests"]) <= pool["capacity"] + 2
    # A request's wait is a part of its latency; here it is a hold of about 105 ms short of it.
    assert pool["wait_ms"]["p95"] < bad["latency_ms"]["p95"]
    assert pool["wait_ms"]["count"] < pool["checkouts"]  # the cool-down's are not in it


def test_latency_percentiles_are_the_request_logs(bad_run: tuple[dict[str, Any], Path]) -> None:
    bad, folder = bad_run
    with open(folder / "requests.csv", newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["request_type"] != UNFINISHED]
    every = [float(r["response_time_ms"]) for r in rows]
    ok = [float(r["response_time_ms"]) for r in rows if r["failed"] == "0"]
    assert len(every) == bad["requests_recorded"]
    for key, values in (("latency_ms", every), ("success_latency_ms", ok)):
        expected = {f"p{p}": round(_nearest_rank(values, p), 3) for p in (50, 95, 99)} | {"max": max(values)}
        assert bad[key] == expected, key


def test_throughput_is_over_the_load_period_on_the_time_line(bad_run: tuple[dict[str, Any], Path]) -> None:
    """summary.json's time line holds each app run's go signal and Locust's stop (`load started`, `load stopped`):
    from them and requests.csv alone, throughput is every success over the period, and load_window_s its length.
    No request was sent before the go."""
    bad, folder = bad_run
    events = json.loads((folder.parent / "summary.json").read_text())["events"]
    [start] = [e["t"] for e in events if e.get("event") == "load started" and e.get("app") == "bad"]
    [stop] = [e["t"] for e in events if e.get("event") == "load stopped" and e.get("app") == "bad"]
    with open(folder / "requests.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    successes = sum(r["request_type"] != UNFINISHED and r["failed"] == "0" for r in rows)
    assert bad["load_window_s"] == round(stop - start, 3)
    assert bad["throughput_rps"] == round(successes / (stop - start), 3)
    assert start <= min(float(r["start_epoch_s"]) for r in rows) < stop
