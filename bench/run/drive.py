"""Drives one app run: start what it needs, load it with Locust, cool down, sample throughout; raw files on disk.

bench.run.runner drives every app and repeat of a run, bench.run.capacity every app of a pool size; each then digests.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

import bench
from bench.analysis.loadperiod import LOAD_STARTED, LOAD_STOPPED, LoadPeriod
from bench.errors import InfraError, UsageError
from bench.results.folder import write_json
from bench.results.layout import AppFiles, RunFiles
from bench.results.records import DbFigures
from bench.results.requestlog import RequestTail
from bench.run.collector import Collector
from bench.run.loadgen import LoadPlan, locust_child, missing_rows, workers_joined
from bench.run.processes import Child
from bench.run.state import RunState
from bench.run.subjects import Subject, subject_for

_LOCUST_GRACE_S = 30.0  # Locust stops itself at --run-time; past this much longer it is killed
_EXEC_GAP_S = 5.0  # interpreter start to bench import takes well under this (about 0.1 s)
_EARLY_STOP_S = 1.0  # Locust seen exiting this much before its run time ended the load early
_TICK_S = 0.25  # how often the drive looks at Locust, the app and the request log


@dataclass(frozen=True)
class Driven:
    """One app run's results besides its raw files: what was measured in-process, for the digest."""

    app: str
    files: AppFiles  # requests.csv, locust.json, samples.jsonl, app.log, ...
    db: DbFigures
    pool: dict[str, Any] | None  # the last snapshot of the app's pool endpoint
    written: dict[str, int] | None  # rows per route tag after the run; None when not counted
    load: LoadPeriod  # the load period the harness drove: its go signal to Locust's stop


async def drive(run: RunState, app: str, index: int = 0) -> Driven:
    """Run ``app`` (``target`` in target mode) once under the run's load; stops everything it started."""
    files = RunFiles(run.folder).app(app, index)
    files.root.mkdir(parents=True, exist_ok=True)
    subject = subject_for(run, app, index, files)
    try:
        await subject.launch()
        plan = _plan(run, subject.host)
        locust = locust_child(plan, files.root).start()
        try:
            await subject.ready()
            await workers_joined(plan, locust, files.root, run.console.info)
            collector = _collector(run, subject, files)
            await collector.open()
            failed = True
            try:
                load = await _load_and_cool_down(run, subject, plan, locust, collector, files)
                await subject.settle(collector)
                figures = await collector.finish()
                written = await subject.written()
                failed = False
            finally:
                await collector.close()
                _record_events(run, subject.name, collector)
                _keep_pool_reading(collector, files, failed)
        finally:
            locust.stop(timeout=5)
    finally:
        await subject.close()
    return Driven(app=subject.name, files=files, db=figures, pool=collector.last_pool, written=written, load=load)


def _keep_pool_reading(collector: Collector, files: AppFiles, failed: bool) -> None:
    """pool.json: the pool figures' raw input, so they can be redone from the run folder. When the drive has
    already failed, a write that fails too is dropped, so the error the user sees is the one that stopped it."""
    if collector.last_pool is None:
        return
    try:
        write_json(files.pool_json, collector.last_pool)
    except UsageError:
        if not failed:
            raise


def _plan(run: RunState, host: str) -> LoadPlan:
    cfg = run.config
    return LoadPlan(locustfile=run.scenario.locustfile, host=host, users=cfg.users, spawn_rate=cfg.spawn_rate,
                    duration_s=cfg.duration_s, workers=cfg.workers, remote_workers=cfg.remote_workers,
                    master_bind=cfg.master_bind,
                    extra_files=run.hooks.locust_files, env=run.hooks.locust_env)


def _collector(run: RunState, subject: Subject, files: AppFiles) -> Collector:
    cfg, watched = run.config, subject.watched()
    return run.hooks.collector(
        admin_dsn=watched.admin_dsn, database=watched.database, application_name=watched.application_name,
        pool_url=watched.pool_url, pool_token=watched.pool_token, samples_path=files.samples,
        interval_s=cfg.sample_interval_s, idle_threshold_s=cfg.idle_threshold_ms / 1000,
    )


async def _load_and_cool_down(run: RunState, subject: Subject, plan: LoadPlan, locust: Child,
                              collector: Collector, files: AppFiles) -> LoadPeriod:
    stop = asyncio.Event()
    collector.start_load()
    sampling = asyncio.create_task(collector.run(stop))
    tail = RequestTail(files.root)
    try:
        load = await _load(run, subject, plan, locust, collector, tail, files.go_file)
        collector.start_cooldown()
        await _cool_down(run, subject, collector, tail)
        return load
    finally:
        stop.set()
        await sampling
        run.console.end_progress()


async def _load(run: RunState, subject: Subject, plan: LoadPlan, locust: Child, collector: Collector,
                tail: RequestTail, go: Path) -> LoadPeriod:
    """From the go file until Locust exits (at its --run-time, or killed past a grace period): the load period,
    whatever the app did in it (a stall at its end is inside it, not cut off)."""
    duration = run.config.duration_s
    go.touch()  # Locust's users start now
    go_at, started = time.time(), time.monotonic()
    while locust.exit_code() is None:
        await asyncio.sleep(_TICK_S)
        tail.poll()
        elapsed = time.monotonic() - started
        if tail.first_start is not None and "startup_s" not in run.timings:
            run.timings["startup_s"] = round(tail.first_start - process_started_at(), 3)
        run.console.progress(subject.name, "load", elapsed, duration, tail, collector)
        subject.check_alive()
        if elapsed > duration + _LOCUST_GRACE_S:
            run.note(f"{subject.name}: Locust overran its run time by {_LOCUST_GRACE_S:.0f}s; stopped it")
            break
    # Locust stops its users at --run-time after the go (it is seen exiting up to a tick and its shutdown
    # later), or earlier when it died.
    stopped_at = min(time.time(), go_at + plan.run_time_s)
    _check_full_load(run, subject.name, locust, stopped_at - go_at, plan.run_time_s)
    locust.stop(timeout=5)
    _check_worker_rows(run, subject.name, tail.files.root)
    tail.poll()
    run.console.progress(subject.name, "load", stopped_at - go_at, duration, tail, collector, last=True)
    if tail.requests + tail.unfinished == 0:
        raise InfraError(f"Locust sent no request (exit code {locust.exit_code()}): {locust.log_tail()}")
    # On the run's time line, so throughput and the stalls can be worked out again from the request log alone.
    run.events += [{"t": go_at, "app": subject.name, "event": LOAD_STARTED},
                   {"t": stopped_at, "app": subject.name, "event": LOAD_STOPPED}]
    return LoadPeriod(start=go_at, end=stopped_at)


def _check_full_load(run: RunState, app: str, locust: Child, ran_s: float, run_time_s: float) -> None:
    """Locust that quits before its run time (killed, crashed) leaves a shorter load than asked for: its
    figures are kept, but the run is a fault, never a completed measurement of a load it did not get."""
    if ran_s >= run_time_s - _EARLY_STOP_S:
        return
    detail = (f"Locust stopped {ran_s:.1f} s into a {run_time_s:.0f} s load (exit code {locust.exit_code()}): "
              f"{locust.log_tail()}")
    run.events.append({"t": time.time(), "app": app, "event": "load cut short", "detail": detail})
    run.faults.append(f"{app}: {detail}")


def _check_worker_rows(run: RunState, app: str, folder: Path) -> None:
    """A Locust worker whose last request rows never reached the master: the percentiles miss its end."""
    for detail in missing_rows(folder):
        run.events.append({"t": time.time(), "app": app, "event": "request rows missing", "detail": detail})
        run.faults.append(f"{app}: {detail}")


async def _cool_down(run: RunState, subject: Subject, collector: Collector, tail: RequestTail) -> None:
    """Load over, the sampling goes on: what the load left behind (transactions still open...)."""
    total = run.config.cooldown_s
    end = time.monotonic() + total
    while time.monotonic() < end:
        await asyncio.sleep(_TICK_S)
        subject.check_alive()
        run.console.progress(subject.name, "cool-down", total - (end - time.monotonic()), total, tail, collector)
    run.console.progress(subject.name, "cool-down", total, total, tail, collector, last=True)


def _record_events(run: RunState, app: str, collector: Collector) -> None:
    """The collector's events go on the run's time line; a fault among them fails the run once it is digested."""
    for event in collector.events:
        run.events.append({**event.to_json(), "app": app})
        if event.fault is not None:
            run.faults.append(f"{app}: {event.fault}")


def process_started_at() -> float:
    """When this command started (the user pressed enter), for the start-up figure.

    The process's creation time, unless it is far older than the package's import: ``bash -c 'A && bench …'``
    execs bench in the shell's own process, whose creation time would count A (a pip install) as start-up.
    """
    created = _process_created_at()
    return created if bench.IMPORTED_AT - created < _EXEC_GAP_S else bench.IMPORTED_AT


def _process_created_at() -> float:
    """From /proc/self/stat in clock ticks since boot: psutil's create_time adds a boot time rounded
    to whole seconds, which made the figure read up to a second long."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22 (starttime); the split dropped pid and comm
        since_boot = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - since_boot
    except (OSError, ValueError, IndexError, AttributeError):
        try:
            return float(psutil.Process().create_time())
        except psutil.Error:
            return time.time()
