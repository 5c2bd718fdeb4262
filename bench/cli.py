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

from bench.config.catalog import get_scenario, load_catalog
from bench.config.options import Given, redact_argv, resolve_run, setting
from bench.config.optiontable import OPTIONS
from bench.db.server import redact
from bench.errors import EXIT_INFRA, BenchError, Interrupted, UsageError
from bench.render.terminal import Console

if TYPE_CHECKING:
    from bench.run.ab import AbResult
    from bench.run.capacity import CapacityRequest
    from bench.run.runner import RunResult

# Where a value came from (click's ParameterSource, by name: typer vendors click and does not export the enum).
_GIVEN = ("COMMANDLINE", "ENVIRONMENT")

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
    ctx: typer.Context,
    scenario: Annotated[str | None, typer.Argument(help="Scenario name; see: bench scenarios. Omit with --locustfile.")] = None,
    app_: Annotated[str | None, _option("app")] = None,
    users: Annotated[str | None, _option("users")] = None,
    spawn_rate: Annotated[str | None, _option("spawn_rate")] = None,
    duration_s: Annotated[str | None, _option("duration_s")] = None,
    pool_size: Annotated[str | None, _option("pool_size")] = None,
    max_overflow: Annotated[str | None, _option("max_overflow")] = None,
    pool_timeout_s: Annotated[str | None, _option("pool_timeout_s")] = None,
    upstream_latency_ms: Annotated[str | None, _option("upstream_latency_ms")] = None,
    cooldown_s: Annotated[str | None, _option("cooldown_s")] = None,
    idle_threshold_ms: Annotated[str | None, _option("idle_threshold_ms")] = None,
    idle_tx_timeout_s: Annotated[str | None, _option("idle_tx_timeout_s")] = None,
    repeat: Annotated[str | None, _option("repeat")] = None,
    workers: Annotated[str | None, _option("workers")] = None,
    master_bind: Annotated[str | None, _option("master_bind")] = None,
    remote_workers: Annotated[str | None, _option("remote_workers")] = None,
    app_workers: Annotated[str | None, _option("app_workers")] = None,
    dsn: Annotated[str | None, _option("dsn")] = None,
    out: Annotated[Path | None, _option("out")] = None,
    force: Annotated[bool, _option("force")] = False,
    keep: Annotated[bool, _option("keep")] = False,
    locustfile: Annotated[Path | None, _option("locustfile")] = None,
    serve: Annotated[str | None, _option("serve")] = None,
    migrate: Annotated[str | None, _option("migrate")] = None,
    ready_path: Annotated[str | None, _option("ready_path")] = None,
    ready_timeout_s: Annotated[str | None, _option("ready_timeout_s")] = None,
    target: Annotated[str | None, _option("target")] = None,
    app_name: Annotated[str | None, _option("app_name")] = None,
    pool_url: Annotated[str | None, _option("pool_url")] = None,
    pool_token: Annotated[str | None, _option("pool_token")] = None,
    allow_remote: Annotated[bool, _option("allow_remote")] = False,
    quiet: Annotated[bool, _option("quiet")] = False,
) -> None:
    """Run SCENARIO against the paired apps (or your service: --serve, --target) under Locust load; write a run folder.

    Every option: flag > its BENCH_* variable > the scenario's catalog entry > the default shown.
    """
    chosen, config = resolve_run(scenario, given_from(ctx))
    from bench.run.runner import run_scenario  # heavy imports only once the input is known good

    raise typer.Exit(_run_until_signal(run_scenario(config, chosen, Console(quiet=quiet), _command())))


@app.command()
def ab(
    ctx: typer.Context,
    scenario: Annotated[str | None, typer.Argument(help="Scenario name; see: bench scenarios. Omit with --locustfile.")] = None,
    ab_app: Annotated[str | None, _option("ab_app")] = None,
    app_b: Annotated[str | None, _option("app_b")] = None,
    serve: Annotated[str | None, _option("serve")] = None,
    serve_b: Annotated[str | None, _option("serve_b")] = None,
    migrate: Annotated[str | None, _option("migrate")] = None,
    migrate_b: Annotated[str | None, _option("migrate_b")] = None,
    ready_path: Annotated[str | None, _option("ready_path")] = None,
    ready_timeout_s: Annotated[str | None, _option("ready_timeout_s")] = None,
    locustfile: Annotated[Path | None, _option("locustfile")] = None,
    ab_repeat: Annotated[str | None, _option("ab_repeat")] = None,
    users: Annotated[str | None, _option("users")] = None,
    spawn_rate: Annotated[str | None, _option("spawn_rate")] = None,
    duration_s: Annotated[str | None, _option("duration_s")] = None,
    cooldown_s: Annotated[str | None, _option("cooldown_s")] = None,
    pool_size: Annotated[str | None, _option("pool_size")] = None,
    max_overflow: Annotated[str | None, _option("max_overflow")] = None,
    pool_timeout_s: Annotated[str | None, _option("pool_timeout_s")] = None,
    upstream_latency_ms: Annotated[str | None, _option("upstream_latency_ms")] = None,
    idle_threshold_ms: Annotated[str | None, _option("idle_threshold_ms")] = None,
    idle_tx_timeout_s: Annotated[str | None, _option("idle_tx_timeout_s")] = None,
    workers: Annotated[str | None, _option("workers")] = None,
    app_workers: Annotated[str | None, _option("app_workers")] = None,
    app_name: Annotated[str | None, _option("app_name")] = None,
    pool_url: Annotated[str | None, _option("pool_url")] = None,
    pool_token: Annotated[str | None, _option("pool_token")] = None,
    dsn: Annotated[str | None, _option("dsn")] = None,
    out: Annotated[Path | None, _option("out")] = None,
    force: Annotated[bool, _option("force")] = False,
    keep: Annotated[bool, _option("keep")] = False,
    fail_on: Annotated[list[str] | None, typer.Option("--fail-on", help="Gate METRIC:+N% / METRIC:-N% / METRIC:>N; replaces that metric's default. Repeatable.")] = None,
    junit: Annotated[Path | None, typer.Option(help="Also write the gates as JUnit XML here (the folder always has comparison.xml).")] = None,
    quiet: Annotated[bool, _option("quiet")] = False,
) -> None:
    """Run version A and version B interleaved (A B A B ...) on one database server; exit 1 when a gate fails.

    Paired apps: A is --app (good), B is --app-b (bad). Your service: A is --serve CMD, B is --serve-b CMD.

    One folder: a/ and b/ (run folders), comparison.txt, .md, .json and .xml (JUnit), ab.json.
    """
    from bench.config.options import resolve_ab
    from bench.run.ab import AbRequest, run_ab

    given = {name: value for name, value in given_from(ctx).items() if name in OPTIONS}
    chosen, config_a, config_b = resolve_ab(scenario, given)
    request = AbRequest(scenario=chosen, a=config_a, b=config_b, out=out, force=force,
                        fail_on=tuple(fail_on or ()), junit=junit, command=_command())
    raise typer.Exit(_run_until_signal(run_ab(request, Console(quiet=quiet))))


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
    raise typer.Exit(result.exit_code)


@app.command()
def capacity(
    ctx: typer.Context,
    scenario: Annotated[str, typer.Argument(help="Scenario name; see: bench scenarios.")],
    app_: Annotated[str | None, _option("app")] = None,
    pool_size: Annotated[str | None, _option("pool_size")] = None,
    rates: Annotated[str | None, _option("rates")] = None,
    step_users: Annotated[str | None, _option("step_users")] = None,
    step: Annotated[str | None, _option("step")] = None,
    settle: Annotated[str | None, _option("settle")] = None,
    slo: Annotated[str | None, _option("slo")] = None,
    max_concurrency: Annotated[str | None, _option("max_concurrency")] = None,
    arrivals: Annotated[str | None, _option("arrivals")] = None,
    drain: Annotated[str | None, _option("drain")] = None,
    max_overflow: Annotated[str | None, _option("max_overflow")] = None,
    pool_timeout_s: Annotated[str | None, _option("pool_timeout_s")] = None,
    upstream_latency_ms: Annotated[str | None, _option("upstream_latency_ms")] = None,
    idle_threshold_ms: Annotated[str | None, _option("idle_threshold_ms")] = None,
    idle_tx_timeout_s: Annotated[str | None, _option("idle_tx_timeout_s")] = None,
    workers: Annotated[str | None, _option("workers")] = None,
    master_bind: Annotated[str | None, _option("master_bind")] = None,
    app_workers: Annotated[str | None, _option("app_workers")] = None,
    dsn: Annotated[str | None, _option("dsn")] = None,
    out: Annotated[Path | None, _option("out")] = None,
    force: Annotated[bool, _option("force")] = False,
    quiet: Annotated[bool, _option("quiet")] = False,
) -> None:
    """Sweep stepped load per pool size: the rate each pool sustains within an SLO, the knee, the bottleneck.

    Every option: flag > its BENCH_* variable > the scenario's catalog entry > the default shown.
    """
    from bench.config.slo import Slo
    from bench.config.sweep import resolve_sweep
    from bench.run.capacity import CapacityRequest

    chosen, given = get_scenario(scenario), given_from(ctx)
    configs, plan = resolve_sweep(chosen, given)
    request = CapacityRequest(scenario=chosen, plan=plan, slo=Slo.parse(setting("slo", chosen, given)),
                              configs=configs, out=out, command=_command())
    raise typer.Exit(_run_until_signal(_sweep(request, quiet)))


async def _sweep(request: CapacityRequest, quiet: bool) -> RunResult:
    from bench.render.capacity_report import render_terminal
    from bench.run.capacity import CapacityConsole, run_capacity
    from bench.run.runner import RunResult

    result = await run_capacity(request, CapacityConsole(quiet=quiet))
    typer.echo(render_terminal(result.data, result.folder))
    return RunResult(folder=result.folder, summary=result.data, exit_code=result.exit_code, error=result.error)


def _option(name: str) -> Any:
    """The typer option for ``OPTIONS[name]``: its flag, its BENCH_* variable and its default, all in --help."""
    option = OPTIONS[name]
    if option.kind == "switch":  # --keep/--no-keep, as typer names a bool option by itself
        return typer.Option(f"{option.flag}/--no-{option.flag[2:]}", show_default=True, help=option.help)
    return typer.Option(option.flag, envvar=option.env, show_envvar=option.env is not None,
                        show_default=option.default_text or False, metavar=option.metavar, help=option.help)


def given_from(ctx: typer.Context) -> dict[str, Given]:
    """What the user gave, by option name: click read the flag or else its BENCH_* variable (a flag wins), and
    says which, so an error names what the user wrote. Options left to the catalog or default are absent."""
    given = {}
    for param in ctx.command.params:
        name = param.name or ""
        source = ctx.get_parameter_source(name)
        value = ctx.params.get(name)
        if param.param_type_name != "option" or value is None or source is None or source.name not in _GIVEN:
            continue
        where = param.envvar if source.name == "ENVIRONMENT" else param.opts[0]
        given[name.rstrip("_")] = Given(value, str(where))  # app_ is --app (app is the Typer object)
    return given


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
