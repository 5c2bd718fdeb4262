"""Under CI=true a skipped test is a failure, unless its reason is on tests/skip-allowlist.txt.

tests/conftest.py imports these hooks; tests/test_skip_policy.py runs them on a throwaway suite.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

ALLOWLIST = Path(__file__).with_name("skip-allowlist.txt")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def allowed_reasons(path: Path = ALLOWLIST) -> frozenset[str]:
    """The allow-list's reasons: one a line, blank lines and # comments ignored."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))


def skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    """What the skip said: pytest keeps it as (file, line, "Skipped: <reason>")."""
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return str(text).removeprefix("Skipped: ").strip()


def _fail_unlisted_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
    if not (in_ci() and report.skipped) or hasattr(report, "wasxfail"):  # an expected failure is no skip
        return
    reason = skip_reason(report)
    if reason in allowed_reasons():
        return
    report.outcome = "failed"
    report.longrepr = (f"skipped under CI=true: {reason!r} is not on {ALLOWLIST.name}; "
                       "install what the test needs in .ci/run, or list the reason there")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, None]:
    outcome = yield
    _fail_unlisted_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, None]:
    outcome = yield  # a module that skips as a whole (importorskip at import time, allow_module_level)
    _fail_unlisted_skip(outcome.get_result())
