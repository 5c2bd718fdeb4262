"""Locust as a headless subprocess: its command line, and the environment that tells its plugins where to write.

The harness never imports a locustfile (Locust monkey-patches with gevent); bench.results reads what Locust wrote.
With workers (``--processes`` here, ``--remote-workers`` on other hosts) every worker's request rows reach the
master over Locust's own connection, and the master writes them in the app's folder (see the recorder).
"""

from __future__ import annotations

import asyncio
import errno
import math
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.config.masterbind import LOCUST_MASTER_PORT, MasterBind
from bench.db.ports import free_port
from bench.errors import InfraError
from bench.results.layout import AppFiles
from bench.results.workers import read_workers
from bench.run.processes import Child

# Locust plugins run only inside Locust: the harness passes their files to ``locust -f``, never imports them.
PLUGINS = Path(__file__).resolve().parents[1] / "locust_plugins"
RECORDER = PLUGINS / "recorder.py"
# How long the workers may take to join the master: those on other hosts are started by someone, by hand.
JOIN_TIMEOUT_S = 120.0
_POLL_S = 0.1


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
    # Workers on other hosts the master waits for before the load starts (they dial ``master_bind``).
    remote_workers: int = 0
    master_bind: str = "127.0.0.1"  # ADDRESS[:PORT], as bench.config.masterbind reads it

    @property
    def run_time_s(self) -> int:
        """Locust's --run-time: whole seconds, at least one."""
        return max(1, math.ceil(self.duration_s))

    @property
    def distributed(self) -> bool:
        return self.workers + self.remote_workers > 0

    @property
    def bind(self) -> MasterBind:
        return MasterBind.parse(self.master_bind)

    def master_port(self) -> int:
        """Where the master listens: the port given, Locust's default when other hosts must know it beforehand,
        else a free one (a fixed port would collide between concurrent runs)."""
        if self.bind.port is not None:
            return self.bind.port
        return LOCUST_MASTER_PORT if self.remote_workers else free_port()

    def worker_command(self, port: int) -> str:
        """What to run on another host so that a worker joins this run's master."""
        return f"locust --worker -f - {self.bind.shown(port)}"


def locust_child(plan: LoadPlan, folder: Path) -> Child:
    files = AppFiles(folder)
    argv = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        ",".join(str(f) for f in (plan.locustfile, *plan.extra_files, RECORDER)),
        "--headless",
        "--users",
        str(plan.users),
        "--spawn-rate",
        f"{plan.spawn_rate:g}",
        "--run-time",
        f"{plan.run_time_s}s",
        "--host",
        plan.host,
        "--json-file",
        str(files.locust_json_prefix),
        # Locust's own HTML report and CSV files too, for the people who know them; the harness reads neither.
        "--html",
        str(files.locust_html),
        "--csv",
        str(files.locust_csv_prefix),
        "--only-summary",
        "--exit-code-on-error",
        "0",
        "--stop-timeout",
        "0",
        "--loglevel",
        "WARNING",
        *(_worker_args(plan) if plan.distributed else []),
    ]
    env = {
        **plan.env,
        "BENCH_REQUEST_LOG": str(files.request_log),
        "BENCH_WORKER_REQUEST_LOG": files.worker_request_log,
        "BENCH_WORKERS_JSON": str(files.workers_json),
        "BENCH_WORKERS_READY_FILE": str(files.workers_ready),
        "BENCH_EXPECT_WORKERS": str(plan.workers + plan.remote_workers),
        "BENCH_WORKERS_TIMEOUT": f"{JOIN_TIMEOUT_S + 10:g}",  # the harness gives up first, and says why
        "BENCH_PACER_LOG": str(files.pacer_json),  # read only when bench capacity adds the pacer
        "BENCH_GO_FILE": str(files.go_file),
        "PYTHONUNBUFFERED": "1",
    }
    return Child(name="locust", argv=argv, log_path=files.locust_log, env=env)


def _worker_args(plan: LoadPlan) -> list[str]:
    # The master listens on loopback unless told otherwise: Locust's own default is every interface.
    bind, port = plan.bind, plan.master_port()
    if plan.remote_workers:
        _check_free(bind, port)
    args = ["--master-bind-host", bind.host, "--master-bind-port", str(port), "--master-port", str(port)]
    if plan.workers:  # the processes Locust forks dial --master-host
        return [*args, "--processes", str(plan.workers), "--master-host", bind.local_host]
    return [*args, "--master", "--expect-workers", str(plan.remote_workers)]


def _check_free(bind: MasterBind, port: int) -> None:
    """Workers on other hosts dial a fixed port: taken (another run expecting remote workers), say so plainly."""
    host = "0.0.0.0" if bind.host == "*" else bind.host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as ZeroMQ binds
        try:
            probe.bind((host, port))
        except OSError as err:
            why = "is in use" if err.errno == errno.EADDRINUSE else f"cannot be bound ({err.strerror})"
            raise InfraError(
                f"the Locust master's address {host}:{port} {why}; give another port with "
                f"--master-bind {bind.host}:PORT"
            ) from None


async def workers_joined(plan: LoadPlan, locust: Child, folder: Path, say: Callable[[str], None]) -> None:
    """Return once every worker the plan expects has joined the master: the load starts at the go, not whenever
    the last worker turns up."""
    if not plan.distributed:
        return
    hint = ""
    if plan.remote_workers:
        hint = f"; on each other host run: {plan.worker_command(plan.master_port())}"
        say(f"waiting for {plan.remote_workers} Locust worker(s) from other hosts (up to {JOIN_TIMEOUT_S:.0f}s){hint}")
    ready, deadline = AppFiles(folder).workers_ready, time.monotonic() + JOIN_TIMEOUT_S
    while not ready.exists():
        if locust.exit_code() is not None:
            raise InfraError(
                f"Locust exited (code {locust.exit_code()}) before its workers joined: {locust.log_tail()}"
            )
        if time.monotonic() > deadline:
            raise InfraError(
                f"the Locust workers did not all join within {JOIN_TIMEOUT_S:.0f}s ({plan.workers} "
                f"expected here, {plan.remote_workers} from other hosts){hint}"
            )
        await asyncio.sleep(_POLL_S)


def missing_rows(folder: Path) -> list[str]:
    """One line per worker whose last request rows never reached the master: the percentiles miss its end."""
    return [
        f"Locust worker {w.index} ({w.host or w.node_id}, pid {w.pid}) sent no last request rows; the "
        f"requests it made at the end of the load are missing from {w.log or 'the request logs'}"
        for w in read_workers(folder)
        if not w.complete
    ]


def go_file(folder: Path) -> Path:
    """Locust waits for this file before it starts any user (see bench/locust_plugins/recorder.py)."""
    return AppFiles(folder).go_file
