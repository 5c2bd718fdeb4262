"""Lint findings set against a run's hold sites: summary.json's ``lint`` per app, which ``summary`` builds and the
terminal and report print.

``bench lint`` runs over the app's source files the hold sites name (site and checkout line), so a run says which
findings cost connection time under load (confirmed), which the scenario never exercised, and which long holds no
rule found (found only under load).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bench.errors import UsageError
from bench.lint import Finding, LintConfig, find_pyproject, lint_paths, load_config

# Where a hold site's path (relative to the sys.path entry it was imported from) is looked for: the folder bench
# runs in (a --serve app's own), then the repository's (the paired apps).
REPO = Path(__file__).resolve().parents[2]
# A row that idled less than this is no culprit (the terminal's floor, bench compare's for connection-seconds): a
# correct app's hold stretched past the threshold by a busy CPU neither confirms a finding nor is one lint missed.
CULPRIT_IDLE_S = 0.5


def lint_section(sites: list[dict[str, Any]] | None, roots: Sequence[Path] | None = None) -> dict[str, Any] | None:
    """``confirmed``, ``not_exercised`` and ``load_only`` for one app's ``pool.hold_sites``; None when the app
    served no hold sites or none of their files is found here (nothing to lint)."""
    if not isinstance(sites, list):
        return None
    rows = [row for row in sites if isinstance(row, dict)]
    files = _files(rows, tuple(roots) if roots is not None else (Path.cwd(), REPO))
    if not files:
        return None
    root, paths = files
    settings = _settings(root)
    findings = lint_paths([root / p for p in paths], settings, root).findings
    return match(findings, [row for row in rows if culprit(row)], paths, blocks(root, findings))


def match(
    findings: Iterable[Finding],
    culprits: list[dict[str, Any]],
    linted: Sequence[str],
    blocks: dict[tuple[str, int], tuple[int, int]] | None = None,
) -> dict[str, Any]:
    """Each finding with the culprit rows whose holding or checkout line its span covers; then each row still
    unmatched with a finding whose enclosing block holds its line (``blocks``: a finding's ``(path, line)`` to the
    lines of the innermost block around it). The runtime places some holds away from the finding's own line: a
    scoped session's at the middleware's await, inside the ``try`` whose ``finally`` lacks the ``remove()``."""
    found = list(findings)
    hits: list[list[int]] = [[i for i, row in enumerate(culprits) if _covers(f, row)] for f in found]
    how = ["line" if h else "" for h in hits]
    used = {i for h in hits for i in h}
    for n, finding in enumerate(found):
        block = (blocks or {}).get((finding.path, finding.line))
        more = [i for i, row in enumerate(culprits) if i not in used and block and _in_block(finding, row, block)]
        if more and not hits[n]:
            how[n] = "block"
        hits[n] += more
    used = {i for h in hits for i in h}
    confirmed = [_confirmed(f, [culprits[i] for i in h], m) for f, h, m in zip(found, hits, how, strict=True) if h]
    load_only = [
        {key: str(row.get(key) or "") for key in ("site", "function", "code", "route")}
        for i, row in enumerate(culprits)
        if i not in used
    ]
    return {
        "linted": list(linted),
        "confirmed": confirmed,
        "not_exercised": [_finding(f) for f, h in zip(found, hits, strict=True) if not h],
        "load_only": load_only,
    }


def _confirmed(finding: Finding, rows: list[dict[str, Any]], how: str) -> dict[str, Any]:
    return {
        **_finding(finding),
        "matched_by": how,  # "line": a row's line is in the finding's span; "block": in its enclosing block
        "sites": [str(row.get("site")) for row in rows],
        "holds": sum(int(row.get("holds") or 0) for row in rows),
        "held_s": round(sum(float(row.get("held_s") or 0) for row in rows), 3),
        "idle_s": round(sum(float(row.get("idle_s") or 0) for row in rows), 3),
    }


def culprit(row: dict[str, Any]) -> bool:
    """A row that cost the pool: idle in transaction past the floor, or a connection left out, reclaimed or lost."""
    return float(row.get("idle_s") or 0) >= CULPRIT_IDLE_S or any(row.get(k) for k in ("open", "reclaimed", "lost"))


def _covers(finding: Finding, row: dict[str, Any]) -> bool:
    return any(finding.covers(path, line) for path, line in _lines(row))


def _in_block(finding: Finding, row: dict[str, Any], block: tuple[int, int]) -> bool:
    """Whether the row's holding or checkout line is in the block: ``covers`` of the block's first line (same
    file) with the block's lines as the span."""
    first, last = block
    return any(finding.covers(path, finding.line) and first <= line <= last for path, line in _lines(row))


def _lines(row: dict[str, Any]) -> list[tuple[str, int]]:
    out = []
    for key in ("site", "checkout_site"):
        path, _, line = str(row.get(key) or "").rpartition(":")
        if path and line.isdigit():
            out.append((path, int(line)))
    return out


_BLOCKS = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.Try,
    ast.TryStar,
    ast.With,
    ast.AsyncWith,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.If,
)


def blocks(root: Path, findings: Iterable[Finding]) -> dict[tuple[str, int], tuple[int, int]]:
    """For each finding, the first and last line of the innermost block statement around its line (one parse per
    file; a file that no longer parses gives none)."""
    out: dict[tuple[str, int], tuple[int, int]] = {}
    trees: dict[str, list[ast.stmt]] = {}
    for finding in findings:
        if finding.path not in trees:
            try:
                tree = ast.parse((root / finding.path).read_text(encoding="utf-8"))
            except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
                tree = ast.Module(body=[], type_ignores=[])
            trees[finding.path] = [n for n in ast.walk(tree) if isinstance(n, _BLOCKS)]
        around = [
            (n.lineno, n.end_lineno or n.lineno)
            for n in trees[finding.path]
            if n.lineno <= finding.line <= (n.end_lineno or n.lineno)
        ]
        if around:
            out[(finding.path, finding.line)] = max(
                around, key=lambda span: (span[0], -span[1])
            )  # innermost: latest start, earliest end
    return out


def _finding(finding: Finding) -> dict[str, Any]:
    return {"rule": finding.rule, "where": finding.where, "message": finding.message, "link": finding.anchor}


def _files(rows: list[dict[str, Any]], roots: tuple[Path, ...]) -> tuple[Path, list[str]] | None:
    """The first root under which any of the rows' files exists, and those files (relative, in first-seen order)."""
    named = list(
        dict.fromkeys(
            path
            for row in rows
            for key in ("site", "checkout_site")
            if (path := str(row.get(key) or "").rpartition(":")[0]).endswith(".py")
        )
    )
    for root in roots:
        found = [p for p in named if (root / p).is_file()]
        if found:
            return root, found
    return None


def _settings(root: Path) -> LintConfig:
    """The project's ``[tool.scopebench.lint]`` when it has one; the defaults when it cannot be read (a summary
    never fails over the lint's settings)."""
    try:
        return load_config(find_pyproject(root))
    except UsageError:  # a bad table is bench lint's error to report, not the run's
        return LintConfig()
