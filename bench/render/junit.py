"""JUnit XML, which CI systems list as test cases: bench compare's gates and bench run's checks (--slo among them).

``suite`` writes the document; ``checks_junit`` makes one case of each check in a run's summary.json.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from bench.render.report_tables import check_figures, check_label, check_value


def case(classname: str, name: str, failure: str | None = None, skipped: str | None = None) -> str:
    """One test case: passed, failed with a message, or skipped with the reason."""
    head = f'    <testcase classname="{escape(classname)}" name={quoteattr(name)}'
    if skipped is not None:
        return f"{head}><skipped message={quoteattr(skipped)}/></testcase>"
    if failure is not None:
        return f"{head}><failure message={quoteattr(failure)}/></testcase>"
    return f"{head}/>"


def suite(name: str, cases: Sequence[str], failures: int, skipped: int = 0) -> str:
    return "\n".join(
        [
            '<?xml version="1.0" encoding="UTF-8"?>',
            (
                f'<testsuites><testsuite name="{escape(name)}" tests="{len(cases)}" failures="{failures}" '
                f'skipped="{skipped}">'
            ),
            *cases,
            "</testsuite></testsuites>",
        ]
    )


def checks_junit(summary: dict[str, Any]) -> str:
    """A run's checks as test cases named as the terminal names them; a failure says the value measured. A run
    that did not complete judged nothing: one failed case says why, so CI does not read it as a pass."""
    scenario = str(summary.get("scenario", "?"))
    classname = f"scopebench.{scenario}"
    checks = [c for c in summary.get("checks") or [] if isinstance(c, dict)]
    apps = summary.get("apps") or {}
    cases = [case(classname, check_label(c),
                  None if c.get("passed") else f"measured {check_value(c)}{check_figures(c, apps)}") for c in checks]
    failures = sum(not c.get("passed") for c in checks)
    if summary.get("status") != "completed":
        cases.append(case(classname, "run completed", f"run {summary.get('status')}: {summary.get('error')}"))
        failures += 1
    return suite(f"scopebench run {scenario}", cases, failures)
