"""Flags, environment, catalog and defaults: parsing and precedence, --help, and the errors users see.

Flags and BENCH_* variables are read by the real command (click parses the arguments and the environment);
the catalog and the defaults by bench.config.options.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command

from bench.cli import app, given_from
from bench.config.catalog import get_scenario, load_catalog
from bench.config.options import Given, RunConfig, parse_duration, resolve_config, resolve_run
from bench.config.optiontable import OPTIONS
from bench.config.sweep import resolve_sweep
from bench.errors import BenchError, UsageError

ROOT = Path(__file__).resolve().parent.parent


def given(command: str, args: list[str]) -> tuple[Any, dict[str, Given]]:
    """(the SCENARIO argument, what was given) as ``bench COMMAND ARGS`` reads them: parsed, not run."""
    cli = get_command(app)
    ctx = cli.get_command(cli.make_context("bench", [command]), command).make_context(command, list(args))
    return ctx.params["scenario"], given_from(ctx)


def run_config(args: list[str]) -> RunConfig:
    return resolve_run(*given("run", args))[1]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("20s", 20), ("2m", 120), ("1h30m", 5400), ("90", 90), ("1.5", 1.5), ("1m30s", 90), (" 5s ", 5), (3, 3), ("250ms", 0.25)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "20 msec", "-5", "5x", "s", "1h-2m", "nan", "ms"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="duration"):
        parse_duration(text)


def test_precedence_flag_over_env_over_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = get_scenario("long-session")
    for var, value in {"BENCH_USERS": "7", "BENCH_POOL_SIZE": "3", "BENCH_DURATION": "1m", "BENCH_APP": "good"}.items():
        monkeypatch.setenv(var, value)
    config = run_config(["long-session", "--users", "9", "--app", "bad"])
    assert config.users == 9 and config.apps == ("bad",)  # flag beats env
    assert config.pool_size == 3 and config.duration_s == 60  # env beats catalog
    assert config.upstream_latency_ms == scenario.defaults["upstream_latency_ms"]  # catalog
    assert config.idle_threshold_ms == 50  # built-in default
    monkeypatch.delenv("BENCH_APP")
    monkeypatch.setenv("BENCH_USERS", "")  # empty is unset, as before
    config = run_config(["long-session"])
    assert config.apps == ("good", "bad") and config.users == scenario.defaults["users"]
    assert resolve_config(scenario).apps == ("good", "bad")
    assert run_config(["long-session", "--keep"]).keep and not run_config(["long-session"]).keep


def test_a_bad_value_names_where_it_was_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_USERS", "0")
    with pytest.raises(UsageError, match="^BENCH_USERS must be at least 1"):
        run_config(["long-session"])
    with pytest.raises(UsageError, match="^--users must be at least 1"):
        run_config(["long-session", "--users", "0"])
    monkeypatch.setenv("BENCH_USERS", "5")
    monkeypatch.setenv("BENCH_IDLE_TX_TIMEOUT", "soon")
    with pytest.raises(UsageError, match="^BENCH_IDLE_TX_TIMEOUT 'soon' is not a duration"):
        run_config(["long-session"])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"users": 0}, "--users must be at least 1"),
        # A time in the user's own words and units, not the parsed float.
        ({"duration_s": "0"}, "^--duration must be at least 1s, got '0'$"),
        ({"duration_s": "500ms"}, "^--duration must be at least 1s, got '500ms'$"),
        ({"pool_timeout_s": "0"}, "^--pool-timeout must be at least 0.01s, got '0'$"),
        ({"upstream_latency_ms": "-1"}, "^--upstream-ms must be at least 0ms, got '-1'$"),
        ({"pool_size": "x"}, "--pool-size expects a number"),
        ({"pool_size": 2.5}, "--pool-size expects a number"),
        ({"pool_size": "5,10"}, "--pool-size '5,10' names 2 pool sizes; a run takes one"),
        ({"duration_s": "forever"}, "not a duration"),
        ({"duration_s": "100h"}, "capped"),
        ({"app": "ugly"}, "--app must be good, bad or both"),
        ({"repeat": 51}, "--repeat is capped at 50"),
        ({"app_workers": 65}, "--app-workers is capped at 64"),
        ({"dsn": "mysql://u:p@h/db"}, "invalid --dsn"),
        ({"target": "http://127.0.0.1:9"}, "--target needs --dsn"),
    ],
)
def test_bad_flags_are_one_line_usage_errors(flags: dict[str, object], message: str) -> None:
    with pytest.raises(BenchError, match=message) as info:  # a --dsn error is the database's own (exit 2 too)
        resolve_config(get_scenario("long-session"), flags)
    assert "\n" not in str(info.value) and info.value.exit_code == 2


def test_a_catalog_value_is_checked_like_a_flag(tmp_path: Path) -> None:
    (tmp_path / "s.py").write_text("")
    (tmp_path / "catalog.toml").write_text('[s]\nlocustfile = "s.py"\nusers = 0\n')
    with pytest.raises(UsageError, match="users of scenario 's' must be at least 1"):
        resolve_config(get_scenario("s", load_catalog(tmp_path / "catalog.toml")))


def test_pool_size_means_the_same_for_run_and_capacity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_POOL_SIZE", "7")
    assert run_config(["long-session"]).pool_size == 7
    configs, plan = resolve_sweep(get_scenario("long-session"), given("capacity", ["long-session"])[1])
    assert [c.pool_size for c in configs] == [7] and plan.pool_sizes == (7,)
    monkeypatch.setenv("BENCH_POOL_SIZE", "10,5")
    configs, plan = resolve_sweep(get_scenario("long-session"), given("capacity", ["long-session"])[1])
    assert [c.pool_size for c in configs] == [5, 10] and plan.pool_sizes == (5, 10)
    # The plan sets the load; the rest resolves as for bench run (here from the environment).
    monkeypatch.setenv("BENCH_MAX_OVERFLOW", "2")
    configs, plan = resolve_sweep(get_scenario("long-session"),
                                  given("capacity", ["long-session", "--users", "2:6:2", "--step", "4s"])[1])
    assert {(c.users, c.duration_s, c.repeat, c.max_overflow) for c in configs} == {(6, 12.0, 1, 2)}
    with pytest.raises(UsageError, match="^BENCH_POOL_SIZE '10,5' names 2 pool sizes; a run takes one"):
        monkeypatch.setenv("BENCH_POOL_SIZE", "10,5")
        run_config(["long-session"])


def test_dsn_is_kept_out_of_the_config_json() -> None:
    config = resolve_config(get_scenario("long-session"), {"dsn": "postgresql://u:hunter2@h/db"})
    assert "hunter2" not in repr(config) and "hunter2" not in str(config.to_json())
    assert config.to_json()["database"] == "external"


def _help(command: str) -> str:
    result = subprocess.run([sys.executable, "-m", "bench.cli", command, "--help"], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "COLUMNS": "400", "NO_COLOR": "1"}, check=True)
    return re.sub(r"[\s│]+", " ", result.stdout)


@pytest.mark.parametrize("command", ["run", "capacity"])
def test_help_shows_every_option_with_its_default_and_variable(command: str) -> None:
    cli = get_command(app)
    params = cli.get_command(cli.make_context("bench", [command]), command).params
    names = [(p.name or "").rstrip("_") for p in params if p.param_type_name == "option" and p.name != "help"]
    assert set(names) <= set(OPTIONS)  # every option is declared from the one table
    text = _help(command)
    for name in names:
        option = OPTIONS[name]
        assert option.flag in text
        if option.env:
            assert f"[env var: {option.env}]" in text, option.env
        if option.default_text and option.kind != "switch":
            assert f"[default: ({option.default_text})]" in text, name


def test_readme_documents_every_option_and_variable() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for option in OPTIONS.values():
        assert f"`{option.flag}" in readme, f"README does not document {option.flag}"
        if option.env:
            assert f"`{option.env}`" in readme, f"README does not document {option.env}"


def test_unknown_scenario_suggests_the_closest() -> None:
    with pytest.raises(UsageError, match="did you mean 'long-session'"):
        get_scenario("lng-session")
    with pytest.raises(UsageError, match="known: .*long-session"):
        get_scenario("zzz")


def test_catalog_errors(tmp_path: Path) -> None:
    (tmp_path / "catalog.toml").write_text('[x]\nlocustfile = "missing.py"\n')
    with pytest.raises(UsageError, match="locustfile .*missing.py is missing"):
        get_scenario("x", load_catalog(tmp_path / "catalog.toml"))
    (tmp_path / "catalog.toml").write_text('[x]\nlocustfile = "a.py"\nusers = -1\n')
    with pytest.raises(UsageError, match="users must be a non-negative number"):
        load_catalog(tmp_path / "catalog.toml")
    (tmp_path / "catalog.toml").write_text("[x\n")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_catalog(tmp_path / "catalog.toml")
    # app_env: only what a scenario may set (bench.config.appenv), with a value the apps accept.
    (tmp_path / "catalog.toml").write_text('[x]\nlocustfile = "a.py"\napp_env = { BENCH_APP_POOL_SIZE = "9" }\n')
    with pytest.raises(UsageError, match="app_env: BENCH_APP_POOL_SIZE cannot be set by a scenario"):
        load_catalog(tmp_path / "catalog.toml")
    (tmp_path / "catalog.toml").write_text('[x]\nlocustfile = "a.py"\napp_env = { BENCH_APP_GC_EVERY_S = "0" }\n')
    with pytest.raises(UsageError, match="BENCH_APP_GC_EVERY_S must be a number above 0, got '0'"):
        load_catalog(tmp_path / "catalog.toml")


def test_readme_option_tables_show_the_defaults_help_shows() -> None:
    """Every row of the README's option tables (bench run, capacity, ab) gives the default --help gives, in the
    same words: "catalog, else 20s" for a catalog option, a time in the user's own units ("100ms", not 0.1), and
    a default --help words ("none: Locust runs as one process") word for word; no default where --help has none.
    One flag can be two options (--users: run's count, capacity's levels); a row matches one of them."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tables = re.findall(r"^\| option \| env \| default \| meaning \|\n\|[-|]+\|\n((?:\|.*\|\n)+)", readme,
                        flags=re.MULTILINE)
    assert len(tables) == 3, "the README has an option table each for bench run, bench capacity and bench ab"
    by_flag: dict[str, list[Any]] = {}
    for option in OPTIONS.values():
        if not option.alias_of:
            by_flag.setdefault(option.flag, []).append(option)
    checked = 0
    for table in tables:
        for row in table.splitlines():
            cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]]
            flag = re.match(r"(?:`-\w`, )?`(--[a-z-]+)", cells[0])
            assert flag, f"an option row that names no option: {row}"
            flag = flag[1]
            if flag not in by_flag:  # bench compare's --fail-on and --junit, in bench ab's table: not in OPTIONS
                assert flag in ("--fail-on", "--junit"), f"the README documents {flag}, which no command has"
                continue
            written = cells[2].replace("`", "")
            expected = [f"catalog, else {o.value_text}" if o.catalog else "" if o.kind == "switch" else o.default_text or ""
                        for o in by_flag[flag]]
            assert written in expected, f"README's {flag} row says {written!r}; --help says {' or '.join(map(repr, expected))}"
            checked += 1
    assert checked >= 45  # 47 today: run 33 rows, ab 6 (less --fail-on, compare's), capacity 9


@pytest.mark.parametrize("command", ["run", "ab", "capacity"])
def test_help_on_an_80_column_terminal_cuts_no_variable_or_flag(command: str) -> None:
    """Typer cuts a word wider than its column with '…'; the switches' --no-* column once left the help column
    17 characters, and BENCH_MAX_OVERFLOW read BENCH_MAX_OVERFL…."""
    result = subprocess.run([sys.executable, "-m", "bench.cli", command, "--help"], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "COLUMNS": "80", "NO_COLOR": "1"}, check=True)
    cut = [line for line in result.stdout.splitlines() if re.search(r"(BENCH_\w*|--[a-z-]+)…", line)]
    assert not cut, cut
