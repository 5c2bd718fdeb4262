"""Target app ceiling: the good app's ``GET /items/{item_id}`` under wrk, uvloop+httptools vs asyncio+h11,
one worker vs two, and Locust on the same route; app, PostgreSQL and pool figures say what limits it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perf_database import POOL_SIZE, AppServer, Target
from perf_drivers import ITEMS_LUA, CpuMeter, have_module, locust_child, measure_counted, run_wrk, wrk_path
from perf_options import Options
from perf_table import Section, median, medians, spread

from bench.instrument import Histogram

Figures = dict[str, float | None]


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    loop: str
    http: str
    workers: int = 1
    pool_size: int = POOL_SIZE


BIG_POOL = 2 * POOL_SIZE
# Each stack at the harness's pool and at twice it: if the pool were the limit, the bigger one would be faster.
FAST = Variant("fast", f"uvloop + httptools, pool {POOL_SIZE}", "uvloop", "httptools")
STD = Variant("std", f"asyncio + h11, pool {POOL_SIZE}", "asyncio", "h11")
FAST_BIG = Variant("fast_big", f"uvloop + httptools, pool {BIG_POOL}", "uvloop", "httptools", pool_size=BIG_POOL)
STD_BIG = Variant("std_big", f"asyncio + h11, pool {BIG_POOL}", "asyncio", "h11", pool_size=BIG_POOL)
TWO = Variant("two", f"uvloop + httptools, pool {POOL_SIZE}, --workers 2", "uvloop", "httptools", workers=2)


@dataclass
class Ceiling:
    """Every window of every variant; ``fast_app`` stays up for the collector section."""

    runs: dict[str, list[Figures]]
    driver: str
    fast_app: AppServer


def run(opts: Options, target: Target) -> Ceiling:
    fast_ok = have_module("uvloop") and have_module("httptools")
    first = FAST if fast_ok else STD
    variants = [FAST, STD, FAST_BIG, STD_BIG, TWO] if fast_ok else [STD, STD_BIG]
    # All apps stay up at once (an idle app costs nothing) so that windows can interleave.
    apps = {v.key: target.start_app(v.label, loop=v.loop, http=v.http, workers=v.workers, pool_size=v.pool_size)
            for v in variants}
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
        return int(snapshots[-1]["counters"]["checkouts"])

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
    s = Section(f"target app ceiling: good app GET /items/{{item_id}}, 1 uvicorn worker unless said, {ceiling.driver} "
                f"with {opts.users} concurrent, {opts.reps} x {opts.window_s:g} s interleaved, medians")
    fig = {key: medians(windows) for key, windows in ceiling.runs.items()}
    _throughput_lines(s, ceiling, fig)
    _cpu_lines(s, ceiling.runs)
    little = _pool_lines(s, fig, in_process)
    app_cpu = app_cpu_per_request(ceiling)
    orm, core, raw = (in_process.get(k) for k in ("orm_cpu_us", "core_cpu_us", "asyncpg_cpu_us"))
    s.add("in-process: session + ORM select", orm, "µs", note="CPU per call: the route's DB work, no HTTP")
    s.add("in-process: Core connect + select", core, "µs", note="CPU per call, no ORM: pool, engine, greenlet, dialect")
    s.add("in-process: asyncpg BEGIN + SELECT + COMMIT", raw, "µs", note="CPU per call: the same round trips, driver only")
    s.add("HTTP + FastAPI + the rest, per request", None if app_cpu is None or orm is None else app_cpu - orm,
          "µs", note="app CPU per request minus the ORM path")
    _explain(s, fig, little, app_cpu, in_process)
    return s


def _throughput_lines(s: Section, ceiling: Ceiling, fig: dict[str, Figures]) -> None:
    runs = ceiling.runs
    for variant in (FAST, STD, FAST_BIG, STD_BIG, TWO):
        if variant.key in fig:
            s.add(f"{variant.label} ({ceiling.driver})", fig[variant.key]["rps"], "req/s",
                  note=_cores_note(fig[variant.key]) + "; " + spread(w["rps"] for w in runs[variant.key]))
    if "locust" in fig:
        s.add(f"{FAST.label} (Locust FastHttpUser)", fig["locust"]["rps"], "req/s",
              note=_cores_note(fig["locust"]) + "; " + spread(w["rps"] for w in runs["locust"]))
    rps = {key: f["rps"] for key, f in fig.items()}
    s.ratio(f"uvloop+httptools / asyncio+h11, pool {POOL_SIZE}", rps.get("fast"), rps.get("std"))
    s.ratio(f"uvloop+httptools / asyncio+h11, pool {BIG_POOL}", rps.get("fast_big"), rps.get("std_big"))
    s.ratio(f"pool {BIG_POOL} / pool {POOL_SIZE}, uvloop+httptools", rps.get("fast_big"), rps.get("fast"))
    s.ratio(f"pool {BIG_POOL} / pool {POOL_SIZE}, asyncio+h11", rps.get("std_big"), rps.get("std"))
    s.ratio("--workers 2 / 1, uvloop+httptools", rps.get("two"), rps.get("fast"))
    s.ratio("Locust FastHttpUser / wrk on this route", rps.get("locust"), rps.get("fast"),
            note="throughput ratios move with the machine's other load; the CPU figures below do not")


def _cpu_lines(s: Section, runs: dict[str, list[Figures]]) -> None:
    # CPU per request is what contention leaves alone: pool sizes pooled, per stack.
    fast_cpu = _per_request([*runs.get("fast", []), *runs.get("fast_big", [])], "cpu_app")
    std_cpu = _per_request([*runs.get("std", []), *runs.get("std_big", [])], "cpu_app")
    for label, cpu in (("uvloop+httptools", fast_cpu), ("asyncio+h11", std_cpu)):
        s.add(f"app CPU per request, {label}", cpu, "µs",
              note=f"one full core would serve {1e6 / cpu:,.0f} req/s" if cpu else "")
    s.ratio("CPU per request asyncio+h11 / uvloop+httptools", std_cpu, fast_cpu,
            note="the uvloop+httptools speed-up of a CPU-bound app")
    main_runs = runs.get("fast") or runs.get("std")
    s.add("PostgreSQL CPU per request", _per_request(main_runs, "cpu_postgres"), "µs")
    s.add("Locust CPU per request on this route", _per_request(runs.get("locust") or main_runs, "cpu_locust"), "µs")


def _pool_lines(s: Section, fig: dict[str, Figures], in_process: Figures) -> float | None:
    """Hold and wait under load vs on an idle loop; returns the pool's Little's-law ceiling (req/s)."""
    main = fig.get("fast") or fig.get("std") or {}
    hold = main.get("hold_ms")
    little = POOL_SIZE / (hold / 1000) if hold else None
    s.add(f"pool hold mean under load, pool {POOL_SIZE}", hold, "ms", "{:.2f}",
          note=f"Little's-law ceiling {POOL_SIZE} / hold = {little or 0:,.0f} req/s")
    s.add("pool hold mean, same read on an idle loop", in_process.get("idle_hold_ms"), "ms", "{:.2f}",
          note="in-process ORM loop: the hold without queueing for the event loop")
    s.add(f"pool wait mean under load, pool {POOL_SIZE}", main.get("wait_ms"), "ms", "{:.1f}",
          note=f"p95 {main.get('wait_p95_ms') or 0:.1f} ms")
    big = fig.get("fast_big") or fig.get("std_big") or {}
    s.add(f"pool hold mean under load, pool {BIG_POOL}", big.get("hold_ms"), "ms", "{:.2f}")
    return little


def app_cpu_per_request(ceiling: Ceiling) -> float | None:
    """µs of app CPU per request on the fastest one-worker stack measured."""
    runs = ceiling.runs
    return _per_request([*runs.get("fast", []), *runs.get("fast_big", [])], "cpu_app") or \
        _per_request([*runs.get("std", []), *runs.get("std_big", [])], "cpu_app")


def _cores_note(f: Figures) -> str:
    names = [n for n in ("app", "postgres", "wrk", "locust") if f.get(f"cpu_{n}") is not None]
    ours = sum(f[f"cpu_{n}"] or 0.0 for n in names)
    text = "cores: " + ", ".join(f"{n} {f[f'cpu_{n}'] or 0:.2f}" for n in names)
    text += f", others {max(0.0, (f.get('cpu_machine') or 0) - ours):.2f}"
    p99, failures = f.get("p99_ms"), f.get("failures") or 0
    text += f"; p99 {p99:.0f} ms" if p99 else ""
    return text + (f"; {failures:.0f} failed" if failures else "")


def _per_request(windows: list[Figures] | None, key: str) -> float | None:
    if not windows:
        return None
    return median((w.get(key) or 0.0) / rps * 1e6 if (rps := w.get("rps")) else None for w in windows)


def _explain(s: Section, fig: dict[str, Figures], little: float | None, app_cpu: float | None,
             in_process: Figures) -> None:
    main, big = fig.get("fast") or fig.get("std") or {}, fig.get("fast_big") or fig.get("std_big") or {}
    for label, f in ((f"pool {POOL_SIZE}", main), (f"pool {BIG_POOL}", big)):
        cores, machine = f.get("cpu_app") or 0.0, f.get("cpu_machine") or 0.0
        if cores > 0.85:
            verdict = "CPU-bound: its event loop is the limit"
        elif machine > 1.85:
            verdict = f"the machine is saturated ({machine:.2f}/2 cores busy), so CPU is the limit all the same"
        else:
            verdict = "so it waits on something else (pool, PostgreSQL)"
        s.say(f"1 worker, {label}: the app uses {cores:.2f} of a core; {verdict}")
    measured = main.get("rps")
    if little and measured:
        s.say(f"at pool {POOL_SIZE} the app runs at {measured / little:.0%} of the pool's Little's-law ceiling "
              "(pool / hold under load)")
    idle_hold, hold = in_process.get("idle_hold_ms"), main.get("hold_ms")
    if hold and idle_hold:
        s.say(f"under load a checkout is held {hold / idle_hold:.1f}x as long as on an idle loop ({hold:.2f} vs "
              f"{idle_hold:.2f} ms): a checked-out connection waits its turn on the busy loop, so pool and CPU "
              "limits compound")
    orm, core, raw = (in_process.get(k) for k in ("orm_cpu_us", "core_cpu_us", "asyncpg_cpu_us"))
    if app_cpu and orm and core and raw:
        s.say(f"of {app_cpu:,.0f} µs CPU per request: asyncpg ~{raw / app_cpu:.0%}, SQLAlchemy Core/pool/greenlet "
              f"~{(core - raw) / app_cpu:.0%}, ORM session ~{(orm - core) / app_cpu:.0%}, HTTP + FastAPI "
              f"~{(app_cpu - orm) / app_cpu:.0%}: uvloop and httptools can only speed up the last part and the I/O")
