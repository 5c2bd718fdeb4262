"""docker-compose.yml, Dockerfile and .dockerignore, checked without Docker (CI has no Docker engine).

The compose file is parsed with PyYAML and interpolated as Compose does with an empty environment (the
defaults apply), then checked against the harness itself rather than against copies of its values: the app
commands are the argv ``bench.run.subjects._app_child`` builds, the ``BENCH_APP_*`` names are those the target apps
read, the defaults are those of the scenario Locust runs. The seed entry point of the ``schema`` service runs
for real against the test session's embedded PostgreSQL.
"""

from __future__ import annotations

import ast
import asyncio
import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from importlib import util
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from bench.db import server as postgres
from bench.db.server import sqlalchemy_url

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

SERVICES = {"postgres", "schema", "app-good", "app-bad", "locust-master", "locust-worker", "bench"}
APP_SERVICES = {"app-good": "good", "app-bad": "bad"}
SEED_COMMAND = ["python", "-m", "target_apps.common.seed"]
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


# --- Compose interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR:+alt}, $$ ----------

_VAR = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
                  r"|(?P<bare>[A-Za-z_{]))")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        assert not match["bare"], f"write ${{VAR}} (braced, with a default), not {match.group(0)!r}: {value!r}"
        name, op, arg = match["name"], match["op"], match["arg"]
        is_set, non_empty = name in env, bool(env.get(name))
        if op in (":-", "-"):
            return env[name] if (non_empty if op == ":-" else is_set) else arg
        if op in (":?", "?"):
            if not (non_empty if op == ":?" else is_set):
                raise AssertionError(f"compose would refuse to start: ${{{name}}} is required ({arg})")
            return env[name]
        if op in (":+", "+"):
            return arg if (non_empty if op == ":+" else is_set) else ""
        return env.get(name, "")

    return _VAR.sub(one, value)


def variables_without_default(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set().union(*(variables_without_default(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(variables_without_default(v) for v in value))
    if not isinstance(value, str):
        return set()
    return {m["name"] for m in _VAR.finditer(value) if m["name"] and m["op"] not in (":-", "-")}


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed: docker-compose.yml cannot be checked")
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any]) -> dict[str, Any]:
    """The compose file as `docker compose config` would see it with nothing set in the environment."""
    return interpolate(raw, env={})


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command")
    assert isinstance(cmd, list) and all(isinstance(a, str) for a in cmd), f"exec-form command expected: {cmd!r}"
    return cmd


def flag_value(argv: list[str], flag: str) -> str:
    assert flag in argv, f"{flag} missing from {argv}"
    return argv[argv.index(flag) + 1]


def depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: {"condition": "service_started"} for name in deps}
    return deps


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return {item.split("=", 1)[0]: (item.split("=", 1)[1] if "=" in item else None) for item in env}
    return {key: None if value is None else str(value) for key, value in env.items()}


def published_ports(service: dict[str, Any]) -> list[tuple[str | None, str, str]]:
    """(host_ip, host_port, container_port) of every `ports` entry, short or long syntax."""
    result = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            result.append((entry.get("host_ip"), str(entry.get("published", "")), str(entry["target"])))
            continue
        match = re.fullmatch(r"(?:(?P<ip>[\d.]+|\[[^\]]+\]):)?(?:(?P<host>[\d-]*):)?(?P<container>[\d-]+)(?:/\w+)?",
                             str(entry))
        assert match, f"unreadable port mapping {entry!r}"
        result.append((match["ip"], match["host"] or "", match["container"]))
    return result


# --- What the project itself says: names the code reads, the harness's own commands, the Dockerfile --------

def string_constants(package: str, pattern: str) -> set[str]:
    """Every string literal in ``package`` that is exactly a name matching ``pattern`` (env var names)."""
    names = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(pattern, node.value):
                names.add(node.value)
    return names


def harness_app_child(variant: str, scenario_name: str, folder: Path) -> Any:
    """The uvicorn child ``bench run`` would start for ``variant`` (built, never started)."""
    from bench.config.catalog import get_scenario
    from bench.config.options import resolve_config
    from bench.render.terminal import Console
    from bench.run.state import RunState
    from bench.run.subjects import _app_child

    scenario = get_scenario(scenario_name)
    config = resolve_config(scenario)
    server = postgres.Server(host="postgres", port=5432, user="postgres", password="x", embedded=False, version="")
    run = RunState(config=config, scenario=scenario, console=Console(quiet=True), command=[], folder=folder,
                   server=server)
    return _app_child(run, variant, "scopebench", 8000, folder)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if pending and line.lstrip().startswith("#"):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, rest = pending.strip().partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    return instructions


def dockerfile_env() -> dict[str, str]:
    env = {}
    for keyword, rest in dockerfile_instructions():
        if keyword == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def dockerfile_copies() -> list[tuple[list[str], PurePosixPath]]:
    """(sources, absolute destination in the image) of every COPY, WORKDIR applied."""
    workdir, copies = PurePosixPath("/"), []
    for keyword, rest in dockerfile_instructions():
        if keyword == "WORKDIR":
            workdir = workdir / rest
        elif keyword in ("COPY", "ADD"):
            args = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
            args = [a for a in args if not a.startswith("--")]
            copies.append(([s.rstrip("/") or "." for s in args[:-1]], workdir / args[-1]))
    return copies


def image_path_of(repo_dir: str) -> PurePosixPath:
    """Where the Dockerfile puts the repo directory ``repo_dir`` (its contents) in the image."""
    found = [dest for sources, dest in dockerfile_copies() if repo_dir in sources]
    assert found, f"the Dockerfile never copies {repo_dir}/ into the image"
    return found[-1]


def locust_argument_source() -> str:
    """Locust's argument parser as text: importing locust would monkey-patch this process with gevent."""
    spec = util.find_spec("locust")
    assert spec is not None and spec.submodule_search_locations
    return (Path(next(iter(spec.submodule_search_locations))) / "argument_parser.py").read_text(encoding="utf-8")


# --- The compose file's shape ------------------------------------------------------------------------------

def test_services_each_have_an_image_or_a_build(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == SERVICES
    for name, service in services.items():
        assert service.get("image") or service.get("build"), f"{name} has neither image nor build"
    assert services["postgres"]["image"] == "postgres:18"
    project_image = {services[name].get("image") for name in SERVICES - {"postgres"}}
    assert len(project_image) == 1, f"the project's services should share one image tag, not {project_image}"
    for name in SERVICES - {"postgres"}:
        build = services[name]["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        assert (COMPOSE.parent / context).resolve() == ROOT
        assert (ROOT / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")).is_file()


def test_every_variable_has_a_default(raw: dict[str, Any]) -> None:
    # `docker compose up` from a fresh clone, with no .env, must neither warn nor fail on a missing variable.
    assert variables_without_default(raw) == set()


def test_depends_on_targets_exist_with_valid_conditions(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for target, spec in depends_on(service).items():
            assert target in services, f"{name} depends on unknown service {target}"
            assert spec.get("condition", "service_started") in CONDITIONS, f"{name} -> {target}: {spec}"
            if spec.get("condition") == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target} to be healthy: it has no healthcheck"
            # a default service must not need one that only starts with a profile
            if not service.get("profiles"):
                assert not services[target].get("profiles"), f"{name} depends on profile-only {target}"


def test_postgres_has_a_real_healthcheck_and_a_local_password(raw: dict[str, Any],
                                                               services: dict[str, dict[str, Any]]) -> None:
    pg = services["postgres"]
    env = environment(pg)
    test = pg["healthcheck"]["test"]
    argv = test[1:] if test[0] in ("CMD", "CMD-SHELL") else test
    argv = shlex.split(argv[0]) if len(argv) == 1 else argv
    assert argv[0] == "pg_isready"
    # TCP, not the socket: the image's init-time server listens on the socket only.
    assert flag_value(argv, "-h") in ("127.0.0.1", "localhost")
    assert flag_value(argv, "-U") == env["POSTGRES_USER"]
    assert flag_value(argv, "-d") == env["POSTGRES_DB"]
    # The password comes from the environment; the default is only for local use.
    raw_password = raw["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert re.fullmatch(r"\$\{POSTGRES_PASSWORD:-[^}]+\}", raw_password), raw_password
    assert interpolate(raw_password, {"POSTGRES_PASSWORD": "s3cret"}) == "s3cret"
    # PostgreSQL 18+ images refuse a volume at the old PGDATA path /var/lib/postgresql/data.
    targets = [str(v).split(":")[1] if isinstance(v, str) else v["target"] for v in pg.get("volumes", [])]
    assert "/var/lib/postgresql/data" not in targets
    assert targets == ["/var/lib/postgresql"]


def test_apps_wait_for_a_healthy_database_and_the_schema(services: dict[str, dict[str, Any]]) -> None:
    assert depends_on(services["schema"]) == {"postgres": {"condition": "service_healthy"}}
    for name in APP_SERVICES:
        deps = depends_on(services[name])
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["schema"]["condition"] == "service_completed_successfully"
    assert depends_on(services["bench"])["postgres"]["condition"] == "service_healthy"


def test_published_ports_bind_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert service.get("network_mode") != "host", name
        for host_ip, _host_port, _container in published_ports(service):
            assert host_ip == "127.0.0.1", f"{name} publishes a port on {host_ip or 'every interface'}"
    assert published_ports(services["locust-worker"]) == []  # replicas cannot share a host port


def test_nothing_runs_as_root(services: dict[str, dict[str, Any]]) -> None:
    users = [rest for keyword, rest in dockerfile_instructions() if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    for name, service in services.items():
        assert str(service.get("user", "10001")).split(":")[0] not in ("root", "0"), name


# --- Against the harness -------------------------------------------------------------------------------

def locust_scenario(services: dict[str, dict[str, Any]]) -> str:
    """The catalog scenario whose locustfile locust-master runs by default."""
    from bench.config.catalog import load_catalog

    locustfile = Path(flag_value(command(services["locust-master"]), "-f").split(",")[0]).name
    matches = [name for name, s in load_catalog().items() if s.locustfile.name == locustfile]
    assert len(matches) == 1, f"no single catalog scenario runs {locustfile}"
    return matches[0]


def test_app_commands_are_the_harness_commands(services: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    for name, variant in APP_SERVICES.items():
        harness = harness_app_child(variant, locust_scenario(services), tmp_path).argv
        ours = command(services[name])
        # sys.executable is the image's python; inside a container the app listens on every interface
        # (the port mapping keeps it on the host's 127.0.0.1) and on a fixed port.
        assert ours[0] == "python"
        expected = list(harness[1:])
        expected[expected.index("--host") + 1] = "0.0.0.0"
        expected[expected.index("--port") + 1] = flag_value(ours, "--port")
        assert ours[1:] == expected, f"{name} drifted from bench.run.subjects._app_child: {ours} vs {harness}"
        port = flag_value(ours, "--port")
        assert [container for _ip, _host, container in published_ports(services[name])] == [port]
        assert f"127.0.0.1:{port}/healthz" in " ".join(services[name]["healthcheck"]["test"])


def test_app_environment_is_what_the_apps_read(raw: dict[str, Any], services: dict[str, dict[str, Any]],
                                               tmp_path: Path) -> None:
    from bench.config.appenv import variables
    from bench.config.catalog import load_catalog

    read_by_apps = set(variables())  # the contract the apps read (bench.config.appenv)
    assert {"BENCH_APP_DSN", "BENCH_APP_POOL_SIZE", "BENCH_APP_GC_EVERY_S"} <= read_by_apps
    scenario = locust_scenario(services)
    for name, variant in APP_SERVICES.items():
        ours = environment(services[name])
        assert set(ours) <= read_by_apps, f"{name} sets variables no app reads: {set(ours) - read_by_apps}"
        harness_env = harness_app_child(variant, scenario, tmp_path).env
        assert set(harness_env) <= set(ours), f"{name} lacks what the harness sets: {set(harness_env) - set(ours)}"
        catalog_env = {key for s in load_catalog().values() for key in s.app_env}
        assert catalog_env <= set(ours), f"{name} cannot be given {catalog_env - set(ours)}"
        # Same defaults as `bench run <scenario>`.
        for key, value in harness_env.items():
            if key not in ("BENCH_APP_DSN", "BENCH_APP_METRICS_TOKEN"):
                assert float(ours[key] or "nan") == float(value), f"{name}: {key}={ours[key]} but the harness uses {value}"
        # ... and the harness's names for overriding them (BENCH_POOL_SIZE -> BENCH_APP_POOL_SIZE).
        raw_env = raw["services"][name]["environment"]
        assert raw_env["BENCH_APP_POOL_SIZE"].startswith("${BENCH_POOL_SIZE:-")
        assert raw_env["BENCH_APP_UPSTREAM_MS"].startswith("${BENCH_UPSTREAM_MS:-")


def test_app_dsn_points_at_the_seeded_database(services: dict[str, dict[str, Any]]) -> None:
    pg = environment(services["postgres"])
    dsns = {environment(services[name])["BENCH_APP_DSN"] for name in (*APP_SERVICES, "schema")}
    assert len(dsns) == 1, "the schema service must seed the database the apps use"
    dsn = dsns.pop()
    assert dsn is not None and dsn.startswith("postgresql+asyncpg://")
    parsed = postgres.parse_dsn(dsn)
    assert (parsed.server.host, parsed.server.port) == ("postgres", 5432)
    assert (parsed.server.user, parsed.server.password) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"])
    assert parsed.database == pg["POSTGRES_DB"]
    assert command(services["schema"]) == SEED_COMMAND
    assert util.find_spec("target_apps.common.seed") is not None


def test_bench_service_runs_the_harness_against_the_postgres_service(services: dict[str, dict[str, Any]]) -> None:
    from bench.config.catalog import load_catalog

    bench = services["bench"]
    assert bench.get("profiles") == ["harness"]
    argv = command(bench)
    assert argv[:2] == ["bench", "run"] and argv[2] in load_catalog()
    assert argv[2] == locust_scenario(services)
    dsn = flag_value(argv, "--dsn")
    env = environment(bench)
    assert env["BENCH_DSN"] == dsn  # so `run --rm bench bench run OTHER` needs no --dsn
    parsed = postgres.parse_dsn(dsn)
    pg = environment(services["postgres"])
    assert (parsed.server.host, parsed.server.port, parsed.database) == ("postgres", 5432, "postgres")
    assert (parsed.server.user, parsed.server.password) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"])
    read_by_bench = string_constants("bench", r"BENCH_[A-Z0-9_]+")
    assert {"BENCH_USERS", "BENCH_DSN", "BENCH_APP"} <= read_by_bench  # the scan works
    assert set(env) <= read_by_bench, f"bench is given variables it never reads: {set(env) - read_by_bench}"
    assert "BENCH_TARGET" not in env  # the service runs the paired apps; a stray target would hijack it
    results = dockerfile_env()["BENCH_RESULTS"]
    mounts = [v.split(":") for v in bench.get("volumes", []) if isinstance(v, str)]
    assert ["./results", results] in mounts, "run folders must land on the host"


def test_locust_master_and_workers(services: dict[str, dict[str, Any]]) -> None:
    master, worker = services["locust-master"], services["locust-worker"]
    master_argv, worker_argv = command(master), command(worker)
    assert master_argv[0] == "locust" and "--master" in master_argv
    assert worker_argv[0] == "locust" and "--worker" in worker_argv
    assert flag_value(worker_argv, "--master-host") == "locust-master"
    assert flag_value(worker_argv, "-f") == flag_value(master_argv, "-f")
    assert "container_name" not in worker and "deploy" not in worker  # `--scale locust-worker=N` works
    assert depends_on(worker) == {"locust-master": {"condition": "service_started"}}
    # Host: the bad app by default, at the port it listens on; overridable.
    env = environment(master)
    bad_port = flag_value(command(services["app-bad"]), "--port")
    assert env["LOCUST_HOST"] == f"http://app-bad:{bad_port}"
    raw_host = "${LOCUST_HOST:-http://app-bad:" + bad_port + "}"
    assert interpolate(raw_host, {"LOCUST_HOST": "http://app-good:8000"}) == "http://app-good:8000"
    locust_names = set(re.findall(r'env_var="(LOCUST_[A-Z_]+)"', locust_argument_source()))
    assert {"LOCUST_HOST", "LOCUST_HEADLESS"} <= locust_names  # the scan works
    assert set(env) <= locust_names, f"Locust reads no {set(env) - locust_names}"
    assert {"--master", "--worker", "--master-host"} <= set(re.findall(r'"(--[a-z-]+)"', locust_argument_source()))


def test_locustfiles_referenced_exist_in_the_image(services: dict[str, dict[str, Any]]) -> None:
    scenarios_in_image = image_path_of("scenarios")
    for name, service in services.items():
        argv = command(service) if service.get("command") else []
        if not argv or argv[0] != "locust":
            continue
        for path in flag_value(argv, "-f").split(","):
            assert PurePosixPath(path).is_relative_to(scenarios_in_image), \
                f"{name}: {path} is outside {scenarios_in_image}, where the Dockerfile puts scenarios/"
            relative = PurePosixPath(path).relative_to(scenarios_in_image)
            assert (ROOT / "scenarios" / relative).is_file(), f"{name}: {path} is not in scenarios/"


# --- Dockerfile and .dockerignore ----------------------------------------------------------------------

def test_dockerfile_installs_the_project_and_the_scenarios() -> None:
    instructions = dockerfile_instructions()
    bases = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert bases and bases[0].split()[0].startswith("python:3.11-slim")
    # bench.config.catalog.scenarios_dir() looks next to the *installed* package: BENCH_SCENARIOS must name the copy.
    env = dockerfile_env()
    assert PurePosixPath(env["BENCH_SCENARIOS"]) == image_path_of("scenarios")
    assert (ROOT / "scenarios" / "catalog.toml").is_file()
    # `pip install .` after the code is in place.
    position = {keyword + " " + rest: index for index, (keyword, rest) in enumerate(instructions)}
    copied_at = max(index for index, (keyword, rest) in enumerate(instructions)
                    if keyword == "COPY" and re.search(r"\btarget_apps/?\s", rest + " "))
    bench_at = max(index for index, (keyword, rest) in enumerate(instructions)
                   if keyword == "COPY" and re.search(r"(^|\s)bench/?\s", rest + " "))
    installs = [index for line, index in position.items()
                if line.startswith("RUN ") and re.search(r"pip install( --?[\w-]+)* \.(\s|$)", line)]
    assert any(index > max(copied_at, bench_at) for index in installs), "no `pip install .` after COPY of the code"
    for source in ("pyproject.toml", "README.md"):
        assert any(source in sources for sources, _dest in dockerfile_copies()), f"{source} is never copied"


def test_dockerfile_bakes_in_no_secret() -> None:
    for keyword, rest in dockerfile_instructions():
        if keyword in ("ENV", "ARG"):
            names = [pair.partition("=")[0] for pair in shlex.split(rest)]
            secret = [n for n in names if re.search(r"PASSWORD|SECRET|TOKEN|DSN|KEY", n, re.IGNORECASE)]
            assert not secret, f"{keyword} {secret} would bake a secret into the image"
        if keyword in ("COPY", "ADD"):
            assert ".env" not in rest.split()


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a directory covers its contents."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        pattern = pattern.removeprefix("./")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        candidates = [pattern, pattern[3:]] if pattern.startswith("**/") else [pattern]
        if any(fnmatch.fnmatchcase(prefix, p) for prefix in prefixes for p in candidates) or (
                pattern.startswith("**/") and any(fnmatch.fnmatchcase(part, pattern[3:]) for part in parts)):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_secrets_out_and_build_inputs_in() -> None:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    for path in (".env", ".env.local", ".git/config", ".venv/bin/python", "results/run/summary.json",
                 "bench/__pycache__/cli.cpython-311.pyc"):
        assert _ignored(path, patterns), f"{path} would be sent to the Docker daemon"
    needed = ["pyproject.toml", "README.md", "scenarios/catalog.toml", "target_apps/common/seed.py"]
    needed += [f"{d}/{p.relative_to(ROOT / d)}" for d in ("bench", "target_apps", "scenarios")
               for p in (ROOT / d).rglob("*.py") if "__pycache__" not in p.parts]
    assert [path for path in needed if _ignored(path, patterns)] == []
    for sources, _dest in dockerfile_copies():
        for source in sources:
            assert not _ignored(source, patterns) and (ROOT / source).exists(), f"COPY {source}: not in the context"


# --- The schema service's entry point, for real ---------------------------------------------------------

def _seed(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BENCH_APP_DSN": dsn}
    return subprocess.run([sys.executable, *SEED_COMMAND[1:], *args], check=False, env=env, capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


def _count(dsn: str, table: str) -> int:
    import asyncpg

    async def count() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
        finally:
            await conn.close()

    return asyncio.run(count())


@pytest.fixture
def seeded_dsn(pg_server: postgres.Server, database: str) -> Iterator[str]:
    yield pg_server.dsn(database)


def test_seed_creates_the_schema_once_and_reset_recreates_it(seeded_dsn: str) -> None:
    first = _seed(sqlalchemy_url(seeded_dsn))
    assert first.returncode == 0, first.stderr
    assert "created the schema and 1000 items" in first.stdout
    assert _count(seeded_dsn, "items") == 1000

    async def write_order() -> None:
        import asyncpg

        conn = await asyncpg.connect(seeded_dsn)
        try:
            await conn.execute("INSERT INTO orders (item_id, amount_cents, route, payment_ref) "
                               "VALUES (1, 100, 'test', 'ref')")
        finally:
            await conn.close()

    asyncio.run(write_order())
    again = _seed(seeded_dsn)  # a plain postgresql:// URL works too
    assert again.returncode == 0, again.stderr
    assert "left as it is" in again.stdout
    assert (_count(seeded_dsn, "items"), _count(seeded_dsn, "orders")) == (1000, 1)

    reset = _seed(sqlalchemy_url(seeded_dsn), "--reset")
    assert reset.returncode == 0, reset.stderr
    assert (_count(seeded_dsn, "items"), _count(seeded_dsn, "orders")) == (1000, 0)


def test_seed_fails_in_one_line_with_the_harness_exit_codes(pg_server: postgres.Server) -> None:
    missing = subprocess.run([sys.executable, *SEED_COMMAND[1:]], check=False, capture_output=True, text=True, timeout=60,
                             env={k: v for k, v in os.environ.items() if k != "BENCH_APP_DSN"}, cwd=ROOT)
    assert missing.returncode == 2 and "BENCH_APP_DSN is not set" in missing.stderr
    wrong_db = postgres.Server(host=pg_server.host, port=pg_server.port, user=pg_server.user,
                               password="hunter2", embedded=False, version="").dsn("no_such_database")
    failed = _seed(wrong_db, "--wait", "0")
    assert failed.returncode == 3
    assert failed.stderr.count("\n") == 1 and "hunter2" not in failed.stderr + failed.stdout
