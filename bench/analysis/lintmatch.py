"""Lint findings set against a run's hold sites: summary.json's ``lint`` per app, which ``summary`` builds and the
terminal and report print.

``bench lint`` runs over the app's source files the hold sites name (site and checkout line), so a run says which
findings cost connection time under load (confirmed), which the scenario never exercised, and which long holds no
rule found (found only under load).
"""

from __future__ import annotations

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
    return match(findings, [row for row in rows if culprit(row)], paths)


def match(findings: Iterable[Finding], culprits: list[dict[str, Any]], linted: Sequence[str]) -> dict[str, Any]:
    """Each finding with the culprit rows whose holding or checkout line it covers; rows no finding covers."""
    confirmed: list[dict[str, Any]] = []
    not_exercised: list[dict[str, Any]] = []
    used: set[int] = set()
    for finding in findings:
        hits = [i for i, row in enumerate(culprits) if _covers(finding, row)]
        used.update(hits)
        if not hits:
            not_exercised.append(_finding(finding))
            continue
        rows = [culprits[i] for i in hits]
        confirmed.append(
            {
                **_finding(finding),
                "sites": [str(row.get("site")) for row in rows],
                "holds": sum(int(row.get("holds") or 0) for row in rows),
                "held_s": round(sum(float(row.get("held_s") or 0) for row in rows), 3),
                "idle_s": round(sum(float(row.get("idle_s") or 0) for row in rows), 3),
            }
        )
    load_only = [
        {key: str(row.get(key) or "") for key in ("site", "function", "code", "route")}
        for i, row in enumerate(culprits)
        if i not in used
    ]
    return {"linted": list(linted), "confirmed": confirmed, "not_exercised": not_exercised, "load_only": load_only}


def culprit(row: dict[str, Any]) -> bool:
    """A row that cost the pool: idle in transaction past the floor, or a connection left out, reclaimed or lost."""
    return float(row.get("idle_s") or 0) >= CULPRIT_IDLE_S or any(row.get(k) for k in ("open", "reclaimed", "lost"))


def _covers(finding: Finding, row: dict[str, Any]) -> bool:
    for key in ("site", "checkout_site"):
        path, _, line = str(row.get(key) or "").rpartition(":")
        if path and line.isdigit() and finding.covers(path, int(line)):
            return True
    return False


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
