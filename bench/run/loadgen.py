"""Locust as a headless subprocess: the command line, live progress from its request log, final figures.

The harness never imports a locustfile (Locust monkey-patches with gevent); it reads files Locust writes.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bench.run.processes import Child, free_port

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


def locust_child(plan: LoadPlan, folder: Path) -> Child:
    argv = [
        sys.executable, "-m", "locust",
        "-f", ",".join(str(f) for f in (plan.locustfile, *plan.extra_files, RECORDER)),
        "--headless",
        "--users", str(plan.users),
        "--spawn-rate", f"{plan.spawn_rate:g}",
        "--run-time", f"{max(1, math.ceil(plan.duration_s))}s",
        "--host", plan.host,
        "--json-file", str(folder / "locust"),
        "--only-summary",
        "--exit-code-on-error", "0",
        "--stop-timeout", "0",
        "--loglevel", "WARNING",
        *(_worker_args(plan) if plan.workers else []),
    ]
    env = {
        **plan.env,
        "BENCH_REQUEST_LOG": str(folder / "requests.csv"),
        "BENCH_GO_FILE": str(go_file(folder)),
        "PYTHONUNBUFFERED": "1",
    }
    return Child(name="locust", argv=argv, log_path=folder / "locust.log", env=env)


def _worker_args(plan: LoadPlan) -> list[str]:
    # The master listens for workers on loopback and a free port unless told otherwise: Locust's own
    # default is every interface, and a fixed port would collide between concurrent runs.
    port = str(free_port())
    return ["--processes", str(plan.workers), "--master-bind-host", plan.master_bind,
            "--master-bind-port", port, "--master-port", port]


def go_file(folder: Path) -> Path:
    """Locust waits for this file before it starts any user (see locust_recorder)."""
    return folder / ".go"


class RequestTail:
    """Follows the request logs while Locust writes them (one per worker process): progress counts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offsets: dict[Path, int] = {}
        self.partial: dict[Path, bytes] = {}
        self.requests = 0
        self.failures = 0
        self.first_start: float | None = None

    def poll(self) -> None:
        for path in request_logs(self.path.parent):
            try:
                with open(path, "rb") as handle:
                    handle.seek(self.offsets.get(path, 0))
                    chunk = handle.read()
            except FileNotFoundError:
                continue
            self.offsets[path] = self.offsets.get(path, 0) + len(chunk)
            lines = (self.partial.get(path, b"") + chunk).split(b"\n")
            self.partial[path] = lines.pop()
            self._count(lines)

    def _count(self, lines: list[bytes]) -> None:
        for line in lines:
            if not line or line.startswith(b"start_epoch_s"):
                continue
            self.requests += 1
            start = float(line.split(b",", 1)[0])
            if self.first_start is None or start < self.first_start:
                self.first_start = start
            if b',1,"' in line:
                self.failures += 1


def request_logs(folder: Path) -> list[Path]:
    """requests.csv, or requests-<pid>.csv per Locust worker process."""
    return sorted(folder.glob("requests*.csv"))


def read_requests(folder: Path) -> pd.DataFrame:
    """Every request Locust made: start time, name, latency, failure; empty frame if none."""
    columns = ["start_epoch_s", "request_type", "name", "response_time_ms", "response_length", "failed", "error"]
    paths = request_logs(folder)
    if not paths:
        return pd.DataFrame(columns=columns)
    # on_bad_lines: Locust killed mid-write leaves at most one torn last line.
    frames = [pd.read_csv(path, on_bad_lines="skip", keep_default_na=False) for path in paths]
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    frame = frame[pd.to_numeric(frame["response_time_ms"], errors="coerce").notna()]
    return frame.astype({"start_epoch_s": float, "response_time_ms": float, "failed": int})


def read_locust_json(folder: Path) -> list[dict[str, Any]]:
    """Locust's final per-endpoint stats (``--json-file``); empty when Locust did not get to write it."""
    path = folder / "locust.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return []
    return data if isinstance(data, list) else []
