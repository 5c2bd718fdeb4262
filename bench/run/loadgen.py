"""Locust as a headless subprocess: its command line, and the environment that tells its plugins where to write.

The harness never imports a locustfile (Locust monkey-patches with gevent); bench.results reads what Locust wrote.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.db.ports import free_port
from bench.results.layout import AppFiles
from bench.run.processes import Child

# Locust plugins run only inside Locust: the harness passes their files to ``locust -f``, never imports them.
PLUGINS = Path(__file__).resolve().parents[1] / "locust_plugins"
RECORDER = PLUGINS / "recorder.py"


@dataclass(frozen=True, kw_only=True)
class LoadPlan:
    locustfile: Path
    host: str
    users: int
    spawn_rate: float
    duration_s: float
    # Added to ``locust -f`` after the locustfile (e.g. bench capacity's load-step pacer), and its settings.
    extra_files: tuple[Path, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    # Locust worker processes (``--processes``): one process saturates one core on load generation.
    workers: int = 0
    master_bind: str = "127.0.0.1"

    @property
    def run_time_s(self) -> int:
        """Locust's --run-time: whole seconds, at least one."""
        return max(1, math.ceil(self.duration_s))


def locust_child(plan: LoadPlan, folder: Path) -> Child:
    files = AppFiles(folder)
    argv = [
        sys.executable, "-m", "locust",
        "-f", ",".join(str(f) for f in (plan.locustfile, *plan.extra_files, RECORDER)),
        "--headless",
        "--users", str(plan.users),
        "--spawn-rate", f"{plan.spawn_rate:g}",
        "--run-time", f"{plan.run_time_s}s",
        "--host", plan.host,
        "--json-file", str(files.locust_json_prefix),
        # Locust's own HTML report and CSV files too, for the people who know them; the harness reads neither.
        "--html", str(files.locust_html),
        "--csv", str(files.locust_csv_prefix),
        "--only-summary",
        "--exit-code-on-error", "0",
        "--stop-timeout", "0",
        "--loglevel", "WARNING",
        *(_worker_args(plan) if plan.workers else []),
    ]
    env = {
        **plan.env,
        "BENCH_REQUEST_LOG": str(files.request_log),
        "BENCH_WORKER_REQUEST_LOG": files.worker_request_log,
        "BENCH_PACER_LOG": str(files.pacer_json),  # read only when bench capacity adds the pacer
        "BENCH_GO_FILE": str(files.go_file),
        "PYTHONUNBUFFERED": "1",
    }
    return Child(name="locust", argv=argv, log_path=files.locust_log, env=env)


def _worker_args(plan: LoadPlan) -> list[str]:
    # The master listens for workers on loopback and a free port unless told otherwise: Locust's own
    # default is every interface, and a fixed port would collide between concurrent runs.
    port = str(free_port())
    return ["--processes", str(plan.workers), "--master-bind-host", plan.master_bind,
            "--master-bind-port", port, "--master-port", port]


def go_file(folder: Path) -> Path:
    """Locust waits for this file before it starts any user (see bench/locust_plugins/recorder.py)."""
    return AppFiles(folder).go_file
