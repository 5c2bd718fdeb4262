"""``bench lint``'s contract: text, JSON and SARIF 2.1.0 output, exit codes (0 clean, 1 findings, 2 bad usage),
``# noqa: SB00N``, ``[tool.scopebench.lint]`` in pyproject.toml, and each rule's link to the README row of its
scenario with the cost that row measured.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench.errors import UsageError
from bench.lint import RULES, LintConfig, lint_command, lint_paths, load_config

ROOT = Path(__file__).resolve().parents[1]

LEAKY = """
from sqlalchemy.ext.asyncio import async_sessionmaker

SessionLocal = async_sessionmaker()


async def price(item_id: int) -> int:
    session = SessionLocal()
    return await session.scalar(item_id)


async def charge(client_call) -> None:
    async with SessionLocal() as session:
        await session.execute("select 1")
        await client_call()
"""


def _project(tmp_path: Path, source: str = LEAKY, pyproject: str | None = None) -> Path:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "routes.py").write_text(textwrap.dedent(source), encoding="utf-8")
    if pyproject is not None:
        (tmp_path / "pyproject.toml").write_text(textwrap.dedent(pyproject), encoding="utf-8")
    return tmp_path


def test_text_names_file_line_rule_and_the_readme_row(tmp_path: Path) -> None:
    text, code = lint_command([Path("app")], cwd=_project(tmp_path))
    assert code == 1
    first, second, summary = text.splitlines()
    assert first.startswith("app/routes.py:8:15: SB004 session `session` is created here without `async with`")
    assert second == f"    unclosed-session measured {RULES['SB004'].cost}: README.md#scenario-unclosed-session"
    assert summary == "1 finding in 2 files (SB004 ×1)"


def test_json_and_sarif_carry_the_same_findings(tmp_path: Path) -> None:
    root = _project(tmp_path)
    data = json.loads(lint_command([Path("app")], "json", cwd=root)[0])
    assert data["schema"] == "scopebench.lint/1" and data["files"] == 2
    assert [(f["rule"], f["path"], f["line"], f["col"]) for f in data["findings"]] == [
        ("SB004", "app/routes.py", 8, 15)
    ]
    assert data["findings"][0]["link"] == "README.md#scenario-unclosed-session"
    sarif = json.loads(lint_command([Path("app")], "sarif", cwd=root)[0])
    assert sarif["version"] == "2.1.0" and sarif["$schema"].endswith("sarif-2.1.0.json")
    run = sarif["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(RULES)
    assert all(r["shortDescription"]["text"] and r["help"]["text"] for r in rules)
    (result,) = run["results"]
    assert rules[result["ruleIndex"]]["id"] == result["ruleId"] == "SB004"
    region = result["locations"][0]["physicalLocation"]["region"]
    artifact = result["locations"][0]["physicalLocation"]["artifactLocation"]
    assert (artifact["uri"], region["startLine"], region["startColumn"]) == ("app/routes.py", 8, 15)
    assert "README.md#scenario-unclosed-session" in result["message"]["text"]


def test_noqa_suppresses_only_the_rule_it_names(tmp_path: Path) -> None:
    source = LEAKY.replace("session = SessionLocal()", "session = SessionLocal()  # noqa: SB001")
    root = _project(tmp_path, source)
    assert [f.rule for f in lint_paths([root / "app"], LintConfig(), root).findings] == ["SB004"]
    source = LEAKY.replace("session = SessionLocal()", "session = SessionLocal()  # noqa: SB004")
    (root / "app" / "routes.py").write_text(textwrap.dedent(source), encoding="utf-8")
    result = lint_paths([root / "app"], LintConfig(), root)
    assert result.findings == () and result.suppressed == 1


def test_pyproject_selects_rules_and_names_slow_calls(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        pyproject="""
        [tool.scopebench.lint]
        slow-calls = ["client_call"]
        ignore = ["SB004"]
    """,
    )
    text, code = lint_command([Path("app")], "json", cwd=root)
    assert [(f["rule"], f["line"]) for f in json.loads(text)["findings"]] == [("SB001", 15)]
    assert code == 1
    text, code = lint_command([Path("app")], "json", cwd=root, select=["SB004"])
    assert [f["rule"] for f in json.loads(text)["findings"]] == ["SB004"]


def test_per_file_ignores_and_exclude(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        pyproject="""
        [tool.scopebench.lint]
        exclude = ["app/generated/*"]
        [tool.scopebench.lint.per-file-ignores]
        "app/routes.py" = ["SB004"]
    """,
    )
    (root / "app" / "generated").mkdir()
    (root / "app" / "generated" / "copy.py").write_text(textwrap.dedent(LEAKY), encoding="utf-8")
    text, code = lint_command([Path("app")], cwd=root)
    assert (text, code) == ("no findings in 2 files", 0)


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ('selct = ["SB001"]', "unknown key 'selct'"),
        ('select = ["SB999"]', "no rule 'SB999'"),
        ('slow-calls = "charge"', "'slow-calls'"),
    ],
)
def test_a_mistake_in_the_table_is_a_usage_error_naming_it(tmp_path: Path, table: str, says: str) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.scopebench.lint]\n{table}\n", encoding="utf-8")
    with pytest.raises(UsageError, match=re.escape(says)):
        load_config(tmp_path / "pyproject.toml")


def test_each_rule_links_to_a_readme_row_that_states_its_cost() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for rule in RULES.values():
        anchor = rule.anchor.split("#", 1)[1]
        row = next((line for line in readme.splitlines() if f'id="{anchor}"' in line), None)
        assert row is not None, f"{rule.id}: no README row with id={anchor!r}"
        assert row.startswith("| ") and f"`{rule.scenario}`" in row
        assert rule.cost in row, f"{rule.id}: README row no longer says {rule.cost!r}"


def test_a_finding_covers_the_hold_sites_of_its_span(tmp_path: Path) -> None:
    result = lint_paths([ROOT / "target_apps" / "bad" / "websocket_loop.py"], LintConfig(), ROOT)
    (finding,) = result.findings
    assert finding.covers("target_apps/bad/websocket_loop.py", finding.line + 2)  # the receive inside the loop
    assert not finding.covers("target_apps/good/websocket_loop.py", finding.line + 2)
    assert not finding.covers("target_apps/bad/websocket_loop.py", finding.end_line + 1)


def _bench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", "lint", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_command_exits_1_on_findings_0_clean_2_on_bad_usage(tmp_path: Path) -> None:
    root = _project(tmp_path)
    found = _bench("app", cwd=root)
    assert found.returncode == 1 and "SB004" in found.stdout
    clean = _bench(str(ROOT / "target_apps" / "good"), "--format", "json", cwd=root)
    assert clean.returncode == 0 and json.loads(clean.stdout)["findings"] == []
    wrong = _bench("app", "--format", "xml", cwd=root)
    assert wrong.returncode == 2 and wrong.stderr.strip() == "error: --format must be text, json or sarif, got 'xml'"
    missing = _bench("nowhere", cwd=root)
    assert missing.returncode == 2 and "no such file or folder: nowhere" in missing.stderr
    assert "Traceback" not in wrong.stderr + missing.stderr
