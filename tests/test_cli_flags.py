"""The command line as a user meets it, through the installed `bench` executable: --version, -h, Locust's short
flags, choices offered by shell completion, time flags with units, --processes and its deprecated name, click's
own usage errors in one line, and `bench scenarios [NAME]`. Nothing here starts a database or a load."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from bench.config.catalog import load_catalog
from bench.config.optiontable import OPTIONS

BENCH = str(Path(sys.executable).with_name("bench"))
ROOT = Path(__file__).resolve().parents[1]


def bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BENCH, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})},
    )


def complete(words: str) -> list[str]:
    """What bash completion offers after ``words`` (typer's completion protocol, as the installed script uses it)."""
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    done = bench(env={"_BENCH_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)})
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def _blocked_out(tmp_path: Path) -> str:
    """An --out that cannot be a folder: a command that reaches it has accepted every flag before it."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    return str(blocker / "run")


def test_version_is_the_installed_distributions() -> None:
    result = bench("--version")
    assert result.returncode == 0 and result.stdout == f"bench (scopebench) {version('scopebench')}\n"


@pytest.mark.parametrize("command", [[], ["run"], ["ab"], ["capacity"], ["report"], ["compare"], ["scenarios"]])
def test_dash_h_is_help(command: list[str]) -> None:
    short, long = bench(*command, "-h"), bench(*command, "--help")
    assert short.returncode == long.returncode == 0
    assert short.stdout == long.stdout and "Usage: bench" in short.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "long-session", "-u", "0"], "error: --users must be at least 1, got '0'"),
        (["run", "long-session", "-r", "0"], "error: --spawn-rate must be at least 0.01, got '0'"),
        (["run", "long-session", "-t", "soon"], "error: --duration 'soon' is not a duration"),
        (["run", "long-session", "-H", "ftp://x", "--dsn", "postgresql://u@h/db"], "error: --target 'ftp://x' is not"),
        (["ab", "long-session", "-u", "0"], "error: --users must be at least 1, got '0'"),
        (["ab", "long-session", "-t", "7h"], "error: --duration is capped at 6h"),
        (["capacity", "long-session", "-u", "5:1:1"], "error: --users '5:1:1': write START:STOP:STEP"),
    ],
)
def test_short_flags_are_the_long_ones(args: list[str], message: str) -> None:
    result = bench(*args)
    assert result.returncode == 2 and result.stderr.startswith(message), result.stderr


def test_short_flags_are_listed_in_help() -> None:
    text = bench("run", "--help").stdout
    for short, flag in (("-u", "--users"), ("-r", "--spawn-rate"), ("-t", "--duration"), ("-H", "--target")):
        assert re.search(rf"{flag}\s+{short}\b", text), (flag, short)


def test_time_flags_take_units(tmp_path: Path) -> None:
    """Each reaches the --out check (exit 2 naming the folder) only once every flag before it was read."""
    out = _blocked_out(tmp_path)
    run = bench(
        "run",
        "long-session",
        "--idle-threshold",
        "50ms",
        "--upstream-ms",
        "0.1s",
        "--pool-timeout",
        "500ms",
        "--cooldown",
        "50ms",
        "--idle-tx-timeout",
        "1s",
        "-t",
        "1m",
        "--out",
        out,
    )
    assert run.returncode == 2 and "cannot write the run folder" in run.stderr, run.stderr
    sweep = bench(
        "capacity",
        "long-session",
        "--step",
        "2500ms",
        "--settle",
        "0.5s",
        "--drain",
        "1s",
        "--idle-threshold",
        "0.05s",
        "--pool-timeout",
        "2s",
        "--out",
        out,
    )
    assert sweep.returncode == 2 and "cannot write the run folder" in sweep.stderr, sweep.stderr
    wrong = bench("run", "long-session", "--idle-threshold", "5x")
    assert wrong.returncode == 2
    assert wrong.stderr == "error: --idle-threshold '5x' is not a duration; use e.g. 50ms, 0.1s or plain milliseconds\n"


def test_every_time_option_is_a_duration() -> None:
    """No time option is a bare number any more: the table says so, and the resolver reads units for each."""
    from bench.config.catalog import get_scenario
    from bench.config.options import resolve_config

    timed = {name for name, o in OPTIONS.items() if o.kind in ("duration", "ms")}
    assert timed >= {
        "duration_s",
        "cooldown_s",
        "pool_timeout_s",
        "upstream_latency_ms",
        "idle_threshold_ms",
        "idle_tx_timeout_s",
        "ready_timeout_s",
    }
    assert all(o.kind != "float" or o.flag in ("--spawn-rate",) for o in OPTIONS.values())
    config = resolve_config(
        get_scenario("long-session"),
        {"idle_threshold_ms": "0.08s", "upstream_latency_ms": "150", "pool_timeout_s": "1500ms", "cooldown_s": "1m"},
    )
    assert (config.idle_threshold_ms, config.upstream_latency_ms, config.pool_timeout_s, config.cooldown_s) == (
        80.0,
        150.0,
        1.5,
        60.0,
    )


def test_processes_is_locusts_name_and_workers_a_deprecated_alias() -> None:
    new = bench("run", "long-session", "--processes", "999")
    assert new.returncode == 2 and new.stderr == (
        "error: --processes is capped at 64; more processes only compete for this machine's cores\n"
    )
    old = bench("run", "long-session", "--workers", "999")
    assert old.returncode == 2 and old.stderr.splitlines() == [
        "warning: --workers is deprecated and goes in the next release; use --processes",
        "error: --workers is capped at 64; more processes only compete for this machine's cores",
    ]
    env = bench("capacity", "long-session", env={"BENCH_WORKERS": "999"})
    assert env.returncode == 2 and env.stderr.splitlines() == [
        "warning: BENCH_WORKERS is deprecated and goes in the next release; use BENCH_PROCESSES",
        "error: BENCH_WORKERS is capped at 64; more processes only compete for this machine's cores",
    ]
    both = bench("ab", "long-session", "--workers", "1", "--processes", "2")
    assert both.returncode == 2 and both.stderr.splitlines()[-1] == (
        "error: --workers and --processes are the same option; keep --processes"
    )
    flag_wins = bench("run", "long-session", "--processes", "999", env={"BENCH_WORKERS": "1"})
    assert "error: --processes is capped at 64" in flag_wins.stderr


def test_click_usage_errors_are_one_line_naming_the_help() -> None:
    result = bench("run", "long-session", "--dration", "5s")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "error: No such option: --dration (Possible options: --duration); see: bench run --help"
    ]
    missing = bench("compare", "only-one")
    assert missing.returncode == 2 and len(missing.stderr.splitlines()) == 1
    assert missing.stderr.endswith("; see: bench compare --help\n")
    assert bench().returncode == 2 and "Usage: bench" in bench().stdout  # bare `bench` shows the help, as before


@pytest.mark.parametrize(
    ("words", "offered"),
    [
        ("bench run --app ", ["good", "bad", "both"]),
        ("bench run --app b", ["bad", "both"]),
        ("bench ab --app-b ", ["good", "bad"]),
        ("bench capacity long-session --arrivals ", ["constant", "poisson"]),
        ("bench compare a b --format ", ["text", "md", "json"]),
        ("bench run long", ["long-session"]),
        ("bench scenarios m", ["mixed"]),
        ("bench r", ["run", "report"]),
    ],
)
def test_shell_completion_offers_the_choices(words: str, offered: list[str]) -> None:
    assert complete(words) == offered


def test_choices_are_shown_in_help() -> None:
    assert "good|bad|both" in bench("run", "--help").stdout
    assert "constant|poisson" in bench("capacity", "--help").stdout
    assert "text|md|json" in bench("compare", "--help").stdout
    assert "--install-completion" in bench("--help").stdout


def test_scenarios_are_listed_in_the_readmes_order() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("| scenario | bad app does |")[1].split("\n\n")[0]
    listed = re.findall(r"^(\S+)\s", bench("scenarios").stdout, re.MULTILINE)
    assert listed[:-1] == re.findall(r"^\| (?:<a id=\"[a-z-]+\"></a>)?`([a-z-]+)` \|", table, re.MULTILINE)
    assert listed[:-1] == list(load_catalog())


@pytest.mark.parametrize("name", list(load_catalog()))
def test_one_scenario_in_full(name: str) -> None:
    scenario = load_catalog()[name]
    result = bench("scenarios", name)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert scenario.description in text and f"symptom: {scenario.symptom}" in text
    for key, value in scenario.defaults.items():  # every default, with the flag that overrides it
        unit = "s" if OPTIONS[key].kind == "duration" else ""
        assert re.search(rf"^  {OPTIONS[key].flag} {value:g}{unit}\s", text, re.MULTILINE), key
    checks = text.split("checks (")[1].split("\n\n")[0].splitlines()[1:]
    assert len(checks) == len(scenario.checks)
    assert all("=" in line or "≥" in line or "≤" in line for line in checks)
    files = text.split("\nfiles\n")[1].split("\n\n")[0]
    assert f"scenarios/{scenario.locustfile.name}" in files
    refs = re.findall(
        r"^  (target_apps/(bad|good)/\w+\.py):(\d+)\s+(ANTI-PATTERN|CORRECT)\(([\w-]+)\)", files, re.MULTILINE
    )
    assert {app for _path, app, _line, _marker, _id in refs} == {"bad", "good"}
    for path, _app, line, marker, marker_id in refs:  # each line named holds the marker it is listed under
        assert f"{marker}({marker_id})" in (ROOT / path).read_text().splitlines()[int(line) - 1]
    if name != "mixed":
        assert {marker_id for *_rest, marker_id in refs} == {name}


def test_an_unknown_scenario_is_one_line_with_a_suggestion() -> None:
    result = bench("scenarios", "mixd")
    assert (
        result.returncode == 2
        and result.stderr == "error: no scenario 'mixd'; did you mean 'mixed'? see: bench scenarios\n"
    )
