"""The ``bench`` command line: thin commands that parse, call a plain function and print.

Exit codes: 0 ok · 1 a gate or check failed · 2 bad usage or input · 3 the harness or its infrastructure failed.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bench.config.catalog import get_scenario, load_catalog, scenario_from_locustfile
from bench.config.options import resolve_config
from bench.db.server import redact
from bench.errors import EXIT_INFRA, BenchError, Interrupted, UsageError
from bench.render.terminal import Console

if TYPE_CHECKING:
    from bench.run.runner import RunResult

app = typer.Typer(
    help="Show, measure and gate what wrong database-session scoping costs an async Python service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def scenarios() -> None:
    """List the scenario catalog: name, what it does, the symptom it shows."""
    catalog = load_catalog()
    width = max(len(name) for name in catalog)
    for name, scenario in catalog.items():
        typer.echo(f"{name:<{width}}  {scenario.description}")
        typer.echo(f"{'':<{width}}  symptom: {scenario.symptom}")


@app.command()
def run(
    scenario: Annotated[str | None, typer.Argument(help="Scenario name; see: bench scenarios. Omit with --locustfile.")] = None,
    app_: Annotated[str | None, typer.Option("--app", help="good, bad or both (good then bad).", envvar="BENCH_APP")] = None,
    users: Annotated[int | None, typer.Option(help="Concurrent Locust users.")] = None,
    spawn_rate: Annotated[float | None, typer.Option(help="Users started per second.")] = None,
    duration: Annotated[str | None, typer.Option(help="Load duration per app: 20s, 2m or seconds.")] = None,
    pool_size: Annotated[int | None, typer.Option(help="SQLAlchemy pool_size of the target app.")] = None,
    max_overflow: Annotated[int | None, typer.Option(help="SQLAlchemy max_overflow.")] = None,
    pool_timeout: Annotated[float | None, typer.Option(help="Seconds a checkout waits before TimeoutError.")] = None,
    upstream_ms: Annotated[float | None, typer.Option(help="Latency of the simulated slow upstream call.")] = None,
    cooldown: Annotated[str | None, typer.Option(help="Keep sampling this long after the load stops.")] = None,
    idle_threshold: Annotated[float | None, typer.Option(help="Idle-in-transaction age (ms) counted as long.")] = None,
    idle_tx_timeout: Annotated[str | None, typer.Option(help="Set PostgreSQL's idle_in_transaction_session_timeout for the apps (e.g. 1s): the server-side safety net.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the run folder exactly here.")] = None,
    dsn: Annotated[str | None, typer.Option(help="Use this PostgreSQL instead of the embedded one.", envvar="BENCH_DSN", show_envvar=True)] = None,
    repeat: Annotated[int | None, typer.Option(help="Run each app N times, interleaved (good bad good bad ...).")] = None,
    workers: Annotated[int | None, typer.Option(help="Run Locust as a master with N worker processes on this machine.", envvar="BENCH_WORKERS")] = None,
    master_bind: Annotated[str | None, typer.Option(help="With --workers: address the Locust master listens on for workers (default 127.0.0.1; 0.0.0.0 lets workers on other hosts join).")] = None,
    app_workers: Annotated[int | None, typer.Option(help="uvicorn worker processes per target app; pool figures are summed over them.")] = None,
    keep: Annotated[bool, typer.Option(help="Keep the per-run databases instead of dropping them.")] = False,
    locustfile: Annotated[Path | None, typer.Option(help="Your own locustfile instead of a catalog scenario.")] = None,
    target: Annotated[str | None, typer.Option(help="Drive a running app at this URL instead of the paired apps (needs --dsn).", envvar="BENCH_TARGET")] = None,
    app_name: Annotated[str | None, typer.Option(help="With --target: the application_name of its connections.")] = None,
    pool_url: Annotated[str | None, typer.Option(help="With --target: its pool endpoint (default TARGET/_bench/pool).")] = None,
    pool_token: Annotated[str | None, typer.Option(help="Bearer token of the pool endpoint.", envvar="BENCH_POOL_TOKEN")] = None,
    allow_remote: Annotated[bool, typer.Option(help="Allow a --target that is not a loopback address.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress line.")] = False,
) -> None:
    """Run SCENARIO against the paired apps under Locust load and write a run folder."""
    flags = {
        "app": app_, "users": users, "spawn_rate": spawn_rate, "duration_s": duration, "pool_size": pool_size,
        "max_overflow": max_overflow, "pool_timeout_s": pool_timeout, "upstream_latency_ms": upstream_ms,
        "cooldown_s": cooldown, "idle_threshold_ms": idle_threshold, "out": out, "dsn": dsn, "keep": keep,
        "repeat": repeat, "idle_tx_timeout_s": idle_tx_timeout, "workers": workers, "app_workers": app_workers,
        "master_bind": master_bind, "target": target, "app_name": app_name,
        "pool_url": pool_url, "pool_token": pool_token, "allow_remote": allow_remote,
    }
    if locustfile is not None:
        chosen = scenario_from_locustfile(locustfile)
    elif scenario is None:
        raise UsageError("name a scenario (see: bench scenarios) or pass --locustfile")
    else:
        chosen = get_scenario(scenario)
    if target is None and locustfile is not None and scenario is None:
        raise UsageError("--locustfile drives your own app: add --target URL and --dsn DSN")
    config = resolve_config(chosen, flags)
    from bench.run.runner import run_scenario  # heavy imports only once the input is known good

    command = ["bench", *[redact(arg) for arg in sys.argv[1:]]]
    result = _run_until_signal(run_scenario(config, chosen, Console(quiet=quiet), command))
    raise typer.Exit(result)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="A run folder written by bench run.")],
) -> None:
    """Re-render a run folder's report.md and report.html."""
    from bench.render.run_report import render_report

    md, html = render_report(run_dir)
    typer.echo(f"wrote {md} and {html}")


@app.command()
def compare(
    base: Annotated[Path, typer.Argument(metavar="BASE", help="Baseline run folder or summary.json.")],
    current: Annotated[Path, typer.Argument(metavar="CURRENT", help="Current run folder or summary.json.")],
    fail_on: Annotated[list[str] | None, typer.Option("--fail-on", help="Gate METRIC:+N% / METRIC:-N% / METRIC:>N; replaces that metric's default. Repeatable.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="text, md (for $GITHUB_STEP_SUMMARY) or json.")] = "text",
    junit: Annotated[Path | None, typer.Option(help="Also write the gates as JUnit XML test cases here.")] = None,
    base_app: Annotated[str | None, typer.Option(help="App of BASE to compare (default: every app both ran).")] = None,
    current_app: Annotated[str | None, typer.Option(help="App of CURRENT to compare.")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="List unchanged metrics too.")] = False,
) -> None:
    """Compare two runs metric by metric; exit 1 when a gate fails."""
    from bench.analysis.compare import compare as compare_runs
    from bench.analysis.compare import load_side
    from bench.config.gates import merge_gates
    from bench.render.compare_render import render_json, render_junit, render_markdown, render_text

    renderers = {"text": lambda r: render_text(r, show_all), "md": render_markdown, "json": render_json}
    if fmt not in renderers:
        raise UsageError(f"--format must be text, md or json, got {fmt!r}")
    gates = merge_gates(fail_on or [])
    result = compare_runs(load_side(base), load_side(current), gates, base_app, current_app)
    typer.echo(renderers[fmt](result))
    if junit is not None:
        from bench.results.folder import write_text

        write_text(junit, render_junit(result))
    raise typer.Exit(1 if result.failed_gates else 0)


@app.command()
def capacity(
    scenario: Annotated[str, typer.Argument(help="Scenario name; see: bench scenarios.")],
    app_: Annotated[str | None, typer.Option("--app", help="good, bad or both (good then bad, per pool size).", envvar="BENCH_APP")] = None,
    pool_size: Annotated[str | None, typer.Option(help="Pool sizes to sweep, e.g. 5,10,20 (one continuous run each).", envvar="BENCH_POOL_SIZE")] = None,
    rates: Annotated[str | None, typer.Option(help="Open model: arrival rates per step, START:STOP:STEP or a list (default 25:400:25).")] = None,
    users: Annotated[str | None, typer.Option(help="Closed model instead: users per step, START:STOP:STEP or a list.")] = None,
    step: Annotated[str, typer.Option(help="Length of each load step.")] = "10s",
    settle: Annotated[str | None, typer.Option(help="Discarded start of each step (default: the lesser of 2s and a quarter step).")] = None,
    slo: Annotated[str, typer.Option(help="Objectives every step is held to: p50|p90|p95|p99|max, errors, pool_wait_p50|p95|p99|mean, loop_lag_p95.", envvar="BENCH_SLO")] = "p95<250ms,errors<1%,pool_wait_p95<50ms",
    max_concurrency: Annotated[int, typer.Option(help="Open model: requests in flight at most (Locust users); arrivals past it are dropped.")] = 100,
    arrivals: Annotated[str, typer.Option(help="Open model: constant (evenly spaced, like k6) or poisson.")] = "constant",
    drain: Annotated[str | None, typer.Option(help="Open model: wait this long after the last step for answers still on their way.")] = None,
    max_overflow: Annotated[int | None, typer.Option(help="SQLAlchemy max_overflow.")] = None,
    pool_timeout: Annotated[float | None, typer.Option(help="Seconds a checkout waits before TimeoutError.")] = None,
    upstream_ms: Annotated[float | None, typer.Option(help="Latency of the simulated slow upstream call.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the sweep folder exactly here.")] = None,
    dsn: Annotated[str | None, typer.Option(help="Use this PostgreSQL instead of the embedded one.", envvar="BENCH_DSN", show_envvar=True)] = None,
    quiet: Annotated[bool, typer.Option(help="No progress line.")] = False,
) -> None:
    """Sweep stepped load per pool size: the rate each pool sustains within an SLO, the knee, the bottleneck."""
    from bench.config.slo import Slo
    from bench.config.sweep import build_plan, parse_pool_sizes
    from bench.render.capacity_report import render_terminal
    from bench.run.capacity import CapacityConsole, CapacityRequest, run_capacity
    from bench.run.runner import RunResult

    chosen = get_scenario(scenario)
    objectives = Slo.parse(slo)
    sizes = parse_pool_sizes(pool_size) if pool_size else (int(chosen.defaults["pool_size"]),)
    plan = build_plan(rates=rates, users=users, step=step, settle=settle, drain=drain,
                      max_concurrency=max_concurrency, arrivals=arrivals, pool_sizes=sizes)
    flags = {"app": app_, "max_overflow": max_overflow, "pool_timeout_s": pool_timeout,
             "upstream_latency_ms": upstream_ms, "dsn": dsn}
    command = ["bench", *[redact(arg) for arg in sys.argv[1:]]]
    request = CapacityRequest(scenario=chosen, plan=plan, slo=objectives, flags=flags, out=out, command=command)

    async def sweep() -> RunResult:
        result = await run_capacity(request, CapacityConsole(quiet=quiet))
        typer.echo(render_terminal(result.data, result.folder))
        return RunResult(folder=result.folder, summary=result.data, exit_code=result.exit_code, error=result.error)

    raise typer.Exit(_run_until_signal(sweep()))


def _run_until_signal(coro: Coroutine[Any, Any, RunResult]) -> int:
    """Run the coroutine; SIGINT and SIGTERM cancel it so it can stop children and save what it has."""

    async def main() -> int:
        task = asyncio.ensure_future(coro)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        result = await task
        return result.exit_code

    return asyncio.run(main())


def main() -> None:
    try:
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except BenchError as err:
        typer.echo(f"error: {redact(str(err))}", err=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(Interrupted.exit_code)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except Exception as err:  # noqa: BLE001 - last resort: one line, never a traceback
        code = getattr(err, "exit_code", None)
        show = getattr(err, "show", None)
        if code is not None and callable(show):
            show()
            sys.exit(code)
        typer.echo(f"error: internal failure: {type(err).__name__}: {redact(str(err))}", err=True)
        sys.exit(EXIT_INFRA)


if __name__ == "__main__":
    main()
