"""What the ``scopebench`` pytest plugin costs a test suite: a generated suite of 200 small tests, each a short
session and one query on the embedded PostgreSQL, run by pytest with the plugin not loaded, loaded but off (its
default) and on, interleaved.

Run by hand (``python benchmarks/pytest_plugin_overhead.py [--reps 3] [--tests 200]``); it prints medians, it does
not pass or fail. Each run is a fresh ``python -m pytest``, so the figures include start-up, the same in all three.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.db.embedded import EmbeddedPostgres
from bench.db.server import create_database, drop_database, sqlalchemy_url

SUITE = """
import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine


@pytest.fixture(scope="session")
def db():
    loop = asyncio.new_event_loop()
    engine = create_async_engine({dsn!r}, pool_size=2)
    yield loop, engine
    loop.run_until_complete(engine.dispose())
    loop.close()


@pytest.mark.parametrize("n", range({tests}))
def test_small(db, n):
    loop, engine = db

    async def query():
        async with AsyncSession(engine) as session:
            return await session.scalar(text("select cast(:n as integer)"), {{"n": n}})

    assert loop.run_until_complete(query()) == n
"""

MODES = {"not loaded": ["-p", "no:scopebench"], "loaded, off": [], "on": ["-p", "scopebench"]}


def run_suite(folder: Path, args: list[str]) -> tuple[float, float]:
    """Wall time and the pytest process's CPU time (user + system), which the machine's other load moves less."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:locust", "-p", "no:cacheprovider", "test_suite.py", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"the suite failed ({' '.join(args) or 'default'}):\n{done.stdout[-2000:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--tests", type=int, default=200)
    args = parser.parse_args()
    home = Path(tempfile.gettempdir()) / f"sbp-{uuid.uuid4().hex[:8]}"
    embedded = EmbeddedPostgres(home=home)
    server = asyncio.run(embedded.start())
    name = f"plugin_overhead_{uuid.uuid4().hex[:8]}"
    try:
        asyncio.run(create_database(server, name))
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            dsn = sqlalchemy_url(server.dsn(name))
            (folder / "test_suite.py").write_text(SUITE.format(dsn=dsn, tests=args.tests), encoding="utf-8")
            times: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
            for _ in range(args.reps):  # interleaved: a change in the machine's load hits every mode alike
                for mode, flags in MODES.items():
                    times[mode].append(run_suite(folder, flags))
        print(f"{args.tests} tests, medians of {args.reps} interleaved runs (each a fresh pytest process):")
        base_wall = statistics.median(w for w, _ in times["not loaded"])
        base_cpu = statistics.median(c for _, c in times["not loaded"])
        for mode, values in times.items():
            wall = statistics.median(w for w, _ in values)
            cpu = statistics.median(c for _, c in values)
            print(
                f"  {mode:<11} CPU {cpu:6.2f} s ({cpu / base_cpu:.2f}x, {(cpu - base_cpu) / args.tests * 1000:+.2f} ms "
                f"per test)   wall {wall:6.2f} s ({wall / base_wall:.2f}x)"
            )
        asyncio.run(drop_database(server, name))
    finally:
        embedded.close()
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
