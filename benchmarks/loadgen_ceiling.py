"""Load generator ceiling: wrk vs Locust (HttpUser, FastHttpUser, one process or two) on a trivial responder.

``harness_perf`` calls ``measure``; the responder serves far faster than Locust, so each generator meets its own limit.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from perf_drivers import (
    RESPONDER,
    WRK_INSTALL,
    CpuMeter,
    Window,
    get_text,
    have_module,
    locust_child,
    measure_counted,
    run_wrk,
    wrk_path,
)
from perf_options import Options
from perf_table import Section, median, medians, ratio, spread

from bench.db.ports import free_port
from bench.run.processes import Child, wait_for_http


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    user_class: str
    processes: int


VARIANTS = (
    Variant("http1", "Locust HttpUser, 1 process", "TrivialHttpUser", 1),
    Variant("http2", "Locust HttpUser, --processes 2", "TrivialHttpUser", 2),
    Variant("fast1", "Locust FastHttpUser, 1 process", "TrivialFastUser", 1),
    Variant("fast2", "Locust FastHttpUser, --processes 2", "TrivialFastUser", 2),
)


def measure(opts: Options) -> Section:
    loop = "uvloop" if have_module("uvloop") else "asyncio"
    section = Section(f"load generator ceiling: trivial responder (raw asyncio on {loop}), "
                      f"{opts.users} users/connections, {opts.reps} x {opts.window_s:g} s windows, medians")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    responder = Child(name="trivial responder", argv=[sys.executable, str(RESPONDER), "--port", str(port)],
                      log_path=opts.workdir / "responder.log").start()
    runs: dict[str, list[Window]] = {}
    try:
        wait_for_http(base + "/_count", responder)
        # Interleaved repetitions: drift from other load on the machine hits every variant alike.
        for _ in range(opts.reps):
            if wrk_path() is not None:
                run_wrk(base + "/", seconds=1, connections=opts.users)  # warm-up: connections, caches
                cpu = CpuMeter({"responder": responder.pid})
                runs.setdefault("wrk", []).append(
                    run_wrk(base + "/", seconds=opts.window_s, connections=opts.users, cpu=cpu))
            for variant in VARIANTS:
                runs.setdefault(variant.key, []).append(_locust(opts, base, variant, responder))
    finally:
        responder.stop()
    _fill(section, runs)
    return section


def _locust(opts: Options, base: str, variant: Variant, responder: Child) -> Window:
    run_time = opts.warmup_s + opts.window_s + 20  # bound: it is stopped as soon as the window ends
    child = locust_child(base, variant.user_class, users=opts.users, processes=variant.processes,
                         run_time_s=run_time, folder=opts.workdir).start()
    try:
        cpu = CpuMeter({"locust": child.pid, "responder": responder.pid})
        return measure_counted(lambda: int(get_text(base + "/_count")), child, cpu,
                               warmup_s=opts.warmup_s, seconds=opts.window_s)
    finally:
        child.stop(timeout=5)
        time.sleep(0.3)  # let the responder drop the closed sockets before the next variant


def _fill(section: Section, runs: dict[str, list[Window]]) -> None:
    fig = {key: medians(w.figures() for w in windows) for key, windows in runs.items()}
    rps = {key: f["rps"] for key, f in fig.items()}
    if "wrk" in fig:
        f = fig["wrk"]
        section.add("wrk (C, 1 thread)", f["rps"], "req/s",
                    note=f"cores: responder {f.get('cpu_responder') or 0:.2f}, wrk {f.get('cpu_wrk') or 0:.2f}, "
                    f"machine {f.get('cpu_machine') or 0:.2f}/2; "
                    + spread(w.rps for w in runs["wrk"]))
    else:
        section.add("wrk (C, 1 thread)", None, "req/s", note=f"wrk not installed ({WRK_INSTALL}); skipped")
    for variant in VARIANTS:
        f = fig[variant.key]
        section.add(variant.label, f["rps"], "req/s",
                    note=f"cores: Locust {f.get('cpu_locust') or 0:.2f}, responder {f.get('cpu_responder') or 0:.2f}, "
                    f"machine {f.get('cpu_machine') or 0:.2f}/2; "
                    + spread(w.rps for w in runs[variant.key]))
    section.ratio("Locust FastHttpUser (1 process) / wrk", rps["fast1"], rps.get("wrk"))
    section.ratio("Locust HttpUser (1 process) / wrk", rps["http1"], rps.get("wrk"))
    section.ratio("FastHttpUser / HttpUser (1 process)", rps["fast1"], rps["http1"])
    section.ratio("--processes 2 / 1, FastHttpUser", rps["fast2"], rps["fast1"])
    section.ratio("--processes 2 / 1, HttpUser", rps["http2"], rps["http1"])
    for key, label in (("fast1", "FastHttpUser"), ("http1", "HttpUser")):
        per_request = _cpu_us_per_request(runs[key], "locust")
        note = f"one full core would give {1e6 / per_request:,.0f} req/s" if per_request else ""
        section.add(f"Locust CPU per request, {label}", per_request, "µs", note=note)
    _explain(section, fig)


def _cpu_us_per_request(windows: list[Window], name: str) -> float | None:
    return median(w.cores.get(name, 0.0) / w.rps * 1e6 if w.rps else None for w in windows)


def _explain(section: Section, fig: dict[str, dict[str, float | None]]) -> None:
    one = fig["fast1"]
    cores, machine = one.get("cpu_locust") or 0.0, one.get("cpu_machine") or 0.0
    others = max(0.0, machine - cores - (one.get("cpu_responder") or 0.0))
    if cores > 0.85:
        verdict = "it is CPU-bound (one gevent loop, one GIL)"
    elif machine > 1.85:
        verdict = f"the machine is saturated (others {others:.2f} cores), so CPU is still the limit"
    else:
        verdict = "it waits on something other than CPU"
    section.say(f"one Locust process (FastHttpUser) uses {cores:.2f} cores at its ceiling: {verdict}")
    wrk = fig.get("wrk")
    if wrk is not None:
        responder, wrk_cores = wrk.get("cpu_responder") or 0.0, wrk.get("cpu_wrk") or 0.0
        section.say(f"under wrk the responder uses {responder:.2f} cores and wrk {wrk_cores:.2f}: wrk's figure is a "
                    "lower bound on its ceiling (the two share what the machine's other load leaves)")
    two = fig["fast2"]
    gain = ratio(two["rps"], one["rps"])
    if gain is not None:
        section.say(f"--processes 2 gives {gain:.2f}x with FastHttpUser: master, 2 workers and the server share "
                    f"2 cores (Locust {two.get('cpu_locust') or 0:.2f} + responder {two.get('cpu_responder') or 0:.2f}"
                    f" cores, machine {two.get('cpu_machine') or 0:.2f}/2)")
