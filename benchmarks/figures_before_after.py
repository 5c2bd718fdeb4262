"""The pool figures the leak and churn scenarios are judged by, before and after a change: two commits, every
scenario, both apps.

    python benchmarks/figures_before_after.py                      # 1d8199b -> HEAD, every scenario of HEAD
    python benchmarks/figures_before_after.py --old A --new B --scenarios scoped-session,mixed --keep /tmp/fba

Each commit's tree is extracted with ``git archive`` into a folder of its own and every scenario is run from it
(``bench run SCENARIO --app both --duration 10s``, its own PYTHONPATH and BENCH_HOME), one run at a time, old then
new per scenario. A markdown table per scenario prints each app's figures as old → new: the most connections
checked out against the pool's capacity, the longest hold (holds still open at the end included), connects timed
against connections opened, and the Little's-law ceiling with its utilisation. A figure a tree does not report is
"–"; a scenario a tree cannot run (not in its catalog, or the run failed) is "n/a". Takes about a minute and a
half per scenario on 2 cores.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
APPS = ("good", "bad")
RUN_TIMEOUT_S = 900
NA = "n/a"
MISSING = "–"


@dataclass(frozen=True)
class Tree:
    """A commit's files, extracted, and the embedded PostgreSQL home its runs use."""

    label: str
    commit: str
    root: Path
    home: Path


@dataclass(frozen=True)
class Outcome:
    """One scenario run from one tree: its summary.json, or why there is none."""

    summary: dict[str, Any] | None
    why: str = ""


def extract(commit: str, label: str, work: Path) -> Tree:
    """``git archive`` of ``commit`` into ``work/<label>``; its BENCH_HOME beside it (short: a socket lives there)."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short", commit], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    root = work / label
    root.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "--format=tar", sha], cwd=ROOT, check=True, capture_output=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout), mode="r:") as tar:
        tar.extractall(root, filter="data")
    # Not created here: the embedded PostgreSQL makes it with the modes its server user needs.
    home = Path(tempfile.gettempdir()) / f"fba{label[0]}-{uuid.uuid4().hex[:8]}"
    return Tree(label=label, commit=sha, root=root, home=home)


def scenarios_of(tree: Tree) -> list[str]:
    with open(tree.root / "scenarios" / "catalog.toml", "rb") as handle:
        return [name for name, entry in tomllib.load(handle).items() if isinstance(entry, dict)]


def run(tree: Tree, scenario: str, out: Path, duration: str) -> Outcome:
    """``bench run SCENARIO --app both`` from the tree, its output in ``out``.log; the summary of a completed run."""
    env = {**os.environ, "PYTHONPATH": str(tree.root), "BENCH_HOME": str(tree.home)}
    command = [
        sys.executable,
        "-m",
        "bench.cli",
        "run",
        scenario,
        "--app",
        "both",
        "--duration",
        duration,
        "--out",
        str(out),
    ]
    log = out.with_suffix(".log")
    try:
        with open(log, "w", encoding="utf-8") as handle:
            done = subprocess.run(
                command,
                cwd=tree.root,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                timeout=RUN_TIMEOUT_S,
                check=False,
            )
    except subprocess.TimeoutExpired:
        return Outcome(None, f"no end after {RUN_TIMEOUT_S} s")
    summary_path = out / "summary.json"
    if not summary_path.is_file():
        return Outcome(None, f"exit {done.returncode}, no summary (see {log})")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    if summary.get("status") != "completed":
        return Outcome(None, f"{summary.get('status')}: {summary.get('error')}")
    return Outcome(summary)


def _at(node: Any, *path: str) -> Any:
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _number(value: Any, fmt: str) -> str:
    return fmt.format(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else MISSING


def hold_max_ms(pool: dict[str, Any]) -> float | None:
    """The longest hold: ended ones (``hold_ms.max``) or one still open at the end, whichever is longer."""
    ended, still_open = _at(pool, "hold_ms", "max"), pool.get("hold_open_max_ms")
    known = [v for v in (ended, still_open) if isinstance(v, (int, float))]
    return max(known) if known else None


COLUMNS: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    (
        "checked out, most / capacity",
        lambda p: f"{_number(p.get('checked_out_max'), '{:.0f}')} / {_number(p.get('capacity'), '{:.0f}')}",
    ),
    ("hold max, open holds included (ms)", lambda p: _number(hold_max_ms(p), "{:,.1f}")),
    (
        "connects timed / connections opened",
        lambda p: (
            f"{_number(_at(p, 'connect_ms', 'count'), '{:.0f}')} / {_number(p.get('connections_opened'), '{:.0f}')}"
        ),
    ),
    ("Little's-law ceiling (req/s)", lambda p: _number(p.get("littles_law_ceiling_rps"), "{:,.1f}")),
    ("ceiling utilisation", lambda p: _number(p.get("ceiling_utilisation"), "{:.3f}")),
)


def cell(outcome: Outcome, app: str, column: Callable[[dict[str, Any]], str]) -> str:
    pool = _at(outcome.summary, "apps", app, "pool")
    return column(pool) if isinstance(pool, dict) else NA


def table(scenario: str, old: Outcome, new: Outcome, trees: Sequence[Tree]) -> str:
    lines = [f"### {scenario}", ""]
    notes = [
        f"- {tree.label} ({tree.commit}): n/a, {outcome.why}"
        for tree, outcome in zip(trees, (old, new), strict=True)
        if outcome.summary is None
    ]
    if notes:
        lines += [*notes, ""]
    lines += ["| app | " + " | ".join(name for name, _ in COLUMNS) + " |", "|---|" + "---|" * len(COLUMNS)]
    for app in APPS:
        row = [f"{cell(old, app, fn)} → {cell(new, app, fn)}" for _, fn in COLUMNS]
        lines.append(f"| {app} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _options(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", default="1d8199b", help="the commit before (default 1d8199b)")
    parser.add_argument("--new", default="HEAD", help="the commit after (default HEAD)")
    parser.add_argument("--scenarios", default="", help="comma-separated; default every scenario of --new")
    parser.add_argument("--duration", default="10s", help="load per app (default 10s)")
    parser.add_argument("--keep", type=Path, help="keep the trees, run folders and logs here (must not exist)")
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    options = _options(argv)
    work = options.keep or Path(tempfile.mkdtemp(prefix="figures-before-after-"))
    trees = [extract(options.old, "old", work), extract(options.new, "new", work)]
    try:
        compare_trees(trees, options, work)
    finally:
        for tree in trees:
            shutil.rmtree(tree.home, ignore_errors=True)
        if options.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def compare_trees(trees: Sequence[Tree], options: argparse.Namespace, work: Path) -> None:
    chosen = [s for s in options.scenarios.split(",") if s] or scenarios_of(trees[1])
    known = [set(scenarios_of(tree)) for tree in trees]
    print(
        f"# Pool figures, {trees[0].commit} → {trees[1].commit} (bench run --app both --duration "
        f"{options.duration}; each cell old → new)\n",
        flush=True,
    )
    results: dict[str, dict[str, Any]] = {}
    for scenario in chosen:
        outcomes = []
        for tree, names in zip(trees, known, strict=True):
            print(f"{scenario}: {tree.label} ({tree.commit}) ...", file=sys.stderr, flush=True)
            if scenario not in names:
                outcomes.append(Outcome(None, "not in its catalog"))
                continue
            outcomes.append(run(tree, scenario, work / f"{tree.label}-{scenario}", options.duration))
        results[scenario] = {
            t.label: {"why": o.why, "apps": _at(o.summary, "apps")} for t, o in zip(trees, outcomes, strict=True)
        }
        print(table(scenario, outcomes[0], outcomes[1], trees), flush=True)
    (work / "figures.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    if options.keep is not None:
        print(f"trees, run folders, logs and figures.json: {work}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
