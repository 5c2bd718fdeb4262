"""The ``BENCH_APP_*`` contract between the harness and a target app: one typed record, written and read here.

The runner builds an ``AppEnv`` and passes ``to_env()`` to uvicorn; the target apps call ``AppEnv.from_env()``.
Standard library only: the target apps import it, so it imports nothing else from bench.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any


class AppEnvError(ValueError):
    """A missing or malformed ``BENCH_APP_*`` variable (one line, naming the variable)."""


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise ValueError(f"a whole number of at least {minimum}")
        return value

    return parse


def _number(minimum: float, above: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < minimum or (above and value == minimum):
            raise ValueError(f"a number {'above' if above else 'of at least'} {minimum:g}")
        return value

    return parse


def _switch(text: str) -> bool:
    if text not in ("on", "off"):
        raise ValueError("on or off")
    return text == "on"


def _text(text: str) -> str:
    return text


def _var(name: str, parse: Callable[[str], Any], default: Any = MISSING, *, optional: bool = False,
         scenario: bool = False, secret: bool = False) -> Any:
    """A field carried as ``name``. ``optional`` ones are written only when set (the harness states the pool
    settings always, so a changed default in the app cannot drift from the run); ``scenario`` ones may be set
    by a catalog entry's ``app_env``."""
    meta = {"env": name, "parse": parse, "optional": optional, "scenario": scenario}
    return field(default=default, repr=not secret, metadata=meta)


@dataclass(frozen=True, kw_only=True)
class AppEnv:
    dsn: str = _var("BENCH_APP_DSN", _text, secret=True)  # postgresql+asyncpg://...
    pool_size: int = _var("BENCH_APP_POOL_SIZE", _count(1), 5)
    max_overflow: int = _var("BENCH_APP_MAX_OVERFLOW", _count(0), 0)
    pool_timeout_s: float = _var("BENCH_APP_POOL_TIMEOUT", _number(0, above=True), 30.0)
    upstream_latency_ms: float = _var("BENCH_APP_UPSTREAM_MS", _number(0), 100.0)
    # PostgreSQL's idle_in_transaction_session_timeout for the app's connections; 0 leaves the server's (off).
    idle_tx_timeout_ms: int = _var("BENCH_APP_IDLE_TX_TIMEOUT_MS", _count(0), 0)
    # Holds longer than this are traced to the app's lines (instrument(long_hold_ms=...)): the run's threshold.
    idle_threshold_ms: float = _var("BENCH_APP_IDLE_THRESHOLD_MS", _number(0, above=True), 50.0, optional=True)
    metrics: bool = _var("BENCH_APP_METRICS", _switch, True, optional=True)  # serve GET /_bench/pool
    metrics_token: str | None = _var("BENCH_APP_METRICS_TOKEN", _text, None, optional=True, secret=True)
    # uvicorn --workers: each worker writes its pool snapshot here so the endpoint serves their sum.
    metrics_dir: str | None = _var("BENCH_APP_METRICS_DIR", _text, None, optional=True)
    # Automatic GC off and a collection every this many seconds (target_apps/common/gc_schedule.py).
    gc_every_s: float | None = _var("BENCH_APP_GC_EVERY_S", _number(0, above=True), None, optional=True,
                                    scenario=True)
    # The bad long-session route holds its session across the upstream call in 1 request in this many (the rest
    # use two short sessions): the smallest culprit the gates still catch (benchmarks/ci_verdicts.py).
    hold_every: int = _var("BENCH_APP_HOLD_EVERY", _count(1), 1, optional=True)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AppEnv:
        """Read every ``BENCH_APP_*`` variable (empty = unset); a malformed one raises ``AppEnvError``."""
        source = os.environ if env is None else env
        values = {f.name: _parse(f.metadata, source[f.metadata["env"]])
                  for f in fields(cls) if source.get(f.metadata["env"])}
        if not values.get("dsn"):
            raise AppEnvError("BENCH_APP_DSN is not set; point it at postgresql+asyncpg://...")
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The variables that give this record back through ``from_env``."""
        env = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or (f.metadata["optional"] and value == f.default):
                continue
            env[f.metadata["env"]] = ("on" if value else "off") if isinstance(value, bool) else str(value)
        return env

    def with_scenario(self, extras: Mapping[str, str]) -> AppEnv:
        """This record with a catalog entry's ``app_env`` applied."""
        return replace(self, **scenario_settings(extras))


def scenario_settings(extras: Mapping[str, str]) -> dict[str, Any]:
    """A catalog entry's ``app_env`` as ``AppEnv`` fields; names it may not set or bad values raise AppEnvError."""
    allowed = {f.metadata["env"]: f for f in fields(AppEnv) if f.metadata["scenario"]}
    values = {}
    for name, text in extras.items():
        if name not in allowed:
            raise AppEnvError(f"{name} cannot be set by a scenario; it may set {', '.join(sorted(allowed))}")
        values[allowed[name].name] = _parse(allowed[name].metadata, text)
    return values


def variables() -> tuple[str, ...]:
    """Every variable of the contract: what the apps read and what a deployment may set."""
    return tuple(f.metadata["env"] for f in fields(AppEnv))


def application_name(variant: str) -> str:
    """The ``application_name`` of an app's connections: how pg_stat_activity is split per app."""
    return f"scopebench-{variant}"


def _parse(meta: Mapping[str, Any], text: str) -> Any:
    try:
        return meta["parse"](text.strip())
    except ValueError as err:
        raise AppEnvError(f"{meta['env']} must be {err}, got {text!r}") from None
