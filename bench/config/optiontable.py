"""Every option of ``bench run``, ``bench ab`` and ``bench capacity``, once: flag, ``BENCH_*`` variable, default, help.

bench/cli/ declares its typer options from ``OPTIONS``; bench.config.options resolves them, the catalog reads
which of them a scenario may set, and the README's option tables mirror them (tests/test_settings.py checks).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from bench.config.appenv import AppEnv

MAX_DURATION_S = 6 * 3600.0  # load is always bounded; nobody means to run a scenario for days
MAX_PROCESSES = 64  # Locust or uvicorn workers on one machine
# An option whose name holds one of these carries a secret: its value is masked wherever a command is recorded.
SECRET_WORDS = ("token", "password", "secret")
# The target apps' own defaults (bench.config.appenv): one place for the harness and the apps.
_APP: dict[str, Any] = {f.name: f.default for f in fields(AppEnv)}


@dataclass(frozen=True, kw_only=True)
class Option:
    """One option: how the user writes it, and what it is when they do not."""

    flag: str
    help: str
    env: str | None = None
    kind: str = "text"  # int, float, duration (seconds), ms, sizes, choice, text, dsn, url, path, switch
    default: Any = None  # the built-in default; None: unset
    minimum: float = 0.0
    maximum: float | None = None
    cap: str = ""  # why there is a maximum, said in its error
    choices: tuple[str, ...] = ()  # checked for kind "choice"; offered by shell completion for any kind
    catalog: bool = False  # a scenario's catalog entry may set it, over the built-in default
    shown: str | None = None  # the default in --help's words, where the value alone would not say it
    metavar: str | None = None
    short: str | None = None  # Locust's letter where it does not clash: -u users, -r spawn rate, -t, -H
    # A deprecated name of another option (the key named here): read as that option, with a warning.
    alias_of: str | None = None

    @property
    def secret(self) -> bool:
        """Its value is never recorded or printed: a token, password or secret, or a DSN (its password)."""
        return self.kind == "dsn" or is_secret_flag(self.flag)

    @property
    def default_text(self) -> str | None:
        """The default as ``--help`` shows it; None shows none."""
        if self.catalog:
            return f"from the scenario catalog, else {self.value_text}"
        if self.shown is not None:
            return self.shown
        return None if self.default is None else self.value_text

    @property
    def value_text(self) -> str:
        """The built-in default as the user would write it: with its unit for a time (``20s``, ``100ms``)."""
        return self.value_text_of(self.default)

    def value_text_of(self, value: Any) -> str:
        """A value of this option as the user would write it: with its unit for a time (``20s``, ``100ms``)."""
        if self.kind in ("duration", "ms"):
            return f"{value:g}{'s' if self.kind == 'duration' else 'ms'}"
        return f"{value:g}" if isinstance(value, float) else str(value)


def is_secret_flag(flag: str) -> bool:
    """``--pool-token``, ``--db-password``, ``--client-secret``...: a flag whose value must not be written down."""
    name = flag.lstrip("-").split("=", 1)[0].lower()
    return any(word in name for word in SECRET_WORDS)


def _count(flag: str, env: str, text: str, default: int, minimum: int = 0, **more: Any) -> Option:
    return Option(flag=flag, env=env, help=text, kind="int", default=default, minimum=minimum, metavar="N", **more)


OPTIONS: dict[str, Option] = {
    # The settings of one run (RunConfig); bench capacity shares those that apply to every pool size.
    "app": Option(flag="--app", env="BENCH_APP", kind="choice", choices=("good", "bad", "both"), default="both",
                  metavar="good|bad|both", help="Which app(s): both runs good, then bad, under identical load."),
    "users": _count("--users", "BENCH_USERS", "Concurrent Locust users.", 50, 1, catalog=True, short="-u"),
    "spawn_rate": Option(flag="--spawn-rate", env="BENCH_SPAWN_RATE", kind="float", minimum=0.01, default=50.0,
                         catalog=True, metavar="R", short="-r", help="Users started per second."),
    "duration_s": Option(flag="--duration", env="BENCH_DURATION", kind="duration", minimum=1, default=20.0,
                         maximum=MAX_DURATION_S, cap="split longer soaks into runs", catalog=True, metavar="DURATION",
                         short="-t", help="Load per app: 20s, 2m, 1h30m or seconds (at most 6h)."),
    "pool_size": Option(flag="--pool-size", env="BENCH_POOL_SIZE", kind="sizes", minimum=1,
                        default=_APP["pool_size"], catalog=True, metavar="N[,N...]",
                        help="The target apps' SQLAlchemy pool_size. bench run takes one; bench capacity sweeps a "
                             "list (5,10,20), one continuous run each."),
    "max_overflow": _count("--max-overflow", "BENCH_MAX_OVERFLOW", "SQLAlchemy max_overflow of the target apps.",
                           _APP["max_overflow"], catalog=True),
    "pool_timeout_s": Option(flag="--pool-timeout", env="BENCH_POOL_TIMEOUT", kind="duration", minimum=0.01,
                             default=_APP["pool_timeout_s"], catalog=True, metavar="DURATION",
                             help="How long a checkout waits before TimeoutError: 30s, 500ms or seconds."),
    "upstream_latency_ms": Option(flag="--upstream-ms", env="BENCH_UPSTREAM_MS", kind="ms",
                                  default=_APP["upstream_latency_ms"], catalog=True, metavar="MS",
                                  help="Latency of the simulated slow upstream call: milliseconds, or 0.2s, 150ms."),
    "cooldown_s": Option(flag="--cooldown", env="BENCH_COOLDOWN", kind="duration", default=3.0, catalog=True,
                         metavar="DURATION", help="Keep sampling this long after the load stops (leaks outlive it)."),
    "idle_threshold_ms": Option(flag="--idle-threshold", env="BENCH_IDLE_THRESHOLD_MS", kind="ms", default=50.0,
                                shown="50ms", metavar="DURATION",
                                help="Idle-in-transaction age counted as long: 50ms, 0.1s or milliseconds."),
    "idle_tx_timeout_s": Option(flag="--idle-tx-timeout", env="BENCH_IDLE_TX_TIMEOUT", kind="duration", default=0.0,
                                shown="off", metavar="DURATION",
                                help="Set PostgreSQL's idle_in_transaction_session_timeout for the apps (e.g. 1s): "
                                     "the server-side safety net."),
    "repeat": _count("--repeat", "BENCH_REPEAT", "Run each app N times, interleaved (good bad good bad ...).", 1, 1,
                     maximum=50, cap="more repeats of a short run beat many of a long one"),
    # Locust's own name (its --processes): --workers read the wrong way round next to --app-workers (uvicorn's).
    "workers": _count("--processes", "BENCH_PROCESSES",
                      "Locust processes: run Locust as a master with N worker processes on this machine.", 0,
                      maximum=MAX_PROCESSES, cap="more processes only compete for this machine's cores",
                      shown="none: Locust runs as one process"),
    "workers_alias": Option(flag="--workers", env="BENCH_WORKERS", kind="int", metavar="N", alias_of="workers",
                            help="Deprecated: the old name of --processes (and BENCH_PROCESSES); it goes in the next "
                                 "release."),
    "app_workers": _count("--app-workers", "BENCH_APP_WORKERS",
                          "uvicorn worker processes per target app; pool figures are summed over them.", 1, 1,
                          maximum=MAX_PROCESSES, cap="more processes only compete for this machine's cores"),
    "master_bind": Option(flag="--master-bind", default="127.0.0.1", metavar="ADDRESS[:PORT]",
                          help="Where the Locust master listens for workers (with --processes or --remote-workers); "
                               "the port is free, or Locust's 5557 for --remote-workers, unless given."),
    "remote_workers": _count("--remote-workers", "BENCH_REMOTE_WORKERS",
                             "Locust workers on other hosts: the load starts once N have joined (each runs "
                             "`locust --worker -f - --master-host ADDRESS`); their requests reach the master's "
                             "request log. Needs --target and --master-bind.", 0),
    "dsn": Option(flag="--dsn", env="BENCH_DSN", kind="dsn", shown="the embedded PostgreSQL", metavar="DSN",
                  help="Use this PostgreSQL instead of the embedded one (needs CREATEDB)."),
    "out": Option(flag="--out", kind="path", shown="results/<UTC time>_<scenario>/", metavar="DIR",
                  help="Write the run (or sweep) folder exactly here; it must be new or empty (see --force)."),
    "force": Option(flag="--force", kind="switch", default=False,
                    help="With a non-empty --out: move it aside to <out>.old-<UTC time> first, instead of refusing."),
    "keep": Option(flag="--keep", kind="switch", default=False,
                   help="Keep the per-run databases instead of dropping them."),
    "target": Option(flag="--target", env="BENCH_TARGET", kind="url", metavar="URL", short="-H",
                     help="Drive a running app at this URL instead of the paired apps (needs --dsn)."),
    "app_name": Option(flag="--app-name", metavar="NAME",
                       help="With --target: the application_name of its connections."),
    "pool_url": Option(flag="--pool-url", shown="TARGET/_bench/pool", metavar="URL",
                       help="With --target: its pool endpoint."),
    "pool_token": Option(flag="--pool-token", env="BENCH_POOL_TOKEN", metavar="TOKEN",
                         help="Bearer token of the pool endpoint."),
    # No environment variable, on purpose: a load test aimed at the wrong host is how production gets
    # load-tested, so lifting the loopback rule takes a flag on the command itself.
    "allow_remote": Option(flag="--allow-remote", kind="switch", default=False,
                           help="Allow a --target that is not a loopback address."),
    # The command line itself.
    "quiet": Option(flag="--quiet", kind="switch", default=False,
                    help="No progress lines (a terminal redraws one line; a log gets one every 5 s of each app's "
                         "load and cool-down, and one at each one's end)."),
    # bench run's thresholds: the capacity grammar, but no BENCH_SLO (that is capacity's default SLO).
    "run_slo": Option(flag="--slo", metavar="SLO",
                      help="Thresholds the run is held to, as checks (exit 1 when one fails): p50|p95|p99|max, errors, "
                      "pool_wait_p50|p95|p99|mean, e.g. 'p95<250ms,errors<1%'; per route after ';': "
                      "'p95<250ms; GET /items/{id}: p95<100ms'."),
    "junit": Option(flag="--junit", kind="path", metavar="FILE",
                    help="Also write the run's checks as JUnit XML test cases here."),
    "locustfile": Option(flag="--locustfile", kind="path", metavar="FILE",
                         help="Your own locustfile instead of a catalog scenario (with --serve, or --target and --dsn)."),
    # A service the harness starts and stops itself, on a fresh database per app run (bench.run.serve).
    "serve": Option(flag="--serve", env="BENCH_SERVE", metavar="CMD",
                    help="Start your service with this command for every app run, on a fresh database: {port} "
                         "(required), {dsn}, {sqlalchemy_url} and {pool_size} are filled in. Not run through a shell. bench ab: "
                         "version A."),
    "migrate": Option(flag="--migrate", env="BENCH_MIGRATE", metavar="CMD",
                      help="With --serve: run this on each fresh database before the service starts ({dsn}, "
                           "{sqlalchemy_url}); a failure ends the run (exit 3)."),
    "ready_path": Option(flag="--ready", env="BENCH_READY", default="/healthz", metavar="PATH",
                         help="With --serve: the service is ready once GET PATH answers anything but a 5xx (an app "
                              "without the default /healthz is ready at its first 404)."),
    "ready_timeout_s": Option(flag="--ready-timeout", env="BENCH_READY_TIMEOUT", kind="duration", default=60.0,
                              minimum=1, maximum=MAX_DURATION_S, cap="a start-up that long is a hang", metavar="DURATION",
                              help="With --serve: how long --migrate, and then the start until ready, may take."),
    # bench ab: version A and version B (bench.config.options.resolve_ab).
    "ab_app": Option(flag="--app", kind="choice", choices=("good", "bad"), default="good", metavar="good|bad",
                     help="bench ab: the paired app run as version A."),
    "app_b": Option(flag="--app-b", kind="choice", choices=("good", "bad"), default="bad", metavar="good|bad",
                    help="bench ab: the paired app run as version B."),
    "serve_b": Option(flag="--serve-b", env="BENCH_SERVE_B", shown="--serve's: an A/A run", metavar="CMD",
                      help="bench ab: version B's command, as --serve."),
    "migrate_b": Option(flag="--migrate-b", env="BENCH_MIGRATE_B", shown="--migrate's", metavar="CMD",
                        help="bench ab: version B's migration, as --migrate."),
    "ab_repeat": _count("--repeat", "BENCH_REPEAT", "bench ab: runs of each version, interleaved (A B A B ...); 4 "
                        "is the fewest the significance test can decide on.", 4, 1, maximum=50,
                        cap="more repeats of a short run beat many of a long one"),
    # bench capacity's sweep (bench.config.sweep reads them): the shape of one study, given per command.
    "rates": Option(flag="--rates", default="25:400:25", metavar="LEVELS",
                    help="Open model: arrival rates per step, START:STOP:STEP or a list."),
    "step_users": Option(flag="--users", metavar="LEVELS", shown="none: the open model", short="-u",
                         help="Closed model instead: users per step, START:STOP:STEP or a list."),
    "step": Option(flag="--step", default="10s", metavar="DURATION", help="Length of each load step."),
    "settle": Option(flag="--settle", shown="the lesser of 2s and a quarter step", metavar="DURATION",
                     help="Discarded start of each step."),
    "drain": Option(flag="--drain", shown="half a step, 2s to 10s", metavar="DURATION",
                    help="Open model: wait this long after the last step for answers still on their way."),
    "slo": Option(flag="--slo", env="BENCH_SLO", default="p95<250ms,errors<1%,pool_wait_p95<50ms", metavar="SLO",
                  help="Objectives every step is held to: p50|p90|p95|p99|max, errors, pool_wait_p50|p95|p99|mean, "
                       "loop_lag_p95."),
    "max_concurrency": Option(flag="--max-concurrency", kind="int", default=100, minimum=1, metavar="N",
                              help="Open model: requests in flight at most (Locust users); arrivals past it are "
                                   "dropped."),
    "arrivals": Option(flag="--arrivals", default="constant", metavar="constant|poisson", choices=("constant", "poisson"),
                       help="Open model: constant (evenly spaced, like k6) or poisson."),
}

CATALOG_DEFAULTS: dict[str, Any] = {name: o.default for name, o in OPTIONS.items() if o.catalog}
