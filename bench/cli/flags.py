"""The commands' options, declared from bench.config.optiontable, and what the user gave, read back from click.

Every command module builds its typer options with ``option`` and hands ``given_from(ctx)`` to the resolvers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from bench.config.catalog import load_catalog
from bench.config.options import Given
from bench.config.optiontable import OPTIONS
from bench.errors import UsageError

# Where a value came from (click's ParameterSource, by name: typer vendors click and does not export the enum).
_GIVEN = ("COMMANDLINE", "ENVIRONMENT")


def option(name: str) -> Any:
    """The typer option for ``OPTIONS[name]``: its flag (and Locust's letter for it), its BENCH_* variable and
    its default, all in --help; the values it may take offered to the shell's completion."""
    spec = OPTIONS[name]
    if spec.kind == "switch":  # a flag only: --keep, no --no-keep (off is the default; the column is help's)
        return typer.Option(spec.flag, help=spec.help, metavar="")  # "" : takes no value (typer would show <bool>)
    flags = (spec.flag, spec.short) if spec.short else (spec.flag,)
    return typer.Option(
        *flags,
        envvar=spec.env,
        show_envvar=spec.env is not None,
        show_default=spec.default_text or False,
        metavar=spec.metavar,
        help=spec.help,
        autocompletion=complete_from(spec.choices) if spec.choices else None,
    )


def complete_from(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    """Shell completion over a fixed set of values (``--app good|bad|both``)."""

    def complete(incomplete: str) -> list[str]:
        return [choice for choice in choices if choice.startswith(incomplete)]

    return complete


def complete_scenario(incomplete: str) -> list[tuple[str, str]]:
    """Shell completion of a scenario name, with what it does; nothing when the catalog cannot be read."""
    try:
        catalog = load_catalog()
    except UsageError:
        return []
    return [(name, s.description) for name, s in catalog.items() if name.startswith(incomplete)]


def scenario_argument(help_text: str) -> Any:
    return typer.Argument(help=help_text, autocompletion=complete_scenario, show_default=False)


def given_from(ctx: typer.Context) -> dict[str, Given]:
    """What the user gave, by option name: click read the flag or else its BENCH_* variable (a flag wins), and
    says which, so an error names what the user wrote. Options left to the catalog or default are absent. A
    deprecated name is read as the option it names now, with a warning on stderr."""
    given: dict[str, Given] = {}
    sources: dict[str, str] = {}
    for param in ctx.command.params:
        name = param.name or ""
        source = ctx.get_parameter_source(name)
        value = ctx.params.get(name)
        if param.param_type_name != "option" or value is None or source is None or source.name not in _GIVEN:
            continue
        where = param.envvar if source.name == "ENVIRONMENT" else param.opts[0]
        key = name.rstrip("_")  # app_ is --app (app is the Typer object)
        given[key], sources[key] = Given(value, str(where)), source.name
    for old, spec in OPTIONS.items():
        if spec.alias_of and old in given:
            _fold_alias(given, sources, old, spec.alias_of)
    return given


def _fold_alias(given: dict[str, Given], sources: dict[str, str], old: str, new: str) -> None:
    """Read a deprecated name as ``new``: a flag beats a variable, and both flags on one command line clash."""
    was, now = given.pop(old), given.get(new)
    flag = OPTIONS[new].flag
    instead = flag if sources[old] == "COMMANDLINE" else OPTIONS[new].env or flag
    typer.echo(f"warning: {was.source} is deprecated and goes in the next release; use {instead}", err=True)
    if now is None:
        given[new] = was
    elif sources[old] == sources[new] == "COMMANDLINE":
        raise UsageError(f"{was.source} and {flag} are the same option; keep {flag}")
    elif sources[new] != "COMMANDLINE" and sources[old] == "COMMANDLINE":
        given[new] = was
