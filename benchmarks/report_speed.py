"""How long ``render_report`` takes on a synthetic one-hour run: 10 Hz samples, 50 routes, ~1M requests.

Run by hand (``python benchmarks/report_speed.py [--keep DIR]``); it prints figures, it does not pass or fail.
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.render.run_report import render_report

TEMPLATE = ROOT / "tests" / "data" / "long-session-run" / "summary.json"
DURATION_S, COOLDOWN_S, INTERVAL_S = 3600.0, 30.0, 0.1
ROUTES = [f"{'POST' if i % 3 == 0 else 'GET'} /api/v1/resource{i:02d}/{{item_id}}" for i in range(50)]
# Per app: requests over the hour, median latency (ms), failure share, pool hold (ms).
APPS = {"good": (750_000, 140.0, 0.0005, 6.0), "bad": (250_000, 1080.0, 0.002, 108.0)}


def write_requests(folder: Path, t0: float, count: int, median_ms: float, failure_share: float,
                   rng: np.random.Generator) -> None:
    starts = np.sort(t0 + rng.uniform(0, DURATION_S, count))
    names = np.asarray(ROUTES, dtype=object)[rng.integers(0, len(ROUTES), count)]
    failed = (rng.random(count) < failure_share).astype(np.int8)
    pd.DataFrame({
        "start_epoch_s": np.round(starts, 6),
        "request_type": [name.split(" ", 1)[0] for name in names],
        "name": names,
        "response_time_ms": np.round(rng.lognormal(np.log(median_ms), 0.35, count), 3),
        "response_length": 51,
        "failed": failed,
        "error": np.where(failed == 1, "HTTPError('500 Server Error')", ""),
    }).to_csv(folder / "requests.csv", index=False)


def write_samples(folder: Path, t0: float, hold_ms: float, rng: np.random.Generator) -> None:
    n_load, n_cool = int(DURATION_S / INTERVAL_S), int(COOLDOWN_S / INTERVAL_S)
    leaky = hold_ms > 50
    with open(folder / "samples.jsonl", "w", encoding="utf-8") as out:
        for i in range(n_load + n_cool):
            load = i < n_load
            out_now = (5 if leaky else int(rng.integers(0, 6))) if load else 0
            idle = min(out_now, int(rng.integers(0, 6)))
            sample: dict[str, Any] = {
                "t": t0 + i * INTERVAL_S, "phase": "load" if load else "cooldown", "connections": 5,
                "active": out_now - idle, "idle": 5 - out_now, "idle_in_tx": idle, "idle_in_tx_long": idle if leaky else 0,
                "idle_in_tx_oldest_s": round(float(rng.uniform(0, hold_ms / 1000)) if idle else 0.0, 4),
                "xact_oldest_s": round(float(rng.uniform(0, hold_ms / 1000)), 4), "pool_checked_out": out_now,
                "pool_pending": 45 if leaky and load else 0, "pool_size": 5, "pool_checked_in": 5 - out_now,
                "pool_overflow": 0, "pool_checkouts": i * 20, "pool_timeouts": 0, "pool_cancelled": 0,
                "pool_connect_failures": 0, "pool_connections_opened": 5, "pool_invalidated": 0, "pool_reclaimed": 0,
                "pool_detached": 0, "pool_pending_max": 50, "pool_checked_out_max": 5,
                # The counters Little's law and the idle time over its window read: 20 holds per sample so far.
                "pool_hold_s": round(i * 20 * hold_ms / 1000, 6), "pool_checkins": i * 20,
                "pool_hold_open_s": round(out_now * hold_ms / 2000, 6),
                "pool_idle_in_tx_s": round(i * 20 * hold_ms / 1000 * (0.9 if leaky else 0.1), 6),
                "pool_idle_in_tx_open_s": round(idle * hold_ms / 2000, 6), "pool_transactions": i * 20,
                "pool_wait_p95_ms": round(float(rng.uniform(900, 1100) if leaky else rng.uniform(1, 60)), 3)
                if load else None,
                "pool_use_p95_ms": round(hold_ms * 1.05, 3) if load else None,
            }
            if load:  # as the collector writes them: the interval's pool-wait histogram, ~20 checkouts
                sample["wait_hist"] = _wait_hist(1.0 if leaky else 0.02, rng)
            out.write(json.dumps(sample) + "\n")


def _wait_hist(typical_s: float, rng: np.random.Generator) -> dict[str, Any]:
    waits = rng.lognormal(np.log(typical_s), 0.5, 20)
    buckets: dict[str, int] = {}
    for wait in waits:  # bench.instrument.histogram's buckets: 1% wide from 1 µs
        key = str(int(np.log(wait / 1e-6) / np.log(1.01)))
        buckets[key] = buckets.get(key, 0) + 1
    return {"count": 20, "sum_s": float(waits.sum()), "max_s": float(waits.max()), "buckets": buckets}


def write_summary(run_dir: Path) -> None:
    summary = json.loads(TEMPLATE.read_text(encoding="utf-8"))
    summary["config"].update(duration_s=DURATION_S, cooldown_s=COOLDOWN_S, out=str(run_dir))
    for app, (count, median_ms, failure_share, hold_ms) in APPS.items():
        figures = summary["apps"][app]
        template = next(iter(figures["endpoints"].values()))
        per_route = count // len(ROUTES)
        figures["endpoints"] = {}
        for route in ROUTES:
            entry = copy.deepcopy(template)
            entry.update(requests=per_route, failures=int(per_route * failure_share))
            entry["pool_hold_ms"]["p95"] = hold_ms * 1.05
            figures["endpoints"][route] = entry
        writes = [r for r in ROUTES if r.startswith("POST")]
        figures["integrity"]["by_route"] = {r: {"acknowledged_writes": per_route, "rows_written": per_route,
                                                "lost_writes": 0} for r in writes}
        figures["requests"] = figures["requests_recorded"] = count
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    shutil.copy(TEMPLATE.parent / "run.json", run_dir / "run.json")


def synthesize(run_dir: Path) -> None:
    rng = np.random.default_rng(7)
    t0 = 1_795_300_000.0
    for app, (count, median_ms, failure_share, hold_ms) in APPS.items():
        folder = run_dir / app
        folder.mkdir(parents=True)
        write_requests(folder, t0, count, median_ms, failure_share, rng)
        write_samples(folder, t0, hold_ms, rng)
        t0 += DURATION_S + COOLDOWN_S + 5
    write_summary(run_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", type=Path, help="synthesize into this folder and keep it")
    args = parser.parse_args()
    run_dir = args.keep or Path(tempfile.mkdtemp(prefix="sb-report-speed-")) / "run"
    started = time.perf_counter()
    synthesize(run_dir)
    inputs = sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file())
    print(f"synthesized {run_dir} in {time.perf_counter() - started:.1f}s ({inputs / 2**20:.1f} MiB of input)")
    started = time.perf_counter()
    md_path, html_path = render_report(run_dir)
    elapsed = time.perf_counter() - started
    # A second, traced render for peak memory: tracemalloc slows allocation, so it is not timed.
    tracemalloc.start()
    render_report(run_dir)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"render_report: {elapsed:.2f}s (target < 5s)")
    print(f"peak traced memory: {peak / 2**20:.0f} MiB; process max RSS (synthesis included): {max_rss:.0f} MiB")
    print(f"report.html: {html_path.stat().st_size / 1024:.0f} KiB (target < 2 MiB); "
          f"report.md: {md_path.stat().st_size / 1024:.0f} KiB")
    if args.keep is None:
        shutil.rmtree(run_dir.parent)


if __name__ == "__main__":
    main()
