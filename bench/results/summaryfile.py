"""Reading a finished run back: summary.json's one loader and one validation, run.json, and the folder as a whole.

``bench compare`` (bench.analysis.compare) and ``bench report`` (bench.render.run_report) load runs only here;
anything damaged, truncated or of another schema is a one-line UsageError (exit 2).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.db.server import redact
from bench.errors import UsageError
from bench.results.layout import RunFiles

SCHEMA_VERSION = 1
_REWRITE = "re-run bench run to write it again"
# Top-level keys a reader relies on, with the JSON type each must have when present.
_SHAPE = (("apps", dict), ("checks", list), ("config", dict), ("environment", dict), ("repeats", dict))


def load_summary(path: Path, *, require_apps: bool = False) -> dict[str, Any]:
    """A run folder's summary.json, or the file itself; ``require_apps``: refuse one where no app finished."""
    file, label = _summary_file(path)
    data = _read_json(file, _REWRITE)
    if not isinstance(data, dict):
        raise UsageError(f"{file} is not a scopebench summary (it holds a JSON {type(data).__name__}, "
                         f"not an object); {_REWRITE}")
    if "schema_version" not in data:
        raise UsageError(f"{file} is not a scopebench summary (no schema_version)")
    if data["schema_version"] != SCHEMA_VERSION:
        raise UsageError(f"{label} has schema_version {data['schema_version']}; this bench reads {SCHEMA_VERSION}")
    _check_shape(data, file)
    if require_apps and not data.get("apps"):
        raise UsageError(f"{file} holds no app results (run status: {data.get('status', '?')})")
    return data


def _summary_file(path: Path) -> tuple[Path, str]:
    """(the file, how messages name it): a folder is named as the run folder, a file by its path."""
    if path.is_dir():
        files = RunFiles(path)
        if not files.summary_json.is_file():
            status = read_object(files.run_json, "re-run bench run").get("status") if files.run_json.is_file() \
                else None
            hint = ("; pass a folder written by bench run" if not status
                    else f" yet (run.json says '{status}'); wait for the run to finish" if status == "running"
                    else f" (run.json says '{status}'); the folder is incomplete, re-run bench run")
            raise UsageError(f"run folder {path} has no summary.json{hint}")
        return files.summary_json, f"run folder {path}"
    if not path.exists():
        raise UsageError(f"run folder {path} does not exist; pass a folder written by bench run (or its summary.json)")
    return path, str(path)


def _check_shape(data: dict[str, Any], file: Path) -> None:
    for key, kind in _SHAPE:
        value = data.get(key)
        if value is not None and not isinstance(value, kind):
            raise UsageError(f"{file}: '{key}' is not a JSON {'object' if kind is dict else 'array'}; "
                             f"the file is damaged, {_REWRITE}")
    for app, figures in (data.get("apps") or {}).items():
        if not isinstance(figures, dict):
            raise UsageError(f"{file}: apps.{app} is not a JSON object; the file is damaged, {_REWRITE}")
    for app, runs in (data.get("repeats") or {}).items():
        if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
            raise UsageError(f"{file}: repeats.{app} is not a JSON array of objects; the file is damaged, {_REWRITE}")


def read_object(path: Path, fix: str) -> dict[str, Any]:
    """A JSON object from a run folder (run.json, summary.json); ``fix`` ends the one-line error."""
    data = _read_json(path, fix)
    if not isinstance(data, dict):
        raise UsageError(f"{path} holds a JSON {type(data).__name__}, not an object; {fix}")
    return data


def _read_json(path: Path, fix: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}; check the run folder's permissions") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text; the run folder is damaged, {fix}") from None
    except json.JSONDecodeError as err:
        raise UsageError(f"{path} is truncated or not valid JSON ({err.msg} at line {err.lineno} "
                         f"column {err.colno}); {fix}") from None


@dataclass(frozen=True)
class RunFolder:
    """A finished (or failed, or interrupted) run as its files say: summary.json and, if there, run.json."""

    path: Path
    summary: dict[str, Any]
    run: dict[str, Any]

    @property
    def apps(self) -> dict[str, dict[str, Any]]:
        apps: dict[str, dict[str, Any]] = self.summary.get("apps") or {}
        return apps

    @property
    def config(self) -> dict[str, Any]:
        return _obj(self.summary.get("config")) or _obj(self.run.get("config"))

    @property
    def status(self) -> str:
        return str(self.summary.get("status") or self.run.get("status") or "unknown")

    @property
    def error(self) -> str | None:
        error = self.summary.get("error") or self.run.get("error")
        return redact(str(error)) if error else None

    def app_dir(self, name: str) -> Path:
        return RunFiles(self.path).app(name).root

    def plotted_apps(self) -> list[str]:
        """Apps with a raw-data folder, in run order; a failed run may have one without a summary entry."""
        planned = [str(a) for a in self.config.get("apps") or []]
        names = list(dict.fromkeys([*planned, *self.apps]))
        return [name for name in names if self.app_dir(name).is_dir()]


def load_run(run_dir: Path) -> RunFolder:
    if not run_dir.is_dir():
        raise UsageError(f"run folder {run_dir} does not exist; pass a folder written by bench run")
    summary = load_summary(run_dir)
    run_json = RunFiles(run_dir).run_json
    run = read_object(run_json, "restore it, or delete it to report from summary.json alone") \
        if run_json.exists() else {}
    return RunFolder(path=run_dir, summary=summary, run=run)


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
