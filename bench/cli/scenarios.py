"""``bench scenarios``: the catalog in the README's order, or one scenario in full (``bench scenarios NAME``):
what it does, its defaults, the checks its run must pass and the files behind it."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bench.cli.flags import scenario_argument
from bench.cli.root import app
from bench.config.catalog import Scenario, get_scenario, load_catalog
from bench.config.optiontable import OPTIONS

if TYPE_CHECKING:
    from bench.render.page import CodeRef

# A locustfile's request names (name="GET /items/{item_id}"): the routes whose code a mixed scenario runs.
_MARKER = {"bad": "ANTI-PATTERN", "good": "CORRECT"}  # target_apps' marker comments, by app
_REQUEST_NAME = re.compile(r"""name\s*=\s*["']((?:GET|POST|PUT|PATCH|DELETE|WS) [^"']+)["']""")


@app.command()
def scenarios(
    name: Annotated[str | None, scenario_argument("A scenario to show in full: defaults, checks and files.")] = None,
) -> None:
    """List the scenario catalog (name, what it does, the symptom it shows), or show one scenario in full."""
    if name is not None:
        typer.echo(detail(get_scenario(name)))
        return
    catalog = load_catalog()
    width = max(len(key) for key in catalog)
    for key, scenario in catalog.items():
        typer.echo(f"{key:<{width}}  {scenario.description}")
        typer.echo(f"{'':<{width}}  symptom: {scenario.symptom}")
    typer.echo("\nbench scenarios NAME shows one in full; bench run NAME runs it.")


def detail(scenario: Scenario) -> str:
    lines = [
        scenario.name,
        f"  {scenario.description}",
        f"  symptom: {scenario.symptom}",
        "",
        "defaults (a flag or its BENCH_* variable overrides each)",
    ]
    lines += _defaults(scenario)
    if scenario.app_env:
        lines += ["", "app settings (the catalog's app_env)"]
        lines += [f"  {key}={value}" for key, value in scenario.app_env.items()]
    lines += ["", "checks (bench run exits 1 when one fails)"]
    lines += [f"  {text}" for text in _checks(scenario)] or ["  none"]
    lines += ["", "files"] + _files(scenario)
    lines += ["", f"run it: bench run {scenario.name}"]
    return "\n".join(lines)


def _defaults(scenario: Scenario) -> list[str]:
    rows = []
    for key, value in scenario.defaults.items():
        spec = OPTIONS[key]
        unit = "s" if spec.kind == "duration" else ""  # --upstream-ms says its unit itself
        rows.append((f"{spec.flag} {value:g}{unit}", spec.env or ""))
    width = max(len(flag) for flag, _env in rows)
    return [f"  {flag:<{width}}  {env}".rstrip() for flag, env in rows]


def _checks(scenario: Scenario) -> list[str]:
    """Each check as the run's terminal and report label it (the registry's labels), its catalog text beside."""
    from bench.analysis.summary import Check
    from bench.render.report_tables import check_label

    labelled = []
    for text in scenario.checks:
        check = Check.parse(text)
        who = f"{check.app}/{check.other}" if check.other else check.app
        label = check_label(
            {"metric": check.metric, "app": who, "op": check.op, "threshold": check.threshold, "name": check.name}
        )
        labelled.append((label, check.name))
    width = max((len(label) for label, _name in labelled), default=0)
    return [f"{label:<{width}}  ({name})" if label != name else label for label, name in labelled]


def _files(scenario: Scenario) -> list[str]:
    """The locustfile, then each anti-pattern's marker in the bad app and its twin's in the good app, with what
    the marker says."""
    rows = [(_shown(scenario.locustfile), "the locustfile (plain Locust)", "")]
    rows += [(ref.where, f"{_MARKER[ref.app]}({name})", ref.text) for name, ref in _code(scenario)]
    width = max(len(where) for where, _marker, _text in rows)
    lines = []
    for where, marker, text in rows:
        lines.append(f"  {where:<{width}}  {marker}")
        lines += textwrap.wrap(text, 104, initial_indent=" " * 6, subsequent_indent=" " * 6)
    return lines


def _code(scenario: Scenario) -> list[tuple[str, CodeRef]]:
    """The anti-pattern and its twin in the target apps: the scenario's own markers, else (``mixed``) those of
    the routes its locustfile requests; each with its marker id."""
    from bench.render.story import patterns

    routes = _REQUEST_NAME.findall(scenario.locustfile.read_text(encoding="utf-8"))
    found = patterns(scenario.name, list(dict.fromkeys(routes)))
    return [(pattern.name, ref) for pattern in found for ref in pattern.code]


def _shown(path: Path) -> str:
    """A path as short as it can be read from here."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
