"""Builds a target app from its ``BENCH_APP_*`` settings: engine, instrumented pool and sessionmaker made in
the lifespan, shared routes. ``good.app`` and ``bad.app`` pass their scenario routes; the rest is identical.
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from fastapi import APIRouter, FastAPI, HTTPException, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from bench.config.appenv import AppEnv, AppEnvError, application_name
from bench.instrument import (
    ENDPOINT_PATH,
    LoopLag,
    PoolEndpoint,
    PoolMetrics,
    RouteTagMiddleware,
    TimedAsyncPool,
    instrument,
    keep_writing,
)
from target_apps.common.models import Item


@dataclass(frozen=True)
class AppState:
    settings: AppEnv
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    metrics: PoolMetrics

    @property
    def upstream_latency_s(self) -> float:
        return self.settings.upstream_latency_ms / 1000.0


def build_engine(settings: AppEnv, variant: str) -> AsyncEngine:
    # application_name tags every connection, so pg_stat_activity can be split per app.
    server_settings = {"application_name": application_name(variant)}
    if settings.idle_tx_timeout_ms:
        server_settings["idle_in_transaction_session_timeout"] = str(settings.idle_tx_timeout_ms)
    return create_async_engine(
        settings.dsn,
        poolclass=TimedAsyncPool,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout_s,
        connect_args={"server_settings": server_settings},
    )


def state_of(request: Request) -> AppState:
    state: AppState = request.app.state.bench
    return state


def scenario_modules(package: str) -> list[ModuleType]:
    """Every module in ``package`` but ``app``, in name order: one per scenario.

    A module contributes its ``router``; one that needs more (a middleware, a mounted sub-app)
    defines ``install(app: FastAPI) -> None`` instead.
    """
    pkg = importlib.import_module(package)
    return [
        importlib.import_module(f"{package}.{info.name}")
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name)
        if info.name != "app"
    ]


def create_app(variant: str, scenarios: Sequence[ModuleType], settings: AppEnv | None = None) -> FastAPI:
    """The app for ``variant``; ``settings`` default to the ``BENCH_APP_*`` variables, read once, here."""
    if settings is None:
        try:
            settings = AppEnv.from_env()
        except AppEnvError as err:  # one line naming the variable, not uvicorn's traceback of the factory
            raise SystemExit(f"error: {err}") from None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = build_engine(settings, variant)
        metrics = instrument(engine, long_hold_ms=settings.idle_threshold_ms)  # statements tagged too
        app.state.bench = AppState(
            settings=settings,
            engine=engine,
            sessions=async_sessionmaker(engine, expire_on_commit=False),
            metrics=metrics,
        )
        # Event-loop lag tells a CPU-bound app from a starved pool (bench capacity names the bottleneck).
        metrics.loop = LoopLag()
        monitor = asyncio.create_task(metrics.loop.run(), name="bench-loop-lag")
        shared = settings.metrics_dir
        writer = asyncio.create_task(keep_writing(metrics, Path(shared))) if shared else None
        try:
            yield
        finally:
            monitor.cancel()
            await asyncio.gather(monitor, return_exceptions=True)
            if writer is not None:
                writer.cancel()
                await asyncio.gather(writer, return_exceptions=True)
            await engine.dispose()

    app = FastAPI(title=f"scopebench target app ({variant})", lifespan=lifespan)
    app.include_router(_shared_routes(variant))
    for module in scenarios:
        install = getattr(module, "install", None)
        if install is not None:
            install(app)
        else:
            app.include_router(module.router)
    if settings.metrics:
        endpoint = PoolEndpoint(lambda: getattr(app.state, "bench", None) and app.state.bench.metrics,
                                token=settings.metrics_token, pool_name=variant, shared_dir=settings.metrics_dir)
        app.add_route(ENDPOINT_PATH, endpoint)
    app.add_middleware(RouteTagMiddleware)
    return app


def _shared_routes(variant: str) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "variant": variant}

    @router.get("/items/{item_id}")
    async def read_item(item_id: int, request: Request) -> dict[str, object]:
        # The innocent read route: one short session, identical in both apps.
        async with state_of(request).sessions() as session:
            item = await session.scalar(select(Item).where(Item.id == item_id))
        if item is None:
            raise HTTPException(404, "no such item")
        return {"id": item.id, "name": item.name, "price_cents": item.price_cents}

    return router
