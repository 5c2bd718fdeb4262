"""The pool's figures in an app's own prometheus_client registry (``bench.instrument.promclient``), under a real
uvicorn with two worker processes: every scrape of the service's /metrics, whichever worker answers, and the
pool endpoint's ``?format=prometheus``, read through prometheus_client's own parser, give the sum over both
workers, checked against the requests the test made and the connections the server lists.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from bench.db import server as postgres
from bench.db.ports import free_port
from bench.instrument import PoolMetrics
from bench.instrument.promclient import register
from bench.run.processes import Child, wait_for_http

APP_NAME = "sb-promclient"
SERVICE = """
import asyncio
import os
from contextlib import asynccontextmanager
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bench.instrument import ENDPOINT_PATH, PoolEndpoint, RouteTagMiddleware, TimedAsyncPool, instrument, keep_writing
from bench.instrument.promclient import register

SHARED = os.environ["POOL_SHARED_DIR"]
state = {}
# The service's own registry, in prometheus_client's multi-process mode, with a metric of its own.
registry = CollectorRegistry()
MultiProcessCollector(registry)
REQUESTS = Counter("svc_requests", "Requests served.")
register(lambda: state.get("metrics"), registry, pool_name="svc", shared_dir=SHARED)


@asynccontextmanager
async def lifespan(app):
    engine = create_async_engine(os.environ["SVC_DSN"], poolclass=TimedAsyncPool, pool_size=2,
                                 connect_args={"server_settings": {"application_name": os.environ["SVC_NAME"]}})
    state["engine"], state["metrics"] = engine, instrument(engine)
    writer = asyncio.create_task(keep_writing(state["metrics"], Path(SHARED)))
    yield
    writer.cancel()
    await engine.dispose()


async def item(request):
    async with state["engine"].connect() as conn:
        await conn.execute(text("SELECT 1"))
    REQUESTS.inc()
    return PlainTextResponse(str(os.getpid()))


async def healthz(request):
    return PlainTextResponse("ok")


async def metrics(request):
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST, headers={"x-worker": str(os.getpid())})


app = Starlette(routes=[Route("/items", item), Route("/healthz", healthz), Route("/metrics", metrics)],
                lifespan=lifespan)
app.add_route(ENDPOINT_PATH, PoolEndpoint(lambda: state.get("metrics"), pool_name="svc", shared_dir=SHARED))
app.add_middleware(RouteTagMiddleware)
"""


def _get(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.headers.get("x-worker", ""), response.read().decode()


def _figures(exposition: str) -> dict[str, float]:
    """The samples a scrape holds, as prometheus_client's parser reads them: name{labels} -> value."""
    out = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()) if k != "le")
            if "le" not in sample.labels:
                out[f"{sample.name}{{{labels}}}"] = sample.value
    return out


POOL = "db_client_connection_pool_name=svc"


@pytest.fixture
def service(pg_server: postgres.Server, database: str, tmp_path: Path) -> Iterator[str]:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "svc.py").write_text(SERVICE, encoding="utf-8")
    (tmp_path / "prom").mkdir()
    port = free_port()
    child = Child(
        name="service, 2 workers",
        log_path=tmp_path / "svc.log",
        argv=[
            sys.executable,
            "-m",
            "uvicorn",
            "svc:app",
            "--app-dir",
            str(tmp_path / "app"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--workers",
            "2",
        ],
        env={
            "SVC_DSN": postgres.sqlalchemy_url(pg_server.dsn(database)),
            "SVC_NAME": APP_NAME,
            "POOL_SHARED_DIR": str(tmp_path / "pool"),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        },
    )
    child.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(base + "/healthz", child, timeout=30)
        yield base
    finally:
        child.stop()


def _load_both(base: str) -> int:
    """Requests until each worker served some (new connections, so the kernel spreads them); returns how many."""
    served: dict[str, int] = {}
    while len(served) < 2 or sum(served.values()) < 30:
        assert sum(served.values()) < 1000, f"one worker answered every request: {served}"
        pid = _get(base + "/items")[1]
        served[pid] = served.get(pid, 0) + 1
    return sum(served.values())


def _settled(base: str, requests: int) -> None:
    """Each worker rewrites its snapshot every 0.1 s: wait until the last requests are in."""
    deadline = time.monotonic() + 15
    while (
        _figures(_get(base + "/metrics")[1]).get(f"db_client_connection_use_time_seconds_count{{{POOL}}}") != requests
    ):
        assert time.monotonic() < deadline, "the workers' snapshots never added up to the requests made"
        time.sleep(0.1)


def _backends(pg_server: postgres.Server, database: str) -> int:
    import asyncio

    async def count() -> int:
        conn = await asyncpg.connect(pg_server.dsn(database))
        try:
            return int(
                await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", APP_NAME)
            )
        finally:
            await conn.close()

    return asyncio.run(count())


def test_every_scrape_sums_both_workers(service: str, pg_server: postgres.Server, database: str) -> None:
    requests = _load_both(service)
    _settled(service, requests)
    scrapes: dict[str, list[dict[str, float]]] = {}
    for _ in range(200):
        worker, text = _get(service + "/metrics")
        scrapes.setdefault(worker, []).append(_figures(text))
        if len(scrapes) == 2 and min(len(v) for v in scrapes.values()) >= 3:
            break
    assert len(scrapes) == 2, "every scrape was answered by the same worker"
    idle = _backends(pg_server, database)  # each worker's pool keeps its connections open, idle
    for figures in (f for answered in scrapes.values() for f in answered):
        assert figures["svc_requests_total{}"] == requests  # the app's own metric, summed by prometheus_client
        assert figures[f"db_client_connection_use_time_seconds_count{{{POOL}}}"] == requests
        assert figures[f"db_client_connection_wait_time_seconds_count{{{POOL}}}"] == requests
        assert figures[f"db_client_connection_timeouts_total{{{POOL}}}"] == 0
        assert figures[f"db_client_connection_count{{{POOL},db_client_connection_state=used}}"] == 0
        assert figures[f"db_client_connection_count{{{POOL},db_client_connection_state=idle}}"] == idle
        # Both pools' limits: 2 idle and 2 + 10 overflow each.
        assert figures[f"db_client_connection_idle_max{{{POOL}}}"] == 4
        assert figures[f"db_client_connection_max{{{POOL}}}"] == 24
        created = figures[f"db_client_connection_create_time_seconds_count{{{POOL}}}"]
        assert created == figures[f"scopebench_connections_opened_total{{{POOL}}}"] == idle
    assert 2 <= idle <= 4  # each worker opened at least one connection, its pool keeps at most two


def test_the_endpoints_prometheus_view_is_the_json_views_sum(service: str) -> None:
    requests = _load_both(service)
    _settled(service, requests)
    for _ in range(20):
        body = _get(service + "/_bench/pool")[1]
        text = _get(service + "/_bench/pool?format=prometheus")[1]
        snapshot = json.loads(body)
        figures = _figures(text)
        assert snapshot["workers"] == 2 and snapshot["counters"]["checkouts"] == requests
        assert snapshot["gauges"]["timeout_s"] == 30  # each pool's setting (SQLAlchemy's default), not a sum
        assert figures[f"db_client_connection_use_time_seconds_count{{{POOL}}}"] == requests
        route = f"scopebench_connection_use_time_by_route_seconds_count{{{POOL},http_route=GET /items}}"
        assert figures[route] == snapshot["use_time_by_route"]["GET /items"]["count"] == requests


def test_registers_beside_the_apps_own_metrics_and_refuses_a_clash() -> None:
    registry = CollectorRegistry()
    metrics = PoolMetrics()
    metrics.wait.record(0.002)
    collector = register(lambda: metrics, registry, pool_name="one")
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        register(lambda: metrics, registry, pool_name="two")
    registry.unregister(collector)
    register(lambda: None, registry)  # no pool yet: a scrape without its figures, not an error
    assert not [f for f in registry.collect() if f.name.startswith("db_client")]
