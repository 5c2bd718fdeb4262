"""--serve: the harness starts the user's service (and its migration) on a fresh database, loads it, stops it.

The service is a small FastAPI/SQLAlchemy app written into the test's folder (tests/servedapp.py), run through the
real CLI; every process the run started must be gone when it ends, however it ends.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.config.catalog import get_scenario
from bench.config.command import CommandTemplate
from bench.config.options import resolve_config, resolve_run
from bench.errors import UsageError
from tests.servedapp import Service, Watched, run_watched, write_service

BENCH = [sys.executable, "-m", "bench.cli"]


def test_a_command_template_is_split_like_a_shell_and_filled_in() -> None:
    template = CommandTemplate.parse("env X='a b' uvicorn app:app --port {port} --db={dsn}", "--serve", ("port",))
    assert template.argv == ("env", "X=a b", "uvicorn", "app:app", "--port", "{port}", "--db={dsn}")
    assert template.expand(port="8001", dsn="postgresql://u@h/d", sqlalchemy_url="x") == [
        "env", "X=a b", "uvicorn", "app:app", "--port", "8001", "--db=postgresql://u@h/d"]
    assert CommandTemplate.parse("echo {{literal}}", "--migrate").expand(port="1", dsn="", sqlalchemy_url="") == [
        "echo", "{literal}"]


@pytest.mark.parametrize(("text", "error"), [
    ("uvicorn app:app", "has no {port}"),
    ("uvicorn app:app --port {prot}", "unknown placeholder {prot}"),
    ("uvicorn app:app --port {}", "unknown placeholder {}"),
    ("uvicorn 'app:app --port {port}", "not a command line"),
    ("   ", "is empty"),
    ("uvicorn --port {port", "write a literal brace"),
])
def test_a_malformed_command_is_a_usage_error(text: str, error: str) -> None:
    with pytest.raises(UsageError, match=error.replace("{", r"\{").replace("}", r"\}")):
        CommandTemplate.parse(text, "--serve", ("port",))


def test_serve_config_keys_only_when_serving() -> None:
    scenario = get_scenario("long-session")
    paired = resolve_config(scenario).to_json()
    served = resolve_config(scenario, {"serve": "uvicorn app:app --port {port}", "migrate": "alembic upgrade head"})
    assert not {"serve", "migrate", "ready_path", "ready_timeout_s"} & set(paired)
    assert served.apps == ("target",) and served.target is None
    assert served.to_json()["serve"] == "uvicorn app:app --port {port}" and served.ready_path == "/healthz"
    # A DSN's password typed into a command is masked where the config is recorded.
    secret = resolve_config(scenario, {"serve": "run --port {port} --db postgresql://u:hunter2@h/db"})
    assert "hunter2" not in json.dumps(secret.to_json())


@pytest.mark.parametrize(("given", "error"), [
    ({"serve": "x --port {port}", "target": "http://127.0.0.1:9", "dsn": "postgresql://u@h/d"}, "give one of them"),
    ({"serve": "x --port {port}", "app": "good"}, "--app picks a paired app"),
    ({"migrate": "alembic upgrade head"}, "--migrate goes with --serve"),
    ({"ready_path": "/up"}, "--ready goes with --serve"),
    ({"serve": "x --port {port}", "ready_path": "up"}, "must be a path"),
])
def test_serve_usage_errors(given: dict[str, str], error: str) -> None:
    with pytest.raises(UsageError, match=error):
        resolve_config(get_scenario("long-session"), given)


def test_a_locustfile_names_serve_as_the_way_to_run_it(tmp_path: Path) -> None:
    (tmp_path / "load.py").write_text("")
    with pytest.raises(UsageError, match="add --target URL .* or --serve CMD"):
        resolve_run(None, {"locustfile": str(tmp_path / "load.py")})
    scenario, config = resolve_run(None, {"locustfile": str(tmp_path / "load.py"), "serve": "x --port {port}"})
    assert scenario.name == "load" and config.apps == ("target",)


def test_cli_refuses_a_serve_without_port_before_anything_runs(tmp_path: Path) -> None:
    result = subprocess.run([*BENCH, "run", "long-session", "--serve", "uvicorn app:app", "--out", str(tmp_path / "r")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and "has no {port}" in result.stderr and not (tmp_path / "r").exists()


def _serve_run(service: Service, out: Path, pg_home: Path, *extra: str, serve: str | None = None,
               migrate: str | None = None, duration: str = "3s",
               during: Callable[[subprocess.Popen[str]], bool] | None = None) -> Watched:
    argv = [*BENCH, "run", "--locustfile", str(service.locustfile), "--serve", serve or service.serve("short"),
            "--migrate", migrate or service.migrate, "--duration", duration, "--cooldown", "1s", "--users", "8",
            "--ready-timeout", "30s", "--out", str(out), *extra]
    return run_watched(argv, {**os.environ, "BENCH_HOME": str(pg_home)}, timeout=120, during=during)


@pytest.mark.e2e
def test_run_serves_migrates_loads_and_stops_the_service(tmp_path: Path, pg_home: Path) -> None:
    service = write_service(tmp_path / "service")
    out = tmp_path / "run"
    watched = _serve_run(service, out, pg_home)
    assert watched.returncode == 0, watched.output
    assert not watched.survivors, watched.survivors
    seen = "\n".join(watched.seen)
    # The long-lived processes, seen by the 0.2 s sampler; the migration can finish between two looks, so its
    # proof is its log below (a sampled "migrate.py" failed this test when the migration was quick).
    assert "service_short:app" in seen and "postgres" in seen and "locust" in seen, seen
    target = json.loads((out / "summary.json").read_text())["apps"]["target"]
    assert target["requests"] > 50 and target["failures"] == 0
    # Its own pool endpoint was read: two short checkouts per request, none held across the upstream call.
    assert target["pool"]["capacity"] == 5 and target["pool"]["hold_ms"]["p50"] < 40
    assert (out / "target" / "migrate.log").read_text().strip() == "migrated"
    assert "service started" in (out / "target" / "app.log").read_text()
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["config"]["serve"] == service.serve("short") and run_json["status"] == "completed"


@pytest.mark.e2e
@pytest.mark.parametrize(("serve", "migrate", "error"), [
    (None, f"{shlex.quote(sys.executable)} -c 'import sys; print(\"no such table\"); sys.exit(4)'",
     "--migrate exited with code 4; its output is in .*migrate.log: no such table"),
    (f"{shlex.quote(sys.executable)} -c 'import sys; print(\"bad config\"); sys.exit(5)' {{port}}", None,
     "the --serve command exited with code 5 before it was ready; its output is in .*app.log: bad config"),
])
def test_a_failing_migration_or_service_ends_the_run_with_exit_3(tmp_path: Path, pg_home: Path, serve: str | None,
                                                                  migrate: str | None, error: str) -> None:
    service = write_service(tmp_path / "service")
    watched = _serve_run(service, tmp_path / "run", pg_home, serve=serve, migrate=migrate)
    assert watched.returncode == 3, watched.output
    assert re.search(error, watched.output), watched.output
    assert not watched.survivors, watched.survivors


@pytest.mark.e2e
def test_sigterm_mid_load_stops_the_service_and_everything_else(tmp_path: Path, pg_home: Path) -> None:
    service = write_service(tmp_path / "service")
    out = tmp_path / "run"

    def terminate_once_loaded(proc: subprocess.Popen[str]) -> bool:
        log = out / "target" / "requests.csv"
        if not log.exists() or log.stat().st_size < 2000:
            return False
        proc.send_signal(signal.SIGTERM)
        return True

    watched = _serve_run(service, out, pg_home, duration="20s", during=terminate_once_loaded)
    assert watched.returncode == 130, watched.output
    assert "service_short:app" in "\n".join(watched.seen)
    assert not watched.survivors, watched.survivors
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
