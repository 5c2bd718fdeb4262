"""One run's validated configuration, with a fixed precedence: CLI flag > BENCH_* env > catalog > default.

The CLI builds a ``RunConfig`` with ``resolve_config``; the runner and the summary read it.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import socket
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.config.catalog import Scenario
from bench.db.server import parse_dsn
from bench.errors import UsageError

APPS = ("good", "bad")
MAX_DURATION_S = 6 * 3600.0  # load is always bounded; nobody means to run a scenario for days

_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m(?!s))?\s*(?:(\d+(?:\.\d+)?)s?)?\s*$")
_MILLISECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*ms\s*$")


def parse_duration(text: str | float, flag: str = "--duration") -> float:
    """'20s', '2m', '1h30m', '90' or 1.5 -> seconds; anything else is a UsageError."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    elif _MILLISECONDS.match(text):
        seconds = float(_MILLISECONDS.match(text).group(1)) / 1000  # type: ignore[union-attr]
    else:
        match = _DURATION.match(text) if text.strip() else None
        if match is None or not any(match.groups()):
            raise UsageError(f"{flag} {text!r} is not a duration; use e.g. 20s, 2m, 1h30m, 500ms or plain seconds")
        h, m, s = (float(g) if g else 0.0 for g in match.groups())
        seconds = h * 3600 + m * 60 + s
    if not math.isfinite(seconds) or seconds < 0:
        raise UsageError(f"{flag} must be a non-negative duration, got {text!r}")
    return seconds


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    scenario: str
    apps: tuple[str, ...]
    users: int
    spawn_rate: float
    duration_s: float
    pool_size: int
    max_overflow: int
    pool_timeout_s: float
    upstream_latency_ms: float
    cooldown_s: float
    idle_threshold_ms: float = 50.0
    idle_tx_timeout_s: float = 0.0  # PostgreSQL's idle_in_transaction_session_timeout for the apps; 0 = off
    repeat: int = 1
    workers: int = 0  # Locust worker processes (0: one process)
    app_workers: int = 1  # uvicorn worker processes per target app
    master_bind: str = "127.0.0.1"  # where the Locust master listens for workers (other hosts: opt in)
    sample_interval_s: float = 0.1
    dsn: str | None = field(default=None, repr=False)
    out: Path | None = None
    keep: bool = False
    # Target mode: drive a running app the harness did not start (apps == ("target",)).
    target: str | None = None
    app_name: str | None = None  # its connections' application_name, to tell them apart
    pool_url: str | None = None
    pool_token: str | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The config as written to run.json and summary.json: never the DSN itself."""
        data = asdict(self)
        data.pop("dsn")
        data.pop("pool_token")
        data["out"] = str(self.out) if self.out else None
        data["apps"] = list(self.apps)
        data["database"] = "external" if self.dsn else "embedded"
        return data


# name -> (env var, type, minimum)
_NUMERIC: dict[str, tuple[str, type, float]] = {
    "users": ("BENCH_USERS", int, 1),
    "spawn_rate": ("BENCH_SPAWN_RATE", float, 0.01),
    "duration_s": ("BENCH_DURATION", float, 1),
    "pool_size": ("BENCH_POOL_SIZE", int, 1),
    "max_overflow": ("BENCH_MAX_OVERFLOW", int, 0),
    "pool_timeout_s": ("BENCH_POOL_TIMEOUT", float, 0.01),
    "upstream_latency_ms": ("BENCH_UPSTREAM_MS", float, 0),
    "cooldown_s": ("BENCH_COOLDOWN", float, 0),
    "idle_threshold_ms": ("BENCH_IDLE_THRESHOLD_MS", float, 0),
    "idle_tx_timeout_s": ("BENCH_IDLE_TX_TIMEOUT", float, 0),
    "repeat": ("BENCH_REPEAT", int, 1),
    "workers": ("BENCH_WORKERS", int, 0),
    "app_workers": ("BENCH_APP_WORKERS", int, 1),
}
_BUILTIN = {"idle_threshold_ms": 50.0, "repeat": 1, "idle_tx_timeout_s": 0.0, "workers": 0, "app_workers": 1}
_FLAG = {
    "duration_s": "--duration",
    "pool_timeout_s": "--pool-timeout",
    "upstream_latency_ms": "--upstream-ms",
    "cooldown_s": "--cooldown",
    "idle_threshold_ms": "--idle-threshold",
    "idle_tx_timeout_s": "--idle-tx-timeout",
}


def resolve_config(
    scenario: Scenario,
    flags: dict[str, Any],
    env: dict[str, str] | None = None,
) -> RunConfig:
    """Merge flags (None = not given), BENCH_* variables, catalog defaults and built-in defaults."""
    env = dict(os.environ if env is None else env)
    values: dict[str, Any] = {}
    for name, (var, kind, minimum) in _NUMERIC.items():
        flag = _FLAG.get(name, "--" + name.replace("_", "-"))
        raw = flags.get(name)
        source = flag
        if raw is None and env.get(var):
            raw, source = env[var], var
        if raw is None:
            raw = scenario.defaults.get(name, _BUILTIN.get(name))
        values[name] = _number(raw, kind, minimum, source)
    if values["workers"] > 64 or values["app_workers"] > 64:
        raise UsageError("--workers and --app-workers are capped at 64 processes on one machine")
    if values["repeat"] > 50:
        raise UsageError("--repeat is capped at 50; more repeats of a short run beat many of a long one")
    if values["duration_s"] > MAX_DURATION_S:
        raise UsageError(f"--duration is capped at {MAX_DURATION_S / 3600:.0f}h; split longer soaks into runs")
    target = flags.get("target") or env.get("BENCH_TARGET") or None
    app = flags.get("app") or env.get("BENCH_APP") or "both"
    if app not in (*APPS, "both"):
        raise UsageError(f"--app must be good, bad or both, got {app!r}")
    if target:
        check_target(target, bool(flags.get("allow_remote")))
    dsn = flags.get("dsn") or env.get("BENCH_DSN") or None
    if dsn:
        parse_dsn(dsn)  # malformed -> a usage error now, before any run folder exists
    if target and not dsn:
        raise UsageError("--target needs --dsn (or BENCH_DSN): the database the target app uses, to watch it")
    return RunConfig(
        scenario=scenario.name,
        apps=("target",) if target else APPS if app == "both" else (app,),
        target=target.rstrip("/") if target else None,
        app_name=flags.get("app_name") or None,
        pool_url=flags.get("pool_url") or (target.rstrip("/") + "/_bench/pool" if target else None),
        pool_token=flags.get("pool_token") or env.get("BENCH_POOL_TOKEN") or None,
        master_bind=flags.get("master_bind") or "127.0.0.1",
        dsn=dsn,
        out=flags.get("out"),
        keep=bool(flags.get("keep")),
        **values,
    )


def _number(raw: Any, kind: type, minimum: float, source: str) -> Any:
    durations = ("--duration", "--cooldown", "--idle-tx-timeout", "BENCH_DURATION", "BENCH_COOLDOWN",
                 "BENCH_IDLE_TX_TIMEOUT")
    if isinstance(raw, str) and source in durations:
        raw = parse_duration(raw, source)
    try:
        value = float(raw)
        if kind is int:
            if not value.is_integer():
                raise ValueError(raw)
            value = int(value)
    except (TypeError, ValueError, OverflowError):
        raise UsageError(f"{source} expects a number, got {raw!r}") from None
    if not math.isfinite(float(value)) or value < minimum:
        raise UsageError(f"{source} must be at least {minimum:g}, got {raw!r}")
    return value


def check_target(url: str, allow_remote: bool) -> None:
    """Load goes to loopback only, unless the user says otherwise: load tests aim at production by accident."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--target {url!r} is not an http(s)://host:port URL")
    if allow_remote:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 80, proto=socket.IPPROTO_TCP)
    except socket.gaierror as err:
        raise UsageError(f"--target host {parts.hostname!r} does not resolve: {err.strerror}") from None
    addresses = {str(info[4][0]) for info in infos}
    remote = sorted(a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback)
    if remote:
        raise UsageError(
            f"--target {parts.hostname} resolves to {', '.join(remote)}, not a loopback address; "
            "load tests stay on this machine unless you pass --allow-remote"
        )
