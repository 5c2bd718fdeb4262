"""report.md and report.html from real run folders (tests/data/long-session-run, mixed-run), damaged ones, a browser,
and the modes the report's files are written with. tests/test_report_figures.py recomputes the figures themselves.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import stat
import struct
import subprocess
import zlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.errors import UsageError
from bench.render.run_report import render_report
from bench.render.svgplot import MAX_POINTS
from bench.results.folder import write_json
from bench.results.metric import Shown
from bench.results.metrics import SHOWN, value_at
from tests.reportpage import Page

FIXTURE = Path(__file__).parent / "data" / "long-session-run"
MIXED = Path(__file__).parent / "data" / "mixed-run"
ROOT = Path(__file__).resolve().parents[1]
# The long-session fixture has no failures, so no failures plot; two distributions, the rest over time.
PLOT_TITLES = {
    "Throughput (successful responses per second)", "Latency per second (ms): p95, band p50 to p99",
    "Pool wait p95 per second (ms)", "Connections checked out (mean per second, band min–max)",
    "Idle in transaction (mean per second, band min–max)", "Oldest idle-in-transaction age (s), largest per second",
    "Latency distribution (share of requests per bin)", "Pool wait distribution (share of checkouts per bin)",
}
DISTRIBUTIONS = 2
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    shutil.copytree(FIXTURE, folder)
    return folder


@pytest.fixture
def mixed_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "mixed"
    shutil.copytree(MIXED, folder)
    return folder


@pytest.fixture
def summary() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURE / "summary.json").read_text())
    return data


def _parse(html_text: str) -> Page:
    return Page(html_text)


def _row(rows: list[list[str]], first: str, second: str | None = None) -> list[str]:
    return next(r for r in rows if r[0] == first and (second is None or r[1] == second))


def test_fixture_renders_tables_with_its_real_figures(run_dir: Path, summary: dict[str, Any]) -> None:
    md_path, html_path = render_report(run_dir)
    assert (md_path, html_path) == (run_dir / "report.md", run_dir / "report.html")
    md, page = md_path.read_text(), html_path.read_text()
    tables = _parse(page).tables
    apps = summary["apps"]
    assert tables["headline"][0] == ["metric", "good", "bad", "bad/good"]
    folded = []
    for metric in SHOWN:
        good, bad = (value_at(apps[a], metric.path.split(".")) for a in ("good", "bad"))
        cells = [metric.number_format.format(v) if v is not None else "-" for v in (good, bad)]
        if metric.shown is Shown.NONZERO and not good and not bad:
            folded.append(metric.label)  # a count that is 0 in both apps: named once, not a row of zeros
            assert not any(r[0] == metric.heading for r in tables["headline"]), metric.path
            continue
        assert _row(tables["headline"], metric.heading)[1:3] == cells, metric.heading
        assert f"| {metric.heading} | {cells[0]} | {cells[1]} |" in md
    assert folded and f"0 in every app: {', '.join(folded)}." in md
    ratio = apps["bad"]["throughput_rps"] / apps["good"]["throughput_rps"]
    assert _row(tables["headline"], "throughput (req/s)")[3] == f"{ratio:.2f}× worse"
    assert _row(tables["headline"], "failures")[3] == "="
    for app in ("good", "bad"):
        route = apps[app]["endpoints"]["POST /orders/{item_id}/checkout"]
        assert _row(tables["routes"], "POST /orders/{item_id}/checkout", app)[2:] == [
            f"{route['requests']:,}", f"{route['requests'] / apps[app]['load_window_s']:,.1f}", "0",
            *(f"{route['latency_ms'][p]:,.1f}" for p in ("p50", "p95", "p99", "max")),
            f"{route['pool_wait_ms']['p95']:,.1f}", f"{route['pool_hold_ms']['p95']:,.1f}"]
        integrity = apps[app]["integrity"]
        assert _row(tables["integrity"], app)[1:] == ["POST /orders/{item_id}/checkout", *(
            f"{integrity[k]:,}" for k in ("acknowledged_writes", "rows_written", "lost_writes"))]
        assert _row(tables["app-log"], "lines")[1:] == ["0", "0"]
    started = datetime.fromisoformat(summary["started_at"]).strftime("%Y-%m-%d %H:%M:%S UTC")
    for text in ("long-session", "50 (spawn rate 50.0/s)", "size 5 + overflow 0", "100 ms", "PostgreSQL 18.6",
                 started, "completed", "2 CPUs"):
        assert text in md and text in page, text


def test_every_plot_is_inline_svg_with_good_and_bad_overlaid(run_dir: Path) -> None:
    _, html_path = render_report(run_dir)
    plots = _parse(html_path.read_text()).plots
    assert {p.title for p in plots} == PLOT_TITLES and len(plots) == len(PLOT_TITLES)
    for plot in plots:
        assert plot.series in (["good", "bad"], ["good p95", "bad p95"]), plot.title
        assert plot.points and max(plot.points) <= MAX_POINTS
        assert plot.hover and all(h.count("good") == 1 and h.count("bad") == 1 for h in plot.hover[1:-1]), plot.title
    page = html_path.read_text()
    assert page.count('class="band"') == len(PLOT_TITLES) - DISTRIBUTIONS  # the cool-down, on every plot over time
    assert "pool size 5" in page and "long: past 50 ms" in page
    # The pool size is drawn after (over) the series, so a line running along it cannot hide it.
    checked = page[page.index("Connections checked out (mean"):]
    assert checked.index('class="reference"') > checked.index('class="series"')


def test_a_run_with_several_routes_plots_each_route(mixed_dir: Path) -> None:
    _, html_path = render_report(mixed_dir)
    page = _parse(html_path.read_text())
    routes = json.loads((mixed_dir / "summary.json").read_text())["apps"]["good"]["endpoints"]
    for app in ("good", "bad"):
        for title in (f"{app}: successful responses per second, by route", f"{app}: latency p95 per second, by route"):
            assert set(page.plot(title).series) == set(routes), title
    assert {p.title for p in page.plots} >= {"Failed responses per second", "Pool wait p95 per second (ms)",
                                              "Pool wait distribution (share of checkouts per bin)"}


def test_html_is_self_contained(run_dir: Path) -> None:
    _, html_path = render_report(run_dir)
    page = html_path.read_text()
    assert not re.search(r"https?://", page)
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b", page, re.IGNORECASE)
    assert not re.search(r"url\(|@import|\b(src|href)\s*=|\bon[a-z]+\s*=", page, re.IGNORECASE)
    assert "default-src 'none'" in page  # and the browser is told to load nothing anyway


def test_long_series_are_downsampled(run_dir: Path) -> None:
    # Ten minutes of 10 Hz samples: more points than a line may carry, and more seconds than hover columns.
    samples = [json.loads(line) for line in (run_dir / "bad" / "samples.jsonl").read_text().splitlines()]
    t0, step = samples[0]["t"], 0.1
    long = [{**samples[i % len(samples)], "t": t0 + i * step} for i in range(6000)]
    (run_dir / "bad" / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in long))
    _, html_path = render_report(run_dir)
    for plot in _parse(html_path.read_text()).plots:
        assert max(plot.points) <= MAX_POINTS and len(plot.hover) <= 240


def _damage(run_dir: Path, how: str) -> None:
    summary = run_dir / "summary.json"
    text = summary.read_text()
    data = json.loads(text)
    if how == "no folder":
        shutil.rmtree(run_dir)
    elif how == "no summary":
        summary.unlink()
    elif how == "no summary or run.json":
        summary.unlink()
        (run_dir / "run.json").unlink()
    elif how == "no summary, still running":
        summary.unlink()
        (run_dir / "run.json").write_text(json.dumps({**json.loads((run_dir / "run.json").read_text()),
                                                      "status": "running"}))
    elif how == "truncated summary":
        summary.write_text(text[: len(text) // 2])
    elif how == "empty summary":
        summary.write_text("")
    elif how == "summary not an object":
        summary.write_text("[1, 2]")
    elif how == "apps not an object":
        summary.write_text(json.dumps({**data, "apps": ["good"]}))
    elif how == "truncated run.json":
        (run_dir / "run.json").write_text('{"status": "compl')
    elif how == "garbage samples":
        (run_dir / "good" / "samples.jsonl").write_text("not json\n" * 10)
    elif how == "garbage requests":
        (run_dir / "good" / "requests.csv").write_text("a,b\n1,2\n")


@pytest.mark.parametrize(("how", "message"), [
    ("no folder", "does not exist; pass a folder written by bench run"),
    ("no summary", "has no summary.json (run.json says 'completed'); the folder is incomplete, re-run"),
    ("no summary or run.json", "has no summary.json; pass a folder written by bench run"),
    ("no summary, still running", "has no summary.json yet (run.json says 'running'); wait for the run to finish"),
    ("truncated summary", "summary.json is truncated or not valid JSON"),
    ("empty summary", "summary.json is truncated or not valid JSON"),
    ("summary not an object", "holds a JSON list, not an object"),
    ("apps not an object", "'apps' is not a JSON object"),
    ("truncated run.json", "run.json is truncated or not valid JSON"),
    ("garbage samples", "samples.jsonl holds no valid JSON line"),
    ("garbage requests", "requests.csv is not a requests log"),
])
def test_damaged_folders_give_one_line_usage_errors(run_dir: Path, how: str, message: str) -> None:
    _damage(run_dir, how)
    with pytest.raises(UsageError) as caught:
        render_report(run_dir)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert not (run_dir / "report.html").exists()


@pytest.mark.parametrize("version", [2, 0, None])
def test_other_schema_versions_are_refused(run_dir: Path, version: int | None) -> None:
    data = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps({**data, "schema_version": version}))
    with pytest.raises(UsageError, match=re.escape(f"run folder {run_dir} has schema_version {version}; "
                                                   "this bench reads 1")):
        render_report(run_dir)


def test_torn_raw_files_of_an_interrupted_run_still_render(run_dir: Path) -> None:
    with open(run_dir / "bad" / "samples.jsonl", "a") as handle:
        handle.write('{"t": 1795303324.1, "phase": "cool')
    with open(run_dir / "bad" / "requests.csv", "a") as handle:
        handle.write('1795303323.9,POST,"POST /orders/{item_')  # killed mid-write, quote left open
    _, html_path = render_report(run_dir)
    assert all(p.series in (["good", "bad"], ["good p95", "bad p95"]) for p in _parse(html_path.read_text()).plots)


def test_failed_run_renders_what_it_has_with_the_error_up_front(run_dir: Path) -> None:
    data = json.loads((run_dir / "summary.json").read_text())
    data.update(status="failed", checks=[], apps={"good": data["apps"]["good"]},
                error="bad app died: could not connect to postgresql://app:hunter2@127.0.0.1:5432/db")
    (run_dir / "summary.json").write_text(json.dumps(data))
    lines = (run_dir / "bad" / "samples.jsonl").read_text().splitlines()
    (run_dir / "bad" / "samples.jsonl").write_text("\n".join(lines[:40]) + "\n")  # it died early
    (run_dir / "bad" / "requests.csv").unlink()
    md_path, html_path = render_report(run_dir)
    md, page = md_path.read_text(), html_path.read_text()
    for text in (md, page):
        assert "hunter2" not in text and "postgresql://app:***@127.0.0.1:5432/db" in text
        assert "no checks were evaluated (run failed)" in text
    assert "**Status: failed**" in md and "> **Run failed:** bad app died" in md
    assert 'class="status status-failed"' in page and '<p class="error"><strong>Run failed:</strong>' in page
    parsed = _parse(page)
    assert parsed.tables["headline"][0] == ["metric", "good"]
    svgs = {plot.title: plot.series for plot in parsed.plots}
    # what the collector saw before it died
    assert svgs["Idle in transaction (mean per second, band min–max)"] == ["good", "bad"]
    assert svgs["Throughput (successful responses per second)"] == ["good"]  # bad left no requests log


def test_app_log_counts_and_exceptions_show_without_passwords(run_dir: Path) -> None:
    data = json.loads((run_dir / "summary.json").read_text())
    data["apps"]["bad"]["app_log"].update(lines=120, gc_cleanups=3, timeouts=7, exceptions={
        "TimeoutError: QueuePool limit of size 5 overflow 0 reached, connection timed out, timeout 30.00": 7,
        "OSError: connect to postgresql://app:hunter2@db:5432/x?password=hunter2 failed": 1})
    (run_dir / "summary.json").write_text(json.dumps(data))
    md_path, html_path = render_report(run_dir)
    md, page = md_path.read_text(), html_path.read_text()
    tables = _parse(page).tables
    assert tables["app-log"][0] == ["count", "good", "bad"]
    assert _row(tables["app-log"], "timeouts")[1:] == ["0", "7"] and _row(tables["app-log"], "lines")[1:] == ["0", "120"]
    assert "| gc_cleanups | 0 | 3 |" in md
    exceptions = tables["app-log-exceptions"]
    assert _row(exceptions, "bad")[1:] == [
        "TimeoutError: QueuePool limit of size 5 overflow 0 reached, connection timed out, timeout 30.00", "7"]
    page = page.replace("<wbr>", "")  # the break opportunities a narrow page may wrap a long word at
    assert "hunter2" not in md and "hunter2" not in page and "postgresql://app:***@db:5432/x?password=***" in page


def test_the_headline_explains_the_two_idle_totals_only_when_it_shows_both(run_dir: Path) -> None:
    note = "Idle in tx total is PostgreSQL's own count; the app-side total is the app's timing"
    md_path, _ = render_report(run_dir)
    assert note not in md_path.read_text()  # the stored run's app did not time its transactions
    data = json.loads((run_dir / "summary.json").read_text())
    data["apps"]["bad"]["pool"]["idle_in_tx_app_s"] = 41.5
    (run_dir / "summary.json").write_text(json.dumps(data))
    md_path, _ = render_report(run_dir)
    headline = md_path.read_text().split("## Headline")[1].split("\n## ")[0]
    assert "| idle in tx total, app-side (conn-s) | - | 41.50 |" in headline and note in headline


def test_interrupted_run_with_no_app_finished_still_renders(run_dir: Path) -> None:
    data = json.loads((run_dir / "summary.json").read_text())
    data.update(status="interrupted", error=None, checks=[], apps={})
    (run_dir / "summary.json").write_text(json.dumps(data))
    shutil.rmtree(run_dir / "good")
    shutil.rmtree(run_dir / "bad")
    _, html_path = render_report(run_dir)
    page = html_path.read_text()
    assert "Headline: no app finished" in page and "the figures below are partial" in page
    # Every plot over time says so; the latency distribution has no requests, the pool wait's is not drawn.
    assert page.count("no data recorded") == len(PLOT_TITLES) - DISTRIBUTIONS and "no requests recorded" in page


# --- a real browser -----------------------------------------------------------------------------

def _png_pixels(path: Path) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """Decode an 8-bit RGB(A) PNG with zlib and the five scanline filters; returns (h, w, 3)."""
    data, pos, idat = path.read_bytes(), 8, []
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    assert depth == 8 and colour in (2, 6)
    bpp = 3 if colour == 2 else 4
    rows = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(height, width * bpp + 1)
    out, prev = np.empty((height, width * bpp), np.uint8), np.zeros(width * bpp, np.uint8)
    for y in range(height):
        out[y] = prev = _unfilter(int(rows[y, 0]), rows[y, 1:], prev, bpp)
    return out.reshape(height, width, bpp)[:, :, :3]


def _unfilter(kind: int, line: Any, prev: Any, bpp: int) -> Any:
    if kind == 0:
        return line
    if kind == 1:  # Sub: a running sum along each channel
        return (np.cumsum(line.reshape(-1, bpp), axis=0, dtype=np.int64) % 256).astype(np.uint8).ravel()
    if kind == 2:
        return line + prev
    cur, up = [0] * len(line), prev.tolist()
    for x, value in enumerate(line.tolist()):
        a = cur[x - bpp] if x >= bpp else 0
        if kind == 3:
            cur[x] = (value + ((a + up[x]) >> 1)) & 255
            continue
        b, c = up[x], up[x - bpp] if x >= bpp else 0
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        cur[x] = (value + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    return np.array(cur, np.uint8)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_headless_chromium_screenshot_shows_the_report(run_dir: Path, tmp_path: Path) -> None:
    _, html_path = render_report(run_dir)
    png = tmp_path / "report.png"
    assert CHROMIUM is not None
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}", "--window-size=1280,4000",
         html_path.resolve().as_uri()],
        check=True, capture_output=True, timeout=120)
    assert png.stat().st_size > 50_000
    pixels = _png_pixels(png)
    assert pixels.shape == (4000, 1280, 3)
    packed = (pixels[..., 0].astype(np.uint32) << 16) | (pixels[..., 1].astype(np.uint32) << 8) | pixels[..., 2]
    colours, counts = np.unique(packed, return_counts=True)
    assert len(colours) > 200 and counts.max() < 0.9 * packed.size  # text, tables and plots, not a blank page
    for hex_colour in ("0072B2", "D55E00"):  # the good and bad lines were drawn
        target = np.array([int(hex_colour[i:i + 2], 16) for i in (0, 2, 4)])
        assert (np.abs(pixels.astype(int) - target).sum(axis=2) < 40).sum() > 200, hex_colour


def test_unwritable_folder_is_a_usage_error(run_dir: Path) -> None:
    (run_dir / "report.html").mkdir()  # a directory where the file must go: the rename fails
    with pytest.raises(UsageError, match="cannot write .*report.html"):
        render_report(run_dir)
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".report")]  # no temp file left behind


# --- the files' modes ---------------------------------------------------------------------------

@pytest.fixture
def umask() -> Iterator[None]:
    before = os.umask(0o022)
    os.umask(before)
    yield
    os.umask(before)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_report_and_result_files_get_the_umasks_mode(run_dir: Path, umask: None, mask: int, mode: int) -> None:
    """Written through mkstemp (0600), they are given 0666 less the umask, as any other file the run writes."""
    os.umask(mask)
    md_path, html_path = render_report(run_dir)
    write_json(run_dir / "summary.json", json.loads((run_dir / "summary.json").read_text()))
    plain = run_dir / "plain.txt"
    plain.write_text("x")  # what open() gives under the same umask
    for path in (md_path, html_path, run_dir / "summary.json", plain):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path.name


# --- Locust's own outputs, end to end ------------------------------------------------------------

@pytest.mark.e2e
def test_a_run_keeps_locusts_own_reports_and_readable_files(tmp_path: Path, pg_home: Path, umask: None) -> None:
    os.umask(0o022)
    out = tmp_path / "run"
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "bench") if (ROOT / ".venv" / "bin" / "bench").exists()
                           else "bench", "run", "long-session", "--duration", "3s", "--cooldown", "1s", "--out",
                           str(out), "--quiet"], capture_output=True, text=True, timeout=240, cwd=tmp_path,
                          env={**os.environ, "BENCH_HOME": str(pg_home)}, check=False)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    for app in ("good", "bad"):
        folder = out / app
        assert "<html" in (folder / "locust.html").read_text()[:2000].lower()
        with open(folder / "locust_stats.csv", newline="") as handle:
            stats = {row["Name"]: row for row in csv.DictReader(handle)}
        figures = json.loads((out / "summary.json").read_text())["apps"][app]
        assert set(stats) == {*figures["endpoints"], "Aggregated"}
        # Locust writes its CSV while its users stop, before its final count (locust.json): up to 10% fewer.
        assert 0 < int(stats["Aggregated"]["Request Count"]) <= figures["requests"]
        for name in ("locust_stats_history.csv", "locust_failures.csv"):
            assert (folder / name).is_file(), name
    for name in ("report.html", "report.md", "summary.json", "run.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name
    assert "What this run shows" in (out / "report.html").read_text()
