"""`bench report` on every folder the harness writes, through the installed executable: a run folder or its
summary.json, both sides of a bench ab folder, a capacity sweep (re-rendered byte for byte); anything else is
one line saying what to pass (exit 2)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = str(Path(sys.executable).with_name("bench"))
RUN = Path(__file__).resolve().parent / "data" / "long-session-run"


def bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BENCH, *args], capture_output=True, text=True, timeout=180, check=False, env={**os.environ, **(env or {})}
    )


def _run_copy(where: Path) -> Path:
    shutil.copytree(RUN, where)
    return where


def test_a_run_folder_given_by_its_summary_json(tmp_path: Path) -> None:
    run = _run_copy(tmp_path / "run")
    result = bench("report", str(run / "summary.json"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"wrote {run / 'report.md'} and {run / 'report.html'}\n"
    assert "long-session" in (run / "report.html").read_text() and (run / "report.md").stat().st_size > 1000
    again = bench("report", str(run))  # the folder itself gives the same pages
    assert again.returncode == 0 and again.stdout == result.stdout


def test_an_ab_folder_gets_both_sides_reports(tmp_path: Path) -> None:
    ab = tmp_path / "ab"
    for side in ("a", "b"):
        _run_copy(ab / side)
    (ab / "ab.json").write_text(json.dumps({"exit_code": 1}))
    result = bench("report", str(ab / "ab.json"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"wrote {ab / s / 'report.md'} and {ab / s / 'report.html'}" for s in "ab"]
    assert (ab / "a" / "report.html").is_file() and (ab / "b" / "report.html").is_file()
    assert not (ab / "report.html").exists()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("nothing", "does not exist; pass a folder written by bench run, bench ab or bench capacity"),
        ("file", "is a file; pass a folder written by bench run, bench ab or bench capacity (or its summary.json)"),
        ("empty", "holds no summary.json, capacity.json or ab.json; pass a folder written by bench run"),
        ("results", "holds no summary.json, capacity.json or ab.json; it holds run folders: pass one, e.g. bench"),
        ("ab-unfinished", "has no finished side (a/ or b/ with a summary.json); re-run bench ab"),
        ("bad-capacity", "capacity.json is truncated or not valid JSON"),
    ],
)
def test_what_is_not_a_result_folder_is_one_line(tmp_path: Path, make: str, message: str) -> None:
    target = tmp_path / "x"
    if make == "file":
        target.write_text("notes")
    elif make == "empty":
        target.mkdir()
    elif make == "results":  # the parent of run folders, as results/ is
        _run_copy(target / "20260101T000000Z_long-session")
    elif make == "ab-unfinished":
        (target / "a").mkdir(parents=True)
        (target / "ab.json").write_text("{}")
    elif make == "bad-capacity":
        target.mkdir()
        (target / "capacity.json").write_text('{"scenario": "long-')
    result = bench("report", str(target))
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.e2e
def test_a_capacity_folder_is_rendered_again_byte_for_byte(tmp_path: Path, pg_home: Path) -> None:
    out = tmp_path / "sweep"
    sweep = bench(
        "capacity",
        "long-session",
        "--app",
        "good",
        "--pool-size",
        "5",
        "--rates",
        "10",
        "--step",
        "2s",
        "--quiet",
        "--out",
        str(out),
        env={"BENCH_HOME": str(pg_home)},
    )
    assert sweep.returncode == 0, sweep.stdout + sweep.stderr
    first = {name: (out / name).read_bytes() for name in ("capacity.md", "capacity.html")}
    for name in first:
        (out / name).unlink()
    result = bench("report", str(out / "capacity.json"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"wrote {out / 'capacity.md'} and {out / 'capacity.html'}\n"
    assert {name: (out / name).read_bytes() for name in first} == first
