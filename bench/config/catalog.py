"""The scenario catalog (``scenarios/catalog.toml``): names, locustfiles, defaults, expected symptoms.

``bench scenarios`` lists it; the runner resolves a scenario name to a ``Scenario`` here.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config.appenv import AppEnvError, scenario_settings
from bench.config.optiontable import CATALOG_DEFAULTS
from bench.errors import UsageError


@dataclass(frozen=True)
class Scenario:
    name: str
    locustfile: Path
    description: str
    symptom: str
    write_routes: dict[str, str]  # Locust request name -> orders.route tag the route writes
    defaults: dict[str, Any]
    checks: tuple[str, ...]
    app_env: dict[str, str]  # BENCH_APP_* settings of the scenario's routes (bench.config.appenv says which)


def scenarios_dir() -> Path:
    """``BENCH_SCENARIOS``, else the scenarios installed with the package (``bench/scenarios`` in a wheel), else
    the ``scenarios/`` folder of a source checkout (an editable install)."""
    env = os.environ.get("BENCH_SCENARIOS")
    if env:
        return Path(env)
    package = Path(__file__).resolve().parents[1]
    installed = package / "scenarios"
    return installed if (installed / "catalog.toml").is_file() else package.parent / "scenarios"


def load_catalog(path: Path | None = None) -> dict[str, Scenario]:
    path = path or scenarios_dir() / "catalog.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"no scenario catalog at {path}; set BENCH_SCENARIOS to the scenarios folder") from None
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"scenario catalog {path} is not valid TOML: {err}") from None
    return {name: _scenario(name, entry, path.parent) for name, entry in data.items()}


def _scenario(name: str, entry: Any, folder: Path) -> Scenario:
    if not isinstance(entry, dict) or not isinstance(entry.get("locustfile"), str):
        raise UsageError(f"catalog entry '{name}' needs a locustfile = \"...\" line")
    known = {*CATALOG_DEFAULTS, "locustfile", "description", "symptom", "write_routes", "checks", "app_env"}
    unknown = set(entry) - known
    if unknown:
        raise UsageError(f"catalog entry '{name}' has unknown keys: {', '.join(sorted(unknown))}")
    defaults = {key: entry.get(key, value) for key, value in CATALOG_DEFAULTS.items()}
    for key, value in defaults.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise UsageError(f"catalog entry '{name}': {key} must be a non-negative number, got {value!r}")
    return Scenario(
        name=name,
        locustfile=folder / entry["locustfile"],
        description=str(entry.get("description", "")),
        symptom=str(entry.get("symptom", "")),
        write_routes=_str_table(name, "write_routes", entry.get("write_routes", {})),
        defaults=defaults,
        checks=_str_list(name, "checks", entry.get("checks", [])),
        app_env=_app_env(name, entry.get("app_env", {})),
    )


def _app_env(name: str, value: Any) -> dict[str, str]:
    table = _str_table(name, "app_env", value)
    try:
        scenario_settings(table)
    except AppEnvError as err:
        raise UsageError(f"catalog entry '{name}': app_env: {err}") from None
    return table


def _str_list(name: str, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"catalog entry '{name}': {key} must be a list of strings, e.g. {key} = [\"good: failures == 0\"]")
    return tuple(value)


def _str_table(name: str, key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, (str, int, float)) for v in value.values()):
        raise UsageError(f"catalog entry '{name}': {key} must be a table of strings, e.g. {key}.\"X\" = \"y\"")
    return {str(k): str(v) for k, v in value.items()}


def get_scenario(name: str, catalog: dict[str, Scenario] | None = None) -> Scenario:
    catalog = load_catalog() if catalog is None else catalog
    scenario = catalog.get(name)
    if scenario is None:
        close = difflib.get_close_matches(name, list(catalog), n=1)
        hint = f"did you mean '{close[0]}'? " if close else f"known: {', '.join(sorted(catalog))}; "
        raise UsageError(f"no scenario '{name}'; {hint}see: bench scenarios")
    if not scenario.locustfile.is_file():
        raise UsageError(f"scenario '{name}': locustfile {scenario.locustfile} is missing; fix catalog.toml")
    return scenario


def scenario_from_locustfile(path: Path) -> Scenario:
    """An ad-hoc scenario for ``--locustfile``: the user's own locustfile, built-in defaults, no checks."""
    if not path.is_file():
        raise UsageError(f"--locustfile {path} does not exist")
    return Scenario(name=path.stem.replace("_", "-"), locustfile=path.resolve(), description="your locustfile",
                    symptom="", write_routes={}, defaults=dict(CATALOG_DEFAULTS), checks=(), app_env={})
