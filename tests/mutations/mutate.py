"""Hand mutations of bench/'s figure code, applied one at a time to a scratch git worktree of HEAD, with the fast
tests that should notice each: a mutation no test fails on is a figure nothing really checks.

    python tests/mutations/mutate.py                  # every mutation, in a temporary worktree of HEAD
    python tests/mutations/mutate.py --only M01,M07   # some of them
    python tests/mutations/mutate.py --worktree /tmp/mut --keep

Never touches the working tree it is run from: each mutation is one text replacement in the worktree's copy,
undone before the next. Prints a markdown table (mutation, killed by which test, or SURVIVED); tests/mutations/
README.md keeps the last one. Exit 0 when every mutation was killed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTEST = ("-x", "-q", "-p", "no:cacheprovider", "-m", "not e2e")
TIMEOUT_S = 900  # a mutation that hangs the tests is caught too, by the time-out


@dataclass(frozen=True)
class Mutation:
    id: str
    path: str  # under the repository root
    old: str  # replaced exactly once
    new: str
    what: str
    tests: tuple[str, ...]  # the fast test files that should notice


SUMMARY = "bench/analysis/summary.py"
FIGURES = ("tests/test_summary.py", "tests/test_fixtures.py", "tests/test_metrics.py")
MUTATIONS = (
    Mutation(
        "M01",
        SUMMARY,
        'out["max"] = round(float(values.max()), 3)',
        'out["max"] = round(float(values.quantile(0.999)), 3)',
        "latency max read as the 99.9th percentile",
        FIGURES,
    ),
    Mutation(
        "M02",
        SUMMARY,
        "throughput = len(ok) / window",
        "throughput = len(requests) / window",
        "throughput counts failed requests",
        FIGURES,
    ),
    Mutation(
        "M03",
        SUMMARY,
        "return sum(max(0, n - self.written.get(route, 0)) for route, n in self.acknowledged.items())",
        "return max(0, sum(n - self.written.get(route, 0) for route, n in self.acknowledged.items()))",
        "extra rows on one write route offset lost writes on another",
        FIGURES,
    ),
    Mutation(
        "M04",
        SUMMARY,
        'capacity = int(gauges["size"]) + max(0, int(gauges.get("max_overflow", 0)))',
        'capacity = int(gauges["size"])',
        "the pool's overflow left out of its capacity",
        FIGURES,
    ),
    Mutation(
        "M05",
        SUMMARY,
        '"ceiling_utilisation": round(law.rps / ceiling, 4)',
        '"ceiling_utilisation": round(law.requests / ceiling, 4)',
        "ceiling utilisation from a request count instead of a rate",
        FIGURES,
    ),
    Mutation(
        "M06",
        SUMMARY,
        '"idle_in_tx_per_request_ms": round(total * 1000 / completed, 3)',
        '"idle_in_tx_per_request_ms": round(db.idle_in_tx_seconds_sampled * 1000 / completed, 3)',
        "idle in transaction per request from the sampled estimate, not the total",
        FIGURES,
    ),
    Mutation(
        "M07",
        SUMMARY,
        "return known + min(max(0.0, db.idle_in_tx_seconds_sampled - known), db.idle_in_tx_unresolved_s)",
        "return known + max(0.0, db.idle_in_tx_seconds_sampled - known)",
        "idle-in-transaction total takes the samples' excess without the unresolved cap",
        FIGURES,
    ),
    Mutation(
        "M08",
        SUMMARY,
        'out = {f"p{p}": round(hist.percentile(p) * 1000, 3) for p in PERCENTILES}',
        'out = {f"p{p}": round(hist.percentile(p - 1) * 1000, 3) for p in PERCENTILES}',
        "pool wait/hold percentiles one percent low",
        FIGURES,
    ),
    Mutation(
        "M09",
        "bench/analysis/littleslaw.py",
        'requests = int(((ends > first["t"]) & (ends <= last["t"])).sum())',
        'requests = int((ends <= last["t"]).sum())',
        "Little's law counts requests answered before its window",
        FIGURES,
    ),
    Mutation(
        "M10",
        "bench/analysis/littleslaw.py",
        'samples["pool_hold_s"].notna() & (samples["t"] <= ends.max())]',
        'samples["pool_hold_s"].notna()]',
        "Little's law window runs past the last response",
        FIGURES,
    ),
    Mutation(
        "M11",
        "bench/analysis/stats.py",
        "return float(ordered[min(rank, ordered.size) - 1])",
        "return float(ordered[min(rank, ordered.size - 1)])",
        "nearest rank off by one (one value high)",
        ("tests/test_percentiles.py", "tests/test_capacity_units.py"),
    ),
    Mutation(
        "M12",
        "bench/analysis/stats.py",
        "extreme = np.abs(sums - mean) >= abs(observed - mean)",
        "extreme = np.abs(sums - mean) > abs(observed - mean)",
        "exact Mann-Whitney p leaves out splits as extreme as the observed one",
        ("tests/test_compare.py",),
    ),
    Mutation(
        "M13",
        "bench/analysis/stats.py",
        "return min(1.0, 2 * min(rise, fall))",
        "return min(1.0, min(rise, fall))",
        "two-sided count test reports a one-sided p",
        (
            "tests/test_exact_rules.py",
            "tests/test_compare.py",
        ),
    ),
    Mutation(
        "M14",
        "bench/analysis/stats.py",
        "z = (abs(u - mean) - 0.5) / math.sqrt(var)",
        "z = (abs(u - mean) + 0.5) / math.sqrt(var)",
        "normal approximation's continuity correction reversed",
        (
            "tests/test_exact_rules.py",
            "tests/test_compare.py",
        ),
    ),
    Mutation(
        "M15",
        "bench/analysis/compare.py",
        "worse = change > 1 if metric.direction is Direction.LOWER else change < 1",
        "worse = change < 1 if metric.direction is Direction.LOWER else change > 1",
        "compare marks better as worse",
        ("tests/test_compare.py",),
    ),
    Mutation(
        "M16",
        "bench/analysis/compare.py",
        "if p is not None and p >= ALPHA:",
        "if p is not None and p > ALPHA:",
        "a p-value equal to alpha counts as significant",
        (
            "tests/test_exact_rules.py",
            "tests/test_compare.py",
        ),
    ),
    Mutation(
        "M17",
        "bench/analysis/compare.py",
        "test = count_rise_p if b == 0 else count_change_p",
        "test = count_change_p",
        "a count rising from zero tested two-sided",
        ("tests/test_compare.py",),
    ),
    Mutation(
        "M18",
        "bench/config/gates.py",
        'return change > self.limit if self.sign == "+" else change < -self.limit',
        'return change >= self.limit if self.sign == "+" else change <= -self.limit',
        "a change exactly at a gate's limit fails it",
        ("tests/test_exact_rules.py", "tests/test_compare.py", "tests/test_metrics.py"),
    ),
    Mutation(
        "M19",
        "bench/instrument/histogram.py",
        "rank = max(1, math.ceil(q / 100.0 * self.count))",
        "rank = max(1, math.floor(q / 100.0 * self.count))",
        "histogram percentile rank rounded down",
        ("tests/test_percentiles.py", "tests/test_summary.py", "tests/test_fixtures.py"),
    ),
    Mutation(
        "M20",
        "bench/instrument/histogram.py",
        "delta.count = self.count - earlier.count",
        "delta.count = self.count",
        "an interval's histogram keeps the whole run's count",
        (
            "tests/test_exact_rules.py",
            "tests/test_percentiles.py",
            "tests/test_report_figures.py",
            "tests/test_fixtures.py",
        ),
    ),
    Mutation(
        "M21",
        "bench/results/requestlog.py",
        "torn = 1 if data[len(complete):].strip() else 0",
        "torn = 0",
        "a torn last line of the request log is not counted as unreadable",
        ("tests/test_results.py",),
    ),
    Mutation(
        "M22",
        "bench/analysis/timeline.py",
        "rank = np.maximum(1, np.ceil(p * counts / 100 - 1e-9))",
        "rank = np.maximum(1, np.floor(p * counts / 100))",
        "per-second percentiles rounded down a rank",
        ("tests/test_report_figures.py", "tests/test_percentiles.py"),
    ),
    Mutation(
        "M23",
        "bench/analysis/timeline.py",
        "ok = np.where(judged, np.bincount(second[~failed], minlength=buckets)[:buckets] / span, np.nan)",
        "ok = np.where(judged, np.bincount(second[~failed], minlength=buckets)[:buckets] / 1.0, np.nan)",
        "the load's last partial second not scaled to a rate",
        ("tests/test_report_figures.py",),
    ),
    Mutation(
        "M24",
        "bench/analysis/loadperiod.py",
        "return max(STALL_MIN_S, STALL_MEDIANS * median_s)",
        "return min(STALL_MIN_S, STALL_MEDIANS * median_s)",
        "any pause of five median responses is a stall",
        ("tests/test_stall.py", "tests/test_fixtures.py"),
    ),
    Mutation(
        "M25",
        "bench/config/gates.py",
        "chosen.update({g.metric: g for g in parsed})",
        "chosen.update({g.metric: g for g in parsed if g.metric not in chosen})",
        "--fail-on adds gates but never replaces a default one",
        ("tests/test_compare.py",),
    ),
    Mutation(
        "M26",
        SUMMARY,
        'latency_ms(ok["response_time_ms"] if not ok.empty else pd.Series(dtype=float))',
        'latency_ms(requests["response_time_ms"] if not ok.empty else pd.Series(dtype=float))',
        "success latency over every request, failed ones included",
        ("tests/test_summary.py",),
    ),
    Mutation(
        "M27",
        "bench/run/collector.py",
        "idle, long = len(idle_ages), sum(1 for age in idle_ages if age > self.idle_threshold_s)",
        "idle, long = len(idle_ages), len(idle_ages)",
        "every moment idle in transaction counted as past the threshold",
        ("tests/test_collector.py",),
    ),
)


def _pytest(worktree: Path, tests: tuple[str, ...]) -> tuple[bool, str]:
    """(whether the tests passed, the first failing test's id or what went wrong)."""
    env = {**os.environ, "PYTHONPATH": str(worktree)}  # the worktree's bench, not the editable install's
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", *PYTEST, *tests],
            cwd=worktree,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False, f"(tests timed out after {TIMEOUT_S} s)"
    if done.returncode == 0:
        return True, ""
    for line in done.stdout.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return False, line.split(" - ")[0].split(" ", 1)[1]
    return False, f"(pytest exit {done.returncode}: {done.stdout.strip().splitlines()[-1:]})"


def _apply(worktree: Path, mutation: Mutation) -> str | None:
    """The file's text before the mutation, or None when the code no longer reads as the mutation expects."""
    path = worktree / mutation.path
    text = path.read_text(encoding="utf-8")
    if text.count(mutation.old) != 1:
        return None
    path.write_text(text.replace(mutation.old, mutation.new), encoding="utf-8")
    return text


def run(worktree: Path, chosen: list[Mutation]) -> list[tuple[Mutation, str]]:
    every = tuple(sorted({t for m in chosen for t in m.tests}))
    passed, why = _pytest(worktree, every)
    if not passed:
        raise SystemExit(f"the unmutated tests fail ({why}): fix that first, or every mutation reads as killed")
    results = []
    for mutation in chosen:
        before = _apply(worktree, mutation)
        if before is None:
            results.append((mutation, "NOT APPLIED (the code changed; update the mutation)"))
            continue
        began = time.monotonic()
        try:
            passed, why = _pytest(worktree, mutation.tests)
        finally:
            (worktree / mutation.path).write_text(before, encoding="utf-8")
        verdict = "SURVIVED" if passed else f"killed by `{why}`"
        print(f"{mutation.id}: {verdict} ({time.monotonic() - began:.0f} s)", file=sys.stderr, flush=True)
        results.append((mutation, verdict))
    return results


def table(results: list[tuple[Mutation, str]]) -> str:
    lines = ["| id | file | mutation | result |", "|---|---|---|---|"]
    lines += [f"| {m.id} | `{m.path}` | {m.what} | {verdict} |" for m, verdict in results]
    killed = sum(1 for _, verdict in results if verdict.startswith("killed"))
    return "\n".join(lines) + f"\n\n{killed} of {len(results)} killed."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated mutation ids (default: all)")
    parser.add_argument("--worktree", type=Path, help="where to check HEAD out (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="leave the worktree in place afterwards")
    args = parser.parse_args()
    wanted = set(args.only.split(",")) if args.only else {m.id for m in MUTATIONS}
    chosen = [m for m in MUTATIONS if m.id in wanted]
    if not chosen:
        parser.error(f"--only: no such mutation; ids are {', '.join(m.id for m in MUTATIONS)}")
    worktree = args.worktree or Path(tempfile.mkdtemp(prefix="sb-mut-")) / "tree"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(worktree), "HEAD"], cwd=ROOT, check=True, capture_output=True
    )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=worktree, capture_output=True, text=True, check=False
    ).stdout.strip()
    try:
        results = run(worktree, chosen)
    finally:
        if not args.keep:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False, capture_output=True
            )
    print(f"mutations of {commit}\n")
    print(table(results))
    sys.exit(0 if all(v.startswith("killed") for _, v in results) else 1)


if __name__ == "__main__":
    main()
