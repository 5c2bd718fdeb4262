"""Settings of one target app process, read from ``BENCH_APP_*`` environment variables.

The harness sets them when it starts uvicorn; ``create_app`` reads them inside the lifespan.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


class SettingsError(ValueError):
    """A missing or malformed ``BENCH_APP_*`` variable."""


@dataclass(frozen=True, kw_only=True)
class AppSettings:
    dsn: str = field(repr=False)
    variant: str
    pool_size: int = 5
    max_overflow: int = 0
    pool_timeout_s: float = 30.0
    upstream_latency_ms: float = 100.0
    idle_tx_timeout_ms: int = 0  # server-side safety net; 0 leaves PostgreSQL's default (off)

    @property
    def application_name(self) -> str:
        """Tags every connection so pg_stat_activity can be split per app."""
        return f"scopebench-{self.variant}"

    @classmethod
    def from_env(cls, variant: str, env: dict[str, str] | None = None) -> AppSettings:
        env = dict(os.environ if env is None else env)
        dsn = env.get("BENCH_APP_DSN")
        if not dsn:
            raise SettingsError("BENCH_APP_DSN is not set; point it at postgresql+asyncpg://...")
        try:
            return cls(
                dsn=dsn,
                variant=variant,
                pool_size=int(env.get("BENCH_APP_POOL_SIZE", 5)),
                max_overflow=int(env.get("BENCH_APP_MAX_OVERFLOW", 0)),
                pool_timeout_s=float(env.get("BENCH_APP_POOL_TIMEOUT", 30)),
                upstream_latency_ms=float(env.get("BENCH_APP_UPSTREAM_MS", 100)),
                idle_tx_timeout_ms=int(env.get("BENCH_APP_IDLE_TX_TIMEOUT_MS", 0)),
            )
        except ValueError as err:
            raise SettingsError(f"malformed BENCH_APP_* setting: {err}") from None
