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
from bench.run.poolclient import PoolClient

Figures = dict[str, float | None]
INTERVAL_S = 0.1  # the harness's default: 10 Hz
FULL_EVERY_S = 1.0  # bench.run.collector reads the per-route figures this often


def measure(opts: Options, target: Target, app: AppServer) -> Section:
    s = Section(
        f"collector cost: {1 / INTERVAL_S:g} Hz Collector in this process on the good app under wrk "
        f"load, with vs without, {opts.reps} x {opts.window_s:g} s interleaved, medians"
    )
    if wrk_path() is None:
        s.say("skipped: needs wrk to load the app while this process samples it (apt-get install -y wrk)")
        return s
    lua = opts.workdir / "items.lua"
    lua.write_text(ITEMS_LUA, encoding="utf-8")
    intervals = {"with": INTERVAL_S, "with20": INTERVAL_S / 2, "without": None}
    runs: dict[str, list[Figures]] = {mode: [] for mode in intervals}
    for rep in range(opts.reps):
        for mode in list(intervals) if rep % 2 == 0 else reversed(intervals):
            runs[mode].append(asyncio.run(_window(opts, target, app, lua, intervals[mode])))
    _fill(s, runs, _payload_kib(app, "routes=0"), _payload_kib(app))
    _fill_parts(s, asyncio.run(_parts(target, app)))
    return s


async def _parts(target: Target, app: AppServer, n: int = 200) -> Figures:
    """CPU ms per call of each part of one sample, on the idle app (under load each costs more)."""
    collector = Collector(
        admin_dsn=target.server.dsn("postgres"),
        database=target.database,
        application_name="scopebench-good",
        pool_url=app.pool_url,
        samples_path=target.workdir / "collector-parts.jsonl",
        pool_token=app.token,
    )
    await collector.open()
    conn = await asyncpg.connect(target.server.dsn("postgres"))
    client = PoolClient(app.pool_url, app.token)
    try:
        for _ in range(10):
            await collector.sample()
        snapshot = _get_json(app.pool_url, app.token)
        # The collector's private pieces, timed one by one: this benchmark looks inside on purpose.
        figures: Figures = {
            "sample": await _cpu_ms(collector.sample, n),
            "activity": await _cpu_ms(lambda: conn.fetch(_ACTIVITY, target.database, "scopebench-good"), n),
            "pool_fields": _sync_cpu_ms(lambda: collector._pool_fields(snapshot), n),
        }
        for key, query in (("pool_fetch", "routes=0"), ("pool_fetch_full", "")):
            app_cpu0 = tree_cpu_seconds(app.child.pid)
            figures[key] = await _cpu_ms(lambda: client.get(query), n)  # noqa: B023 - awaited in this iteration
            figures[f"app_{key}"] = (tree_cpu_seconds(app.child.pid) - app_cpu0) / n * 1000
        return figures
    finally:
        client.close()
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
    s.add(
        "  GET /_bench/pool?routes=0 (kept-alive connection)", parts["pool_fetch"], "ms", "{:.2f}", note="every sample"
    )
    s.add(
        "  GET /_bench/pool, in full",
        parts["pool_fetch_full"],
        "ms",
        "{:.2f}",
        note="once a second and at the end: per-route histograms and hold sites too",
    )
    s.add("  histograms -> sample fields", parts["pool_fields"], "ms", "{:.2f}", note="from_json + minus, twice")
    light, full = parts["app_pool_fetch"] or 0.0, parts["app_pool_fetch_full"] or 0.0
    s.add("app CPU per GET /_bench/pool?routes=0", light, "ms", "{:.2f}")
    s.add("app CPU per GET /_bench/pool in full", full, "ms", "{:.2f}")
    per_s = light * (1 / INTERVAL_S - 1 / FULL_EVERY_S) + full / FULL_EVERY_S
    s.add(
        "app CPU for the collector's reads",
        per_s / 10,
        "% core",
        "{:.2f}",
        note=f"{1 / INTERVAL_S - 1 / FULL_EVERY_S:g} light + {1 / FULL_EVERY_S:g} full per second",
    )


async def _window(opts: Options, target: Target, app: AppServer, lua: Path, interval_s: float | None) -> Figures:
    collect = interval_s is not None
    url = app.base + "/"
    await asyncio.to_thread(run_wrk, url, seconds=max(1.0, opts.warmup_s), connections=opts.users, lua=lua)
    collector = (
        Collector(
            admin_dsn=target.server.dsn("postgres"),
            database=target.database,
            application_name="scopebench-good",
            pool_url=app.pool_url,
            samples_path=opts.workdir / "collector-samples.jsonl",
            interval_s=interval_s or INTERVAL_S,
            pool_token=app.token,
        )
        if collect
        else None
    )
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
    return {
        **window.figures(),
        "cpu_self": self_cores,
        "samples_per_s": samples / window.seconds if collect else None,
        "pool_errors": float(collector.pool_errors) if collector else None,
    }


def _payload_kib(app: AppServer, query: str = "") -> float:
    url = app.pool_url + (f"?{query}" if query else "")
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {app.token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return len(response.read()) / 1024


def _fill(s: Section, runs: dict[str, list[Figures]], light_kib: float, full_kib: float) -> None:
    on, off = medians(runs["with"]), medians(runs["without"])
    s.add("app throughput without collector", off["rps"], "req/s", note=spread(w["rps"] for w in runs["without"]))
    s.add("app throughput with collector", on["rps"], "req/s", note=spread(w["rps"] for w in runs["with"]))
    s.ratio(
        "with / without",
        on["rps"],
        off["rps"],
        note="moves with the machine's other load; the app-side CPU per sample below is the steady figure",
    )
    added = None if on["cpu_self"] is None or off["cpu_self"] is None else max(0.0, on["cpu_self"] - off["cpu_self"])
    s.add(
        "collector CPU share (this process)",
        None if added is None else added * 100,
        "% core",
        "{:.2f}",
        note=f"with {on['cpu_self'] or 0:.3f} cores, without {off['cpu_self'] or 0:.3f}",
    )
    rate = on["samples_per_s"]
    s.add(
        "collector CPU per sample",
        None if added is None or not rate else added / rate * 1000,
        "ms",
        "{:.2f}",
        note="pg_stat_activity query + GET /_bench/pool + JSON line",
    )
    s.add(
        "samples taken per second",
        rate,
        "/s",
        "{:.1f}",
        note=f"asked for {1 / INTERVAL_S:g}; pool endpoint errors {on['pool_errors'] or 0:.0f}",
    )
    s.add(
        "app CPU with / without",
        ratio(on.get("cpu_app"), off.get("cpu_app")),
        "x",
        "{:.2f}",
        note=f"{on.get('cpu_app') or 0:.2f} vs {off.get('cpu_app') or 0:.2f} cores",
    )
    s.add(
        "PostgreSQL CPU with - without",
        (on.get("cpu_postgres") or 0) - (off.get("cpu_postgres") or 0),
        "cores",
        "{:+.3f}",
    )
    s.add(
        "pool endpoint payload per sample",
        light_kib,
        "KiB",
        "{:.1f}",
        note=f"?routes=0; in full (once a second) {full_kib:.1f} KiB",
    )
    fast = medians(runs["with20"])
    added20 = (
        None if fast["cpu_self"] is None or off["cpu_self"] is None else max(0.0, fast["cpu_self"] - off["cpu_self"])
    )
    s.add(
        f"collector CPU share at {2 / INTERVAL_S:g} Hz",
        None if added20 is None else added20 * 100,
        "% core",
        "{:.2f}",
        note=f"{fast['samples_per_s'] or 0:.1f} samples/s; app throughput "
        f"{ratio(fast['rps'], off['rps']) or 0:.2f}x without",
    )
