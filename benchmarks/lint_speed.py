"""How long ``bench lint`` takes on this whole repository (target: under 1 s), in process and as the command.

Run by hand (``python benchmarks/lint_speed.py [--reps 5]``); it prints medians and exits 1 when the in-process
median is over the target, so a slower rule shows. Wall time moves with the machine's other load; the CPU time
beside it is the steadier figure.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lint import LintConfig, find_pyproject, lint_paths, load_config

TARGET_S = 1.0


def in_process(reps: int) -> tuple[list[float], list[float], int, int]:
    config = load_config(find_pyproject(ROOT)) if find_pyproject(ROOT) else LintConfig()
    walls, cpus, files, findings = [], [], 0, 0
    for _ in range(reps):
        wall, cpu = time.perf_counter(), time.process_time()
        result = lint_paths([ROOT], config, ROOT)  # a fresh run: every file read and parsed again
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        files, findings = result.files, len(result.findings)
    return walls, cpus, files, findings


def command(reps: int) -> list[float]:
    """``python -m bench.cli lint .``: interpreter start, the CLI's imports and the run."""
    walls = []
    for _ in range(reps):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "bench.cli", "lint", ".", "--format", "json"],
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
        walls.append(time.perf_counter() - start)
        if done.returncode not in (0, 1):
            raise SystemExit(f"bench lint failed: {done.stderr.decode()[-400:]}")
    return walls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    walls, cpus, files, findings = in_process(args.reps)
    cli = command(max(1, args.reps // 2))
    median = statistics.median(walls)
    print(f"files: {files} ({findings} findings)")
    print(
        f"in process: median {median:.3f} s wall, {statistics.median(cpus):.3f} s CPU "
        f"(min {min(walls):.3f}, max {max(walls):.3f}; {args.reps} runs)"
    )
    print(f"bench lint . (new process): median {statistics.median(cli):.3f} s wall ({len(cli)} runs)")
    print(f"target: under {TARGET_S:.1f} s in process: {'met' if median < TARGET_S else 'MISSED'}")
    return 0 if median < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
