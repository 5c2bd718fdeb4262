"""The run folder's layout: every file and folder name a run or a capacity sweep writes or reads.

The runner, capacity, loadgen, the readers in bench.results and the renderers build their paths here; the
Locust plugins (which import nothing from bench) get theirs from the environment bench.run.loadgen sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Where a run goes without --out: results/<UTC timestamp>_<name>/, then -2, -3, ... if that is taken.
DEFAULT_FOLDER = "{stamp}_{name}"
TAKEN_SUFFIX = "-{n}"
ASIDE_SUFFIX = ".old-{stamp}"  # bench run --out X --force moves a non-empty X to X.old-<UTC timestamp> first
WRITE_PROBE = ".write-test"  # written and removed to learn, before anything runs, that the folder is writable
# A run folder (bench run): run.json first, updated as the run goes; summary.json last; then the report.
RUN_JSON = "run.json"
SUMMARY_JSON = "summary.json"
HARNESS_ERROR = "harness-error.txt"  # the traceback of a bug in the harness itself
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
# One folder per app (good, bad, or target); its second and later repeats in repeat-<n> inside it.
TARGET_APP = "target"
REPEAT = "repeat-{n}"
# Inside an app's folder.
REQUEST_LOG = "requests.csv"  # bench/locust_plugins/recorder.py, when Locust runs as one process
WORKER_REQUEST_LOG = "requests-{worker}.csv"  # the same, one per Locust worker, written by the master (its index)
WORKERS_JSON = "workers.json"  # the master: each worker's host, pid, log and whether its last rows arrived
WORKERS_READY = ".workers-ready"  # the master: every worker it waits for has joined (then the harness says go)
SAMPLES = "samples.jsonl"  # bench.run.collector, one JSON object per line
POOL_JSON = "pool.json"  # the collector's last reading of the pool endpoint: what summary.json's pool figures read
APP_LOG = "app.log"
LOCUST_LOG = "locust.log"
LOCUST_JSON_PREFIX = "locust"  # Locust's --json-file takes a prefix and appends .json
LOCUST_JSON = LOCUST_JSON_PREFIX + ".json"
# Locust's own reports, for the people who know them: --html, and --csv's files (one prefix, several files).
LOCUST_HTML = "locust.html"
LOCUST_CSV_PREFIX = "locust"
LOCUST_STATS_CSV = LOCUST_CSV_PREFIX + "_stats.csv"
LOCUST_HISTORY_CSV = LOCUST_CSV_PREFIX + "_stats_history.csv"
LOCUST_FAILURES_CSV = LOCUST_CSV_PREFIX + "_failures.csv"
LOCUST_EXCEPTIONS_CSV = LOCUST_CSV_PREFIX + "_exceptions.csv"
GO_FILE = ".go"  # Locust holds its users until the harness creates it
POOL_METRICS = "pool-metrics"  # per uvicorn worker pool snapshots (--app-workers)
PACER_JSON = "pacer.json"  # bench/locust_plugins/pacer.py: when each load step of bench capacity ran
# A capacity folder (bench capacity): one run folder per pool size, and the sweep's own files.
CAPACITY_NAME = "capacity_{scenario}"  # the <name> of its default folder
POOL_RUN = "pool-{size}"
CAPACITY_JSON = "capacity.json"
CAPACITY_MD = "capacity.md"
CAPACITY_HTML = "capacity.html"


@dataclass(frozen=True)
class AppFiles:
    """One app run's raw files: what Locust, its plugins, the collector and the app write."""

    root: Path

    @property
    def request_log(self) -> Path:
        return self.root / REQUEST_LOG

    def request_logs(self) -> list[Path]:
        """requests.csv, and requests-<n>.csv per Locust worker; only the names the recorder writes."""
        workers = self.root.glob(WORKER_REQUEST_LOG.format(worker="*"))
        found = [self.request_log] if self.request_log.is_file() else []
        return found + sorted(p for p in workers if p.name.removeprefix("requests-").removesuffix(".csv").isdigit())

    @property
    def worker_request_log(self) -> str:
        """The template the Locust master fills in with a worker's index (the recorder replaces ``{worker}``)."""
        return str(self.root / WORKER_REQUEST_LOG)

    @property
    def workers_json(self) -> Path:
        return self.root / WORKERS_JSON

    @property
    def workers_ready(self) -> Path:
        return self.root / WORKERS_READY

    @property
    def samples(self) -> Path:
        return self.root / SAMPLES

    @property
    def pool_json(self) -> Path:
        return self.root / POOL_JSON

    @property
    def app_log(self) -> Path:
        return self.root / APP_LOG

    @property
    def locust_log(self) -> Path:
        return self.root / LOCUST_LOG

    @property
    def locust_json_prefix(self) -> Path:
        return self.root / LOCUST_JSON_PREFIX

    @property
    def locust_json(self) -> Path:
        return self.root / LOCUST_JSON

    @property
    def locust_html(self) -> Path:
        return self.root / LOCUST_HTML

    @property
    def locust_csv_prefix(self) -> Path:
        return self.root / LOCUST_CSV_PREFIX

    @property
    def go_file(self) -> Path:
        return self.root / GO_FILE

    @property
    def pool_metrics(self) -> Path:
        return self.root / POOL_METRICS

    @property
    def pacer_json(self) -> Path:
        return self.root / PACER_JSON


@dataclass(frozen=True)
class RunFiles:
    """A run folder: the run's own files and one folder per app (and per repeat)."""

    root: Path

    @property
    def run_json(self) -> Path:
        return self.root / RUN_JSON

    @property
    def summary_json(self) -> Path:
        return self.root / SUMMARY_JSON

    @property
    def harness_error(self) -> Path:
        return self.root / HARNESS_ERROR

    @property
    def report_md(self) -> Path:
        return self.root / REPORT_MD

    @property
    def report_html(self) -> Path:
        return self.root / REPORT_HTML

    def app(self, name: str, repeat: int = 0) -> AppFiles:
        """``repeat`` counts from 0: the first run of an app is its folder, the n-th is repeat-<n> inside it."""
        folder = self.root / name
        return AppFiles(folder if repeat == 0 else folder / REPEAT.format(n=repeat + 1))


@dataclass(frozen=True)
class CapacityFiles:
    """A capacity sweep's folder: one run folder per pool size, capacity.json and its report."""

    root: Path

    @staticmethod
    def default_name(scenario: str) -> str:
        return CAPACITY_NAME.format(scenario=scenario)

    @staticmethod
    def pool_run_name(size: int) -> str:
        return POOL_RUN.format(size=size)

    def pool_run(self, size: int) -> Path:
        return self.root / self.pool_run_name(size)

    @property
    def capacity_json(self) -> Path:
        return self.root / CAPACITY_JSON

    @property
    def capacity_md(self) -> Path:
        return self.root / CAPACITY_MD

    @property
    def capacity_html(self) -> Path:
        return self.root / CAPACITY_HTML
