"""What the request recorder (bench/locust_plugins/recorder.py) costs Locust: CPU per request with and without it.

Locust as a master with worker processes (``--processes``, as ``bench run --workers`` runs it) on the trivial
responder, FastHttpUser, at its ceiling: each variant's requests per second and the CPU its whole process tree
(master and workers) spent per request, medians over interleaved repetitions. ``--baseline FILE`` adds another
recorder (an older version, say) to compare with the current one.

    python benchmarks/recorder_cost.py [--reps 5] [--window 5] [--processes 2] [--baseline FILE] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from perf_drivers import LOCUSTFILE, RESPONDER, CpuMeter, Window, get_text, measure_counted
from perf_table import Section, load_average, median, spread

from bench.db.ports import free_port
from bench.run.loadgen import RECORDER
from bench.run.processes import Child, wait_for_http


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    recorder: Path | None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--window", type=float, default=5.0, help="seconds measured per repetition")
    parser.add_argument("--warmup", type=float, default=1.5)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--processes", type=int, default=2, help="Locust worker processes (0: one process)")
    parser.add_argument("--baseline", type=Path, help="another recorder file to compare with the current one")
    parser.add_argument("--keep", type=Path, help="keep the logs and request logs here")
    args = parser.parse_args()
    variants = [Variant("none", "no recorder", None), Variant("current", "recorder (this tree)", RECORDER)]
    if args.baseline is not None:
        variants.append(Variant("baseline", f"recorder ({args.baseline.name})", args.baseline.resolve()))
    workdir = Path(tempfile.mkdtemp(prefix="recorder-cost-")) if args.keep is None else args.keep
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {load_average()}")
    try:
        runs = _measure(args, variants, workdir)
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(_section(args, variants, runs).render())
    print(f"load average at end: {load_average()}")


def _measure(args: argparse.Namespace, variants: list[Variant], workdir: Path) -> dict[str, list[Window]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    responder = Child(
        name="trivial responder",
        argv=[sys.executable, str(RESPONDER), "--port", str(port)],
        log_path=workdir / "responder.log",
    ).start()
    runs: dict[str, list[Window]] = {}
    try:
        wait_for_http(base + "/_count", responder)
        # Interleaved: drift from other load on the machine hits every variant alike.
        for rep in range(args.reps):
            for variant in variants:
                folder = workdir / f"{variant.key}-{rep + 1}"
                folder.mkdir()
                runs.setdefault(variant.key, []).append(_one(args, base, variant, folder, responder))
    finally:
        responder.stop()
    return runs


def _one(args: argparse.Namespace, base: str, variant: Variant, folder: Path, responder: Child) -> Window:
    files = ",".join(str(f) for f in (LOCUSTFILE, variant.recorder) if f is not None)
    run_time = args.warmup + args.window + 20  # bound: it is stopped as soon as the window ends
    argv = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        files,
        "TrivialFastUser",
        "--headless",
        "--users",
        str(args.users),
        "--spawn-rate",
        str(args.users),
        "--run-time",
        f"{round(run_time)}s",
        "--host",
        base,
        "--only-summary",
        "--stop-timeout",
        "0",
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
    ]
    if args.processes:
        master_port = str(free_port())
        argv += [
            "--processes",
            str(args.processes),
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            master_port,
            "--master-port",
            master_port,
        ]
    # The names bench.run.loadgen gives the recorder; no go file: the load starts at once.
    env = {
        "BENCH_REQUEST_LOG": str(folder / "requests.csv"),
        "BENCH_WORKER_REQUEST_LOG": str(folder / "requests-{pid}.csv"),
    }
    child = Child(name=f"locust {variant.key}", argv=argv, log_path=folder / "locust.log", env=env).start()
    try:
        cpu = CpuMeter({"locust": child.pid, "responder": responder.pid})
        return measure_counted(
            lambda: int(get_text(base + "/_count")), child, cpu, warmup_s=args.warmup, seconds=args.window
        )
    finally:
        child.stop(timeout=5)
        time.sleep(0.3)  # let the responder drop the closed sockets before the next variant


def _section(args: argparse.Namespace, variants: list[Variant], runs: dict[str, list[Window]]) -> Section:
    shape = f"--processes {args.processes}" if args.processes else "one process"
    section = Section(
        f"recorder cost: Locust FastHttpUser ({shape}) on the trivial responder, {args.users} users, "
        f"{args.reps} x {args.window:g} s windows, medians"
    )
    per_request: dict[str, float | None] = {}
    for variant in variants:
        windows = runs[variant.key]
        rps = median(w.rps for w in windows)
        section.add(f"{variant.label}: throughput", rps, "req/s", note=spread(w.rps for w in windows))
        cpu = [w.cores.get("locust", 0.0) / w.rps * 1e6 if w.rps else None for w in windows]
        per_request[variant.key] = median(cpu)
        section.add(
            f"{variant.label}: Locust CPU per request",
            per_request[variant.key],
            "µs",
            "{:,.1f}",
            note=spread(cpu, "{:,.1f}") + f"; machine {median(w.cores.get('machine') for w in windows) or 0:.2f}/2",
        )
    none = per_request["none"]
    for variant in variants[1:]:
        cost = per_request[variant.key]
        if cost is not None and none is not None:
            section.add(
                f"{variant.label}: cost per request",
                cost - none,
                "µs",
                "{:,.1f}",
                note=f"{cost / none:.2f}x the CPU without a recorder",
            )
    return section


if __name__ == "__main__":
    main()
