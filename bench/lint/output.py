"""``bench lint``'s three outputs: text for a terminal, JSON for scripts, SARIF 2.1.0 for GitHub code scanning.

``command`` picks one; each renders a ``LintResult`` whole.
"""

from __future__ import annotations

import json
from collections import Counter
from importlib import metadata
from typing import Any

from bench.lint.linter import LintResult
from bench.lint.rules import RULES

SCHEMA = "scopebench.lint/1"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def render_text(result: LintResult) -> str:
    lines = []
    for f in result.findings:
        lines.append(f"{f.path}:{f.line}:{f.col}: {f.rule} {f.message}")
        lines.append(f"    {f.scenario} measured {f.cost}: {f.anchor}")
    lines += [f"skipped {why}" for why in result.skipped]
    counts = Counter(f.rule for f in result.findings)
    by_rule = ", ".join(f"{rule} ×{n}" for rule, n in sorted(counts.items()))
    files = f"{result.files} file{'s' if result.files != 1 else ''}"
    noqa = f"; {result.suppressed} suppressed by # noqa" if result.suppressed else ""
    if result.findings:
        lines.append(
            f"{len(result.findings)} finding{'s' if len(result.findings) != 1 else ''} in {files} ({by_rule}){noqa}"
        )
    else:
        lines.append(f"no findings in {files}{noqa}")
    return "\n".join(lines)


def render_json(result: LintResult) -> str:
    data = {
        "schema": SCHEMA,
        "files": result.files,
        "suppressed": result.suppressed,
        "skipped": list(result.skipped),
        "findings": [
            {
                "rule": f.rule,
                "path": f.path,
                "line": f.line,
                "col": f.col,
                "end_line": f.end_line,
                "message": f.message,
                "scenario": f.scenario,
                "cost": f.cost,
                "link": f.anchor,
            }
            for f in result.findings
        ],
    }
    return json.dumps(data, indent=2, ensure_ascii=False)


def render_sarif(result: LintResult) -> str:
    order = list(RULES)
    run: dict[str, Any] = {
        "tool": {"driver": {"name": "scopebench-lint", "version": _version(), "rules": [_rule(r) for r in order]}},
        "columnKind": "unicodeCodePoints",
        "results": [
            {
                "ruleId": f.rule,
                "ruleIndex": order.index(f.rule),
                "level": "error",
                "message": {"text": f"{f.message} ({f.scenario} measured {f.cost}: {f.anchor})"},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": f.path, "uriBaseId": "%SRCROOT%"},
                            "region": {"startLine": f.line, "startColumn": f.col, "endLine": f.end_line},
                        }
                    }
                ],
            }
            for f in result.findings
        ],
    }
    return json.dumps({"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}, indent=2, ensure_ascii=False)


def _rule(rule_id: str) -> dict[str, Any]:
    rule = RULES[rule_id]
    help_text = f"What it costs, measured by the {rule.scenario} scenario (good → bad): {rule.cost}. See {rule.anchor}."
    return {
        "id": rule.id,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": f"{rule.summary} ({rule.scenario})"},
        "help": {"text": help_text, "markdown": f"{rule.summary}.\n\n{help_text}"},
        "defaultConfiguration": {"level": "error"},
        "properties": {"scenario": rule.scenario, "cost": rule.cost, "tags": ["database", "sqlalchemy", "async"]},
    }


def _version() -> str:
    try:
        return metadata.version("scopebench")
    except metadata.PackageNotFoundError:
        return "0"
