"""CI verdicts on this machine: the A/A spread of every gated figure and the limits derived from it, false alarms of
identical versions, detection of every bad scenario against its good twin, and the smallest culprit caught.

    python benchmarks/ci_verdicts.py [--out DIR] [--busy] [--parts spread,aa,ab,mde] [--report]

Parts (README, "CI verdicts"):
  spread  --runs N runs (default 10) of each app of each scenario; every gated figure's spread per run and app
  aa      --pairs 20 A/A jobs, ``bench ab --app good --app-b good`` with the default gates: false alarms
  ab      every scenario's bad app against its good twin, up a ladder of repeats x duration until a gate fails
  mde     the long-session culprit held in 1 request in k (BENCH_APP_HOLD_EVERY=k): the smallest share caught
Run it once quiet and once with ``--busy`` (a spinning process keeps one core busy for the whole invocation).
Every finished unit (one run, one job) is appended to DIR/results.jsonl at once; a rerun skips what is there, so an
interrupted measurement resumes. The tables are printed from everything the file holds, with each part's time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

from ci_verdicts_tables import Records, gated_figures, render

from bench.config.catalog import load_catalog

PARTS = ("spread", "aa", "ab", "mde")
UNIT_TIMEOUT_S = 3600  # one run or one job; a hung unit is killed and recorded as such


@dataclass(frozen=True, kw_only=True)
class Options:
    out: Path
    condition: str  # "quiet" or "busy"
    parts: tuple[str, ...]
    scenarios: tuple[str, ...]
    runs: int
    duration: str
    aa_scenario: str
    pairs: int
    aa_repeat: int
    aa_duration: str
    ladder: tuple[tuple[int, str], ...]  # (repeats, duration), cheapest first
    mde_every: tuple[int, ...]
    mde_repeat: int
    mde_duration: str
    report_only: bool


def parse(argv: list[str]) -> Options:
    names = tuple(load_catalog())
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "ci_verdicts", help="results.jsonl and run folders")
    p.add_argument("--busy", action="store_true", help="keep one core busy with a spinning process throughout")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    p.add_argument("--scenarios", default=",".join(names), help="for spread and ab (default: the whole catalog)")
    p.add_argument("--runs", type=int, default=10, help="spread: runs of each app of each scenario")
    p.add_argument("--duration", default="10s", help="spread: load per run")
    p.add_argument("--aa-scenario", default="long-session")
    p.add_argument("--pairs", type=int, default=20, help="aa: A/A jobs")
    p.add_argument("--aa-repeat", type=int, default=4)
    p.add_argument("--aa-duration", default="10s")
    p.add_argument(
        "--ladder",
        default="1x5s,1x10s,2x10s,4x10s,4x20s",
        help="ab: REPEATSxDURATION rungs, cheapest first; a scenario stops at the first that detects it",
    )
    p.add_argument("--mde-every", default="1,2,5,10,20,50", help="mde: the culprit holds in 1 request in k")
    p.add_argument("--mde-repeat", type=int, default=4)
    p.add_argument("--mde-duration", default="10s")
    p.add_argument("--report", action="store_true", help="print the tables from DIR/results.jsonl; run nothing")
    a = p.parse_args(argv)
    parts = tuple(x for x in a.parts.split(",") if x)
    unknown = [x for x in (*parts, *a.scenarios.split(",")) if x not in (*PARTS, *names)]
    if unknown:
        p.error(f"unknown part or scenario: {', '.join(unknown)}")
    ladder = tuple((int(r), d) for r, d in (rung.split("x", 1) for rung in a.ladder.split(",")))
    return Options(
        out=a.out,
        condition="busy" if a.busy else "quiet",
        parts=parts,
        scenarios=tuple(a.scenarios.split(",")),
        runs=a.runs,
        duration=a.duration,
        aa_scenario=a.aa_scenario,
        pairs=a.pairs,
        aa_repeat=a.aa_repeat,
        aa_duration=a.aa_duration,
        ladder=ladder,
        mde_every=tuple(int(k) for k in a.mde_every.split(",")),
        mde_repeat=a.mde_repeat,
        mde_duration=a.mde_duration,
        report_only=a.report,
    )


@contextmanager
def busy_core(enabled: bool) -> Iterator[None]:
    """A process spinning on one core for as long as the block runs; stopped on every way out."""
    if not enabled:
        yield
        return
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
    try:
        yield
    finally:
        spinner.terminate()
        try:
            spinner.wait(timeout=5)
        except subprocess.TimeoutExpired:
            spinner.kill()
            spinner.wait()


def bench(args: list[str], folder: Path, env: dict[str, str] | None = None) -> tuple[int, float]:
    """``bench ARGS`` in a child process, its output in FOLDER.log; (exit code, wall seconds)."""
    log = folder.parent / f"{folder.name}.log"
    started = time.monotonic()
    with log.open("w") as out:
        try:
            code = subprocess.run(
                [sys.executable, "-m", "bench.cli", *args],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                timeout=UNIT_TIMEOUT_S,
                check=False,
            ).returncode
        except subprocess.TimeoutExpired:
            code = -1
    return code, round(time.monotonic() - started, 1)


class Journal:
    """DIR/results.jsonl: one record per finished unit, appended and flushed at once."""

    def __init__(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / "results.jsonl"
        self.records = Records.read(self.path)

    def done(self, key: str) -> bool:
        return key in self.records.keys

    def add(self, record: dict[str, Any]) -> None:
        record = {**record, "load": _load(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        self.records.add(record)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _fresh(folder: Path) -> Path:
    """A unit's folder, emptied of what an interrupted attempt left."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    return folder


def spread(opts: Options, journal: Journal) -> None:
    for scenario in opts.scenarios:
        for index in range(opts.runs):
            key = f"spread/{opts.condition}/{scenario}/{opts.duration}/{index}"
            if journal.done(key):
                continue
            folder = _fresh(opts.out / key)
            load = _load()
            code, wall = bench(
                ["run", scenario, "--app", "both", "--duration", opts.duration, "--out", str(folder)], folder
            )
            figures = _figures(folder / "summary.json")
            journal.add(
                {
                    "key": key,
                    "part": "spread",
                    "condition": opts.condition,
                    "scenario": scenario,
                    "duration": opts.duration,
                    "index": index,
                    "exit_code": code,
                    "wall_s": wall,
                    "load_before": load,
                    "figures": figures,
                }
            )
            print(
                f"spread {opts.condition} {scenario} run {index + 1}/{opts.runs}: exit {code}, {wall:.0f} s", flush=True
            )


def _figures(summary_path: Path) -> dict[str, dict[str, float]]:
    if not summary_path.is_file():
        return {}
    apps = json.loads(summary_path.read_text()).get("apps", {})
    return {app: gated_figures(figures) for app, figures in apps.items()}


def ab_job(opts: Options, key: str, args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """One ``bench ab`` job; what its ab.json says of it."""
    folder = _fresh(opts.out / key)
    load = _load()
    code, wall = bench(["ab", *args, "--out", str(folder)], folder, env)
    ab = json.loads((folder / "ab.json").read_text()) if (folder / "ab.json").is_file() else {}
    return {
        "key": key,
        "condition": opts.condition,
        "exit_code": code,
        "wall_s": ab.get("wall_s", wall),
        "failed_gates": ab.get("failed_gates"),
        "error": ab.get("error"),
        "load_before": load,
    }


def aa(opts: Options, journal: Journal) -> None:
    rung = f"{opts.aa_repeat}x{opts.aa_duration}"
    for index in range(opts.pairs):
        key = f"aa/{opts.condition}/{opts.aa_scenario}/{rung}/{index}"
        if journal.done(key):
            continue
        args = [
            opts.aa_scenario,
            "--app",
            "good",
            "--app-b",
            "good",
            "--repeat",
            str(opts.aa_repeat),
            "--duration",
            opts.aa_duration,
        ]
        record = ab_job(opts, key, args)
        journal.add({**record, "part": "aa", "scenario": opts.aa_scenario, "rung": rung, "index": index})
        print(
            f"aa {opts.condition} {opts.aa_scenario} {index + 1}/{opts.pairs}: exit {record['exit_code']}, "
            f"failed {record['failed_gates']}, {record['wall_s']:.0f} s",
            flush=True,
        )


def ab(opts: Options, journal: Journal) -> None:
    for scenario in opts.scenarios:
        for repeat, duration in opts.ladder:
            rung = f"{repeat}x{duration}"
            key = f"ab/{opts.condition}/{scenario}/{rung}"
            if not journal.done(key):
                record = ab_job(opts, key, [scenario, "--repeat", str(repeat), "--duration", duration])
                journal.add({**record, "part": "ab", "scenario": scenario, "rung": rung})
                print(
                    f"ab {opts.condition} {scenario} {rung}: exit {record['exit_code']}, failed "
                    f"{record['failed_gates']}, {record['wall_s']:.0f} s",
                    flush=True,
                )
            if journal.records.by_key[key].get("failed_gates"):
                break  # detected: the rungs above cost more and say nothing new


def mde(opts: Options, journal: Journal) -> None:
    rung = f"{opts.mde_repeat}x{opts.mde_duration}"
    for every in opts.mde_every:
        key = f"mde/{opts.condition}/long-session/{rung}/{every}"
        if journal.done(key):
            continue
        args = ["long-session", "--repeat", str(opts.mde_repeat), "--duration", opts.mde_duration]
        # Both apps inherit it; only the bad one's culprit route reads it (target_apps/bad/long_session.py).
        record = ab_job(opts, key, args, {"BENCH_APP_HOLD_EVERY": str(every)})
        journal.add({**record, "part": "mde", "scenario": "long-session", "rung": rung, "every": every})
        print(
            f"mde {opts.condition} 1 in {every}: exit {record['exit_code']}, failed {record['failed_gates']}, "
            f"{record['wall_s']:.0f} s",
            flush=True,
        )


def main(argv: list[str]) -> int:
    opts = parse(argv)
    journal = Journal(opts.out)
    if not opts.report_only:
        print(
            f"ci_verdicts: {opts.condition}, parts {', '.join(opts.parts)}, results {journal.path}, load {_load()}",
            flush=True,
        )
        with busy_core(opts.condition == "busy"):
            for part in opts.parts:
                started = time.monotonic()
                {"spread": spread, "aa": aa, "ab": ab, "mde": mde}[part](opts, journal)
                print(f"part {part} ({opts.condition}) took {time.monotonic() - started:.0f} s this time", flush=True)
    print(render(journal.records))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
