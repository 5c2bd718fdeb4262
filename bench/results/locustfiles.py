"""What Locust and the pacer plugin write besides the request log: Locust's final stats and the pacer's steps.

The runner reads Locust's stats into the summary; bench.analysis.steps reads the pacer's steps for bench capacity.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import InfraError
from bench.results.layout import AppFiles


@dataclass(frozen=True)
class LocustStats:
    """Locust's final per-endpoint stats (``--json-file``); none when Locust did not get to write them."""

    entries: tuple[dict[str, Any], ...]
    unreadable: int  # entries that are not JSON objects, or 1 for a torn file


def read_locust_json(app_dir: Path) -> LocustStats:
    try:
        data = json.loads(AppFiles(app_dir).locust_json.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return LocustStats(entries=(), unreadable=0)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return LocustStats(entries=(), unreadable=1)
    if not isinstance(data, list):
        return LocustStats(entries=(), unreadable=1)
    entries = tuple(e for e in data if isinstance(e, dict))
    return LocustStats(entries=entries, unreadable=len(data) - len(entries))


def read_pacer(app_dir: Path) -> dict[str, Any]:
    """The pacer's record of a stepped run: its plan and when each step started and ended (epoch seconds)."""
    files = AppFiles(app_dir)
    try:
        data = json.loads(files.pacer_json.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise InfraError(f"{files.pacer_json} is missing or torn: Locust never ran the load steps "
                         f"(see {files.locust_log})")
    return data
