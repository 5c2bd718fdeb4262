"""Target mode on a database other clients use too: with --app-name, none of their time is charged to the app.

pg_stat_database counts every session of the database, so its idle-in-transaction time and its "backends ended by
the server" are the app's only when the app is all there is; --app-name says it is not.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from bench.db import server as postgres
from tests.conftest import seed, start_app

pytestmark = pytest.mark.e2e
LOCUSTFILE = str(Path(__file__).resolve().parent.parent / "scenarios" / "long_session.py")


async def _someone_else(dsn: str, started: asyncio.Event) -> None:
    """Another client of the database: 3 s idle in transaction, then a backend the server ends for idling."""
    other = await asyncpg.connect(dsn, server_settings={"application_name": "someone-else"})
    doomed = await asyncpg.connect(dsn, server_settings={"application_name": "someone-else",
                                                         "idle_in_transaction_session_timeout": "500ms"})
    try:
        started.set()
        await other.execute("BEGIN")
        await doomed.execute("BEGIN")
        await asyncio.sleep(3.0)
        await other.execute("COMMIT")  # the server counts its 3 s now
    finally:
        await other.close()
        doomed.terminate()


def _run_with_neighbour(command: list[str], dsn: str) -> subprocess.CompletedProcess[str]:
    async def both() -> subprocess.CompletedProcess[str]:
        bench = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                     stderr=asyncio.subprocess.PIPE, env=os.environ.copy())
        await asyncio.sleep(3.0)  # the app is under load by now
        await _someone_else(dsn, asyncio.Event())
        out, err = await asyncio.wait_for(bench.communicate(), timeout=120)
        return subprocess.CompletedProcess(command, bench.returncode or 0, out.decode(), err.decode())

    return asyncio.run(both())


def test_a_shared_databases_counters_are_not_charged_to_the_app(pg_server: postgres.Server, database: str,
                                                                tmp_path: Path) -> None:
    seed(pg_server, database)
    child, base = start_app(pg_server, database, tmp_path, variant="bad", BENCH_APP_METRICS_TOKEN="tk",
                            BENCH_APP_UPSTREAM_MS="100")
    out = tmp_path / "run"
    try:
        done = _run_with_neighbour(
            [sys.executable, "-m", "bench.cli", "run", "--locustfile", LOCUSTFILE, "--target", base,
             "--dsn", pg_server.dsn(database), "--app-name", "scopebench-bad", "--pool-token", "tk",
             "--duration", "6s", "--cooldown", "1s", "--users", "10", "--out", str(out)],
            pg_server.dsn(database))
    finally:
        child.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    db = json.loads((out / "summary.json").read_text())["apps"]["target"]["db"]
    # The app's 2 connections idle in transaction through each 100 ms upstream call: the samples' figure, alone.
    assert db["idle_in_tx_seconds"] == db["idle_in_tx_seconds_sampled"] > 1.0
    # The neighbour's 3 s are in pg_stat_database, not in the app's figures; neither is the backend it lost.
    assert db["server"] == {} and db["idle_in_tx_sampled_share"] == 1.0
    assert "backends ended by the server" not in done.stdout
