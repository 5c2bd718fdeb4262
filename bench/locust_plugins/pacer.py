"""Runs inside Locust (never imported by the harness): the stepped load of `bench capacity`, open or closed model.

`bench capacity` adds this file to ``locust -f`` and sets ``BENCH_LOAD_STEPS``; without that variable it does nothing.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import random
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import gevent
from gevent.event import AsyncResult
from locust import LoadTestShape, constant, events

ENV = "BENCH_LOAD_STEPS"
# Rows the harness (bench.analysis.steps) tells apart by request_type: arrivals that never got a response.
DROPPED = "DROPPED"
UNFINISHED = "UNFINISHED"
ARRIVAL_NAME = "scheduled arrival"


class Dropped(Exception):
    """No user was free at the scheduled start: the arrival is lost, as k6 counts a dropped iteration."""


class Unfinished(Exception):
    """Still waiting for its response when the drain after the last step ended."""


@dataclass(frozen=True)
class Plan:
    mode: str  # "rate": arrivals on a schedule (open model); "users": a fixed number of users per step
    levels: tuple[float, ...]
    step_s: float
    max_users: int
    arrivals: str = "constant"  # or "poisson"
    drain_s: float = 0.0
    seed: int = 1

    @classmethod
    def from_env(cls) -> Plan | None:
        raw = os.environ.get(ENV)
        if not raw:
            return None
        data = json.loads(raw)
        return cls(mode=data["mode"], levels=tuple(float(v) for v in data["levels"]), step_s=float(data["step_s"]),
                   max_users=int(data["max_users"]), arrivals=data.get("arrivals", "constant"),
                   drain_s=float(data.get("drain_s", 0.0)), seed=int(data.get("seed", 1)))

    def offsets(self) -> Iterator[tuple[int, float]]:
        """(step index, seconds after the schedule's start) of every arrival, in order."""
        rng = random.Random(self.seed)
        for index, rate in enumerate(self.levels):
            start, end = index * self.step_s, (index + 1) * self.step_s
            if self.arrivals == "poisson":
                t = start + rng.expovariate(rate)
                while t < end:
                    yield index, t
                    t += rng.expovariate(rate)
            else:
                count = round(rate * self.step_s)
                for n in range(count):  # start + n / rate, not a running sum: no drift over a long step
                    yield index, start + n / rate


@dataclass(eq=False)
class Slot:
    """One scheduled arrival handed to a user: latency is measured from ``scheduled`` (epoch seconds)."""

    step: int
    scheduled: float
    reported: bool = False  # its first request's row is written
    closed: bool = False  # reported as unfinished: later rows of it are not written


@dataclass
class StepLog:
    level: float
    start: float = 0.0
    end: float = 0.0
    cpu_start: float = 0.0
    cpu_end: float = 0.0
    sent: int = 0
    dropped: int = 0
    unfinished: int = 0
    lateness_ms: list[float] = field(default_factory=list)

    def to_json(self, index: int) -> dict[str, Any]:
        late = sorted(self.lateness_ms)
        wall = self.end - self.start
        return {"index": index, "level": self.level, "start": self.start, "end": self.end, "sent": self.sent,
                "dropped": self.dropped, "unfinished": self.unfinished,
                "lateness_ms": {"p50": nearest_rank(late, 50), "p95": nearest_rank(late, 95),
                                "max": late[-1] if late else None},
                "generator_cpu": round((self.cpu_end - self.cpu_start) / wall, 4)
                if wall > 0 and self.cpu_end else None}


class Pacer:
    """The shared schedule: a dispatcher greenlet hands each arrival to an idle user or counts it dropped."""

    def __init__(self, plan: Plan, environment: Any, out: Path | None) -> None:
        self.plan = plan
        self.environment = environment
        self.out = out
        self.steps = [StepLog(level=level) for level in plan.levels]
        self.idle: deque[Any] = deque()
        self.busy: set[Slot] = set()
        self.t0: float | None = None
        self.current = -1
        self.done = False

    # --- open model ----------------------------------------------------------------------------
    def on_spawned(self, **_kwargs: Any) -> None:
        if self.t0 is None:
            self.t0 = time.time()
            gevent.spawn(self._dispatch, time.monotonic())
            gevent.spawn(self._mark_steps, time.monotonic())

    def _dispatch(self, mono0: float) -> None:
        assert self.t0 is not None
        for index, offset in self.plan.offsets():
            delay = mono0 + offset - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
            slot = Slot(step=index, scheduled=self.t0 + offset)
            if self._hand_out(slot):
                self.steps[index].sent += 1
            else:
                self.steps[index].dropped += 1
                self._fire_lost(slot, DROPPED, 0.0,
                                Dropped(f"no free user at the scheduled start ({self.plan.max_users} in flight)"))

    def _hand_out(self, slot: Slot) -> bool:
        while self.idle:
            waiter = self.idle.popleft()
            if not waiter.ready():
                self.busy.add(slot)
                waiter.set(slot)
                return True
        return False

    def _mark_steps(self, mono0: float) -> None:
        assert self.t0 is not None
        for index in range(len(self.steps) + 1):
            gevent.sleep(max(0.0, mono0 + index * self.plan.step_s - time.monotonic()))
            self._enter_step(index, self.t0 + index * self.plan.step_s)
        gevent.sleep(self.plan.drain_s)
        for slot in list(self.busy):  # every arrival gets exactly one row, even one that never finished
            if not slot.reported:
                slot.closed = True
                self.steps[slot.step].unfinished += 1
                self._fire_lost(slot, UNFINISHED, (time.time() - slot.scheduled) * 1000,
                                Unfinished(f"no response within the {self.plan.drain_s:g}s drain after the last step"))
        self.done = True
        self.write()

    def take(self) -> Slot:
        """Block the calling user until the dispatcher hands it an arrival."""
        waiter = AsyncResult()
        self.idle.append(waiter)
        try:
            slot: Slot = waiter.get()
        except BaseException:
            if waiter in self.idle:
                self.idle.remove(waiter)
            raise
        return slot

    def finished(self, slot: Slot) -> None:
        self.busy.discard(slot)

    def late_by(self, slot: Slot, seconds: float) -> None:
        self.steps[slot.step].lateness_ms.append(seconds * 1000)

    def _fire_lost(self, slot: Slot, kind: str, response_time_ms: float, error: Exception) -> None:
        self.environment.events.request.fire(
            request_type=kind, name=ARRIVAL_NAME, response_time=response_time_ms, response_length=0,
            exception=error, context={}, start_time=slot.scheduled, url=None)

    # --- closed model ----------------------------------------------------------------------------
    def users_tick(self, run_time: float) -> tuple[int, float] | None:
        index = int(run_time // self.plan.step_s)
        if self.t0 is None:
            self.t0 = time.time()
        if index != self.current:
            self._enter_step(index, time.time())
            self.current = index
        if index >= len(self.steps):
            self.done = True
            self.write()
            return None
        return int(self.plan.levels[index]), _spawn_rate(self.plan)

    # --- both ------------------------------------------------------------------------------------
    def _enter_step(self, index: int, at: float) -> None:
        cpu = time.process_time()
        if 0 < index <= len(self.steps):
            self.steps[index - 1].end, self.steps[index - 1].cpu_end = at, cpu
        if index < len(self.steps):
            self.steps[index].start, self.steps[index].cpu_start = at, cpu
        self.write()

    def write(self) -> None:
        if self.out is None:
            return
        plan = self.plan
        data = {"mode": plan.mode, "levels": list(plan.levels), "step_s": plan.step_s, "max_users": plan.max_users,
                "arrivals": plan.arrivals, "drain_s": plan.drain_s, "t0": self.t0, "done": self.done,
                "steps": [s.to_json(i) for i, s in enumerate(self.steps) if s.start]}
        tmp = self.out.with_name(f".{self.out.name}.tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, self.out)


def nearest_rank(ordered: list[float], p: float) -> float | None:
    """The p-th percentile (0..100) of sorted values by nearest rank, the value at rank ceil(p·n / 100).

    The harness's one percentile rule (bench.analysis.stats.nearest_rank; this plugin imports nothing from bench,
    tests/test_percentiles.py holds the two equal): for n = 20 the 95th percentile is the 19th value, not the 20th.
    """
    if not ordered:
        return None
    rank = max(1, math.ceil(p * len(ordered) / 100 - 1e-9))
    return round(ordered[min(rank, len(ordered)) - 1], 3)


def _spawn_rate(plan: Plan) -> float:
    # All of a step's users within ~50 ms: the step's settling period is for the app, not for spawning.
    return float(max(100, 20 * plan.max_users))


class ScheduledRequestEvent:
    """Stands in for a user's ``client.request_event``: the first request of an arrival is reported from its
    scheduled start (coordinated omission corrected); an arrival already reported unfinished is not reported twice.
    """

    def __init__(self, inner: Any, user: Any, pacer: Pacer) -> None:
        self.inner = inner
        self.user = user
        self.pacer = pacer

    def fire(self, **kwargs: Any) -> Any:
        slot: Slot | None = getattr(self.user, "_bench_slot", None)
        if slot is not None and slot.closed:
            return None
        if slot is not None and not slot.reported:
            slot.reported = True
            late = max(0.0, float(kwargs.get("start_time") or slot.scheduled) - slot.scheduled)
            self.pacer.late_by(slot, late)
            kwargs["start_time"] = slot.scheduled
            kwargs["response_time"] = float(kwargs.get("response_time") or 0.0) + late * 1000
        return self.inner.fire(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _paced(task: Callable[[Any], None]) -> Callable[[Any], None]:
    def run(user: Any) -> None:
        pacer = _state["pacer"]
        slot = pacer.take()
        client = getattr(user, "client", None)
        if client is not None and hasattr(client, "request_event") and \
                not isinstance(client.request_event, ScheduledRequestEvent):
            client.request_event = ScheduledRequestEvent(client.request_event, user, pacer)
        user._bench_slot = slot
        try:
            task(user)
        finally:
            user._bench_slot = None
            pacer.finished(slot)

    run.__name__ = getattr(task, "__name__", "task")
    return run


def pace(user_class: Any) -> None:
    """Every task of ``user_class`` first waits for a scheduled arrival; think time goes (the schedule sets it)."""
    if getattr(user_class, "_bench_paced", False):
        return
    nested = [t for t in user_class.tasks if inspect.isclass(t)]
    if nested:
        sys.stderr.write(f"scopebench: --rates paces function tasks; {user_class.__name__} has a TaskSet "
                         f"({nested[0].__name__}); use --users for this scenario\n")
        sys.exit(2)
    user_class.tasks = [_paced(t) for t in user_class.tasks]
    user_class.wait_time = constant(0)
    user_class._bench_paced = True


_state: dict[str, Any] = {"plan": Plan.from_env(), "pacer": None}


class BenchSteps(LoadTestShape):
    """Rate mode: ``max_users`` users for the whole schedule. Users mode: the step's user count."""

    abstract = _state["plan"] is None

    def tick(self) -> tuple[int, float] | None:
        pacer: Pacer | None = _state["pacer"]
        if pacer is None or pacer.done:
            return None
        if pacer.plan.mode == "users":
            return pacer.users_tick(float(cast(Any, self).get_run_time()))
        return pacer.plan.max_users, _spawn_rate(pacer.plan)


def _on_init(environment: Any, **_kwargs: Any) -> None:
    plan: Plan | None = _state["plan"]
    if plan is None:
        return
    log = os.environ.get("BENCH_PACER_LOG")  # named by the harness (bench.results.layout)
    pacer = Pacer(plan, environment, Path(log) if log else None)
    _state["pacer"] = pacer
    if plan.mode == "rate":
        for user_class in environment.user_classes:
            pace(user_class)
        environment.events.spawning_complete.add_listener(pacer.on_spawned)


def _on_quitting(environment: Any, **_kwargs: Any) -> None:
    pacer: Pacer | None = _state["pacer"]
    if pacer is not None:
        pacer.write()


_events: Any = events  # Locust's hooks are untyped
_events.init.add_listener(_on_init)
_events.quitting.add_listener(_on_quitting)
