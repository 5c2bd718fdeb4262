"""One run's validated configuration, resolved once: CLI flag > BENCH_* variable > scenario catalog > default.

The CLI reads flags and variables (click) and calls ``resolve_config``; bench capacity and tests call it too.
"""

from __future__ import annotations

import ipaddress
import math
import re
import socket
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.config.catalog import Scenario, get_scenario, scenario_from_locustfile
from bench.config.command import CommandTemplate
from bench.config.masterbind import check_remote_workers
from bench.config.optiontable import OPTIONS, Option, is_secret_flag
from bench.db.server import parse_dsn, redact
from bench.errors import UsageError

APPS = ("good", "bad")
TARGET = "target"  # the app's name in summary.json when it is the user's (--target, --serve)
# bench ab's own options: each becomes one of bench run's for one version (bench.config.options.resolve_ab).
AB_OPTIONS = ("ab_app", "app_b", "serve_b", "migrate_b", "ab_repeat")
# The --serve settings, recorded in run.json and summary.json only by a run that serves.
_SERVE_FIELDS = ("serve", "migrate", "ready_path", "ready_timeout_s")

_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m(?!s))?\s*(?:(\d+(?:\.\d+)?)s?)?\s*$")
_MILLISECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*ms\s*$")
_PLAIN = re.compile(r"^\s*-?\d+(?:\.\d+)?\s*$")
MASK = "***"


def parse_duration(text: str | float, flag: str = "--duration") -> float:
    """'20s', '2m', '1h30m', '90' or 1.5 -> seconds; anything else is a UsageError."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    elif _MILLISECONDS.match(text):
        seconds = float(_MILLISECONDS.match(text).group(1)) / 1000  # type: ignore[union-attr]
    else:
        match = _DURATION.match(text) if text.strip() else None
        if match is None or not any(match.groups()):
            raise UsageError(f"{flag} {text!r} is not a duration; use e.g. 20s, 2m, 1h30m or plain seconds")
        h, m, s = (float(g) if g else 0.0 for g in match.groups())
        seconds = h * 3600 + m * 60 + s
    if not math.isfinite(seconds) or seconds < 0:
        raise UsageError(f"{flag} must be a non-negative duration, got {text!r}")
    return seconds


def parse_milliseconds(text: str | float, flag: str) -> float:
    """'50ms', '0.1s', '50' or 50 -> milliseconds: a plain number is milliseconds, as the flag's name says, and
    any unit --duration takes is read as such."""
    if isinstance(text, (int, float)) or _PLAIN.match(text):
        return float(text)
    try:
        return parse_duration(text, flag) * 1000
    except UsageError:
        raise UsageError(f"{flag} {text!r} is not a duration; use e.g. 50ms, 0.1s or plain milliseconds") from None


def parse_pool_sizes(text: str | int, flag: str = "--pool-size") -> tuple[int, ...]:
    """'5', '10,5' -> (5,), (5, 10): the pool sizes named, each at least 1, sorted."""
    sizes = tuple(_number(part.strip(), int, 1, flag) for part in str(text).split(",") if part.strip())
    if not sizes:
        raise UsageError(f"{flag} {text!r}: give one or more pool sizes of at least 1, e.g. 5,10,20")
    if len(set(sizes)) != len(sizes):
        raise UsageError(f"{flag} {text!r} repeats a size")
    return tuple(sorted(sizes))


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A command line fit to record or print: the value of every flag that names a token, password or secret
    masked (``--pool-token T`` and ``--pool-token=T``), and the password of every DSN in it (``--dsn``)."""
    shown: list[str] = []
    secret_follows = False
    for arg in argv:
        if secret_follows:
            shown.append(MASK)
            secret_follows = False
        elif arg.startswith("--") and is_secret_flag(arg):
            flag, equals, _value = arg.partition("=")
            shown.append(f"{flag}={MASK}" if equals else flag)
            secret_follows = not equals
        else:
            shown.append(redact(arg))
    return shown


@dataclass(frozen=True)
class Given:
    """A value the user gave and where: the flag or the BENCH_* variable its errors name."""

    value: Any
    source: str


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
    idle_threshold_ms: float
    idle_tx_timeout_s: float  # PostgreSQL's idle_in_transaction_session_timeout for the apps; 0 = off
    repeat: int
    workers: int  # Locust worker processes (0: one process)
    app_workers: int  # uvicorn worker processes per target app
    master_bind: str  # where the Locust master listens for workers (other hosts: opt in)
    remote_workers: int = 0  # Locust workers on other hosts the master waits for (--remote-workers)
    sample_interval_s: float = 0.1  # how often the collector samples; not a user setting
    dsn: str | None = field(repr=False)
    out: Path | None
    force: bool = False  # a non-empty --out is moved aside first; how the folder was claimed, not a setting
    keep: bool
    # Target mode: drive a running app the harness did not start (apps == ("target",)).
    target: str | None
    app_name: str | None  # its connections' application_name, to tell them apart
    pool_url: str | None
    pool_token: str | None = field(repr=False)
    # --serve: the user's service, started by the harness for every app run on a fresh database
    # (apps == ("target",)); the commands as given, placeholders unfilled (bench.config.command).
    serve: str | None = None
    migrate: str | None = None
    ready_path: str = "/healthz"
    ready_timeout_s: float = 60.0
    slo: str | None = None  # bench run --slo: thresholds the run's figures are held to (bench.config.slo)

    def to_json(self) -> dict[str, Any]:
        """The config as written to run.json and summary.json: never the DSN itself."""
        data = asdict(self)
        data.pop("dsn")
        data.pop("pool_token")
        data.pop("force")
        if self.slo is None:  # a run without --slo keeps the keys it always had
            data.pop("slo")
        if self.serve is None:  # the keys of a paired-app or --target run stay as they were
            for name in _SERVE_FIELDS:
                data.pop(name)
        else:
            data["serve"], data["migrate"] = redact(self.serve), self.migrate and redact(self.migrate)
        data["out"] = str(self.out) if self.out else None
        data["apps"] = list(self.apps)
        data["database"] = "external" if self.dsn else "embedded"
        return data


# The options that are fields of RunConfig as they are ("app" becomes apps, target mode is checked as a whole).
_FIELDS = ("users", "spawn_rate", "duration_s", "pool_size", "max_overflow", "pool_timeout_s", "upstream_latency_ms",
           "cooldown_s", "idle_threshold_ms", "idle_tx_timeout_s", "repeat", "workers", "app_workers",
           "master_bind", "remote_workers", "dsn", "out", "force", "keep", "app_name", "pool_token")


def resolve_run(name: str | None, given: Mapping[str, Any]) -> tuple[Scenario, RunConfig]:
    """bench run's scenario (a catalog name, or --locustfile) and its config."""
    scenario = _scenario(name, given, "add --target URL and --dsn DSN for one already running, or --serve CMD to "
                                      "have the harness start it")
    return scenario, resolve_config(scenario, given)


def resolve_ab(name: str | None, given: Mapping[str, Any]) -> tuple[Scenario, RunConfig, RunConfig]:
    """bench ab's scenario and its two versions' configs: the paired apps ``--app`` vs ``--app-b`` (good vs
    bad), or the user's ``--serve`` vs ``--serve-b`` (the same command again when not given: an A/A run)."""
    shared = dict(given)
    own = {option: shared.pop(option, None) for option in AB_OPTIONS}
    scenario = _scenario(name, shared, "add --serve CMD (and --serve-b CMD for version B)")
    shared["repeat"] = setting("ab_repeat", scenario, own)
    if given_value(shared, "serve") is None:
        _refuse(own, ("serve_b", "migrate_b"), "goes with --serve (version A's command)")
        a = resolve_config(scenario, {**shared, "app": setting("ab_app", scenario, own)})
        return scenario, a, resolve_config(scenario, {**shared, "app": setting("app_b", scenario, own)})
    _refuse(own, ("ab_app", "app_b"), "picks a paired app; with --serve the versions are your commands "
                                      "(--serve and --serve-b)")
    b_given = {**shared, "serve": given_value(own, "serve_b") or given_value(shared, "serve"),
               "migrate": given_value(own, "migrate_b") or given_value(shared, "migrate")}
    return scenario, resolve_config(scenario, shared), resolve_config(scenario, b_given)


def resolve_scenario(name: str | None, given: Mapping[str, Any], own_app_hint: str) -> Scenario:
    """bench capacity's scenario, as bench run's: a catalog name, or --locustfile for the user's own app."""
    return _scenario(name, given, own_app_hint)


def _scenario(name: str | None, given: Mapping[str, Any], own_app_hint: str) -> Scenario:
    """A catalog scenario by name, or the user's --locustfile (which loads the user's app: ``own_app_hint``)."""
    locustfile = given_value(given, "locustfile")
    if locustfile is None:
        if name is None:
            raise UsageError("name a scenario (see: bench scenarios) or pass --locustfile")
        return get_scenario(name)
    if name is None and given_value(given, "target") is None and given_value(given, "serve") is None:
        raise UsageError(f"--locustfile drives your own app: {own_app_hint}")
    return scenario_from_locustfile(Path(locustfile.value))


def _refuse(given: Mapping[str, Any], names: tuple[str, ...], why: str) -> None:
    for name in names:
        if (value := given_value(given, name)) is not None:
            raise UsageError(f"{value.source} {why}")


def resolve_config(scenario: Scenario, given: Mapping[str, Any] | None = None) -> RunConfig:
    """Build the run's config from what was given (a ``Given``, or a plain value standing for its flag; None or
    absent: not given), else the scenario's catalog entry, else the built-in default. Every value is checked."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(OPTIONS))
    if unknown:
        raise ValueError(f"not options of bench run: {', '.join(unknown)}")  # a caller's mistake, not a user's
    values = {name: setting(name, scenario, given) for name in (*_FIELDS, "app", "target", "allow_remote")}
    target, app = values.pop("target"), values.pop("app")
    allow_remote = values.pop("allow_remote")
    if target:
        check_target(target, allow_remote)
        if not values["dsn"]:
            raise UsageError("--target needs --dsn (or BENCH_DSN): the database the target app uses, to watch it")
    check_remote_workers(values["master_bind"], values["remote_workers"], target)
    served = _serve_settings(scenario, given, target)
    pool_url = setting("pool_url", scenario, given) or (target.rstrip("/") + "/_bench/pool" if target else None)
    return RunConfig(
        scenario=scenario.name,
        apps=(TARGET,) if target or served else APPS if app == "both" else (app,),
        target=target.rstrip("/") if target else None,
        pool_url=pool_url,
        **values,
        **served,
    )


def _serve_settings(scenario: Scenario, given: Mapping[str, Any], target: str | None) -> dict[str, Any]:
    """--serve and what goes with it, each command checked (a malformed one, or one without {port}, is a usage
    error before anything runs); {} without --serve, where giving --migrate or --ready is a mistake said."""
    serve = given_value(given, "serve")
    if serve is None or not str(serve.value).strip():
        for name in _SERVE_FIELDS[1:]:
            if (value := given_value(given, name)) is not None:
                raise UsageError(f"{value.source} goes with --serve CMD (the service the harness starts)")
        return {}
    if target:
        raise UsageError("--serve starts your service, --target loads one already running: give one of them")
    if (app := given_value(given, "app")) is not None:
        raise UsageError(f"{app.source} picks a paired app; --serve runs your own: give one of them")
    settings = {name: setting(name, scenario, given) for name in _SERVE_FIELDS}
    CommandTemplate.parse(settings["serve"], serve.source, needs=("port",))
    if settings["migrate"]:
        CommandTemplate.parse(settings["migrate"], _source(given, "migrate"))
    if not settings["ready_path"].startswith("/"):
        raise UsageError(f"--ready {settings['ready_path']!r} must be a path such as /healthz")
    return settings


def _source(given: Mapping[str, Any], name: str) -> str:
    value = given_value(given, name)
    return value.source if value is not None else OPTIONS[name].flag


def given_value(given: Mapping[str, Any], name: str) -> Given | None:
    """What was given for ``name`` (a plain value stands for its flag); None when nothing was."""
    raw = given.get(name)
    if isinstance(raw, Given):
        return raw if raw.value is not None else None
    return None if raw is None else Given(raw, OPTIONS[name].flag)


def setting(name: str, scenario: Scenario, given: Mapping[str, Any]) -> Any:
    """One option's value, checked: given > catalog > built-in default."""
    option = OPTIONS[name]
    value = given_value(given, name)
    if value is not None:
        return _read(option, value.value, value.source)
    if option.catalog and name in scenario.defaults:
        return _read(option, scenario.defaults[name], f"{name} of scenario '{scenario.name}'")
    return option.default


def _read(option: Option, raw: Any, source: str) -> Any:
    """``raw`` as the option's kind; a bad value is a one-line UsageError naming ``source``."""
    kind = option.kind
    if kind in ("int", "float", "duration", "ms", "sizes"):
        written = raw
        if kind == "duration" and isinstance(raw, str):
            raw = parse_duration(raw, source)
        elif kind == "ms" and isinstance(raw, str):
            raw = parse_milliseconds(raw, source)
        # A value below the minimum is named in the user's words and units: "--duration must be at least 1s, got
        # '0'", not "1, got 0.0".
        value = _one_size(raw, source) if kind == "sizes" else _number(
            raw, int if kind == "int" else float, option.minimum, source,
            shown=option.value_text_of(option.minimum), written=written)
        if option.maximum is not None and value > option.maximum:
            limit = f"{option.maximum / 3600:g}h" if kind == "duration" else f"{option.maximum:g}"
            raise UsageError(f"{source} is capped at {limit}; {option.cap}")
        return value
    if kind == "choice" and raw not in option.choices:
        raise UsageError(f"{source} must be {', '.join(option.choices[:-1])} or {option.choices[-1]}, got {raw!r}")
    if kind == "switch":
        return bool(raw)
    if kind == "path":
        return Path(raw)
    text = str(raw).strip()
    if kind == "dsn" and text:
        parse_dsn(text)  # malformed -> a usage error now, before any run folder exists
    return text or None


def _one_size(raw: Any, source: str) -> int:
    sizes = parse_pool_sizes(raw, source)
    if len(sizes) > 1:
        raise UsageError(f"{source} {raw!r} names {len(sizes)} pool sizes; a run takes one "
                         "(bench capacity sweeps several)")
    return sizes[0]


def _number(raw: Any, kind: type, minimum: float, source: str, shown: str | None = None, written: Any = None) -> Any:
    """``raw`` as a number of ``kind``, at least ``minimum``; ``shown`` and ``written`` are the minimum and the value
    as the user would write them, for the error (default: as numbers)."""
    try:
        value = float(raw)
        if kind is int:
            if not value.is_integer():
                raise ValueError(raw)
            value = int(value)
    except (TypeError, ValueError, OverflowError):
        raise UsageError(f"{source} expects a number, got {raw!r}") from None
    if not math.isfinite(float(value)) or value < minimum:
        given = raw if written is None else written
        raise UsageError(f"{source} must be at least {shown or f'{minimum:g}'}, got {given!r}")
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
