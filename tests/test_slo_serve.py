"""bench run --slo on the user's own service (--serve, a locustfile of its own): exit 1 when a threshold fails, 0
when all pass, and JUnit that says which. The service sleeps 50 ms per request (tests/servedapp.py), so no request
answers within 20 ms and any sane machine answers within 5 s."""

from __future__ import annotations

import json
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from tests.servedapp import run_watched, write_service

BENCH = [sys.executable, "-m", "bench.cli"]
ROUTE = "GET /items/{item_id}"


def _run(tmp_path: Path, pg_home: Path, name: str, slo: str) -> tuple[int, str, Path, ET.Element]:
    service = write_service(tmp_path / "service")
    out, junit = tmp_path / name, tmp_path / f"{name}.xml"
    argv = [
        *BENCH,
        "run",
        "--locustfile",
        str(service.locustfile),
        "--serve",
        service.serve("short"),
        "--migrate",
        service.migrate,
        "--duration",
        "3s",
        "--cooldown",
        "1s",
        "--users",
        "4",
        "--ready-timeout",
        "30s",
        "--out",
        str(out),
        "--slo",
        slo,
        "--junit",
        str(junit),
    ]
    watched = run_watched(argv, {**os.environ, "BENCH_HOME": str(pg_home)}, timeout=120)
    assert not watched.survivors, watched.survivors
    return watched.returncode, watched.output, out, ET.parse(junit).getroot()


def _cases(root: ET.Element) -> dict[str, str | None]:
    """test case name -> its failure message (None: passed)."""
    out = {}
    for case in root.iter("testcase"):
        failure = case.find("failure")
        out[str(case.get("name"))] = None if failure is None else str(failure.get("message"))
    return out


@pytest.mark.e2e
def test_a_threshold_that_holds_exits_0_and_one_that_fails_exits_1(tmp_path: Path, pg_home: Path) -> None:
    code, output, out, root = _run(tmp_path, pg_home, "pass", f"p95<5s,errors<1%; {ROUTE}: p95<5000ms")
    assert code == 0, output
    # Every check is a case: the run's own no-stall check beside the thresholds.
    assert _cases(root) == {
        "target: p95<5s": None,
        "target: errors<1%": None,
        f"target: {ROUTE}: p95<5000ms": None,
        "target: stalls = 0": None,
    }
    assert "✓ target: p95<5s" in output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["slo"] == f"p95<5s, errors<1%, {ROUTE}: p95<5000ms"

    code, output, out, root = _run(tmp_path, pg_home, "fail", f"errors<1%; {ROUTE}: p95<20ms")
    assert code == 1, output
    cases = _cases(root)
    assert cases["target: errors<1%"] is None
    failed = cases[f"target: {ROUTE}: p95<20ms"]
    assert failed is not None and failed.startswith("measured ")
    assert f"✗ target: {ROUTE}: p95<20ms" in output
    # The value judged is the route's p95 of its answered requests, as the raw log has it.
    check = next(
        c for c in json.loads((out / "summary.json").read_text())["checks"] if c.get("slo", "").endswith("20ms")
    )
    log = pd.read_csv(out / "target" / "requests.csv", dtype={"error": "string"})
    answered = log[(log["name"] == ROUTE) & ~log["error"].str.startswith("Unfinished:", na=False)]
    times = answered["response_time_ms"].sort_values().to_numpy()
    assert times[0] >= 50  # the service's sleep: the threshold cannot be met
    assert times[int(0.9 * len(times))] <= check["value"] <= times[-1]
    assert report_mentions(out, f"{ROUTE}: p95&lt;20ms")


def report_mentions(folder: Path, text: str) -> bool:
    return any(text in path.read_text() for path in folder.glob("report.*"))
