"""The BENCH_APP_* contract (bench.config.appenv): what the runner writes is what the apps read, both ways.

The harness side is the real ``_app_child``; the app side is the real target app, created and started.
"""

from __future__ import annotations

import ast
import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.config.appenv import AppEnv, AppEnvError, scenario_settings, variables
from bench.config.catalog import get_scenario
from bench.config.options import resolve_config
from bench.db import server as postgres
from bench.instrument import ENDPOINT_PATH
from bench.render.terminal import Console
from bench.run.state import RunState
from bench.run.subjects import _app_child

ROOT = Path(__file__).resolve().parent.parent
DSN = "postgresql+asyncpg://u:hunter2@127.0.0.1:1/db"


def _child_env(scenario: str, tmp_path: Path, **flags: object) -> dict[str, str]:
    chosen = get_scenario(scenario)
    server = postgres.Server(host="127.0.0.1", port=1, user="u", password="hunter2", embedded=False, version="")
    run = RunState(config=resolve_config(chosen, flags), scenario=chosen, console=Console(quiet=True), command=[],
                   folder=tmp_path, server=server)
    env: dict[str, str] = _app_child(run, "good", "db", 8000, tmp_path).env
    return env


def test_what_the_runner_writes_reads_back_as_the_run_config(tmp_path: Path) -> None:
    env = _child_env("unclosed-session", tmp_path, pool_size=7, max_overflow=2, pool_timeout_s=1.5,
                     upstream_latency_ms=40, idle_tx_timeout_s="1.2s", app_workers=2)
    assert set(env) <= set(variables())
    settings = AppEnv.from_env(env)
    assert (settings.pool_size, settings.max_overflow, settings.pool_timeout_s) == (7, 2, 1.5)
    assert (settings.upstream_latency_ms, settings.idle_tx_timeout_ms) == (40, 1200)
    assert settings.gc_every_s == 3  # the catalog's app_env for this scenario
    assert settings.metrics_token and settings.metrics_dir and settings.metrics_dir.startswith(str(tmp_path))
    assert settings.dsn.startswith("postgresql+asyncpg://") and settings.to_env() == env


def test_round_trip_and_defaults() -> None:
    full = AppEnv(dsn=DSN, pool_size=3, metrics=False, metrics_token="t", metrics_dir="/x", gc_every_s=2.5)
    assert AppEnv.from_env(full.to_env()) == full
    plain = AppEnv.from_env({"BENCH_APP_DSN": DSN, "BENCH_APP_GC_EVERY_S": "", "BENCH_APP_METRICS_TOKEN": ""})
    assert plain == AppEnv(dsn=DSN)  # empty is unset (docker-compose.yml passes empty values)
    # Optional settings are written only when set; the pool settings always, so they cannot drift.
    assert set(plain.to_env()) == {"BENCH_APP_DSN", "BENCH_APP_POOL_SIZE", "BENCH_APP_MAX_OVERFLOW",
                                   "BENCH_APP_POOL_TIMEOUT", "BENCH_APP_UPSTREAM_MS", "BENCH_APP_IDLE_TX_TIMEOUT_MS"}
    assert "hunter2" not in repr(plain) and "hunter2" not in repr(full)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "BENCH_APP_DSN is not set"),
        ({"BENCH_APP_POOL_SIZE": "x"}, "BENCH_APP_POOL_SIZE must be a whole number of at least 1, got 'x'"),
        ({"BENCH_APP_MAX_OVERFLOW": "-1"}, "BENCH_APP_MAX_OVERFLOW must be a whole number of at least 0"),
        ({"BENCH_APP_POOL_TIMEOUT": "inf"}, "BENCH_APP_POOL_TIMEOUT must be a number above 0"),
        ({"BENCH_APP_METRICS": "yes"}, "BENCH_APP_METRICS must be on or off"),
        ({"BENCH_APP_GC_EVERY_S": "0"}, "BENCH_APP_GC_EVERY_S must be a number above 0"),
    ],
)
def test_malformed_settings_are_one_line(env: dict[str, str], message: str) -> None:
    full = {"BENCH_APP_DSN": DSN, **env} if env else {}
    with pytest.raises(AppEnvError, match=message) as info:
        AppEnv.from_env(full)
    assert "\n" not in str(info.value) and "hunter2" not in str(info.value)


def test_a_scenario_sets_only_its_own_settings() -> None:
    assert scenario_settings({"BENCH_APP_GC_EVERY_S": "3"}) == {"gc_every_s": 3.0}
    # The pool settings come from the run config (flag > env > catalog); app_env must not override them.
    with pytest.raises(AppEnvError, match="BENCH_APP_POOL_SIZE cannot be set by a scenario"):
        scenario_settings({"BENCH_APP_POOL_SIZE": "50"})


def test_the_app_reads_its_settings_once_at_creation(monkeypatch: pytest.MonkeyPatch) -> None:
    from target_apps.good.app import create

    for name in variables():
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit, match="error: BENCH_APP_DSN is not set"):
        create()
    monkeypatch.setenv("BENCH_APP_DSN", DSN)
    monkeypatch.setenv("BENCH_APP_POOL_SIZE", "4")
    app = create()
    monkeypatch.setenv("BENCH_APP_POOL_SIZE", "9")  # too late: read at creation
    assert ENDPOINT_PATH in _paths(app)
    monkeypatch.setenv("BENCH_APP_METRICS", "off")
    assert ENDPOINT_PATH not in _paths(create())

    async def started() -> tuple[int, int]:
        async with app.router.lifespan_context(app):  # builds the engine; nothing connects before a request
            return app.state.bench.settings.pool_size, app.state.bench.engine.pool.size()

    assert asyncio.run(started()) == (4, 4)


def _paths(app: Any) -> set[str]:
    return {getattr(route, "path", "") for route in app.routes}


def test_the_contract_module_imports_only_the_standard_library() -> None:
    """The target apps import it; so may a user's app: it must not drag the harness in."""
    tree = ast.parse((ROOT / "bench" / "config" / "appenv.py").read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert imported - {"__future__"} <= set(sys.stdlib_module_names), imported


@pytest.mark.parametrize(("env", "named"), [({"BENCH_APP_POOL_SIZE": "abc"}, "BENCH_APP_POOL_SIZE"),
                                            ({"BENCH_APP_DSN": ""}, "BENCH_APP_DSN")])
def test_an_app_started_on_its_own_with_a_bad_variable_says_so_in_one_line(env: dict[str, str], named: str) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_APP_")}
    base["BENCH_APP_DSN"] = "postgresql+asyncpg://u@127.0.0.1:1/db"
    done = subprocess.run([sys.executable, "-m", "uvicorn", "--factory", "target_apps.bad.app:create", "--port", "0"],
                          env={**base, **env}, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], done.stderr
