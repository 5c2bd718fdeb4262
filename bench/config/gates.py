"""Regression gates written as data (``pool.hold_ms_per_request:+20%``, ``integrity.lost_writes:>0``), parsed
into small typed checks that ``bench compare`` evaluates; the default gates and the rule that derived them.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from bench.errors import UsageError
from bench.results import metrics
from bench.results.metric import NOISE_LOW, NOISE_SHARE, Metric

# The threshold after the LAST colon: it never holds one, so a metric (a route name above all) may hold colons,
# spaces and dots: ``endpoints.GET /ws:stream.latency_ms.p95:+20%`` is the route "GET /ws:stream".
_THRESHOLD = re.compile(r"^\s*(?:([+-])\s*([0-9]+(?:\.[0-9]+)?)\s*%|(>=|>|<=|<)\s*(-?[0-9]+(?:\.[0-9]+)?))\s*$")
_BOUNDS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
# The default gates, derived from the A/A spread table of the README's "CI verdicts" section (benchmarks/
# ci_verdicts.py, part "spread": every gated figure over 10 runs of 10 s of each app of each of the nine scenarios,
# on a quiet 2-core machine and again with one core kept busy). Rule (``derived_limit``), as Bencher's IQR
# thresholds: a relative gate's limit is K_IQR times the largest relative spread seen, IQR / median, rounded up to
# 5%, and never under FLOOR. A gate must hold across every scenario and both apps, so the largest spread sets it.
# A figure near 0 (a correct twin's connection or idle time per request) has no useful relative spread: the
# registry's noise floor decides what counts there, and its cap is set so that K_IQR IQRs do not count
# (``needed_floor_cap``; the runs whose median is under four times the unit's own floor are those).
K_IQR = 3.0
FLOOR = 0.10
# Figures the code sets: judged on every comparison, one run per side included. With a core kept busy a correct
# twin's connection time per request still moves by a quarter from run to run (long-session's good app), and its
# idle time per request by a third; the idle time past the threshold separates the twins by 20x to 10,000x.
CODE_GATES = (
    "pool.hold_ms_per_request:+90%",
    "pool.checkouts_per_request:+85%",
    "pool.checked_out_share:+10%",
    "db.idle_in_tx_per_request_ms:+105%",
    "db.idle_in_tx_long_per_request_ms:+105%",
)
# Rates of events per 1,000 requests, tested as counts (the exact conditional binomial test on the two sides'
# totals, weighed by the requests each made): only a rise beyond chance counts, then the limit applies. From 0
# (the correct twins) any rise beyond chance fails, whatever the limit. The wide ones come from leaking twins whose
# rate swings with the CPU they get (scoped-session's reclaims, mixed's failures, with a core kept busy).
COUNT_GATES = (
    "pool.timeouts_per_1k_requests:+70%",
    "pool.reclaimed_per_1k_requests:+305%",
    "pool.invalidated_per_1k_requests:+10%",
    "failures_per_1k_requests.<cause>:+515%",
)
# Invariants: correct code has none, so the first one fails, whatever the base had.
INVARIANT_GATES = (
    "integrity.lost_writes:>0",
    "db.idle_in_tx_after_load:>0",
)
# Speed figures (bench.results.metric.SPEED_UNITS): a relative gate on one applies only where both sides have
# MIN_REPEATS runs or more and the rank test calls the change significant; on fewer runs it is reported, not applied.
# The rank test guards them, so their noise floors stay the registry's (5 ms) though the table asks for more. The
# hold time's p95 is no default: mixed's bad app puts it in one of two modes from run to run (IQR / median 43), so
# no limit holds across the scenarios; connection time per request, a code gate, judges holds.
SPEED_GATES = (
    "throughput_rps:-50%",
    "latency_ms.p95:+290%",
    "latency_ms.p99:+280%",
    "pool.wait_ms.p95:+255%",
)
DEFAULT_GATES: tuple[str, ...] = (*CODE_GATES, *COUNT_GATES, *INVARIANT_GATES, *SPEED_GATES)

_SYNTAX = (
    "write METRIC:+N% (e.g. pool.wait_ms.p95:+20%), METRIC:-N% (e.g. throughput_rps:-10%), METRIC:>N "
    "(e.g. integrity.lost_writes:>0) or METRIC:<N (e.g. throughput_rps:<100)"
)


@dataclass(frozen=True)
class Gate:
    """Fails when the current value moved past ``limit`` in the bad direction, or past an absolute bound.

    relative: ``sign`` is "+" (an increase is bad) or "-" (a decrease is bad), ``limit`` a fraction.
    absolute: ``op`` is ">", ">=", "<" or "<=", and the gate fails when current satisfies it.
    A figure that is not a finite number (NaN: it could not be computed) fails every gate on it.
    """

    text: str
    metric: str
    sign: str | None = None
    limit: float = 0.0
    op: str | None = None
    bound: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Gate:
        metric, colon, threshold = text.rpartition(":")
        match = _THRESHOLD.match(threshold) if colon else None
        if match is None or not metric.strip():
            raise UsageError(f"--fail-on {text!r} is malformed; {_SYNTAX}")
        sign, pct, op, bound = match.groups()
        name = metric.strip()
        if sign:
            return cls(text=text.strip(), metric=name, sign=sign, limit=float(pct) / 100)
        return cls(text=text.strip(), metric=name, op=op, bound=float(bound))

    @property
    def relative(self) -> bool:
        return self.sign is not None

    def fails(self, base: float | None, current: float | None, significant: bool = True) -> bool:
        if current is None:
            return False
        if not math.isfinite(current):
            return True
        if self.op is not None:
            return _BOUNDS[self.op](current, self.bound)
        if base is None:
            return False
        if not math.isfinite(base):
            return True
        if not significant:
            return False
        if base == 0:
            moved_up = current > 0
            return moved_up if self.sign == "+" else False
        change = current / base - 1
        return change > self.limit if self.sign == "+" else change < -self.limit


def default_gates() -> list[Gate]:
    """The default gates (DEFAULT_GATES above), parsed."""
    return [Gate.parse(text) for text in DEFAULT_GATES]


def derived_limit(relative_spreads: list[float], sign: str = "+") -> float:
    """A relative gate's limit from the A/A spreads (IQR / median) of its figure: a rise of K_IQR times the largest,
    and for a ``-`` gate the same ratio downwards (1 - 1 / (1 + K_IQR x spread): a figure that may read 1.6x as high
    may read 1/1.6 as low), rounded up to 5%, at least FLOOR. benchmarks/ci_verdicts.py applies it to what it
    measures."""
    widest = K_IQR * max((s for s in relative_spreads if math.isfinite(s)), default=0.0)
    limit = widest if sign == "+" else 1 - 1 / (1 + widest)
    return max(FLOOR, math.ceil(round(limit * 20, 9)) / 20)


def needed_floor_cap(iqr: float, median: float) -> float:
    """The smallest noise-floor cap (bench.results.metric) that keeps an A/A move of K_IQR x ``iqr`` at ``median``
    from counting: the floor there is min(cap, max(NOISE_LOW x cap, NOISE_SHARE x median))."""
    target = K_IQR * iqr
    return target if NOISE_SHARE * median >= target else target / NOISE_LOW


def merge_gates(overrides: list[str]) -> list[Gate]:
    """Defaults, with any ``--fail-on`` for the same metric replacing the default one."""
    parsed = [Gate.parse(text) for text in overrides]
    for gate in parsed:
        _known(gate)
    chosen = {g.metric: g for g in default_gates()}
    chosen.update({g.metric: g for g in parsed})
    return list(chosen.values())


def family_member(name: str) -> tuple[Metric, str] | None:
    """The registry family a concrete name belongs to and its key (``endpoints.GET /a.b.requests`` ->
    (endpoints.<route>.requests, "GET /a.b")): the key may hold dots, the rest of the path fixes where it ends."""
    for metric in metrics.COMPARED:
        if not metric.is_pattern:
            continue
        pattern = re.sub(r"<[a-z_]+>", "(.+)", re.escape(metric.path))
        found = re.fullmatch(pattern, name)
        if found:
            return metric, found.group(1)
    return None


def _known(gate: Gate) -> None:
    """A gate on a figure bench compare does not list would never be evaluated: refuse it rather than pass."""
    if any(m.path == gate.metric for m in metrics.COMPARED) or family_member(gate.metric) is not None:
        return
    names = [m.path for m in metrics.COMPARED if not m.is_pattern]
    close = difflib.get_close_matches(gate.metric, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise UsageError(f"--fail-on {gate.text!r}: no figure {gate.metric!r} in summary.json; {hint}see docs/metrics.md")
