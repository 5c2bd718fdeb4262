"""The ``bench`` group itself: ``--version``, ``-h``, shell completion, and ``main``, which turns every outcome
into one exit code and at most one line on stderr.

bench.cli registers the commands on ``app``; pyproject's console script calls ``main``.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from bench.cli.streams import guard_streams
from bench.db.server import redact
from bench.errors import EXIT_INFRA, EXIT_USAGE, BenchError, Interrupted

app = typer.Typer(
    help="Show, measure and gate what wrong database-session scoping costs an async Python service.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(wanted: bool) -> None:
    if wanted:
        try:
            number = version("scopebench")
        except PackageNotFoundError:  # a source tree on sys.path without an install
            number = "unknown (not installed)"
        typer.echo(f"bench (scopebench) {number}")
        raise typer.Exit(0)


@app.callback()
def root(
    show_version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Show, measure and gate what wrong database-session scoping costs an async Python service."""


def main() -> None:
    guard_streams()
    try:
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except BenchError as err:
        typer.echo(f"error: {redact(str(err))}", err=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(Interrupted.exit_code)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except Exception as err:  # noqa: BLE001 - last resort: one line, never a traceback
        sys.exit(_click_error(err))


def _click_error(err: Exception) -> int:
    """click's own errors (typer vendors click, so they are matched by shape): a usage error is one line that
    names the command's help; bare ``bench`` prints the help. Anything else is a harness failure (exit 3)."""
    code, show = getattr(err, "exit_code", None), getattr(err, "show", None)
    if code is None or not callable(show):
        typer.echo(f"error: internal failure: {type(err).__name__}: {redact(str(err))}", err=True)
        return EXIT_INFRA
    ctx, message = getattr(err, "ctx", None), getattr(err, "format_message", None)
    if type(err).__name__ == "NoArgsIsHelpError" or ctx is None or not callable(message):
        show()
        return int(code)
    typer.echo(f"error: {redact(str(message()))}; see: {ctx.command_path} --help", err=True)
    return EXIT_USAGE
