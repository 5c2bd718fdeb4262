"""Target app ceiling: the good app's ``GET /items/{item_id}`` under wrk, uvloop+httptools vs asyncio+h11,
one worker vs two, and Locust on the same route; app, PostgreSQL and pool figures say what limits it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.instrument import Histogram
from perf_database import POOL_SIZE, AppServer, Target
from perf_drivers import ITEMS_LUA, CpuMeter, have_module, locust_child, measure_counted, run_wrk, wrk_path
from perf_options import Options
from perf_table import Section, median, medians, ratio, spread

Figures = dict[str, float | None]


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    loop: str
    http: str
    workers: int


FAST = Variant("fast", "uvloop + httptools, 1 worker", "uvloop", "httptools", 1)
STD = Variant("std", "asyncio + h11, 1 worker", "asyncio", "h11", 1)
TWO = Variant("two", "uvloop + httptools, --workers 2", "uvloop", "httptools", 2)


@dataclass
class Ceiling:
    """Every window of every variant; ``fast_app`` stays up for the collector section."""

    runs: dict[str, list[Figures]]
    driver: str
    fast_app: AppServer


def run(opts: Options, target: Target) -> Ceiling:
    fast_ok = have_module("uvloop") and have_module("httptools")
    first = FAST if fast_ok else STD
    variants = [FAST, STD, TWO] if fast_ok else [STD]
    apps = {v.key: target.start_app(v.label, loop=v.loop, http=v.http, workers=v.workers) for v in variants}
    lua = opts.workdir / "items.lua"
    lua.write_text(ITEMS_LUA, encoding="utf-8")
    driver = "wrk" if wrk_path() else "Locust FastHttpUser"
    runs: dict[str, list[Figures]] = {}
    for _ in range(opts.reps):  # interleaved: the machine's other load hits every variant alike
        for variant in variants:
            app = apps[variant.key]
            if wrk_path() is not None:
                runs.setdefault(variant.key, []).append(_wrk_window(opts, target, app, lua))
            elif variant.workers == 1:
                runs.setdefault(variant.key, []).append(_locust_window(opts, target, app))
        if wrk_path() is not None:  # the harness's generator on the same route, for the Locust / wrk ratio
            runs.setdefault("locust", []).append(_locust_window(opts, target, apps[first.key]))
    return Ceiling(runs=runs, driver=driver, fast_app=apps[first.key])


def _wrk_window(opts: Options, target: Target, app: AppServer, lua: Path) -> Figures:
    url = app.base + "/"
    run_wrk(url, seconds=max(1.0, opts.warmup_s), connections=opts.users, lua=lua)  # pool filled, caches warm
    before = app.pool() if app.workers == 1 else None
    cpu = CpuMeter({"app": app.child.pid, "postgres": target.postmaster_pid})
    window = run_wrk(url, seconds=opts.window_s, connections=opts.users, lua=lua, cpu=cpu)
    after = app.pool() if app.workers == 1 else None
    return {**window.figures(), **_pool_delta(before, after)}


def _locust_window(opts: Options, target: Target, app: AppServer) -> Figures:
    child = locust_child(app.base, "ItemsFastUser", users=opts.users, processes=1,
                         run_time_s=opts.warmup_s + opts.window_s + 25, folder=opts.workdir).start()
    snapshots: list[dict[str, Any]] = []

    def checkouts() -> int:
        # measure_counted reads the counter last at the window's start and end: those two snapshots
        # also give the pool's wait and hold over the window.
        snapshots.append(app.pool())
        return int(snapshots[-1]["counters"]["checkouts"])  # type: ignore[index]

    try:
        cpu = CpuMeter({"app": app.child.pid, "postgres": target.postmaster_pid, "locust": child.pid})
        window = measure_counted(checkouts, child, cpu, warmup_s=opts.warmup_s, seconds=opts.window_s)
    finally:
        child.stop(timeout=5)
        time.sleep(0.3)
    return {**window.figures(), **_pool_delta(snapshots[-2], snapshots[-1])}


def _pool_delta(before: dict[str, Any] | None, after: dict[str, Any] | None) -> Figures:
    if before is None or after is None:
        return {}
    hold = Histogram.from_json(after["use_time"]).minus(Histogram.from_json(before["use_time"]))
    wait = Histogram.from_json(after["wait_time"]).minus(Histogram.from_json(before["wait_time"]))
    return {"hold_ms": hold.mean * 1000, "wait_ms": wait.mean * 1000, "wait_p95_ms": wait.percentile(95) * 1000,
            "pending_max": float(after["counters"]["pending_max"])}


def section(opts: Options, ceiling: Ceiling, in_process: Figures) -> Section:
    s = Section(f"target app ceiling: good app GET /items/{{item_id}}, pool {POOL_SIZE}, {ceiling.driver} "
                f"{opts.users} connections, {opts.reps} x {opts.window_s:g} s, medians")
    fig = {key: medians(windows) for key, windows in ceiling.runs.items()}
    for variant in (FAST, STD, TWO):
        if variant.key in fig:
            s.add(f"{variant.label} ({ceiling.driver})", fig[variant.key]["rps"], "req/s",
                  note=_cores_note(fig[variant.key]) + "; " + spread(w["rps"] for w in ceiling.runs[variant.key]))
    if "locust" in fig:
        s.add(f"{FAST.label} (Locust FastHttpUser)", fig["locust"]["rps"], "req/s",
              note=_cores_note(fig["locust"]) + "; " + spread(w["rps"] for w in ceiling.runs["locust"]))
    rps = {key: f["rps"] for key, f in fig.items()}
    s.ratio("uvloop+httptools / asyncio+h11", rps.get("fast"), rps.get("std"))
    s.ratio("--workers 2 / 1 (uvloop+httptools)", rps.get("two"), rps.get("fast"))
    s.ratio("Locust FastHttpUser / wrk on this route", rps.get("locust"), rps.get("fast"),
            note="Locust's own CPU comes out of the same 2 cores")
    for key, label in (("fast", "uvloop+httptools"), ("std", "asyncio+h11")):
        s.add(f"app CPU per request, {label}", _per_request(ceiling.runs.get(key), "cpu_app"), "µs")
    s.add("PostgreSQL CPU per request", _per_request(ceiling.runs.get("fast"), "cpu_postgres"), "µs")
    main = fig.get("fast") or fig.get("std") or {}
    hold, wait = main.get("hold_ms"), main.get("wait_ms")
    little = POOL_SIZE / (hold / 1000) if hold else None
    s.add("pool hold mean (1-worker app, under load)", hold, "ms", "{:.2f}",
          note=f"Little's-law ceiling {POOL_SIZE} / hold = {little or 0:,.0f} req/s")
    s.add("pool hold mean, same read with an idle loop", in_process.get("idle_hold_ms"), "ms", "{:.2f}",
          note="in-process ORM loop: the hold without queueing for the event loop")
    s.add("pool wait mean / p95", wait, "ms", "{:.2f}", note=f"p95 {main.get('wait_p95_ms') or 0:.2f} ms")
    orm, raw = in_process.get("orm_cpu_us"), in_process.get("asyncpg_cpu_us")
    app_cpu = app_cpu_per_request(ceiling)
    s.add("in-process: session + ORM select, CPU per call", orm, "µs", note="SQLAlchemy + asyncpg, no HTTP")
    s.add("in-process: raw asyncpg fetchrow, CPU per call", raw, "µs")
    s.add("HTTP + FastAPI + the rest, per request", None if app_cpu is None or orm is None else app_cpu - orm,
          "µs", note="app CPU per request minus the ORM path")
    _explain(s, main, little, rps, app_cpu, orm, raw)
    idle_hold = in_process.get("idle_hold_ms")
    if hold and idle_hold:
        s.say(f"under load a checkout is held {hold / idle_hold:.0f}x as long as with an idle loop "
              f"({hold:.2f} vs {idle_hold:.2f} ms): the connection waits for the busy event loop while checked "
              "out, so the pool looks full because the CPU is; a bigger pool would not raise the ceiling")
    return s


def app_cpu_per_request(ceiling: Ceiling) -> float | None:
    """µs of app CPU per request on the fastest one-worker stack measured."""
    return _per_request(ceiling.runs.get("fast") or ceiling.runs.get("std"), "cpu_app")


def _cores_note(f: Figures) -> str:
    parts = [f"{name} {f[f'cpu_{name}'] or 0:.2f}" for name in ("app", "postgres", "wrk", "locust")
             if f.get(f"cpu_{name}") is not None]
    text = "cores: " + ", ".join(parts) + f", machine {f.get('cpu_machine') or 0:.2f}/2"
    failures = f.get("failures") or 0
    p99 = f.get("p99_ms")
    text += f"; p99 {p99:.1f} ms" if p99 else ""
    return text + (f"; {failures:.0f} failed" if failures else "")


def _per_request(windows: list[Figures] | None, key: str) -> float | None:
    if not windows:
        return None
    return median((w.get(key) or 0.0) / w["rps"] * 1e6 if w.get("rps") else None for w in windows)


def _explain(s: Section, main: Figures, little: float | None, rps: dict[str, float | None],
             app_cpu: float | None, orm: float | None, raw: float | None) -> None:
    cores, measured = main.get("cpu_app") or 0.0, main.get("rps")
    verdict = "its event loop is the limit (one core, one thread)" if cores > 0.85 else \
        "not CPU-bound: the machine's other load or PostgreSQL shares the cores"
    s.say(f"the 1-worker app uses {cores:.2f} cores at its ceiling: {verdict}")
    if little and measured:
        s.say(f"the pool is not the limit: Little's law allows {little:,.0f} req/s, {little / measured:.1f}x "
              "the measured rate" if little > 1.2 * measured else
              f"the pool is near its Little's-law ceiling ({measured / little:.0%} of it)")
    if app_cpu and orm and raw:
        s.say(f"of {app_cpu:,.0f} µs CPU per request, the SQLAlchemy session + ORM path is ~{orm:,.0f} µs "
              f"(raw asyncpg alone {raw:,.0f} µs): asyncpg is {raw / app_cpu:.0%} of it, SQLAlchemy "
              f"{(orm - raw) / app_cpu:.0%}, HTTP/FastAPI {(app_cpu - orm) / app_cpu:.0%}")
    gain = ratio(rps.get("fast"), rps.get("std"))
    if gain is not None:
        s.say(f"uvloop+httptools: {gain:.2f}x on the same route and pool; uvicorn already picks them ('auto') "
              "wherever they are installed")

