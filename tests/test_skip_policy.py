"""The skip policy (tests/skip_policy.py) on a throwaway suite run by a real pytest: under CI=true an unlisted
skip fails, a listed one stays a skip; outside CI every skip stays a skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.skip_policy import ALLOWLIST, allowed_reasons

ROOT = Path(__file__).resolve().parents[1]
LISTED = "only root runs postgres as another user"
SUITE = f'''
import pytest
def test_listed(): pytest.skip({LISTED!r})
def test_unlisted(): pytest.skip("no frobnicator on this machine")
@pytest.mark.skipif(True, reason="no frobnicator on this machine")
def test_marked(): pass
@pytest.mark.xfail(reason="a known bug")
def test_expected_failure(): assert False
def test_plain(): pass
'''


def _pytest(folder: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (folder / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"} | ({"CI": ci} if ci is not None else {})
    return subprocess.run([sys.executable, "-m", "pytest", "-c", str(folder / "pytest.ini"), "--rootdir", str(folder),
                           "-p", "tests.skip_policy", "-p", "no:cacheprovider", "-p", "no:locust", "-rA", str(folder)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)


def _outcomes(output: str) -> dict[str, str]:
    """test name -> PASSED / FAILED / ERROR / SKIPPED / XFAIL, from -rA's short summary."""
    found = {}
    for line in output.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "FAILED", "ERROR", "XFAIL"):
            found[rest.split("::")[-1].split(" ")[0]] = word
        elif word == "SKIPPED":  # SKIPPED [1] path:line: reason
            found["listed" if LISTED in rest else f"skipped:{rest.rsplit(': ', 1)[-1]}"] = word
    return found


def test_the_allowlist_is_short_and_named_in_the_readme() -> None:
    assert LISTED in allowed_reasons() and len(allowed_reasons()) <= 3
    assert f"tests/{ALLOWLIST.name}" in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("ci", ["true", "TRUE"])
def test_under_ci_an_unlisted_skip_fails(tmp_path: Path, ci: str) -> None:
    (tmp_path / "test_suite.py").write_text(SUITE)
    result = _pytest(tmp_path, ci)
    outcomes = _outcomes(result.stdout)
    assert result.returncode == 1, result.stdout
    assert outcomes == {"test_plain": "PASSED", "listed": "SKIPPED", "test_expected_failure": "XFAIL",
                        "test_unlisted": "FAILED", "test_marked": "ERROR"}, result.stdout
    assert "'no frobnicator on this machine' is not on skip-allowlist.txt" in result.stdout


def test_under_ci_a_module_that_skips_whole_fails(tmp_path: Path) -> None:
    (tmp_path / "test_module.py").write_text('import pytest\npytest.importorskip("no_such_module_sb")\n'
                                             "def test_never(): pass\n")
    result = _pytest(tmp_path, "true")
    assert result.returncode != 0 and "ERROR" in result.stdout and "no_such_module_sb" in result.stdout
    assert "skipped under CI=true" in result.stdout


@pytest.mark.parametrize("ci", [None, "false"])
def test_outside_ci_a_skip_stays_a_skip(tmp_path: Path, ci: str | None) -> None:
    (tmp_path / "test_suite.py").write_text(SUITE)
    result = _pytest(tmp_path, ci)
    assert result.returncode == 0, result.stdout
    assert "1 passed, 3 skipped, 1 xfailed" in result.stdout
