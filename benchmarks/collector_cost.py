"""Collector cost: this process's CPU while a 10 Hz ``Collector`` samples the good app under wrk load, and the
app's throughput with vs without it (interleaved windows). The fidelity half is in ``cli_timings``.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
from perf_database import AppServer, Target
from perf_drivers import ITEMS_LUA, CpuMeter, run_wrk, tree_cpu_seconds, wrk_path
from perf_options import Options
from perf_table import Section, medians, ratio, spread

from bench.run.collector import _ACTIVITY, Collector, _get_json

Figures = dict[str, float | None]
INTERVAL_S = 0.1  # the harness's default: 10 Hz


def measure(opts: Options, target: Target, app: AppServer) -> Section:
    s = Section(f"collector cost: {1 / INTERVAL_S:g} Hz Collector in this process on the good app under wrk "
                f"load, with vs without, {opts.reps} x {opts.window_s:g} s interleaved, medians")
    if wrk_path() is None:
        s.say("skipped: needs wrk to load the app while this process samples it (apt-get install -y wrk)")
        return s
    lua = opts.workdir / "items.lua"
    lua.write_text(ITEMS_LUA, encoding="utf-8")
    runs: dict[str, list[Figures]] = {"with": [], "without": []}
    for rep in range(opts.reps):
        for mode in ("with", "without") if rep % 2 == 0 else ("without", "with"):
            runs[mode].append(asyncio.run(_window(opts, target, app, lua, mode == "with")))
    _fill(s, runs, _payload_kib(app))
    _fill_parts(s, asyncio.run(_parts(target, app)))
    return s


async def _parts(target: Target, app: AppServer, n: int = 200) -> Figures:
    """CPU ms per call of each part of one sample, on the idle app (under load each costs more)."""
    collector = Collector(admin_dsn=target.server.dsn("postgres"), database=target.database,
                          application_name="scopebench-good", pool_url=app.pool_url,
                          samples_path=target.workdir / "collector-parts.jsonl", pool_token=app.token)
    await collector.open()
    conn = await asyncpg.connect(target.server.dsn("postgres"))
    try:
        for _ in range(10):
            await collector.sample()
        snapshot = _get_json(app.pool_url, app.token)
        app_cpu0 = tree_cpu_seconds(app.child.pid)
        # The collector's private pieces, timed one by one: this benchmark looks inside on purpose.
        return {
            "sample": await _cpu_ms(collector.sample, n),
            "activity": await _cpu_ms(lambda: conn.fetch(_ACTIVITY, target.database, "scopebench-good"), n),
            "pool_fetch": await _cpu_ms(lambda: asyncio.to_thread(_get_json, app.pool_url, app.token), n),
            "app_endpoint": (tree_cpu_seconds(app.child.pid) - app_cpu0) / (2 * n + 10) * 1000,
            "pool_fields": _sync_cpu_ms(lambda: collector._pool_fields(snapshot), n),
        }
    finally:
        await conn.close()
        await collector.close()


async def _cpu_ms(call: Callable[[], Awaitable[object]], n: int) -> float:
    started = time.process_time()
    for _ in range(n):
        await call()
    return (time.process_time() - started) / n * 1000


def _sync_cpu_ms(call: Callable[[], object], n: int) -> float:
    started = time.process_time()
    for _ in range(n):
        call()
    return (time.process_time() - started) / n * 1000


def _fill_parts(s: Section, parts: Figures) -> None:
    s.add("per sample on an idle app, CPU", parts["sample"], "ms", "{:.2f}", note="of this process")
    s.add("  pg_stat_activity query (asyncpg)", parts["activity"], "ms", "{:.2f}")
    s.add("  GET /_bench/pool (urllib in a thread, JSON)", parts["pool_fetch"], "ms", "{:.2f}",
          note="a new TCP connection and opener per sample")
    s.add("  histograms -> sample fields", parts["pool_fields"], "ms", "{:.2f}", note="from_json + minus, twice")
    s.add("app CPU per GET /_bench/pool", parts["app_endpoint"], "ms", "{:.2f}",
          note=f"x {1 / INTERVAL_S:g} Hz = {(parts['app_endpoint'] or 0) / INTERVAL_S / 10:.2f}% of a CPU-bound app's "
          "throughput")


async def _window(opts: Options, target: Target, app: AppServer, lua: Path, collect: bool) -> Figures:
    url = app.base + "/"
    await asyncio.to_thread(run_wrk, url, seconds=max(1.0, opts.warmup_s), connections=opts.users, lua=lua)
    collector = Collector(admin_dsn=target.server.dsn("postgres"), database=target.database,
                          application_name="scopebench-good", pool_url=app.pool_url,
                          samples_path=opts.workdir / "collector-samples.jsonl", interval_s=INTERVAL_S,
                          pool_token=app.token) if collect else None
    stop = asyncio.Event()
    task = None
    if collector is not None:
        await collector.open()
        task = asyncio.create_task(collector.run(stop))
    meter = CpuMeter({"app": app.child.pid, "postgres": target.postmaster_pid})
    # process_time: this process's threads only (the collector's loop and its to_thread pool fetches), no children.
    cpu0, t0 = time.process_time(), time.monotonic()
    window = await asyncio.to_thread(run_wrk, url, seconds=opts.window_s, connections=opts.users, lua=lua, cpu=meter)
    self_cores = (time.process_time() - cpu0) / (time.monotonic() - t0)
    stop.set()
    samples = 0
    if collector is not None and task is not None:
        await task
        samples = collector.figures.samples
        await collector.close()
    return {**window.figures(), "cpu_self": self_cores, "samples_per_s": samples / window.seconds if collect else None,
            "pool_errors": float(collector.pool_errors) if collector else None}


def _payload_kib(app: AppServer) -> float:
    request = urllib.request.Request(app.pool_url, headers={"Authorization": f"Bearer {app.token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return len(response.read()) / 1024


def _fill(s: Section, runs: dict[str, list[Figures]], payload_kib: float) -> None:
    on, off = medians(runs["with"]), medians(runs["without"])
    s.add("app throughput without collector", off["rps"], "req/s", note=spread(w["rps"] for w in runs["without"]))
    s.add("app throughput with collector", on["rps"], "req/s", note=spread(w["rps"] for w in runs["with"]))
    s.ratio("with / without", on["rps"], off["rps"],
            note="moves with the machine's other load; the app-side CPU per sample below is the steady figure")
    added = None if on["cpu_self"] is None or off["cpu_self"] is None else max(0.0, on["cpu_self"] - off["cpu_self"])
    s.add("collector CPU share (this process)", None if added is None else added * 100, "% core", "{:.2f}",
          note=f"with {on['cpu_self'] or 0:.3f} cores, without {off['cpu_self'] or 0:.3f}")
    rate = on["samples_per_s"]
    s.add("collector CPU per sample", None if added is None or not rate else added / rate * 1000, "ms", "{:.2f}",
          note="pg_stat_activity query + GET /_bench/pool + JSON line")
    s.add("samples taken per second", rate, "/s", "{:.1f}", note=f"asked for {1 / INTERVAL_S:g}; "
          f"pool endpoint errors {on['pool_errors'] or 0:.0f}")
    s.add("app CPU with / without", ratio(on.get("cpu_app"), off.get("cpu_app")), "x", "{:.2f}",
          note=f"{on.get('cpu_app') or 0:.2f} vs {off.get('cpu_app') or 0:.2f} cores")
    s.add("PostgreSQL CPU with - without", (on.get("cpu_postgres") or 0) - (off.get("cpu_postgres") or 0), "cores",
          "{:+.3f}")
    s.add("pool endpoint payload per sample", payload_kib, "KiB", "{:.1f}", note="histograms, parsed every sample")
