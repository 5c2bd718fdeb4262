"""bench capacity on the user's own service: --serve with {pool_size} starts it once per pool size and the sweep
finds the knee where Little's law puts it (pool size / connection time per request); --target with a pool the
harness cannot know is said, not guessed.

The service holds one connection 100 ms per request (a transaction open across a sleep), so its pool of N sustains
N / 0.1 s requests/s at most: 20 req/s with 2 connections, 40 with 4.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bench.config.catalog import scenario_from_locustfile
from bench.config.options import resolve_config
from bench.db.ports import free_port
from bench.db.server import Server, sqlalchemy_url
from bench.errors import UsageError
from bench.results.layout import CapacityFiles
from bench.run.capacity import check_own_service, pool_is_set
from tests.servedapp import run_watched

BENCH = [sys.executable, "-m", "bench.cli"]
HOLD_S = 0.1

SERVICE = """import asyncio
import os
import re
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from bench.instrument import ENDPOINT_PATH, PoolEndpoint, RouteTagMiddleware, TimedAsyncPool, instrument


@asynccontextmanager
async def lifespan(app):
    engine = create_async_engine(os.environ["APP_DSN"], poolclass=TimedAsyncPool,
                                 pool_size=int(os.environ["POOL_SIZE"]), max_overflow=0, pool_timeout=60)
    app.state.metrics = instrument(engine)
    app.state.sessions = async_sessionmaker(engine)
    yield
    await engine.dispose()


app = FastAPI(lifespan=lifespan)
app.add_route(ENDPOINT_PATH, PoolEndpoint(lambda: getattr(app.state, "metrics", None)))
app.add_middleware(RouteTagMiddleware)


@app.get("/work")
async def work() -> dict:
    async with app.state.sessions() as session:
        await session.execute(text("SELECT 1"))
        await asyncio.sleep(HOLD_S)  # the connection stays checked out, its transaction open
    return {"ok": True}
"""

LOCUSTFILE = """from locust import FastHttpUser, constant, task


class Worker(FastHttpUser):
    wait_time = constant(0)

    @task
    def work(self) -> None:
        self.client.get("/work", name="GET /work")
"""


def _service(folder: Path) -> tuple[Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "service.py").write_text(SERVICE.replace("HOLD_S", repr(HOLD_S)))
    (folder / "loadtest.py").write_text(LOCUSTFILE)
    serve = (
        f"env APP_DSN={{sqlalchemy_url}} POOL_SIZE={{pool_size}} {shlex.quote(sys.executable)} -m uvicorn "
        f"--app-dir {shlex.quote(str(folder))} service:app --host 127.0.0.1 --port {{port}} --no-access-log"
    )
    return folder / "loadtest.py", serve


def test_who_sets_the_pool(tmp_path: Path) -> None:
    locustfile, serve = _service(tmp_path)
    scenario = scenario_from_locustfile(locustfile)
    assert pool_is_set(resolve_config(scenario, {"serve": serve}))
    fixed = resolve_config(scenario, {"serve": serve.replace("POOL_SIZE={pool_size}", "POOL_SIZE=3")})
    assert not pool_is_set(fixed)
    with pytest.raises(UsageError, match="has no {pool_size}"):
        check_own_service((fixed, fixed), {"pool_size": "2,4"})
    target = resolve_config(scenario, {"target": "http://127.0.0.1:8000", "dsn": "postgresql://a@127.0.0.1/b"})
    assert not pool_is_set(target)
    with pytest.raises(UsageError, match="cannot set the pool of a service already running"):
        check_own_service((target,), {"pool_size": "4"})


def test_the_cli_refuses_pool_sizes_it_cannot_give_before_anything_runs(tmp_path: Path) -> None:
    locustfile, serve = _service(tmp_path / "svc")
    fixed = serve.replace("POOL_SIZE={pool_size}", "POOL_SIZE=3")
    result = subprocess.run(
        [
            *BENCH,
            "capacity",
            "--locustfile",
            str(locustfile),
            "--serve",
            fixed,
            "--pool-size",
            "2,4",
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "has no {pool_size}" in result.stderr and not (tmp_path / "r").exists()


@pytest.mark.e2e
def test_capacity_serve_finds_the_knee_at_the_pools_littles_law_ceiling(tmp_path: Path, pg_home: Path) -> None:
    locustfile, serve = _service(tmp_path / "svc")
    out = tmp_path / "sweep"
    argv = [
        *BENCH,
        "capacity",
        "--locustfile",
        str(locustfile),
        "--serve",
        serve,
        "--pool-size",
        "2,4",
        "--rates",
        "8:56:4",
        "--step",
        "3s",
        "--slo",
        "p95<1s,errors<1%",
        "--ready-timeout",
        "30s",
        "--out",
        str(out),
    ]
    watched = run_watched(argv, {**os.environ, "BENCH_HOME": str(pg_home)}, timeout=600)
    assert watched.returncode == 0, watched.output
    assert not watched.survivors, watched.survivors
    data = json.loads((out / "capacity.json").read_text())
    # One start of the service per pool size, each with the pool it was given ({pool_size}), read back from its
    # own pool endpoint.
    started = {
        size: re.findall(
            r"Started server process \[(\d+)\]",
            (out / CapacityFiles.pool_run_name(size) / "target" / "app.log").read_text(),
        )
        for size in (2, 4)
    }
    assert len(started[2]) == len(started[4]) == 1 and started[2] != started[4], started
    results = {r["pool_size"]: r for r in data["results"]}
    assert set(results) == {2, 4}
    for size, result in results.items():
        run = json.loads((out / data["runs"][CapacityFiles.pool_run_name(size)]["folder"] / "summary.json").read_text())
        assert run["apps"]["target"]["pool"]["capacity"] == size
        designed = size / HOLD_S  # the pool's ceiling by construction: each request holds 100 ms
        ceiling = result["littles_law"]["ceiling_rps"]
        # the measured hold is the designed one plus a query and the checkout's own cost
        assert 0.8 * designed <= ceiling <= designed, result["littles_law"]
        knee = result["knee"]
        assert knee is not None, result
        level = result["steps"][knee["index"]]["level"]
        assert 0.8 * ceiling <= level <= 1.2 * ceiling, (level, ceiling, knee)
    assert "pool 2" in watched.output and "pool 4" in watched.output


@pytest.mark.e2e
def test_capacity_target_without_a_pool_endpoint_says_the_pool_is_unknown(
    tmp_path: Path, pg_server: Server, database: str
) -> None:
    """A service the user runs, with no pool endpoint: the harness cannot know its pool, says so, and still finds
    the knee (by construction near 2 / 0.1 s = 20 req/s), the rate within the SLO and the database-side figures."""
    locustfile, _serve = _service(tmp_path / "svc")
    service = tmp_path / "svc" / "service.py"
    service.write_text(service.read_text().replace("app.add_route(ENDPOINT_PATH", "# no endpoint: (ENDPOINT_PATH"))
    port = free_port()
    dsn = pg_server.dsn(database)
    env = {**os.environ, "APP_DSN": sqlalchemy_url(dsn), "POOL_SIZE": "2"}
    argv = [sys.executable, "-m", "uvicorn", "--app-dir", str(tmp_path / "svc"), "service:app", "--host",
            "127.0.0.1", "--port", str(port), "--no-access-log"]  # fmt: skip
    app = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_until_up(f"http://127.0.0.1:{port}/work")
        out = tmp_path / "sweep"
        bench = [*BENCH, "capacity", "--locustfile", str(locustfile), "--target", f"http://127.0.0.1:{port}",
                 "--dsn", dsn, "--rates", "8:32:4", "--step", "3s", "--slo", "p95<1s,errors<1%", "--out", str(out)]  # fmt: skip
        result = subprocess.run(bench, capture_output=True, text=True, timeout=300, check=False)
    finally:
        app.terminate()
        app.wait(10)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads((out / "capacity.json").read_text())
    (only,) = data["results"]
    assert only["pool_size"] == only["capacity"] == "unknown"
    assert any("its pool is unknown" in w for w in data["warnings"]), data["warnings"]
    assert "pool is unknown" in result.stdout and "pool unknown" in data["recommendation"]
    assert only["littles_law"]["ceiling_rps"] is None
    knee = only["knee"]
    assert knee is not None and 2 / 0.11 * 0.8 <= only["steps"][knee["index"]]["level"] <= 2 / HOLD_S * 1.2, knee
    assert only["max_slo"] is not None
    # database-side: the service's connections seen in pg_stat_activity (2 at most, busy or idle in transaction)
    seen = [(s["db_active"] or 0) + (s["idle_in_tx"] or 0) for s in only["steps"]]
    assert max(seen) > 0 and all(v <= 2.01 for v in seen), seen


def _wait_until_up(url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
