"""The commands that read result folders: ``bench report`` (any folder the harness writes) and ``bench compare``.

Both only read what a run left behind; neither starts a database, an app or Locust.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bench.cli.flags import complete_from
from bench.cli.root import app
from bench.errors import UsageError
from bench.results.layout import CAPACITY_JSON, RUN_JSON, SUMMARY_JSON

FORMATS = ("text", "md", "json")
_KINDS = "a folder written by bench run, bench ab or bench capacity"
_FAIL_ON = "Gate METRIC:+N% / METRIC:-N% / METRIC:>N; replaces that metric's default. Repeatable."


@app.command()
def report(
    folder: Annotated[
        Path,
        typer.Argument(
            metavar="FOLDER", help=f"{_KINDS[0].upper()}{_KINDS[1:]}, or its summary.json, capacity.json or ab.json."
        ),
    ],
) -> None:
    """Re-render the reports of a run, bench ab or bench capacity folder.

    A run folder: report.md and report.html. A bench ab folder: those of a/ and b/. A capacity folder: capacity.md
    and capacity.html.
    """
    for written in rerender(result_folder(folder)):
        typer.echo(f"wrote {written[0]} and {written[1]}")


def result_folder(path: Path) -> Path:
    """The folder a path names: itself, or the folder of one of its result files."""
    from bench.run.ab import AB_JSON

    if path.is_file():
        if path.name in (SUMMARY_JSON, RUN_JSON, CAPACITY_JSON, AB_JSON):
            return path.parent
        raise UsageError(f"{path} is a file; pass {_KINDS} (or its summary.json)")
    if not path.exists():
        raise UsageError(f"{path} does not exist; pass {_KINDS}")
    return path


def rerender(folder: Path) -> list[tuple[Path, Path]]:
    """Write the folder's reports again from its result files; the paths written, in pairs (markdown, HTML)."""
    from bench.render.run_report import render_report
    from bench.run.ab import AB_JSON, SIDES

    if (folder / CAPACITY_JSON).is_file():
        from bench.render.capacity_report import render_report as render_capacity
        from bench.results.summaryfile import read_object

        data = read_object(folder / CAPACITY_JSON, "re-run bench capacity to write it again")
        return [render_capacity(folder, data)]
    sides = [folder / side for side in SIDES if (folder / side / SUMMARY_JSON).is_file()]
    if not (folder / SUMMARY_JSON).exists() and ((folder / AB_JSON).is_file() or sides):
        if not sides:
            raise UsageError(
                f"bench ab folder {folder} has no finished side (a/ or b/ with a summary.json); re-run bench ab"
            )
        return [render_report(side) for side in sides]
    if not (folder / SUMMARY_JSON).exists() and not (folder / RUN_JSON).exists():
        runs = sorted(p.parent for p in folder.glob(f"*/{SUMMARY_JSON}"))
        hint = f"it holds run folders: pass one, e.g. bench report {runs[-1]}" if runs else f"pass {_KINDS}"
        raise UsageError(f"{folder} holds no {SUMMARY_JSON}, {CAPACITY_JSON} or {AB_JSON}; {hint}")
    return [render_report(folder)]


@app.command()
def compare(
    base: Annotated[Path, typer.Argument(metavar="BASE", help="Baseline run folder or summary.json.")],
    current: Annotated[Path, typer.Argument(metavar="CURRENT", help="Current run folder or summary.json.")],
    fail_on: Annotated[list[str] | None, typer.Option("--fail-on", help=_FAIL_ON)] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="text|md|json",
            autocompletion=complete_from(FORMATS),
            help="text, md (for $GITHUB_STEP_SUMMARY) or json.",
        ),
    ] = "text",
    junit: Annotated[Path | None, typer.Option(help="Also write the gates as JUnit XML test cases here.")] = None,
    base_app: Annotated[str | None, typer.Option(help="App of BASE to compare (default: every app both ran).")] = None,
    current_app: Annotated[str | None, typer.Option(help="App of CURRENT to compare.")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="List unchanged metrics too.")] = False,
) -> None:
    """Compare two runs metric by metric; exit 1 when a gate fails."""
    from bench.analysis.compare import compare as compare_runs
    from bench.analysis.compare import load_side
    from bench.config.gates import merge_gates
    from bench.render.compare_render import render_json, render_junit, render_markdown, render_text

    renderers = {"text": lambda r: render_text(r, show_all), "md": render_markdown, "json": render_json}
    if fmt not in renderers:
        raise UsageError(f"--format must be text, md or json, got {fmt!r}")
    gates = merge_gates(fail_on or [])
    result = compare_runs(load_side(base), load_side(current), gates, base_app, current_app)
    typer.echo(renderers[fmt](result))
    if junit is not None:
        from bench.results.folder import write_text

        write_text(junit, render_junit(result))
    raise typer.Exit(result.exit_code)
