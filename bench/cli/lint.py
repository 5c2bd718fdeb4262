"""``bench lint``: the static session-scoping rules (SB001-SB008) on a team's own source; the work is bench.lint's."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bench.cli.root import app


@app.command()
def lint(
    paths: Annotated[list[Path], typer.Argument(metavar="PATH...", help="Python files or folders to lint.")],
    fmt: Annotated[
        str, typer.Option("--format", help="text, json or sarif (SARIF 2.1.0, for GitHub code scanning).")
    ] = "text",
    config: Annotated[
        Path | None,
        typer.Option(
            help="A pyproject.toml with a tool.scopebench.lint table (default: the nearest one above the working folder)."
        ),
    ] = None,
    select: Annotated[
        list[str] | None,
        typer.Option("--select", help="Only these rules (SB001, or a prefix such as SB00). Repeatable."),
    ] = None,
    ignore: Annotated[list[str] | None, typer.Option("--ignore", help="Not these rules. Repeatable.")] = None,
    output: Annotated[Path | None, typer.Option(help="Write the report to this file instead of the terminal.")] = None,
) -> None:
    """Find session-scoping mistakes (rules SB001-SB008) in Python source; exit 1 on findings, 0 when clean.

    Each finding names the README row of the scenario that measures what the mistake costs.
    """
    from bench.lint import lint_command

    text, code = lint_command(paths, fmt, config, select or (), ignore or (), output)
    typer.echo(text)
    raise typer.Exit(code)
