"""Post-processing cost on a synthetic one-hour run (report_speed's generator): summary as the runner builds it,
report, compare; timed in a fresh child process for a clean peak memory, plus the `bench report`/`compare` commands.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # before the section imports: they import bench

import report_speed
from cli_timings import bench_command
from perf_options import Options
from perf_table import Section, median, spread, target_note

TARGET_S = 5.0
POOLS = "pools-perf.json"  # the synthetic pool snapshots, beside the run's folders


def measure(opts: Options) -> Section:
    """The section for ``harness_perf``: synthesize once, time the passes in a child, then the CLI commands."""
    run_dir = opts.workdir / "synthetic-hour"
    started = time.perf_counter()
    report_speed.synthesize(run_dir)
    write_pools(run_dir / POOLS)
    synth_s = time.perf_counter() - started
    size_mib = sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file()) / 2**20
    done = subprocess.run([sys.executable, __file__, str(run_dir), "--reps", str(opts.reps)], capture_output=True,
                          text=True, timeout=900, check=True)
    child: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    commands = {name: [_wall([*bench_command(), *argv]) for _ in range(opts.reps)] for name, argv in (
        ("bench report RUN", ["report", str(run_dir)]), ("bench compare RUN RUN", ["compare", str(run_dir), str(run_dir)]))}
    s = Section(f"post-processing: synthetic one-hour run (2 apps, 10 Hz samples, {size_mib:.0f} MiB, "
                f"~1M requests; made in {synth_s:.0f} s), {opts.reps} passes in a fresh process, medians")
    passes = child["passes"]
    total = median(p["total_s"] for p in passes)
    for key, label, note in (
        ("summary_s", "summary, both apps (as the runner builds it)", "reads included"),
        ("read_s", "  of which reading requests.csv (2 reads)", "one per app, as bench.run.digest reads it"),
        ("report_s", "report: render_report (md + html)", ""),
        ("compare_s", "compare: load both sides + compare + text", ""),
    ):
        s.add(label, median(p[key] for p in passes), "s", "{:.3f}", note=(note + "; " if note else "")
              + spread((p[key] for p in passes), "{:.3f}"))
    s.add("summary + report + compare", total, "s", "{:.2f}",
          note=target_note(None if total is None else total < TARGET_S, f"< {TARGET_S:g} s"))
    s.add("peak memory: max RSS of that process", child["max_rss_mib"], "MiB",
          note="imports included; the synthetic pool snapshots are read from a file, not made in it")
    s.add("peak memory: traced Python allocations", child["traced_peak_mib"], "MiB", note="one pass, tracemalloc")
    for name, runs in commands.items():
        walls = [wall for wall, _ in runs]
        s.add(f"`{name}` wall, fresh process", median(walls), "s", "{:.2f}", note=spread(walls, "{:.2f}"))
        s.add(f"`{name}` peak memory, max RSS", median(rss for _, rss in runs), "MiB", "{:.0f}",
              note="the command as a user runs it")
    return s


def _wall(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and max RSS (MiB) of one command in a child process."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert child.stderr is not None
    guard = threading.Timer(300, child.kill)  # wait4 has no timeout: a hung command is killed, and fails below
    guard.start()
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    guard.cancel()
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if child.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(argv[:3])} exited {child.returncode}: {stderr.decode()[-300:]}")
    return wall, usage.ru_maxrss / 1024


# --- the child: one process, nothing else in it ----------------------------------------------------

def _histogram(values: np.ndarray) -> dict[str, Any]:
    """A pool histogram as the app serves it (log buckets of 1%), built vectorised."""
    from bench.instrument.histogram import GROWTH, MIN_S

    index = np.where(values < MIN_S, -1, np.floor(np.log(np.maximum(values, MIN_S) / MIN_S) / math.log(GROWTH)))
    keys, counts = np.unique(index.astype(np.int64), return_counts=True)
    return {"count": int(values.size), "sum_s": float(values.sum()), "max_s": float(values.max()),
            "buckets": {str(int(k)): int(c) for k, c in zip(keys, counts, strict=True)}}


def _pool_snapshot(count: int, hold_ms: float, routes: list[str], rng: np.random.Generator) -> dict[str, Any]:
    per_route = count // len(routes)
    hold = rng.lognormal(math.log(hold_ms / 1000), 0.3, count)
    return {
        "counters": {"checkouts": count, "timeouts": 0, "checked_out_max": 5, "pending_max": 45,
                     "connections_opened": 5, "invalidated": 0},
        "wait_time": _histogram(rng.lognormal(math.log(0.002), 1.0, count)),
        "use_time": _histogram(hold),
        "create_time": _histogram(rng.lognormal(math.log(0.004), 0.2, 5)),
        "use_time_by_route": {r: _histogram(hold[i * per_route:(i + 1) * per_route]) for i, r in enumerate(routes)},
        "wait_time_by_route": {r: _histogram(rng.lognormal(math.log(0.002), 1.0, per_route)) for r in routes},
    }


def _one_pass(run_dir: Path, pools: dict[str, dict[str, Any]], write_routes: list[str]) -> dict[str, float]:
    from bench.analysis.compare import compare, load_side
    from bench.analysis.loadperiod import LoadPeriod, Quiet
    from bench.analysis.summary import Integrity, summarize_app
    from bench.render.compare_render import render_text
    from bench.render.run_report import render_report
    from bench.results.folder import write_json
    from bench.results.records import DbFigures
    from bench.results.requestlog import read_requests
    from bench.run.digest import plotted_timeline

    read_s = 0.0
    timelines: dict[Path, Any] = {}
    started = time.perf_counter()
    for app, pool in pools.items():
        folder = run_dir / app
        t = time.perf_counter()
        log = read_requests(folder)  # bench.run.digest reads it once, for the summary and the report's time line
        requests = log.frame
        read_s += time.perf_counter() - t
        # As bench.run.digest.summarize: the stalls for the run's events, the samples Little's law and the report's
        # time line need, read once.
        period = LoadPeriod.of_requests(requests)
        quiet = Quiet.of(requests, period)
        quiet.events(app)
        acknowledged = _acknowledged(requests, write_routes)
        timeline = plotted_timeline(folder, log, timelines)
        assert timeline is not None, folder
        figures = summarize_app(requests=requests, pool=pool, db=DbFigures(samples=36_300),
                                integrity=Integrity(acknowledged=acknowledged, written=acknowledged), pool_capacity=5,
                                period=period, window=timeline.window, quiet=quiet)
        write_json(folder / "summary-perf.json", figures)
        del log, requests, timeline
    summary_s = time.perf_counter() - started
    t = time.perf_counter()
    render_report(run_dir, timelines)
    report_s = time.perf_counter() - t
    t = time.perf_counter()
    render_text(compare(load_side(run_dir), load_side(run_dir)))
    compare_s = time.perf_counter() - t
    return {"read_s": read_s, "summary_s": summary_s, "report_s": report_s, "compare_s": compare_s,
            "total_s": summary_s + report_s + compare_s}


def _acknowledged(requests: Any, routes: list[str]) -> dict[str, int]:
    """As bench.run.digest's integrity check: the successes of each write route (the rows go with the call)."""
    ok = requests[requests["failed"] == 0]
    return {name: int((ok["name"] == name).sum()) for name in routes}


def write_pools(path: Path) -> None:
    """The apps' pool snapshots, as the runner has them at the end of a run. Made here, not in the measured process:
    drawing a million holds would set its peak memory."""
    rng = np.random.default_rng(11)
    path.write_text(json.dumps({app: _pool_snapshot(count, hold_ms, report_speed.ROUTES, rng)
                                for app, (count, _median, _fail, hold_ms) in report_speed.APPS.items()}))


def child_main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    pools = json.loads((args.run_dir / POOLS).read_text())
    write_routes = [r for r in report_speed.ROUTES if r.startswith("POST")]
    passes = [_one_pass(args.run_dir, pools, write_routes) for _ in range(max(1, args.reps))]
    max_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before tracemalloc adds its own
    # A traced pass for peak memory; tracemalloc slows allocation, so it is not timed.
    tracemalloc.start()
    _one_pass(args.run_dir, pools, write_routes)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(json.dumps({"passes": passes, "traced_peak_mib": peak / 2**20,
                      "max_rss_mib": max_rss_mib}))


if __name__ == "__main__":
    child_main()
