"""Flags, environment, catalog and defaults: parsing and precedence, and the errors users see."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.config.catalog import get_scenario, load_catalog
from bench.config.options import parse_duration, resolve_config
from bench.errors import UsageError


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


def test_precedence_flag_over_env_over_catalog() -> None:
    scenario = get_scenario("long-session")
    env = {"BENCH_USERS": "7", "BENCH_POOL_SIZE": "3", "BENCH_DURATION": "1m"}
    config = resolve_config(scenario, {"users": 9, "app": "bad"}, env=env)
    assert config.users == 9  # flag beats env
    assert config.pool_size == 3 and config.duration_s == 60  # env beats catalog
    assert config.upstream_latency_ms == scenario.defaults["upstream_latency_ms"]  # catalog
    assert config.idle_threshold_ms == 50  # built-in default
    assert config.apps == ("bad",)
    assert resolve_config(scenario, {}, env={}).apps == ("good", "bad")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"users": 0}, "--users must be at least 1"),
        ({"pool_size": "x"}, "--pool-size expects a number"),
        ({"pool_size": 2.5}, "--pool-size expects a number"),
        ({"duration_s": "forever"}, "not a duration"),
        ({"duration_s": "100h"}, "capped"),
        ({"app": "ugly"}, "--app must be good, bad or both"),
    ],
)
def test_bad_flags_are_one_line_usage_errors(flags: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        resolve_config(get_scenario("long-session"), flags, env={})
    assert "\n" not in str(info.value) and info.value.exit_code == 2


def test_dsn_is_kept_out_of_the_config_json() -> None:
    config = resolve_config(get_scenario("long-session"), {"dsn": "postgresql://u:hunter2@h/db"}, env={})
    assert "hunter2" not in repr(config) and "hunter2" not in str(config.to_json())
    assert config.to_json()["database"] == "external"


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
