"""Makes the run fixtures in tests/data from real runs, and re-digests them with the current code.

    python tests/data/regenerate.py run      # new real runs: long-session-run, mixed-run, compare/ (about 3 min)
    python tests/data/regenerate.py run long-session-run   # one of them (or mixed-run, compare/current-run)
    python tests/data/regenerate.py digest   # the stored raw files summarised again by the current code

``run`` drives ``bench run`` for real (the embedded PostgreSQL, the paired apps, Locust) and keeps each run's raw
files (the pool's last reading, pool.json, among them), its summary.json as written, and ``<app>/measured.json``:
what the harness measured in-process and keeps in no file of its own (the collector's figures, the rows written,
the load period), so that ``redigest`` can summarise the folder again exactly as the runner did. ``digest`` rewrites summary.json's figures
and checks from them after a change to the code that computes them; tests/test_fixtures.py fails until one of the
two is run. compare/base.json is long-session-run's summary; compare/current.json that of compare/current-run, a
longer run; expected.txt the compare table of the two as bench renders it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent
MEASURED = "measured.json"
# What each fixture keeps of its run folder; a run's other files (Locust's html and csv reports, the go file,
# report.md/html) are not read by any test.
RUN_FILES = ("run.json", "summary.json")
APP_FILES = ("app.log", "locust.json", "locust.log", "requests.csv", "samples.jsonl", MEASURED)


@dataclasses.dataclass(frozen=True)
class Fixture:
    name: str
    argv: tuple[str, ...]  # bench run's arguments, without --out
    # What the run must show for the tests that read it; a run without it is made again.
    wanted: Callable[[dict[str, Any], Path], str | None]


def _completed(summary: dict[str, Any], folder: Path) -> str | None:
    failed = [c["name"] for c in summary.get("checks", []) if not c["passed"]]
    if summary.get("status") != "completed" or failed:
        return f"status {summary.get('status')}, failed checks {failed}"
    return None


def _bad_fails_some(summary: dict[str, Any], folder: Path) -> str | None:
    """The mixed fixture's bad app stalls on its pool: the report shows failures by message and lost writes."""
    bad = summary["apps"]["bad"]
    if not bad["failures"] or not bad["integrity"]["lost_writes"]:
        return f"bad had {bad['failures']} failures, {bad['integrity']['lost_writes']} lost writes"
    return _completed(summary, folder)


def _steady_to_the_end(summary: dict[str, Any], folder: Path) -> str | None:
    """tests/test_report_figures.py cuts good's load at 7.6 s: its last 0.6 s must run at its usual rate (a run
    the busy machine slowed at its end would read as the collapse the test says never shows)."""
    rows = _rows(folder / "good" / "requests.csv")
    t0 = min(r["start"] for r in rows)
    ends = [r["start"] + r["ms"] / 1000 - t0 for r in rows if not r["failed"]]
    per_second = sorted(sum(1 for e in ends if k <= e < k + 1) for k in range(1, 7))
    last = sum(1 for e in ends if 7 <= e < 7.6) / 0.6
    if last < 0.8 * per_second[len(per_second) // 2]:
        return f"good's last 0.6 s ran at {last:.0f} req/s, its median second {per_second[len(per_second) // 2]}"
    return _completed(summary, folder)


def _rows(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [
            {"start": float(r["start_epoch_s"]), "ms": float(r["response_time_ms"]), "failed": r["failed"] == "1"}
            for r in csv.DictReader(handle)
        ]


LONG = Fixture("long-session-run", ("long-session", "--duration", "8s", "--cooldown", "2s"), _steady_to_the_end)
MIXED = Fixture("mixed-run", ("mixed", "--duration", "6s", "--cooldown", "2s"), _bad_fails_some)


def _ran(summary: dict[str, Any], folder: Path) -> str | None:
    """compare/current-run stands for a later run of the same code: it must have run, its checks are not read."""
    return None if summary.get("status") == "completed" else f"status {summary.get('status')}"


LONGER = Fixture("compare/current-run", ("long-session", "--duration", "12s", "--cooldown", "3s"), _ran)
FIXTURES = (LONG, MIXED, LONGER)


# --- in the bench process: keep what the digest is given besides the raw files -------------------------------


def _bench_with_inputs_recorded(argv: list[str]) -> None:
    """bench run as its console script runs it, with each drive's in-process measurements written beside its
    raw files just before the runner digests them."""
    from bench import cli
    from bench.run import runner
    from bench.run.digest import summarize

    def recording(run: Any, driven: Any, **how: Any) -> dict[str, Any]:
        measured = {
            "db": dataclasses.asdict(driven.db),
            "written": driven.written,
            "load": {"start": driven.load.start, "end": driven.load.end},
        }
        (driven.files.root / MEASURED).write_text(json.dumps(measured, indent=1) + "\n", encoding="utf-8")
        figures: dict[str, Any] = summarize(run, driven, **how)
        return figures

    setattr(runner, "summarize", recording)  # the name the runner calls its digest by  # noqa: B010
    sys.argv = ["bench", *argv]
    cli.main()


# --- re-digesting a stored folder ---------------------------------------------------------------------------


def redigest(folder: Path, *, plotted: bool = True) -> dict[str, Any]:
    """summary.json's schema_version, apps and checks as the current code computes them from ``folder``'s raw
    files and measured.json, through the runner's own digest (bench.run.digest.summarize): as for an app's first run,
    whose samples the report's time line shares, or (``plotted`` False) as for a repeat, read for the summary alone."""
    from bench.analysis.loadperiod import NO_STALL_CHECK, LoadPeriod
    from bench.analysis.summary import Check, evaluate, median_summary
    from bench.render.terminal import Console
    from bench.results.layout import RunFiles
    from bench.results.records import DbFigures
    from bench.results.summaryfile import SCHEMA_VERSION
    from bench.run.digest import summarize
    from bench.run.drive import Driven
    from bench.run.state import RunState

    stored = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    scenario, config = _config(stored)
    run = RunState(config=config, scenario=scenario, console=Console(quiet=True), command=[], folder=folder)
    for app in config.apps:
        files = RunFiles(folder).app(app)
        measured = json.loads((files.root / MEASURED).read_text(encoding="utf-8"))
        driven = Driven(
            app=app,
            files=files,
            db=DbFigures(**measured["db"]),
            pool=json.loads(files.pool_json.read_text(encoding="utf-8")) if files.pool_json.exists() else None,
            written=measured["written"],
            load=LoadPeriod(**measured["load"]),
        )
        run.repeats.setdefault(app, []).append(summarize(run, driven, plotted=plotted))
        run.apps[app] = median_summary(run.repeats[app])  # as the runner files a run of one repeat
    # As bench.run.digest.build_summary judges a completed run.
    texts = [*scenario.checks, *(NO_STALL_CHECK.format(app=app) for app in run.apps)]
    return {
        "schema_version": SCHEMA_VERSION,
        "apps": run.apps,
        "checks": evaluate([Check.parse(text) for text in texts], run.apps),
    }


def _config(stored: dict[str, Any]) -> tuple[Any, Any]:
    """The run's scenario and config: the scenario's defaults, with every setting summary.json recorded."""
    from bench.config.options import RunConfig, resolve_run

    scenario, defaults = resolve_run(stored["scenario"], {})
    recorded = stored["config"]
    names = {f.name for f in dataclasses.fields(RunConfig)}
    settings = {k: v for k, v in recorded.items() if k in names and k not in ("apps", "out")}
    return scenario, dataclasses.replace(
        defaults, **settings, apps=tuple(recorded["apps"]), out=Path(recorded["out"]) if recorded.get("out") else None
    )


# --- the two commands ---------------------------------------------------------------------------------------


def _real_run(fixture: Fixture, work: Path, attempts: int = 3) -> Path:
    for attempt in range(1, attempts + 1):
        out = work / f"{fixture.name.replace('/', '-')}-{attempt}"
        argv = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--bench",
            "run",
            *fixture.argv,
            "--out",
            str(out),
            "--quiet",
        ]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        summary_path = out / "summary.json"
        if not summary_path.exists():
            raise SystemExit(
                f"{fixture.name}: bench run wrote no summary (exit {done.returncode}): {done.stderr.strip()[-500:]}"
            )
        why = fixture.wanted(json.loads(summary_path.read_text(encoding="utf-8")), out)
        if why is None:
            return out
        print(f"{fixture.name}: attempt {attempt} not usable ({why}); again", file=sys.stderr)
    raise SystemExit(f"{fixture.name}: no usable run in {attempts} attempts")


def _keep(run: Path, into: Path) -> None:
    """The fixture's files out of a run folder, replacing what ``into`` held."""
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    for name in RUN_FILES:
        shutil.copy2(run / name, into / name)
    for app in json.loads((run / "summary.json").read_text(encoding="utf-8"))["apps"]:
        (into / app).mkdir()
        for name in APP_FILES:
            if (run / app / name).exists():
                shutil.copy2(run / app / name, into / app / name)


def run_all(names: list[str]) -> None:
    """New real runs of the fixtures named (all by default), then every summary digested again."""
    with tempfile.TemporaryDirectory(prefix="sb-fixtures-") as tmp:
        work = Path(tmp)
        work.chmod(0o711)  # as root, the user that runs PostgreSQL must enter the run folders' parents
        for fixture in (f for f in FIXTURES if not names or f.name in names):
            _keep(_real_run(fixture, work), DATA / fixture.name)
            _check_redigest(DATA / fixture.name)
            print(f"{fixture.name}: kept")
    digest_all()


def _check_redigest(folder: Path) -> None:
    """Fresh from a run, re-digesting must give what the runner wrote: else redigest is not the runner's digest."""
    written = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    again = redigest(folder)
    differ = [key for key in again if again[key] != written.get(key)]
    if differ:
        raise SystemExit(f"{folder.name}: re-digesting the fresh run differs from its summary.json in {differ}")


def digest_all() -> None:
    """summary.json of each run fixture from its raw files, then compare/'s two summaries and expected.txt."""
    from bench.analysis.compare import compare, load_side
    from bench.render.compare_render import render_text
    from bench.results.folder import write_json, write_text

    for fixture in FIXTURES:
        folder = DATA / fixture.name
        path = folder / "summary.json"
        summary = json.loads(path.read_text(encoding="utf-8"))
        summary.update(redigest(folder))
        write_json(path, summary)
    shutil.copy2(DATA / LONG.name / "summary.json", DATA / "compare" / "base.json")
    shutil.copy2(DATA / LONGER.name / "summary.json", DATA / "compare" / "current.json")
    table = render_text(
        compare(load_side(DATA / "compare" / "base.json"), load_side(DATA / "compare" / "current.json"))
    )
    write_text(DATA / "compare" / "expected.txt", table + "\n")
    print("summaries digested; compare/base.json, current.json and expected.txt written")


def main() -> None:
    if sys.argv[1:2] == ["--bench"]:
        _bench_with_inputs_recorded(sys.argv[2:])
        return
    command, names = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("", [])
    known = [f.name for f in FIXTURES]
    if command == "run" and all(name in known for name in names):
        run_all(names)
    elif command == "digest" and not names:
        digest_all()
    else:
        raise SystemExit(f"usage: python tests/data/regenerate.py run [{'|'.join(known)} ...] | digest")


if __name__ == "__main__":
    main()
