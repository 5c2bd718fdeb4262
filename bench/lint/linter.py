"""``bench lint``'s run: find the files, walk each module with every rule, drop what config or ``# noqa`` turns off.

``bench.lint.lint_paths`` is the entry point; ``output`` prints its ``LintResult``.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from bench.errors import EXIT_GATE, EXIT_OK, UsageError
from bench.lint.closing import check_closes
from bench.lint.config import LintConfig
from bench.lint.finding import Finding
from bench.lint.flow import check_module
from bench.lint.helpers import Context
from bench.lint.project import Module, Project
from bench.lint.rules import RULES
from bench.lint.scoped import check_scoped

_SKIP = frozenset(
    {
        ".git",
        ".hg",
        ".venv",
        "venv",
        "__pycache__",
        "node_modules",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        "build",
        "dist",
        ".eggs",
        "site-packages",
    }
)
_NOQA = re.compile(r"#\s*noqa:\s*(?P<codes>[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*)", re.IGNORECASE)


@dataclass(frozen=True)
class LintResult:
    findings: tuple[Finding, ...]
    files: int
    skipped: tuple[str, ...]  # files that could not be read or parsed, with why
    suppressed: int  # findings turned off by a noqa comment on their line

    @property
    def exit_code(self) -> int:
        return EXIT_GATE if self.findings else EXIT_OK


def lint_paths(paths: Sequence[Path], config: LintConfig, cwd: Path | None = None) -> LintResult:
    """Lint the Python files at ``paths`` (files or folders, searched for ``*.py``)."""
    here = (cwd or Path.cwd()).resolve()
    project = Project(config, here)
    files = discover(paths, config, project)
    linted = {f.resolve() for f in files}
    found: dict[tuple[str, str, int, int], Finding] = {}
    suppressed: set[tuple[str, str, int, int]] = set()
    skipped: list[str] = []

    def emit(rule: str, module: Module, node: ast.AST, end_line: int, message: str) -> None:
        if module.path not in linted or not config.enabled(rule, module.shown):
            return
        finding = _finding(rule, module, node, end_line, message)
        key = (rule, finding.path, finding.line, finding.col)
        if key not in found:
            found[key] = finding
            if _suppressed(module, finding):
                suppressed.add(key)

    ctx = Context(project, emit)
    for path in files:
        relevant = project.relevant(path)
        module = project.load(path) if relevant else None
        if module is None:
            if relevant is not False:
                skipped.append(f"{project.shown(path)}: not readable as Python source")
            continue
        check_module(ctx, module)
        check_closes(module, partial(emit, "SB006", module))
        check_scoped(module, partial(emit, "SB007", module))
    kept = sorted((f for key, f in found.items() if key not in suppressed), key=lambda f: (f.path, f.line, f.col))
    return LintResult(tuple(kept), len(files), tuple(skipped), len(suppressed))


def discover(paths: Sequence[Path], config: LintConfig, project: Project) -> list[Path]:
    files: dict[Path, None] = {}
    for path in paths:
        if not path.exists():
            raise UsageError(f"no such file or folder: {project.shown(path)}")
        if path.is_file():
            files[path] = None
            continue
        for folder, subfolders, names in os.walk(path):
            subfolders[:] = sorted(d for d in subfolders if d not in _SKIP and not d.startswith("."))
            for name in sorted(names):
                found = Path(folder) / name
                if name.endswith(".py") and not (config.exclude and config.excluded(project.shown(found))):
                    files[found] = None
    return list(files)


def _finding(rule: str, module: Module, node: ast.AST, end_line: int, message: str) -> Finding:
    line = getattr(node, "lineno", 1)
    offset = getattr(node, "col_offset", 0)
    text = module.lines[line - 1] if 0 < line <= len(module.lines) else ""
    col = len(text.encode("utf-8")[:offset].decode("utf-8", errors="replace")) + 1  # the AST counts UTF-8 bytes
    info = RULES[rule]
    return Finding(
        rule=rule,
        path=module.shown,
        line=line,
        col=col,
        end_line=max(line, end_line),
        message=message,
        scenario=info.scenario,
        cost=info.cost,
        anchor=info.anchor,
    )


def _suppressed(module: Module, finding: Finding) -> bool:
    if not 0 < finding.line <= len(module.lines):
        return False
    match = _NOQA.search(module.lines[finding.line - 1])
    return match is not None and finding.rule in {c.strip().upper() for c in match.group("codes").split(",")}
