"""The pool endpoint of a real target app under uvicorn: JSON, Prometheus text, token, disabled."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.db import server as postgres
from bench.run.processes import Child
from tests.conftest import seed, start_app

TOKEN = "t0ken-for-tests"


def _start(server: postgres.Server, database: str, folder: Path, **env: str) -> tuple[Child, str]:
    child, base = start_app(server, database, folder, **env)
    return child, base


def _get(url: str, token: str | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["content-type"], response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["content-type"] or "", err.read().decode()


@pytest.fixture
def app(pg_server: postgres.Server, database: str, tmp_path: Path) -> Iterator[str]:
    seed(pg_server, database)
    child, base = _start(pg_server, database, tmp_path, BENCH_APP_METRICS_TOKEN=TOKEN)
    try:
        yield base
    finally:
        child.stop()


def test_token_protects_the_endpoint(app: str) -> None:
    assert _get(app + "/_bench/pool")[0] == 401
    assert _get(app + "/_bench/pool", "wrong")[0] == 401
    status, kind, body = _get(app + "/_bench/pool", TOKEN)
    assert status == 200 and kind.startswith("application/json") and '"wait_time"' in body


def test_prometheus_exposition_follows_the_otel_names(app: str) -> None:
    for item in range(1, 6):
        assert _get(f"{app}/items/{item}")[0] == 200
    status, kind, text = _get(app + "/_bench/pool?format=prometheus", TOKEN)
    assert status == 200 and kind.startswith("text/plain; version=0.0.4")
    families = set(re.findall(r"^# TYPE (\S+) (\w+)$", text, re.MULTILINE))
    assert {("db_client_connection_wait_time_seconds", "histogram"),
            ("db_client_connection_use_time_seconds", "histogram"),
            ("db_client_connection_create_time_seconds", "histogram"),
            ("db_client_connection_count", "gauge"),
            ("db_client_connection_pending_requests", "gauge"),
            ("db_client_connection_timeouts_total", "counter")} <= families
    # One family per name, cumulative buckets, +Inf equal to the count.
    assert len(re.findall(r"^# TYPE ", text, re.MULTILINE)) == len(families)
    buckets = [int(v) for v in re.findall(r'^db_client_connection_use_time_seconds_bucket\{.*?\} (\d+)$', text, re.MULTILINE)]
    assert buckets == sorted(buckets) and buckets[-1] == 5
    assert re.search(r'^db_client_connection_use_time_seconds_count\{db_client_connection_pool_name="good"\} 5$',
                     text, re.MULTILINE)
    assert 'http_route="GET /items/{item_id}"' in text
    for line in text.splitlines():
        assert line.startswith("#") or re.match(r'^[a-z_]+(\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})? -?[0-9.e+-]+$', line), line


def test_endpoint_can_be_disabled(pg_server: postgres.Server, database: str, tmp_path: Path) -> None:
    child, base = _start(pg_server, database, tmp_path, BENCH_APP_METRICS="off")
    try:
        assert _get(base + "/_bench/pool")[0] == 404
    finally:
        child.stop()
