"""What the harness itself costs and where its ceilings are: load generators, target app, collector,
pool instrumentation, start-up and teardown, post-processing. Prints figures and ratios; never passes or fails.

Run by hand: ``python benchmarks/harness_perf.py [--reps 3] [--window 5] [--only loadgen,app,...]`` (~8 min).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # before the section imports: they import bench

import app_ceiling
import cli_timings
import collector_cost
import loadgen_ceiling
import pool_overhead
import postprocess_speed
from perf_database import open_target
from perf_drivers import have_module, wrk_path
from perf_options import Options
from perf_table import Section, emit, load_average

from bench.run.processes import stop_all


def database_sections(opts: Options) -> list[Section]:
    """App ceiling, collector cost and pool overhead share one embedded PostgreSQL and seeded database."""
    with open_target(opts.workdir) as target:
        ceiling = app_ceiling.run(opts, target)
        collector = collector_cost.measure(opts, target, ceiling.fast_app)
        # After the load: the in-process loops must not compete with an app for the cores.
        for app in target.apps:
            app.child.stop(timeout=10)
        pool, blocks = pool_overhead.run(opts, target)
    app_cpu = app_ceiling.app_cpu_per_request(ceiling)
    return [app_ceiling.section(opts, ceiling, pool), collector, pool_overhead.section(opts, pool, blocks, app_cpu)]


SECTIONS: dict[str, Callable[[Options], list[Section]]] = {
    "loadgen": lambda opts: [loadgen_ceiling.measure(opts)],
    "app": database_sections,
    "cli": lambda opts: [cli_timings.measure(opts)],
    "post": lambda opts: [postprocess_speed.measure(opts)],
}


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "missing"


def header() -> str:
    wrk = wrk_path()
    tools = ", ".join(f"{name} {_version(name)}" for name in ("locust", "uvicorn", "sqlalchemy", "asyncpg",
                                                               "uvloop", "httptools"))
    return "\n".join([
        f"harness_perf on {platform.node()}: Python {platform.python_version()}, {platform.machine()}",
        f"  {tools}, wrk {'at ' + wrk if wrk else 'MISSING (apt-get install -y wrk; C-generator rows skipped)'}",
        f"  load average at start: {load_average()}",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3, help="repetitions per figure; medians are quoted")
    parser.add_argument("--window", type=float, default=5.0, help="seconds of steady load per measured window")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)}")
    parser.add_argument("--keep", type=Path, help="keep logs and run folders in this directory")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="sb-harness-perf-"))
    workdir.mkdir(parents=True, exist_ok=True)
    opts = Options(workdir=workdir, reps=max(1, args.reps), window_s=args.window)
    started = time.monotonic()
    emit(header())
    if not have_module("uvloop") or not have_module("httptools"):
        emit("  uvloop/httptools missing (pip install uvloop httptools): the uvloop rows are skipped")
    failed = 0
    try:
        for name in chosen:
            try:
                for section in SECTIONS[name](opts):
                    emit("\n" + section.render())
            except Exception:  # noqa: BLE001 - one broken section must not hide the others' figures
                failed += 1
                emit(f"\n== {name}: FAILED ==\n" + traceback.format_exc(limit=4))
            finally:
                stop_all()
    finally:
        stop_all()
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    emit(f"\nload average at end: {load_average()}; took {time.monotonic() - started:.0f} s")
    return 3 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
