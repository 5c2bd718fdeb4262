"""The plan of a capacity sweep: pool sizes, load steps (arrival rates or users), step length, settling, drain.

`bench capacity` resolves its options here (``resolve_sweep``); the pacer inside Locust receives the plan as JSON.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from bench.config.options import (
    RunConfig,
    given_value,
    parse_duration,
    parse_pool_sizes,
    resolve_config,
    setting,
)
from bench.config.optiontable import MAX_DURATION_S, OPTIONS
from bench.errors import UsageError

if TYPE_CHECKING:
    from bench.config.catalog import Scenario

MAX_STEPS = 200
MAX_RATE = 100_000.0
MAX_USERS = 10_000
DEFAULT_RATES: str = OPTIONS["rates"].default
_SWEEP = ("rates", "step_users", "step", "settle", "drain", "max_concurrency", "arrivals")
_RANGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True, kw_only=True)
class SweepPlan:
    mode: str  # "rate" (open model, --rates) or "users" (closed model, --users)
    levels: tuple[float, ...]
    step_s: float
    settle_s: float
    drain_s: float
    max_concurrency: int  # rate mode: users Locust keeps, i.e. requests in flight at most
    arrivals: str  # "constant" (like k6's constant-arrival-rate) or "poisson"
    pool_sizes: tuple[int, ...]
    seed: int = 1

    @property
    def unit(self) -> str:
        return "rps" if self.mode == "rate" else "users"

    @property
    def duration_s(self) -> float:
        """Locust's whole run for one app: every step, then the drain for answers still on their way."""
        return len(self.levels) * self.step_s + self.drain_s

    @property
    def users(self) -> int:
        return self.max_concurrency if self.mode == "rate" else int(max(self.levels))

    def pacer_env(self) -> dict[str, str]:
        """``BENCH_LOAD_STEPS`` for bench/locust_pacer.py."""
        plan = {"mode": self.mode, "levels": list(self.levels), "step_s": self.step_s, "max_users": self.users,
                "arrivals": self.arrivals, "drain_s": self.drain_s, "seed": self.seed}
        return {"BENCH_LOAD_STEPS": json.dumps(plan)}

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "unit": self.unit, "levels": list(self.levels), "step_s": self.step_s,
                "settle_s": self.settle_s, "drain_s": self.drain_s, "max_concurrency": self.max_concurrency,
                "arrivals": self.arrivals, "pool_sizes": list(self.pool_sizes), "seed": self.seed}


def parse_levels(text: str, flag: str, integer: bool = False) -> tuple[float, ...]:
    """'25:400:25' (start:stop:step, stop included) or '10,20,50'; increasing, positive."""
    match = _RANGE.match(text)
    if match:
        start, stop, step = (float(g) for g in match.groups())
        if step <= 0 or start <= 0 or stop < start:
            raise UsageError(f"{flag} {text!r}: write START:STOP:STEP with 0 < START <= STOP and STEP > 0")
        count = math.floor((stop - start) / step + 1e-9) + 1
        if count > MAX_STEPS:
            raise UsageError(f"{flag} {text!r} makes {count} steps; at most {MAX_STEPS}, use a larger STEP")
        levels = tuple(round(start + i * step, 6) for i in range(count))
    else:
        try:
            levels = tuple(float(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise UsageError(f"{flag} {text!r} is not a list of numbers; write e.g. 25:400:25 or 10,20,50") from None
    _check_levels(levels, text, flag, integer)
    return levels


def _check_levels(levels: tuple[float, ...], text: str, flag: str, integer: bool) -> None:
    if not levels:
        raise UsageError(f"{flag} {text!r} names no level; write e.g. 25:400:25 or 10,20,50")
    if len(levels) > MAX_STEPS:
        raise UsageError(f"{flag} has {len(levels)} steps; at most {MAX_STEPS}")
    if any(not math.isfinite(v) or v <= 0 for v in levels):
        raise UsageError(f"{flag} {text!r}: every level must be a positive number")
    if any(b <= a for a, b in itertools.pairwise(levels)):
        raise UsageError(f"{flag} {text!r}: levels must increase (the knee is found walking up the load)")
    if integer and any(not v.is_integer() for v in levels):
        raise UsageError(f"{flag} {text!r}: users are whole numbers")
    ceiling = MAX_USERS if integer else MAX_RATE
    if max(levels) > ceiling:
        raise UsageError(f"{flag} {text!r}: at most {ceiling:g} {'users' if integer else 'requests/s'}")


def build_plan(*, rates: str | None, users: str | None, step: str, settle: str | None, drain: str | None,
               max_concurrency: int, arrivals: str, pool_sizes: tuple[int, ...]) -> SweepPlan:
    if rates and users:
        raise UsageError("give --rates (open model) or --users (closed model), not both")
    mode = "users" if users else "rate"
    levels = parse_levels(users, "--users", integer=True) if users else parse_levels(rates or DEFAULT_RATES, "--rates")
    step_s = parse_duration(step, "--step")
    if step_s < 2:
        raise UsageError(f"--step {step!r} is too short; a step needs at least 2s (settling plus a measurement)")
    # Discard the start of each step: the backlog of the step before drains or builds up there.
    settle_s = parse_duration(settle, "--settle") if settle else min(2.0, step_s / 4)
    if settle_s >= step_s:
        raise UsageError(f"--settle {settle!r} leaves nothing of a {step_s:g}s step to measure")
    drain_s = parse_duration(drain, "--drain") if drain else min(10.0, max(2.0, step_s / 2))
    if arrivals not in ("constant", "poisson"):
        raise UsageError(f"--arrivals must be constant or poisson, got {arrivals!r}")
    if not 1 <= max_concurrency <= MAX_USERS:
        raise UsageError(f"--max-concurrency must be between 1 and {MAX_USERS}, got {max_concurrency}")
    plan = SweepPlan(mode=mode, levels=levels, step_s=step_s, settle_s=settle_s,
                     drain_s=drain_s if mode == "rate" else 0.0, max_concurrency=max_concurrency, arrivals=arrivals,
                     pool_sizes=pool_sizes)
    if plan.duration_s > MAX_DURATION_S:
        raise UsageError(f"the sweep runs {plan.duration_s / 3600:.1f}h per app and pool size; "
                         f"at most {MAX_DURATION_S / 3600:.0f}h, use fewer or shorter steps")
    return plan


def resolve_sweep(scenario: Scenario, given: Mapping[str, Any]) -> tuple[tuple[RunConfig, ...], SweepPlan]:
    """bench capacity's options -> one run config per pool size, and the plan of steps they share.

    The sweep's own options come from ``given`` or their defaults; the rest resolve as for bench run, except
    that the plan sets the users and the load's length, and each pool size gets its own run.
    """
    sized = given_value(given, "pool_size")
    sizes = parse_pool_sizes(sized.value, sized.source) if sized else (setting("pool_size", scenario, {}),)
    # Given or None; build_plan knows the defaults that depend on the rest (--rates only without --users).
    text = {name: str(g.value) if (g := given_value(given, name)) else None for name in _SWEEP}
    plan = build_plan(rates=text["rates"], users=text["step_users"], step=text["step"] or OPTIONS["step"].default,
                      settle=text["settle"], drain=text["drain"],
                      max_concurrency=setting("max_concurrency", scenario, given),
                      arrivals=text["arrivals"] or OPTIONS["arrivals"].default, pool_sizes=sizes)
    fixed = {"users": plan.users, "spawn_rate": float(plan.users), "duration_s": plan.duration_s, "cooldown_s": 1.0,
             "repeat": 1, "pool_size": sizes[0]}
    base = resolve_config(scenario, {**{k: v for k, v in given.items() if k not in _SWEEP}, **fixed})
    return tuple(replace(base, pool_size=size) for size in sizes), plan

