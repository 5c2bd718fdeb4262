"""Every figure the run report computes itself, recomputed another way from the raw files and found on the page.

The report reads requests.csv and samples.jsonl with pandas and numpy (bench.analysis.timeline, distribution,
histbuckets); these tests read them with the csv and json modules, rank with exact fractions and merge histograms
with the instrumentation's own Histogram class, then compare with the cells and hover titles of report.html.
The definitions are docs/metrics.md's "figures the report computes" (bench/results/report_figures.py).
"""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
from collections import Counter, defaultdict
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from bench.instrument import Histogram
from bench.render.report_tables import ms_text
from bench.render.run_report import render_report
from bench.results.metric import Scope
from bench.results.metrics import REGISTRY
from tests.reportpage import Page

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]
LADDER = ("50", "75", "90", "95", "99", "99.9")


@pytest.fixture(scope="module", params=["mixed-run", "long-session-run"])
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Page, str]:
    folder = tmp_path_factory.mktemp("report") / request.param
    shutil.copytree(DATA / request.param, folder)
    md_path, html_path = render_report(folder)
    return folder, Page(html_path.read_text()), md_path.read_text()


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Page, str]:
    folder = tmp_path_factory.mktemp("report") / "mixed-run"
    shutil.copytree(DATA / "mixed-run", folder)
    md_path, html_path = render_report(folder)
    return folder, Page(html_path.read_text()), md_path.read_text()


# --- the raw files, read plainly ----------------------------------------------------------------

def answered(app_dir: Path) -> list[dict[str, Any]]:
    with open(app_dir / "requests.csv", newline="") as handle:
        return [{**row, "start": float(row["start_epoch_s"]), "ms": float(row["response_time_ms"]),
                 "failed": row["failed"] == "1"} for row in csv.DictReader(handle) if row["request_type"] != "UNFINISHED"]


def samples(app_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (app_dir / "samples.jsonl").read_text().splitlines() if line.strip()]


def origin(app_dir: Path) -> float:
    """The load's start: the first load sample or the first answered request's start, whichever came first."""
    return min([s["t"] for s in samples(app_dir) if s.get("phase") == "load"] + [r["start"] for r in answered(app_dir)])


def nearest(values: list[float], p: str) -> float:
    ordered = sorted(values)
    rank = max(1, math.ceil(Fraction(p) * len(ordered) / 100))
    return ordered[min(rank, len(ordered)) - 1]


def summary(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "summary.json").read_text())
    return data


def summed_waits(app_dir: Path) -> Histogram:
    """The samples' wait histograms inside Little's-law window: after the load's first pool reading, up to its last
    one at or before the last response (docs/metrics.md, `pool.littles_law.window_s`)."""
    last_end = max(r["start"] + r["ms"] / 1000 for r in answered(app_dir))
    load = [s["t"] for s in samples(app_dir) if s["phase"] == "load" and s.get("pool_hold_s") is not None
            and s["t"] <= last_end]
    total = Histogram()
    for sample in samples(app_dir):
        if "wait_hist" in sample and load[0] < sample["t"] <= load[-1]:
            total.merge(Histogram.from_json(sample["wait_hist"]))
    return total


# --- the tests ----------------------------------------------------------------------------------

def test_every_report_figure_is_defined_in_the_registry_and_docs() -> None:
    page = (ROOT / "docs" / "metrics.md").read_text()
    report = [m for m in REGISTRY if m.scope is Scope.REPORT]
    assert len(report) > 15
    assert all(f"| `{m.path}` | {m.label} |" in page for m in report)


def test_percentile_table_is_the_nearest_rank_of_requests_csv(rendered: tuple[Path, Page, str]) -> None:
    folder, page, md = rendered
    for app in ("good", "bad"):
        latencies = [r["ms"] for r in answered(folder / app)]
        row = page.row("percentiles", "latency (ms)", app)
        assert row[2] == f"{len(latencies):,}"
        assert row[3:] == [ms_text(nearest(latencies, p)) for p in LADDER] + [ms_text(max(latencies))]
        # the ladder's shared rungs are summary.json's own latency figures
        figures = summary(folder)["apps"][app]["latency_ms"]
        assert [row[3], row[6], row[7], row[9]] == [ms_text(figures[k]) for k in ("p50", "p95", "p99", "max")]
        assert f"| latency (ms) | {app} | {row[2]} | {row[3]} |" in md


def test_pool_wait_percentiles_are_the_summed_sample_histograms(mixed: tuple[Path, Page, str]) -> None:
    folder, page, _ = mixed
    for app in ("good", "bad"):
        waits = summed_waits(folder / app)
        row = page.row("percentiles", "pool wait (ms)", app)
        assert row[2] == f"{waits.count:,}"
        assert row[3:] == [ms_text(waits.percentile(float(p)) * 1000) for p in LADDER] + [ms_text(waits.max * 1000)]
        # the summed intervals are the waits summary.json ranks
        figures = summary(folder)["apps"][app]["pool"]["wait_ms"]
        assert waits.count == figures["count"]
        assert [row[3], row[6], row[7], row[9]] == [ms_text(figures[k]) for k in ("p50", "p95", "p99", "max")]


def test_failures_by_route_and_message_count_the_error_column(mixed: tuple[Path, Page, str]) -> None:
    folder, page, _ = mixed
    rows = page.tables["failures"][1:]
    for app in ("good", "bad"):
        requests = answered(folder / app)
        per_route = Counter(r["name"] for r in requests)
        groups: dict[tuple[str, str], list[float]] = defaultdict(list)
        t0 = origin(folder / app)
        for r in requests:
            if r["failed"]:
                # the URL a message names is blanked, so one error over many items is one row
                words = [("<url>:" if w.endswith(":") else "<url>") if w.startswith("http") else w
                         for w in r["error"].split(" ")]
                groups[(r["name"], " ".join(words))].append(r["start"] + r["ms"] / 1000 - t0)
        shown = [row for row in rows if row[0] == app]
        assert len(shown) == len(groups)
        for (route, message), ends in groups.items():
            assert page.row("failures", app, route, message)[3:] == [
                f"{len(ends):,}", f"{100 * len(ends) / per_route[route]:.1f}%", f"{min(ends):,.1f}"]
        figures = summary(folder)["apps"][app]
        assert sum(len(e) for e in groups.values()) == sum(e["failures"] for e in figures["endpoints"].values())
    assert any("LocustBadStatusCode: URL <url>: code=500" == row[2] for row in rows)


def test_per_second_throughput_and_latency_from_completion_times(rendered: tuple[Path, Page, str]) -> None:
    folder, page, _ = rendered
    throughput = page.plot("Throughput (successful")
    latency = page.plot("Latency per second")
    for app in ("good", "bad"):
        t0, stop = origin(folder / app), summary(folder)["apps"][app]["load_window_s"]
        ends = [(r["start"] + r["ms"] / 1000 - t0, r) for r in answered(folder / app)]
        for k in range(math.ceil(stop)):
            span = min(k + 1.0, stop) - k
            column = f"{k}–{k + 1} s:"
            inside = [r for end, r in ends if k <= end < k + span]
            if span < 0.5:  # the stop's own second, mostly outside the load: not drawn
                assert all(f"{app} " not in h for h in throughput.hover if h.startswith(column))
                continue
            ok = sum(not r["failed"] for r in inside)
            assert throughput.value(column, app) == pytest.approx(round(ok / span, 1), abs=0.051), (app, k)
            if inside:
                ms = [r["ms"] for r in inside]
                assert latency.value(column, f"{app} p95") == pytest.approx(nearest(ms, "95"), abs=0.051)
                assert f"(p50 {nearest(ms, '50'):,.1f} ms, p99 {nearest(ms, '99'):,.1f} ms)" in \
                    next(h for h in latency.hover if h.startswith(column)).split(f"{app} p95")[1]
        assert not [h for h in throughput.hover if h.startswith(f"{math.ceil(stop) + 1}–")]  # none past the stop


def test_the_last_partial_second_is_scaled_not_a_collapse(tmp_path: Path) -> None:
    """A load that stops 0.6 s into its last second: that second's responses over 0.6 s, level with the rest."""
    folder = tmp_path / "run"
    shutil.copytree(DATA / "long-session-run", folder)
    data = summary(folder)
    data["apps"]["good"]["load_window_s"] = 7.6
    (folder / "summary.json").write_text(json.dumps(data))
    plot = Page(render_report(folder)[1].read_text()).plot("Throughput (successful")
    t0 = origin(folder / "good")
    ends = [r["start"] + r["ms"] / 1000 - t0 for r in answered(folder / "good") if not r["failed"]]
    last = plot.value("7–8 s:", "good")
    assert last == pytest.approx(sum(7 <= e < 7.6 for e in ends) / 0.6, abs=0.051)
    earlier = sorted(plot.value(f"{k}–{k + 1} s:", "good") for k in range(1, 7))
    assert last > 0.7 * earlier[len(earlier) // 2]  # a steady app does not seem to collapse at the end
    assert sum(7 <= e < 7.6 for e in ends) < 0.7 * earlier[len(earlier) // 2]  # as the raw count would


def test_gauges_are_per_second_mean_and_range_of_the_samples(rendered: tuple[Path, Page, str]) -> None:
    folder, page, _ = rendered
    for title, field in (("Connections checked out", "pool_checked_out"), ("Idle in transaction", "idle_in_tx")):
        plot = page.plot(title)
        for app in ("good", "bad"):
            t0 = origin(folder / app)
            seconds: dict[int, list[float]] = defaultdict(list)
            for s in samples(folder / app):
                if s.get(field) is not None and s["t"] >= t0:
                    seconds[math.floor(s["t"] - t0)].append(float(s[field]))
            for k, values in seconds.items():
                text = next(h for h in plot.hover if h.startswith(f"{k}–{k + 1} s:"))
                mean = sum(values) / len(values)
                assert f"{app} mean {mean:,.2f} (min {min(values):,.2f}, max {max(values):,.2f})" in text, (title, k)


def test_pool_wait_p95_per_second_merges_the_samples_histograms(mixed: tuple[Path, Page, str]) -> None:
    folder, page, _ = mixed
    plot = page.plot("Pool wait p95 per second")
    for app in ("good", "bad"):
        t0 = origin(folder / app)
        seconds: dict[int, Histogram] = defaultdict(Histogram)
        for s in samples(folder / app):
            if "wait_hist" in s:
                seconds[math.floor(s["t"] - t0)].merge(Histogram.from_json(s["wait_hist"]))
        for k, hist in seconds.items():
            if k >= 0:
                assert plot.value(f"{k}–{k + 1} s:", app) == pytest.approx(hist.percentile(95) * 1000, abs=0.006)


def test_latency_histogram_counts_each_bin_of_requests_csv(rendered: tuple[Path, Page, str]) -> None:
    folder, page, _ = rendered
    plot = page.plot("Latency distribution")
    latencies = {app: [r["ms"] for r in answered(folder / app)] for app in ("good", "bad")}
    low = min(nearest(v, "1") for v in latencies.values())
    first = math.floor(math.log10(low) * 10 + 1e-9)  # ten bins per decade, edges at 10^(k/10) ms
    top = max(max(v) for v in latencies.values())
    last = next(k for k in range(first + 1, first + 200) if 10 ** (k / 10) > top)  # the first edge past the largest
    assert len(plot.hover) == last - first
    for i, text in enumerate(plot.hover):
        lo, hi = 10 ** ((first + i) / 10), 10 ** ((first + i + 1) / 10)
        for app, values in latencies.items():
            if i == 0:
                count = sum(v < hi for v in values)
            elif i == len(plot.hover) - 1:
                count = sum(v >= lo for v in values)
            else:
                count = sum(lo <= v < hi for v in values)
            found = re.search(rf"{app} ([\d.]+)% \(([\d,]+) request", text)
            assert found and int(found.group(2).replace(",", "")) == count, (app, text)
            assert float(found.group(1)) == pytest.approx(100 * count / len(values), abs=0.051)


def test_pool_wait_histogram_holds_every_checkout_inside_the_window(mixed: tuple[Path, Page, str]) -> None:
    folder, page, _ = mixed
    plot = page.plot("Pool wait distribution")
    for app in ("good", "bad"):
        counts = [int(m.group(1).replace(",", "")) for h in plot.hover
                  if (m := re.search(rf"{app} [\d.]+% \(([\d,]+) checkout", h))]
        assert sum(counts) == summed_waits(folder / app).count > 0


def test_route_rate_is_its_requests_over_the_load_window(mixed: tuple[Path, Page, str]) -> None:
    folder, page, _ = mixed
    for app in ("good", "bad"):
        per_route = Counter(r["name"] for r in answered(folder / app))
        window = summary(folder)["apps"][app]["load_window_s"]
        for route, n in per_route.items():
            assert page.row("routes", route, app)[2:4] == [f"{n:,}", f"{n / window:,.1f}"]


def test_route_series_count_each_routes_responses(mixed: tuple[Path, Page, str]) -> None:
    folder, page, _ = mixed
    for app in ("good", "bad"):
        plot = page.plot(f"{app}: successful responses per second, by route")
        t0 = origin(folder / app)
        per = Counter((r["name"], math.floor(r["start"] + r["ms"] / 1000 - t0)) for r in answered(folder / app)
                      if not r["failed"])
        for k in range(1, 4):
            for route in plot.series:
                assert plot.value(f"{k}–{k + 1} s:", route) == per[(route, k)], (app, route, k)
