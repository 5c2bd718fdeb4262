"""The ``bench lint`` command's work, apart from its parsing: settings, the run, the chosen output, the exit code.

``bench.cli.lint`` calls ``lint_command`` and prints what it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench.errors import UsageError
from bench.lint.config import find_pyproject, load_config, parse_rule_ids
from bench.lint.linter import lint_paths
from bench.lint.output import render_json, render_sarif, render_text

FORMATS = {"text": render_text, "json": render_json, "sarif": render_sarif}


def lint_command(
    paths: Sequence[Path],
    fmt: str = "text",
    config: Path | None = None,
    select: Sequence[str] = (),
    ignore: Sequence[str] = (),
    output: Path | None = None,
    cwd: Path | None = None,
) -> tuple[str, int]:
    """What to print and the exit code: 0 clean, 1 findings (usage errors raise ``UsageError``, exit 2)."""
    render = FORMATS.get(fmt)
    if render is None:
        raise UsageError(f"--format must be text, json or sarif, got {fmt!r}")
    if not paths:
        raise UsageError("bench lint needs at least one file or folder, e.g. bench lint app/")
    here = cwd or Path.cwd()
    settings = load_config(config if config is not None else find_pyproject(here))
    if select:
        settings = replace(settings, select=frozenset(parse_rule_ids(list(select), "--select")))
    if ignore:
        settings = replace(settings, select=settings.select - set(parse_rule_ids(list(ignore), "--ignore")))
    result = lint_paths([p if p.is_absolute() else here / p for p in paths], settings, here)
    text = render(result)
    if output is not None:
        try:
            output.write_text(text + "\n", encoding="utf-8")
        except OSError as err:
            raise UsageError(f"cannot write {output}: {err.strerror}; choose a writable --output") from None
        text = f"wrote {output} ({len(result.findings)} findings)"
    return text, result.exit_code
