"""One figure the harness reports: where it lives, what it counts, which way is better, its default gate.

The tables in bench.results.summary_figures and bench.results.capacity_figures are made of these; everything
else reads them through the registry, bench.results.metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from bench.results.layout import CAPACITY_JSON, REPORT_HTML, SUMMARY_JSON


class Direction(StrEnum):
    LOWER = "lower"
    HIGHER = "higher"
    NEITHER = "neither"  # a size or a setting: a change is news, not a verdict


class Window(StrEnum):
    """The stretch of a run a figure is measured over."""

    LOAD = "load"
    COOLDOWN = "end of cool-down"  # the last sample, taken when the cool-down ends
    BOTH = "load + cool-down"
    TO_SHUTDOWN = "load + cool-down + app shutdown"  # deltas taken once the app has stopped
    APP_LIFE = "app start to stop"
    STARTUP = "start-up"
    STEP = "step"  # a capacity step's measured window, after its settling time
    SWEEP = "sweep"  # derived from all the steps of one pool size
    SETTING = "setting"  # not measured: what the run was given or found
    OF_METRIC = "its metric's"  # a check's value: the window of the figure it judges


class Coverage(StrEnum):
    """Which requests a figure counts."""

    ALL = "all requests"
    SUCCESSES = "successes only"
    CHECKOUTS = "every checkout"  # failed requests' and background work's checkouts too
    NONE = "not about requests"


class Scope(StrEnum):
    """Where a path starts: inside each app's figures, at summary.json's top, or at capacity.json's top."""

    APP = "apps.<app>"
    RUN = SUMMARY_JSON
    CAPACITY = CAPACITY_JSON
    REPORT = REPORT_HTML  # computed by the run report from the raw files, stored in no result file


class Shown(StrEnum):
    """Where the run's terminal summary and report.md show a figure (every figure is in summary.json)."""

    NO = ""
    ALWAYS = "terminal, report"
    NONZERO = "terminal when not 0, report"
    REPORT = "report"


# Units that are counts: a heading needs no unit after the label ("lost writes", not "lost writes (writes)").
COUNT_UNITS = frozenset({"requests", "checkouts", "connections", "writes", "rows", "sessions", "samples", "stalls",
                         "transactions", "lines", "index"})
# Smallest absolute change bench compare counts, by unit: on a shared 2-core runner a few milliseconds of
# scheduling noise are routine, while the anti-patterns move these figures by tens to thousands of ms.
UNIT_NOISE = {"ms": 5.0, "ms/request": 2.0, "s": 0.01, "conn-s": 0.5}
# That floor is a cap, not a constant: a change must reach NOISE_SHARE of the figure's own size (the smaller of
# base and current) or the unit's floor, whichever is less, so an 80% rise of a 6 ms figure counts (floor
# 1.5 ms) where a fixed 5 ms would hide it; it never drops below NOISE_LOW of the unit's floor (1 ms: timer and
# scheduling resolution), so a 0.05 -> 0.2 ms wobble stays noise.
NOISE_SHARE = 0.25
NOISE_LOW = 0.2
# Figures in these units measure the runner as much as the code (a busy core stretches every latency and hold):
# a relative gate on one applies only where repeats let the significance test decide (bench.config.gates).
SPEED_UNITS = frozenset({"ms", "s", "req/s"})
UNIT_FORMAT = {"req/s": "{:.1f}", "ms": "{:.1f}", "ms/request": "{:.2f}", "s": "{:.3f}", "conn-s": "{:.2f}",
               "fraction": "{:.3f}", "cores": "{:.2f}", "checkouts/request": "{:.2f}", "per 1k requests": "{:.2f}"}


@dataclass(frozen=True, kw_only=True)
class Metric:
    """A figure, or a family of them when the path holds ``<name>`` (any key) or ``[]`` (any list element).

    ``alarm`` marks a count whose first appearance is news (0 -> n is marked ``!``); ``rate_of`` names the count
    a rate is made of (``pool.timeouts`` for ``pool.timeouts_per_1k_requests``), which bench compare's exact
    test of counts weighs; ``slo`` is the name ``--slo`` knows a capacity step figure by. The default gates are
    not a figure's definition but a policy measured on a runner: bench.config.gates holds them.
    """

    path: str
    label: str
    unit: str
    direction: Direction
    window: Window
    coverage: Coverage
    description: str
    scope: Scope = Scope.APP
    alarm: bool = False
    rate_of: str | None = None
    noise: float | None = None
    shown: Shown = Shown.NO
    slo: str | None = None

    @property
    def parts(self) -> tuple[str, ...]:
        out: list[str] = []
        for part in self.path.split("."):
            if part.endswith("[]"):
                out += [part[:-2], "[]"] if part != "[]" else ["[]"]
            else:
                out.append(part)
        return tuple(out)

    @property
    def is_pattern(self) -> bool:
        return any(_wild(p) for p in self.parts)

    @property
    def heading(self) -> str:
        """The label with its unit, as a table row names it: "latency p95 (ms)", "lost writes"."""
        if self.unit in COUNT_UNITS:
            return self.label
        unit = self.unit.removesuffix("/request") if self.label.endswith("per request") else self.unit
        return f"{self.label} ({unit})"

    @property
    def speed(self) -> bool:
        """Whether the figure measures the runner's speed as much as the code (latency, throughput, hold times)."""
        return self.unit in SPEED_UNITS

    @property
    def noise_floor(self) -> float:
        if self.noise is not None:
            return self.noise
        return 0.0 if self.alarm else UNIT_NOISE.get(self.unit, 0.0)

    def noise_floor_at(self, scale: float) -> float:
        """The smallest change of this figure bench compare counts when the figure is ``scale`` large."""
        cap = self.noise_floor
        return min(cap, max(cap * NOISE_LOW, NOISE_SHARE * abs(scale)))

    @property
    def number_format(self) -> str:
        return UNIT_FORMAT.get(self.unit, "{:.0f}" if self.unit in COUNT_UNITS else "{:.4g}")

    def matches(self, parts: tuple[str, ...]) -> bool:
        """Whether a concrete path (list positions as ``[]``) is this figure or one of its family."""
        mine = self.parts
        return len(mine) == len(parts) and all(m == p or (m.startswith("<") and p != "[]")
                                               for m, p in zip(mine, parts, strict=True))


def _wild(part: str) -> bool:
    return part == "[]" or part.startswith("<")


_WORD = {"p50": "median", "p90": "90th percentile", "p95": "95th percentile", "p99": "99th percentile",
         "max": "largest", "mean": "mean"}


# How a figure of the pool's log-bucketed histograms (bench.instrument.histogram) is read from it.
_FROM_HISTOGRAM = {
    "max": " Exact: the largest value recorded, not a bucket's.",
    "mean": " Exact: the recorded total over the count.",
}
_BUCKET_READING = (" Read from the pool's log-bucketed histogram (buckets 1% wide from 1 µs): the nearest rank, "
                   "ceil(p·n / 100), falls in a bucket, and the figure is that bucket's arithmetic midpoint (at most "
                   "the largest value; 0 below 1 µs), within 0.5% of the value itself. Written in ms with 3 "
                   "decimals, and 4 significant digits under 1 ms (a wait of 2.49 µs is 0.002486).")


def family(prefix: str, label: str, what: str, keys: tuple[str, ...], *, unit: str, direction: Direction,
           window: Window, coverage: Coverage, scope: Scope = Scope.APP, shown: Mapping[str, Shown] | None = None,
           slo: Mapping[str, str] | None = None, histogram: bool = False) -> tuple[Metric, ...]:
    """One metric per percentile (or max, mean) of a histogram or a latency list; ``what`` says of what, and
    ``histogram`` that the values come from a pool histogram, whose reading each description then gives."""
    def reading(key: str) -> str:
        return _FROM_HISTOGRAM.get(key, _BUCKET_READING) if histogram else ""

    return tuple(Metric(path=f"{prefix}.{key}", label=f"{label} {key}", unit=unit, direction=direction,
                        window=window, coverage=coverage, scope=scope,
                        shown=(shown or {}).get(key, Shown.NO), slo=(slo or {}).get(key),
                        description=f"{_WORD[key].capitalize()}: {what}.{reading(key)}")
                 for key in keys)


# Shorthands the figure tables (summary_figures, pool_figures, site_figures) are written in.
LOWER, HIGHER, NEITHER = Direction.LOWER, Direction.HIGHER, Direction.NEITHER
LOAD, BOTH, SHUTDOWN = Window.LOAD, Window.BOTH, Window.TO_SHUTDOWN
ALL, OK, CHECKOUTS, NONE = Coverage.ALL, Coverage.SUCCESSES, Coverage.CHECKOUTS, Coverage.NONE
HIST = ("p50", "p95", "p99", "max", "mean")
LATENCY = ("p50", "p95", "p99", "max")
