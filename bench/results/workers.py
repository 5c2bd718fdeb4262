"""The Locust workers of an app run, as its master recorded them in workers.json (bench/locust_plugins/recorder.py).

Each worker, on this machine or another, sent its request rows to the master, which wrote them to that worker's
requests-<index>.csv; a worker whose last rows never arrived is incomplete, and the run says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import UsageError
from bench.results.layout import AppFiles


@dataclass(frozen=True)
class WorkerLog:
    index: int  # Locust's worker index: the log is requests-<index>.csv
    node_id: str  # Locust's client id: the worker's host name and a random suffix
    host: str | None  # as the worker named itself
    pid: int | None
    log: str | None  # the file name in the app's folder; None when no row ever arrived
    rows: int  # rows the master wrote for it
    complete: bool  # its last rows arrived: nothing it logged is missing


def read_workers(app_dir: Path) -> tuple[WorkerLog, ...]:
    """The workers of a run with Locust workers; empty for a one-process run or a master that never finished."""
    path = AppFiles(app_dir).workers_json
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return tuple(_worker(entry) for entry in data["workers"])
    except FileNotFoundError:
        return ()
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UsageError(
            f"{path} is not the master's list of workers ({type(err).__name__}: {err}); the run "
            "folder is damaged, re-run bench run"
        ) from None


def _worker(entry: dict[str, Any]) -> WorkerLog:
    return WorkerLog(
        index=int(entry["index"]),
        node_id=str(entry["id"]),
        host=entry.get("host"),
        pid=None if entry.get("pid") is None else int(entry["pid"]),
        log=entry.get("log"),
        rows=int(entry["rows"]),
        complete=bool(entry["complete"]),
    )
