"""Start-up, teardown and collector fidelity of a real ``bench run long-session``, run as a CLI subprocess
and timed from outside; import times of the pieces say where the start-up goes.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from perf_options import Options
from perf_table import Section, median, medians, spread, target_note

from bench.results.requestlog import read_requests

Figures = dict[str, float | None]
STARTUP_TARGET_S = 3.0
SHARE_TARGET = 0.9
IMPORTS = {"bench CLI + runner": "import bench.cli, bench.run.runner",
           "locust (+ gevent patching)": "import locust",
           "target app (FastAPI, SQLAlchemy)": "import target_apps.good.app"}


def bench_command() -> list[str]:
    script = Path(sys.executable).with_name("bench")
    if script.exists():
        return [str(script)]
    found = shutil.which("bench")
    return [found] if found else [sys.executable, "-c", "from bench.cli import main; main()"]


def measure(opts: Options) -> Section:
    s = Section(f"start-up, teardown, fidelity: `bench run long-session --duration {opts.cli_duration_s}s "
                f"--cooldown {opts.cli_cooldown_s}s` as a subprocess, {opts.reps} runs, medians")
    runs = [_one_run(opts, opts.workdir / f"cli-run-{i + 1}") for i in range(opts.reps)]
    imports = _import_times(opts.reps)
    _fill(s, runs, imports, opts)
    return s


def _one_run(opts: Options, out: Path) -> Figures:
    argv = [*bench_command(), "run", "long-session", "--duration", f"{opts.cli_duration_s}s",
            "--cooldown", f"{opts.cli_cooldown_s}s", "--out", str(out), "--quiet"]
    launched = time.time()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    exited = time.time()
    if done.returncode not in (0, 1):  # 1 is a failed check, still a complete run
        raise RuntimeError(f"bench run exited {done.returncode}: {(done.stderr or done.stdout).strip()[-300:]}")
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    apps = list(summary["apps"])
    first, last = read_requests(out / apps[0]).frame, read_requests(out / apps[-1]).frame
    first_request = float(first["start_epoch_s"].min())
    last_response = float((last["start_epoch_s"] + last["response_time_ms"] / 1000).max())
    figures: Figures = {
        "startup_s": summary.get("timings", {}).get("startup_s"),
        "database_start_s": summary.get("timings", {}).get("database_start_s"),
        "outside_startup_s": first_request - launched,
        "teardown_s": exited - last_response,
        "after_report_s": exited - (out / "report.html").stat().st_mtime,
        "wall_s": exited - launched,
    }
    if len(apps) > 1:  # the switch between apps: one app's teardown plus the next one's start-up
        end_first = float((first["start_epoch_s"] + first["response_time_ms"] / 1000).max())
        next_start = float(read_requests(out / apps[1]).frame["start_epoch_s"].min())
        figures["switch_s"] = next_start - end_first
    for app in apps:
        db = summary["apps"][app]["db"]
        figures[f"share_{app}"] = db.get("idle_in_tx_sampled_share")
        figures[f"server_{app}"] = (db.get("server") or {}).get("idle_in_transaction_time")
        figures[f"sampled_{app}"] = db["idle_in_tx_seconds_sampled"]
        figures[f"var_{app}"] = _sampling_variance(out / app / "samples.jsonl")
    return figures


def _sampling_variance(path: Path) -> float | None:
    """Variance of the sampled connection-seconds, as if samples were independent: n * dt^2 * var(count).

    Short idle-in-transaction spells (the good app's) are nearly independent from one 100 ms tick to the
    next, so this is the noise of one run's sampled figure; it shows whether a miss is noise or bias.
    """
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(rows) < 3:
        return None
    counts = [float(r["idle_in_tx"]) for r in rows]
    dts = [b["t"] - a["t"] for a, b in itertools.pairwise(rows)]
    mean = sum(counts) / len(counts)
    var = sum((c - mean) ** 2 for c in counts) / (len(counts) - 1)
    return float(sum(dt * dt for dt in dts) * var)


def _import_times(reps: int) -> Figures:
    """Wall seconds a fresh interpreter spends importing each piece, less a bare interpreter's start."""
    def wall(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=60)
        return time.perf_counter() - started

    bare = median(wall("pass") for _ in range(reps)) or 0.0
    out: Figures = {"interpreter": bare}
    for label, code in IMPORTS.items():
        out[label] = (median(wall(code) for _ in range(reps)) or 0.0) - bare
    return out


_CLOCK_PROBE = """
import os, time
t = time.time()
ticks = int(open('/proc/self/stat').read().rsplit(')', 1)[1].split()[19])
exact = time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf('SC_CLK_TCK'))
import psutil
print(exact - psutil.Process().create_time())
"""


def creation_clock_error() -> float | None:
    """How much earlier psutil's create_time (boot time in whole seconds + ticks) puts this process's start
    than the kernel's own tick count does: the runner's start-up figure carries this error."""
    try:
        done = subprocess.run([sys.executable, "-c", _CLOCK_PROBE], capture_output=True, text=True, timeout=30,
                              check=True)
        return float(done.stdout.strip())
    except (subprocess.SubprocessError, ValueError, OSError):
        return None


def _fill(s: Section, runs: list[Figures], imports: Figures, opts: Options) -> None:
    f = medians(runs)
    startup = f["startup_s"]
    s.add("start-up: command to first request (run.json)", startup, "s", "{:.2f}",
          note=target_note(None if startup is None else startup < STARTUP_TARGET_S, f"< {STARTUP_TARGET_S:g} s")
          + "; " + spread((r["startup_s"] for r in runs), "{:.2f}"))
    s.add("start-up measured from outside", f["outside_startup_s"], "s", "{:.2f}",
          note="launch timestamp to first request in requests.csv; " + spread((r["outside_startup_s"] for r in runs),
                                                                             "{:.2f}"))
    s.add("  run.json clock error (psutil create_time)", creation_clock_error(), "s", "{:+.2f}",
          note="boot time is whole seconds in /proc/stat: start-up reads this much too long")
    s.add("  of which embedded PostgreSQL start", f["database_start_s"], "s", "{:.2f}")
    for label, seconds in imports.items():
        s.add(f"  import: {label}" if label != "interpreter" else "  bare interpreter start", seconds, "s", "{:.2f}",
              note="fresh interpreter, overlaps the others in a run" if label != "interpreter" else "")
    s.add("teardown: Locust's last response to exit", f["teardown_s"], "s", "{:.2f}",
          note=f"includes the {opts.cli_cooldown_s} s cool-down by design; " + spread((r["teardown_s"] for r in runs),
                                                                                     "{:.2f}"))
    teardown = f["teardown_s"]
    s.add("teardown less the cool-down", None if teardown is None else teardown - opts.cli_cooldown_s, "s", "{:.2f}",
          note="stop app, pg_stat deltas, integrity, drop db, summary, report, stop PostgreSQL")
    s.add("  of which report written to exit", f["after_report_s"], "s", "{:.2f}", note="PostgreSQL stop + exit")
    if f.get("switch_s") is not None:
        s.add("switch good -> bad (teardown + start-up)", f["switch_s"], "s", "{:.2f}",
              note=f"includes the {opts.cli_cooldown_s} s cool-down")
    s.add("whole run, wall", f["wall_s"], "s", "{:.1f}", note=f"2 apps x {opts.cli_duration_s} s of load")
    for app in ("good", "bad"):
        share = f.get(f"share_{app}")
        s.add(f"idle-in-tx sampled share, {app} (summary.json)", None if share is None else share * 100, "%",
              "{:.1f}", note=target_note(None if share is None else share >= SHARE_TARGET, f">= {SHARE_TARGET:.0%}")
              + " (median of runs); " + spread((r.get(f"share_{app}") for r in runs), "{:.3f}"))
        _pooled_share(s, app, runs)


def _pooled_share(s: Section, app: str, runs: list[Figures]) -> None:
    """Sampled over server connection-seconds summed over all runs (not capped at 100%), with its noise."""
    sampled = [r.get(f"sampled_{app}") for r in runs]
    server = [r.get(f"server_{app}") for r in runs]
    variance = [r.get(f"var_{app}") for r in runs]
    if any(v is None for v in [*sampled, *server]) or not sum(x or 0.0 for x in server):
        return
    total_server = sum(x or 0.0 for x in server)
    pooled = sum(x or 0.0 for x in sampled) / total_server
    se = (sum(v or 0.0 for v in variance) ** 0.5) / total_server
    s.add(f"  pooled sampled / server, {app}", pooled * 100, "%", "{:.1f}",
          note=f"± {se * 100:.1f}% sampling s.e. over {len(runs)} runs; server counted {total_server:.1f} conn-s; "
          + target_note(pooled >= SHARE_TARGET, f">= {SHARE_TARGET:.0%}"))
