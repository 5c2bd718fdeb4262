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

from bench.processes import Child

RECORDER = Path(__file__).with_name("locust_recorder.py")


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
    ]
    env = {
        **plan.env,
        "BENCH_REQUEST_LOG": str(folder / "requests.csv"),
        "BENCH_GO_FILE": str(go_file(folder)),
        "PYTHONUNBUFFERED": "1",
    }
    return Child(name="locust", argv=argv, log_path=folder / "locust.log", env=env)


def go_file(folder: Path) -> Path:
    """Locust waits for this file before it starts any user (see locust_recorder)."""
    return folder / ".go"


class RequestTail:
    """Follows requests.csv while Locust writes it: counts for the progress line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.requests = 0
        self.failures = 0
        self.first_start: float | None = None
        self._partial = b""

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return
        self.offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if not line or line.startswith(b"start_epoch_s"):
                continue
            self.requests += 1
            if self.first_start is None:
                self.first_start = float(line.split(b",", 1)[0])
            if b',1,"' in line:
                self.failures += 1


def read_requests(folder: Path) -> pd.DataFrame:
    """Every request Locust made: start time, name, latency, failure; empty frame if none."""
    path = folder / "requests.csv"
    columns = ["start_epoch_s", "request_type", "name", "response_time_ms", "response_length", "failed", "error"]
    if not path.exists():
        return pd.DataFrame(columns=columns)
    # on_bad_lines: Locust killed mid-write leaves at most one torn last line.
    frame = pd.read_csv(path, on_bad_lines="skip", keep_default_na=False)
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
