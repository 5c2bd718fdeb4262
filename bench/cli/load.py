"""The commands that put load on an app: ``bench run``, ``bench ab`` and ``bench capacity``.

Each parses, resolves its settings through bench.config and awaits one function of bench.run until it ends or a
signal cancels it; its exit code is the run's.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Coroutine
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bench.cli.flags import given_from, option, scenario_argument
from bench.cli.root import app
from bench.config.options import redact_argv, resolve_run, setting
from bench.config.optiontable import OPTIONS

if TYPE_CHECKING:
    from bench.run.ab import AbResult
    from bench.run.capacity import CapacityRequest
    from bench.run.runner import RunResult

_SCENARIO_OR_LOCUSTFILE = "Scenario name; see: bench scenarios. Omit with --locustfile."


@app.command()
def run(
    ctx: typer.Context,
    scenario: Annotated[str | None, scenario_argument(_SCENARIO_OR_LOCUSTFILE)] = None,
    app_: Annotated[str | None, option("app")] = None,
    users: Annotated[str | None, option("users")] = None,
    spawn_rate: Annotated[str | None, option("spawn_rate")] = None,
    duration_s: Annotated[str | None, option("duration_s")] = None,
    pool_size: Annotated[str | None, option("pool_size")] = None,
    max_overflow: Annotated[str | None, option("max_overflow")] = None,
    pool_timeout_s: Annotated[str | None, option("pool_timeout_s")] = None,
    upstream_latency_ms: Annotated[str | None, option("upstream_latency_ms")] = None,
    cooldown_s: Annotated[str | None, option("cooldown_s")] = None,
    idle_threshold_ms: Annotated[str | None, option("idle_threshold_ms")] = None,
    idle_tx_timeout_s: Annotated[str | None, option("idle_tx_timeout_s")] = None,
    repeat: Annotated[str | None, option("repeat")] = None,
    workers: Annotated[str | None, option("workers")] = None,
    workers_alias: Annotated[str | None, option("workers_alias")] = None,
    master_bind: Annotated[str | None, option("master_bind")] = None,
    remote_workers: Annotated[str | None, option("remote_workers")] = None,
    app_workers: Annotated[str | None, option("app_workers")] = None,
    dsn: Annotated[str | None, option("dsn")] = None,
    out: Annotated[Path | None, option("out")] = None,
    force: Annotated[bool, option("force")] = False,
    keep: Annotated[bool, option("keep")] = False,
    locustfile: Annotated[Path | None, option("locustfile")] = None,
    serve: Annotated[str | None, option("serve")] = None,
    migrate: Annotated[str | None, option("migrate")] = None,
    ready_path: Annotated[str | None, option("ready_path")] = None,
    ready_timeout_s: Annotated[str | None, option("ready_timeout_s")] = None,
    target: Annotated[str | None, option("target")] = None,
    app_name: Annotated[str | None, option("app_name")] = None,
    pool_url: Annotated[str | None, option("pool_url")] = None,
    pool_token: Annotated[str | None, option("pool_token")] = None,
    allow_remote: Annotated[bool, option("allow_remote")] = False,
    run_slo: Annotated[str | None, option("run_slo")] = None,
    junit: Annotated[Path | None, option("junit")] = None,
    quiet: Annotated[bool, option("quiet")] = False,
) -> None:
    """Run SCENARIO against the paired apps (or your service: --serve, --target) under Locust load; write a run folder.

    Every option: flag > its BENCH_* variable > the scenario's catalog entry > the default shown.
    """
    from bench.config.slo import Slo

    given = {name: value for name, value in given_from(ctx).items() if name not in ("run_slo", "junit")}
    chosen, config = resolve_run(scenario, given)
    if run_slo is not None:  # checked before anything runs: a typo is a usage error, not a failed run
        config = replace(config, slo=Slo.parse(run_slo).for_run().text)
    from bench.render.terminal import Console  # heavy imports only once the input is known good
    from bench.run.runner import run_scenario

    run = run_scenario(config, chosen, Console(quiet=quiet), _command())
    raise typer.Exit(_run_until_signal(_with_junit(run, junit)))


async def _with_junit(run: Coroutine[Any, Any, RunResult], junit: Path | None) -> RunResult:
    """The run, then its checks as JUnit XML when asked (a run that never completed says so there too)."""
    result = await run
    if junit is not None and result.summary is not None:
        from bench.render.junit import checks_junit
        from bench.results.folder import write_text

        write_text(junit, checks_junit(result.summary))
    return result


@app.command()
def ab(
    ctx: typer.Context,
    scenario: Annotated[str | None, scenario_argument(_SCENARIO_OR_LOCUSTFILE)] = None,
    ab_app: Annotated[str | None, option("ab_app")] = None,
    app_b: Annotated[str | None, option("app_b")] = None,
    serve: Annotated[str | None, option("serve")] = None,
    serve_b: Annotated[str | None, option("serve_b")] = None,
    migrate: Annotated[str | None, option("migrate")] = None,
    migrate_b: Annotated[str | None, option("migrate_b")] = None,
    ready_path: Annotated[str | None, option("ready_path")] = None,
    ready_timeout_s: Annotated[str | None, option("ready_timeout_s")] = None,
    locustfile: Annotated[Path | None, option("locustfile")] = None,
    ab_repeat: Annotated[str | None, option("ab_repeat")] = None,
    users: Annotated[str | None, option("users")] = None,
    spawn_rate: Annotated[str | None, option("spawn_rate")] = None,
    duration_s: Annotated[str | None, option("duration_s")] = None,
    cooldown_s: Annotated[str | None, option("cooldown_s")] = None,
    pool_size: Annotated[str | None, option("pool_size")] = None,
    max_overflow: Annotated[str | None, option("max_overflow")] = None,
    pool_timeout_s: Annotated[str | None, option("pool_timeout_s")] = None,
    upstream_latency_ms: Annotated[str | None, option("upstream_latency_ms")] = None,
    idle_threshold_ms: Annotated[str | None, option("idle_threshold_ms")] = None,
    idle_tx_timeout_s: Annotated[str | None, option("idle_tx_timeout_s")] = None,
    workers: Annotated[str | None, option("workers")] = None,
    workers_alias: Annotated[str | None, option("workers_alias")] = None,
    app_workers: Annotated[str | None, option("app_workers")] = None,
    app_name: Annotated[str | None, option("app_name")] = None,
    pool_url: Annotated[str | None, option("pool_url")] = None,
    pool_token: Annotated[str | None, option("pool_token")] = None,
    dsn: Annotated[str | None, option("dsn")] = None,
    out: Annotated[Path | None, option("out")] = None,
    force: Annotated[bool, option("force")] = False,
    keep: Annotated[bool, option("keep")] = False,
    fail_on: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-on", help="Gate METRIC:+N% / METRIC:-N% / METRIC:>N; replaces that metric's default. Repeatable."
        ),
    ] = None,
    junit: Annotated[
        Path | None, typer.Option(help="Also write the gates as JUnit XML here (the folder always has comparison.xml).")
    ] = None,
    quiet: Annotated[bool, option("quiet")] = False,
) -> None:
    """Run version A and version B interleaved (A B A B ...) on one database server; exit 1 when a gate fails.

    Paired apps: A is --app (good), B is --app-b (bad). Your service: A is --serve CMD, B is --serve-b CMD.

    One folder: a/ and b/ (run folders), comparison.txt, .md, .json and .xml (JUnit), ab.json.
    """
    from bench.config.options import resolve_ab
    from bench.render.terminal import Console
    from bench.run.ab import AbRequest, run_ab

    given = {name: value for name, value in given_from(ctx).items() if name in OPTIONS}
    chosen, config_a, config_b = resolve_ab(scenario, given)
    request = AbRequest(
        scenario=chosen,
        a=config_a,
        b=config_b,
        out=out,
        force=force,
        fail_on=tuple(fail_on or ()),
        junit=junit,
        command=_command(),
    )
    raise typer.Exit(_run_until_signal(run_ab(request, Console(quiet=quiet))))


@app.command()
def capacity(
    ctx: typer.Context,
    scenario: Annotated[str | None, scenario_argument(_SCENARIO_OR_LOCUSTFILE)] = None,
    app_: Annotated[str | None, option("app")] = None,
    pool_size: Annotated[str | None, option("pool_size")] = None,
    locustfile: Annotated[Path | None, option("locustfile")] = None,
    serve: Annotated[str | None, option("serve")] = None,
    migrate: Annotated[str | None, option("migrate")] = None,
    ready_path: Annotated[str | None, option("ready_path")] = None,
    ready_timeout_s: Annotated[str | None, option("ready_timeout_s")] = None,
    target: Annotated[str | None, option("target")] = None,
    app_name: Annotated[str | None, option("app_name")] = None,
    pool_url: Annotated[str | None, option("pool_url")] = None,
    pool_token: Annotated[str | None, option("pool_token")] = None,
    allow_remote: Annotated[bool, option("allow_remote")] = False,
    rates: Annotated[str | None, option("rates")] = None,
    step_users: Annotated[str | None, option("step_users")] = None,
    step: Annotated[str | None, option("step")] = None,
    settle: Annotated[str | None, option("settle")] = None,
    slo: Annotated[str | None, option("slo")] = None,
    max_concurrency: Annotated[str | None, option("max_concurrency")] = None,
    arrivals: Annotated[str | None, option("arrivals")] = None,
    drain: Annotated[str | None, option("drain")] = None,
    max_overflow: Annotated[str | None, option("max_overflow")] = None,
    pool_timeout_s: Annotated[str | None, option("pool_timeout_s")] = None,
    upstream_latency_ms: Annotated[str | None, option("upstream_latency_ms")] = None,
    idle_threshold_ms: Annotated[str | None, option("idle_threshold_ms")] = None,
    idle_tx_timeout_s: Annotated[str | None, option("idle_tx_timeout_s")] = None,
    workers: Annotated[str | None, option("workers")] = None,
    workers_alias: Annotated[str | None, option("workers_alias")] = None,
    master_bind: Annotated[str | None, option("master_bind")] = None,
    app_workers: Annotated[str | None, option("app_workers")] = None,
    dsn: Annotated[str | None, option("dsn")] = None,
    out: Annotated[Path | None, option("out")] = None,
    force: Annotated[bool, option("force")] = False,
    quiet: Annotated[bool, option("quiet")] = False,
) -> None:
    """Sweep stepped load per pool size: the rate each pool sustains within an SLO, the knee, the bottleneck.

    Your service: --locustfile with --serve CMD (started once per pool size when CMD holds {pool_size}) or
    --target URL (its pool is its own: one run).

    Every option: flag > its BENCH_* variable > the scenario's catalog entry > the default shown.
    """
    from bench.config.options import resolve_scenario
    from bench.config.slo import Slo
    from bench.config.sweep import resolve_sweep
    from bench.run.capacity import CapacityRequest, check_own_service

    given = given_from(ctx)
    chosen = resolve_scenario(scenario, given, "add --serve CMD, or --target URL and --dsn DSN")
    configs, plan = resolve_sweep(chosen, given)
    check_own_service(configs, given)
    request = CapacityRequest(
        scenario=chosen,
        plan=plan,
        slo=Slo.parse(setting("slo", chosen, given)).for_sweep(),
        configs=configs,
        out=out,
        command=_command(),
    )
    raise typer.Exit(_run_until_signal(_sweep(request, quiet)))


async def _sweep(request: CapacityRequest, quiet: bool) -> RunResult:
    from bench.render.capacity_report import render_terminal
    from bench.run.capacity import CapacityConsole, run_capacity
    from bench.run.runner import RunResult

    result = await run_capacity(request, CapacityConsole(quiet=quiet))
    typer.echo(render_terminal(result.data, result.folder))
    return RunResult(folder=result.folder, summary=result.data, exit_code=result.exit_code, error=result.error)


def _command() -> list[str]:
    """The command as run.json records it: the values of --pool-token and any other secret-bearing flag, and
    the password of a --dsn, masked."""
    return ["bench", *redact_argv(sys.argv[1:])]


def _run_until_signal(coro: Coroutine[Any, Any, RunResult | AbResult]) -> int:
    """Run the coroutine; SIGINT and SIGTERM cancel it so it can stop children and save what it has."""

    async def main() -> int:
        task = asyncio.ensure_future(coro)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        result = await task
        return result.exit_code

    return asyncio.run(main())
