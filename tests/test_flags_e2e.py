"""Options of bench run and bench compare, each through the installed `bench` executable as a user runs it:
--idle-tx-timeout, --keep, --processes with --master-bind (and bench report on that run), --pool-url,
compare --format md|json and --junit."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import pytest

from bench.db.server import Server
from tests.conftest import database_names, seed, start_app

BENCH = str(Path(sys.executable).with_name("bench"))
ROOT = Path(__file__).resolve().parents[1]
SHORT = ("--duration", "3s", "--cooldown", "0", "--users", "5")
COMPARE = ROOT / "tests" / "data" / "compare"


def bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BENCH, *args], capture_output=True, text=True, timeout=180, check=False,
                          env={**os.environ, **(env or {})})


def _summary(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "summary.json").read_text()))


@pytest.mark.e2e
def test_idle_tx_timeout_ends_the_bad_apps_transactions_only(tmp_path: Path, pg_home: Path) -> None:
    # bad sits idle in transaction through each 400 ms upstream call; good holds nothing across it.
    out = tmp_path / "run"
    result = bench("run", "long-session", "--idle-tx-timeout", "200ms", "--upstream-ms", "400", *SHORT,
                   "--out", str(out), env={"BENCH_HOME": str(pg_home)})
    assert result.returncode in (0, 1), result.stdout + result.stderr  # 1: bad's own checks fail, as they may
    summary = _summary(out)
    assert summary["config"]["idle_tx_timeout_s"] == 0.2
    bad, good = summary["apps"]["bad"], summary["apps"]["good"]
    assert bad["requests"] > 0 and bad["failures"] >= 0.9 * bad["requests"]
    assert bad["db"]["server"]["sessions_fatal"] > 0 and bad["db"]["idle_in_tx_oldest_s"] < 0.35
    assert good["requests"] > 10 and good["failures"] == 0 and good["db"]["server"]["sessions_fatal"] == 0


async def _orders(server: Server, database: str) -> int:
    conn = await asyncpg.connect(server.dsn(database))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM orders"))
    finally:
        await conn.close()


@pytest.mark.e2e
def test_keep_leaves_the_run_database_with_its_rows(tmp_path: Path, pg_server: Server) -> None:
    def run(*flags: str) -> tuple[str, dict[str, Any]]:
        out = tmp_path / f"run{len(flags)}"
        result = bench("run", "long-session", "--app", "good", *SHORT, "--dsn", pg_server.dsn("postgres"),
                       "--out", str(out), *flags)
        assert result.returncode == 0, result.stdout + result.stderr
        return f"scopebench_{json.loads((out / 'run.json').read_text())['run_id']}_good_1", _summary(out)

    dropped, _ = run()
    assert dropped not in database_names(pg_server)
    kept, summary = run("--keep")
    try:
        assert kept in database_names(pg_server)
        written = summary["apps"]["good"]["integrity"]["rows_written"]
        assert written > 10 and asyncio.run(_orders(pg_server, kept)) == written
    finally:
        from bench.db.server import drop_database

        asyncio.run(drop_database(pg_server, kept))


def _listening(pid: int) -> set[str]:
    """host:port of every TCP socket a Locust process under ``pid`` listens on."""
    try:
        locusts = {p.pid for p in psutil.Process(pid).children(recursive=True) if "locust" in " ".join(p.cmdline())}
    except psutil.Error:
        return set()
    return {f"{c.laddr.ip}:{c.laddr.port}" for c in psutil.net_connections("tcp")
            if c.pid in locusts and c.status == psutil.CONN_LISTEN}


@pytest.mark.e2e
def test_processes_listen_where_master_bind_says_and_bench_report_plots_their_requests(
        tmp_path: Path, pg_home: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen([BENCH, "run", "long-session", "--app", "good", "--processes", "2", "--master-bind",
                             "0.0.0.0", *SHORT, "--quiet", "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "BENCH_HOME": str(pg_home)})
    seen: set[str] = set()
    try:
        while proc.poll() is None:
            seen |= _listening(proc.pid)
            time.sleep(0.1)
        output = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert seen and all(address.startswith("0.0.0.0:") for address in seen), seen
    logs = sorted((out / "good").glob("requests-*.csv"))
    assert len(logs) == 2 and not (out / "good" / "requests.csv").exists()
    rows = sum(len(list(csv.DictReader(log.open()))) for log in logs)
    good = _summary(out)["apps"]["good"]
    assert rows > 10 and good["requests_recorded"] + good.get("requests_unfinished", 0) == rows  # every worker's log
    (out / "report.html").unlink()
    (out / "report.md").unlink()
    report = bench("report", str(out))
    assert report.returncode == 0, report.stderr
    page = (out / "report.html").read_text()
    assert "no data recorded" not in page and page.count("<svg") >= 2 and (out / "report.md").is_file()


@pytest.mark.e2e
def test_pool_url_is_where_the_pool_is_read(tmp_path: Path, pg_server: Server, database: str) -> None:
    seed(pg_server, database)
    child, base = start_app(pg_server, database, tmp_path, variant="good", BENCH_APP_METRICS_TOKEN="tk")
    elsewhere = "http://127.0.0.1:9/_bench/pool"  # nothing listens: the default, TARGET/_bench/pool, would answer
    try:
        result = bench("run", "--locustfile", str(ROOT / "scenarios" / "long_session.py"), "--target", base,
                       "--dsn", pg_server.dsn(database), "--pool-token", "tk", "--pool-url", elsewhere, *SHORT,
                       "--out", str(tmp_path / "run"))
    finally:
        child.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"no pool metrics from {elsewhere}" in result.stderr
    target = _summary(tmp_path / "run")["apps"]["target"]
    assert target["requests"] > 10 and target["pool"] is None and target["db"]["connections_max"] >= 1


def _value(summary: dict[str, Any], app: str, metric: str) -> float:
    node: Any = summary["apps"][app]
    for part in metric.split("."):
        node = node[part]
    return float(node)


def test_compare_formats_and_junit_agree_with_the_figures(tmp_path: Path) -> None:
    base, current = str(COMPARE / "base.json"), str(COMPARE / "current.json")
    pair = ("--base-app", "good", "--current-app", "bad")
    junit = tmp_path / "gates.xml"
    as_json = bench("compare", base, current, *pair, "--format", "json", "--junit", str(junit))
    as_md = bench("compare", base, current, *pair, "--format", "md")
    assert as_json.returncode == 1 and as_md.returncode == 1, as_json.stderr + as_md.stderr
    rows = [r for r in json.loads(as_json.stdout)["rows"] if r["gate"]]
    failed = {r["gate"] for r in rows if r["gate_failed"]}
    assert failed == set(json.loads(as_json.stdout)["failed_gates"])
    # Independently of the comparison code: gates the raw figures move far past must fail, unmoved ones pass.
    figures = {side: json.loads((COMPARE / f"{side}.json").read_text()) for side in ("base", "current")}
    for row in rows:
        limit = re.fullmatch(r"(.+):([+-])(\d+)%", row["gate"])
        if limit is None or row["gate_skipped"] or row["p_value"] is not None:
            continue  # a speed gate waits for repeats; a count gate is decided by its exact test
        before, after = _value(figures["base"], "good", limit[1]), _value(figures["current"], "bad", limit[1])
        bound = 1 + int(limit[3]) / 100 if limit[2] == "+" else 1 - int(limit[3]) / 100
        if before == after:
            assert row["gate"] not in failed
        elif before > 0 and (after / before >= 1.5 * bound if limit[2] == "+" else after / before <= bound / 1.5):
            assert row["gate"] in failed, row
    assert {g.split(":")[0] for g in failed} >= {"db.idle_in_tx_long_per_request_ms", "pool.hold_ms_per_request"}
    # Single runs: the speed gates are not applied, however far the figures moved.
    skipped = {r["metric"] for r in rows if r["gate_skipped"]}
    assert {"throughput_rps", "latency_ms.p95", "pool.wait_ms.p95"} <= skipped, skipped
    # The Markdown says the same: a failing heading, one ❌ per failed gate.
    assert as_md.stdout.startswith("### ❌") and as_md.stdout.count("❌ `") == len(failed)
    assert all(f"❌ `{gate}`" in as_md.stdout for gate in failed)
    # ... and so does the JUnit file: one test case per gate, a <failure> for each failed one.
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    cases = {case.get("name", "").removeprefix("good->bad: "): case.find("failure") is not None
             for case in suite.iter("testcase")}
    assert cases == {r["gate"]: r["gate"] in failed for r in rows}
    assert suite.get("tests") == str(len(rows)) and suite.get("failures") == str(len(failed))
    same = bench("compare", current, current, "--format", "md", "--junit", str(junit))
    assert same.returncode == 0 and "❌" not in same.stdout and "<failure" not in junit.read_text()
