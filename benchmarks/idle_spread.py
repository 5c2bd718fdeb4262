"""A/A spread of idle in transaction per request: the app's exact figure against the collector's sampled one.

Runs ``bench run SCENARIO --app both`` N times (default 10, long-session, 10 s each) and prints, per app, the
coefficient of variation (sample standard deviation / mean) over the runs of idle in transaction per successful
request three ways: app-side (``pool.idle_in_tx_app_s``, timed from the dialect's calls), sampled (the 10 Hz
``pg_stat_activity`` sample, ``db.idle_in_tx_seconds_sampled``) and the server's own counter
(``db.server.idle_in_transaction_time``), with the app-side / server ratio. Nothing passes or fails.

    python benchmarks/idle_spread.py --runs 5 --keep /tmp/idle-spread
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
APPS = ("bad", "good")
WAYS = ("app-side", "sampled", "server")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10, help="runs per app (default 10)")
    p.add_argument("--scenario", default="long-session")
    p.add_argument("--duration", default="10s", help="load per run")
    p.add_argument("--keep", type=Path, help="keep the run folders here")
    opts = p.parse_args()
    out = opts.keep or Path(tempfile.mkdtemp(prefix="idle-spread-"))
    print(
        f"idle_spread: {opts.runs} x bench run {opts.scenario} --app both --duration {opts.duration}, "
        f"load average at start {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    values: dict[str, dict[str, list[float]]] = {app: {way: [] for way in WAYS} for app in APPS}
    for index in range(opts.runs):
        folder = out / f"run-{index}"
        started = time.monotonic()
        code = _bench(
            ["run", opts.scenario, "--app", "both", "--duration", opts.duration, "--out", str(folder)], folder
        )
        summary = folder / "summary.json"
        if not summary.exists():
            print(f"  run {index}: exit {code}, no summary.json (see {folder}.log)", flush=True)
            continue
        apps = json.loads(summary.read_text())["apps"]
        line = []
        for app in APPS:
            figures = _per_request(apps[app])
            for way in WAYS:
                if figures[way] is not None:
                    values[app][way].append(figures[way])
            line.append(f"{app} " + ", ".join(f"{w} {_fmt(figures[w])}" for w in WAYS))
        print(
            f"  run {index} (exit {code}, {time.monotonic() - started:.0f} s, load {os.getloadavg()[0]:.2f}): "
            + "; ".join(line),
            flush=True,
        )
    _table(values)
    print(f"load average at end {os.getloadavg()[0]:.2f}; run folders in {out}")


def _bench(args: list[str], folder: Path) -> int:
    folder.parent.mkdir(parents=True, exist_ok=True)
    with (folder.parent / f"{folder.name}.log").open("w") as log:
        return subprocess.run(
            [sys.executable, "-m", "bench.cli", *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=False
        ).returncode


def _per_request(app: dict[str, Any]) -> dict[str, float | None]:
    """ms of idle in transaction per successful request (load), each way; the same denominator for all three."""
    completed = float(app.get("throughput_rps") or 0) * float(app.get("load_window_s") or 0)
    pool, db = app.get("pool") or {}, app.get("db") or {}
    totals = {
        "app-side": pool.get("idle_in_tx_app_s"),
        "sampled": db.get("idle_in_tx_seconds_sampled"),
        "server": (db.get("server") or {}).get("idle_in_transaction_time"),
    }
    return {way: float(v) * 1000 / completed if v is not None and completed else None for way, v in totals.items()}


def _cv(values: list[float]) -> float | None:
    if len(values) < 2 or not statistics.fmean(values):
        return None
    return statistics.stdev(values) / statistics.fmean(values)


def _fmt(value: float | None, spec: str = "{:.3f}") -> str:
    return "-" if value is None else spec.format(value)


def _table(values: dict[str, dict[str, list[float]]]) -> None:
    print("\n| app | way | runs | mean ms/request | min | max | CV |")
    print("|---|---|---|---|---|---|---|")
    for app in APPS:
        for way in WAYS:
            v = values[app][way]
            cv = _cv(v)
            print(
                f"| {app} | {way} | {len(v)} | {_fmt(statistics.fmean(v) if v else None)} | "
                f"{_fmt(min(v) if v else None)} | {_fmt(max(v) if v else None)} | "
                f"{_fmt(None if cv is None else cv * 100, '{:.1f}%')} |"
            )
        ratios = [a / s for a, s in zip(values[app]["app-side"], values[app]["server"], strict=False) if s]
        if ratios:
            print(
                f"| {app} | app-side / server | {len(ratios)} | median {statistics.median(ratios):.3f} | "
                f"{min(ratios):.3f} | {max(ratios):.3f} | |"
            )


if __name__ == "__main__":
    main()
