"""The README and the CLI cannot drift apart: every flag `bench X --help` shows is in the README's documentation
of X and every flag the README documents for X is in its --help, with the same variables; the commands block
names the commands there are; the default gates are the registry's, and every metric the README names is one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command

from bench.cli import app
from bench.config.gates import default_gates, merge_gates
from bench.config.optiontable import OPTIONS
from bench.results import metrics
from bench.results.metric import Scope

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BENCH = str(Path(sys.executable).with_name("bench"))
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z-]*|-[a-zA-Z](?![\w-]))")
CLI = get_command(app)
COMMANDS = sorted(CLI.commands)  # type: ignore[attr-defined]
ALIASES = {spec.flag: OPTIONS[spec.alias_of].flag for spec in OPTIONS.values() if spec.alias_of}


def section(heading: str) -> str:
    """From a heading to the next heading of the same or a higher level."""
    start = README.index(heading)
    level = len(heading) - len(heading.lstrip("#"))
    rest = README[start + len(heading) :]
    ends = [m.start() for m in re.finditer(rf"^#{{2,{level}}} ", rest, re.MULTILINE)]
    return rest[: ends[0]] if ends else rest


def table_after(anchor: str) -> list[list[str]]:
    """The first markdown table after ``anchor``: its body rows, cells split."""
    text = README[README.index(anchor) :]
    lines = text.split("\n| ", 1)[1].split("\n\n")[0].splitlines()
    rows = [("| " + lines[0]).strip(), *(line.strip() for line in lines[1:])]
    cells = [re.split(r"(?<!\\)\|", row)[1:-1] for row in rows if row.startswith("|")]
    return [[c.strip() for c in row] for row in cells[2:]]  # past the header and its |---| line


def documented(rows: list[list[str]]) -> dict[str, list[str]]:
    """Flag -> its row, for every flag in a table's first column."""
    return {flag: row for row in rows for flag in FLAG.findall(row[0])}


def cli_flags(command: str) -> dict[str, tuple[str, ...]]:
    """Every flag of ``bench COMMAND`` (long and short, not --help/-h or a switch's --no-x) -> its variables."""
    params = CLI.get_command(CLI.make_context("bench", [command]), command).params  # type: ignore[attr-defined]
    flags: dict[str, tuple[str, ...]] = {}
    for param in params:
        if param.param_type_name != "option" or param.name == "help" or getattr(param, "hidden", False):
            continue
        envvar = param.envvar or ()
        for flag in param.opts:
            flags[flag] = (envvar,) if isinstance(envvar, str) else tuple(envvar)
    return flags


def help_text(*command: str) -> str:
    done = subprocess.run(
        [BENCH, *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "COLUMNS": "400", "NO_COLOR": "1"},
    )
    return done.stdout


RUN_TABLE = documented(table_after("`bench run` options."))
AB_TABLE = documented(table_after("### Two versions in one job"))
CAPACITY_TABLE = documented(table_after("`bench capacity` options besides"))
CAPACITY_SHARED = FLAG.findall(README.split("`bench capacity` options besides")[1].split("itself:")[0])
COMPARE_LINES = [
    line for line in section("## Comparing runs and gating CI").splitlines() if line.startswith("bench compare")
]


def readme_flags(command: str) -> set[str]:
    """The flags the README documents for ``command``, where it documents them."""
    if command == "run":
        return set(RUN_TABLE)
    if command == "ab":  # its own table, and "every other bench run option applies to both versions alike"
        return set(AB_TABLE) | set(RUN_TABLE)
    if command == "capacity":
        return set(CAPACITY_TABLE) | set(CAPACITY_SHARED)
    if command == "compare":
        return {flag for line in COMPARE_LINES for flag in FLAG.findall(line)}
    if command == "lint":
        return set(FLAG.findall(section("## Lint")))
    return set()


@pytest.mark.parametrize("command", COMMANDS)
def test_every_flag_in_help_is_in_the_readme(command: str) -> None:
    text = help_text(command)
    flags = cli_flags(command)
    assert all(re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) for flag in flags), "not in --help"
    missing = {flag for flag in flags if flag not in ALIASES} - readme_flags(command)
    assert missing == set(), f"bench {command} --help shows flags the README does not document: {sorted(missing)}"
    for old, new in ALIASES.items():  # a deprecated name: said where its new name is documented
        if old in flags:
            assert new in readme_flags(command) and f"`{old}`" in RUN_TABLE[new][-1], old


@pytest.mark.parametrize("command", ["run", "ab", "capacity", "compare", "lint"])
def test_every_flag_the_readme_documents_is_in_help(command: str) -> None:
    own = {"run": RUN_TABLE, "ab": AB_TABLE, "capacity": CAPACITY_TABLE}.get(command)
    claimed = set(own) if own is not None else readme_flags(command)
    if command == "capacity":
        claimed |= set(CAPACITY_SHARED)
    unknown = claimed - set(cli_flags(command))
    assert unknown == set(), f"the README documents flags bench {command} does not have: {sorted(unknown)}"


@pytest.mark.parametrize(("command", "table"), [("run", RUN_TABLE), ("ab", AB_TABLE), ("capacity", CAPACITY_TABLE)])
def test_each_rows_variables_are_the_flags(command: str, table: dict[str, list[str]]) -> None:
    flags = cli_flags(command)
    for flag, row in table.items():
        variables = set(re.findall(r"`(BENCH_[A-Z_]+)`", row[1]))
        assert variables == set(flags[flag]), (command, flag, variables, flags[flag])
    for old, new in ALIASES.items():
        for variable in flags.get(old, ()):
            assert f"`{variable}`" in RUN_TABLE[new][-1], (old, variable)


def test_root_options_and_the_commands_block() -> None:
    text = help_text()
    for flag in ("--version", "--install-completion", "--show-completion", "-h"):
        assert flag in text and re.search(rf"[` ]{flag}[` ]", section("## Commands")), flag
    block = section("## Commands").split("```")[1]
    listed = re.findall(r"^bench (\w+)", block, re.MULTILINE)
    assert sorted(listed) == COMMANDS


def test_the_default_gates_are_the_ones_in_force() -> None:
    """Each default gate is listed, and no relative gate is listed that is not one (an old threshold, say);
    absolute bounds there are examples of --fail-on."""
    passage = README.split("Default gates (")[1].split("\n\nA relative gate")[0]
    written = set(re.findall(r"`([a-z_][\w.<>]*:(?:[+-]\d+%|[<>]=?\d+))`", passage))
    defaults = {gate.text for gate in default_gates()}
    assert defaults - written == set(), "the README does not list these default gates"
    assert {g for g in written if g.endswith("%")} - defaults == set(), "the README lists gates that are not defaults"


def test_every_gate_the_readme_writes_names_a_figure() -> None:
    gates = set(re.findall(r"`([a-z_][\w.]*:(?:[+-]\d+%|[<>]=?\d+))`", README))
    gates |= {m.group(1) for m in re.finditer(r"--fail-on '?([a-z_][\w. /{}]*:(?:[+-]\d+%|[<>]=?\d+))", README)}
    assert len(gates) >= 15
    for gate in sorted(gates):
        merge_gates([gate])  # a UsageError names the metric no figure of the summary has


def test_every_metric_the_readme_names_is_in_the_registry() -> None:
    paths = [m.path.replace("[]", "").split(".") for m in metrics.REGISTRY if m.scope is Scope.APP]
    roots = {parts[0] for parts in paths}
    # Not figures: file names, and OpenTelemetry's attribute and metric names (db.client.connection.*).
    named = {
        token
        for token in re.findall(r"`([a-z_]+(?:\.[a-z_0-9]+)+)`", README)
        if token.split(".")[0] in roots
        and not token.startswith("db.client.")
        and token.rsplit(".", 1)[1] not in ("csv", "json", "jsonl", "md", "html", "txt", "log", "xml")
    }
    assert len(named) >= 5

    def known(token: str) -> bool:
        parts = token.split(".")
        prefix = any(len(p) >= len(parts) and all(a == b or a.startswith("<") for a, b in zip(p, parts)) for p in paths)
        return metrics.find(token) is not None or prefix

    assert sorted(t for t in named if not known(t)) == []


def test_the_check_can_fail() -> None:
    """A flag the README lacks, or one it documents that the CLI lacks, is found."""
    assert "--nope" not in readme_flags("run") and "--users" in readme_flags("run")
    assert {"-u", "-r", "-t", "-H"} <= set(RUN_TABLE) and "--processes" in RUN_TABLE
    assert "--no-such-flag" not in cli_flags("run") and "--processes" in cli_flags("run")
