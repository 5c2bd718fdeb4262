"""THE metric registry: every figure summary.json and capacity.json hold, defined once, with the views of it.

The terminal, the report, bench compare, the default gates and the SLO parser read it; so does docs/metrics.md,
written by ``python -m bench.results.metrics > docs/metrics.md`` (tests/test_metrics.py fails when it drifts).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from bench.errors import EXIT_OK, EXIT_USAGE
from bench.results.capacity_figures import CAPACITY, STEP_PREFIX
from bench.results.metric import NOISE_LOW, Direction, Metric, Scope, Shown
from bench.results.report_figures import NOTE as REPORT_NOTE
from bench.results.report_figures import REPORT
from bench.results.summary_figures import APP, RUN, SECTIONS

REGISTRY: tuple[Metric, ...] = (*APP, *RUN, *CAPACITY, *REPORT)

# Every figure under apps.<app>: bench compare lists each (families once per key found), in this order.
COMPARED: tuple[Metric, ...] = APP
# The report's headline table, in this order; the terminal shows the ALWAYS ones and the NONZERO ones that are not 0.
SHOWN: tuple[Metric, ...] = tuple(m for m in APP if m.shown is not Shown.NO)
# --slo's vocabulary: name -> the capacity step figure it judges.
SLO: Mapping[str, Metric] = {m.slo: m for m in CAPACITY if m.slo}

# Parts of the files that hold numbers but are not figures.
NOT_FIGURES: Mapping[Scope, Mapping[str, str]] = {
    Scope.RUN: {
        "schema_version": "the file format's version (1)",
        "config": "the settings the run was given: flags, BENCH_* variables, the scenario's defaults",
        "environment": "the machine (CPUs, memory) and software versions",
        "events": "the run's time line (`t` in epoch seconds): each app run's load period, its go signal (`load "
                  "started`) and Locust's stop (`load stopped`), the span `throughput_rps` and the stalls are taken "
                  "over; and what went wrong",
    },
    Scope.CAPACITY: {
        "schema_version": "the file format's version (1)",
        "config": "the sweep's settings: pool sizes, steps, SLO thresholds",
        "environment": "the machine (CPUs, memory) and software versions",
    },
}


def ratio(base: float | None, current: float | None) -> float | None:
    """current / base; 0 -> 0 is 1 (unchanged) and 0 -> n is infinite. None when either is missing."""
    if base is None or current is None:
        return None
    if base == 0:
        return 1.0 if current == 0 else math.inf
    return current / base


def times(value: float) -> str:
    """A ratio as the checks and the story show it: 3 significant digits, whole numbers from 1,000 ("9.15",
    "160", "371,800")."""
    return f"{value:,.3g}" if value < 1000 else f"{value:,.0f}"


def step_path(metric: Metric) -> str:
    """Where a capacity step figure sits inside one step of capacity.json (``latency_ms.p95``)."""
    return metric.path.removeprefix(STEP_PREFIX)


def value_at(node: Any, parts: Sequence[str]) -> float | None:
    """The number at ``parts`` inside nested dicts (a bool is not a number); None when it is not there."""
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return float(node) if isinstance(node, (int, float)) and not isinstance(node, bool) else None


def find(name: str, scope: Scope = Scope.APP) -> Metric | None:
    """The metric a dotted name is, or belongs to as one of a family (``endpoints.GET /x.requests``)."""
    exact = next((m for m in REGISTRY if m.scope is scope and m.path == name), None)
    return exact or match(tuple(name.split(".")), scope)


def match(parts: tuple[str, ...], scope: Scope) -> Metric | None:
    return next((m for m in REGISTRY if m.scope is scope and m.matches(parts)), None)


def expand(metric: Metric, *nodes: Any) -> list[tuple[str, tuple[str, ...]]]:
    """The concrete (name, parts) of a metric in some app figures: a family once per key any of them has."""
    found: list[tuple[str, ...]] = [()]
    for part in metric.parts:
        if not part.startswith("<"):
            found = [(*prefix, part) for prefix in found]
            continue
        keys: list[tuple[str, ...]] = []
        for prefix in found:
            children = [_node_at(node, prefix) for node in nodes]
            names = dict.fromkeys(k for child in children if isinstance(child, dict) for k in child)
            keys += [(*prefix, str(k)) for k in names]
        found = keys
    return [(".".join(parts), parts) for parts in found]


def _node_at(node: Any, parts: Sequence[str]) -> Any:
    for part in parts:
        node = node.get(part) if isinstance(node, dict) else None
    return node


def numbers(document: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], float]]:
    """Every number in a JSON document with its path; a list position is ``[]``."""
    if isinstance(document, dict):
        for key, value in document.items():
            yield from numbers(value, (*prefix, str(key)))
    elif isinstance(document, list):
        for value in document:
            yield from numbers(value, (*prefix, "[]"))
    elif isinstance(document, (int, float)) and not isinstance(document, bool):
        yield prefix, float(document)


def figures(document: Mapping[str, Any], scope: Scope) -> Iterator[tuple[Scope, tuple[str, ...]]]:
    """The figures of a summary.json (scope RUN) or capacity.json (CAPACITY): where each number belongs.

    In a summary, ``apps.<app>.…`` and ``repeats.<app>[].…`` are per-app figures (scope APP, app part dropped).
    """
    skipped = NOT_FIGURES[scope]
    for parts, _value in numbers(dict(document)):
        if parts[0] in skipped:
            continue
        if scope is Scope.RUN and parts[0] == "apps" and len(parts) > 2:
            yield Scope.APP, parts[2:]
        elif scope is Scope.RUN and parts[0] == "repeats" and len(parts) > 3:
            yield Scope.APP, parts[3:]
        else:
            yield scope, parts


# --- docs/metrics.md ----------------------------------------------------------------------------

HEADER = """\
# Metrics

<!-- Generated from the metric registry (bench/results/summary_figures.py, capacity_figures.py) by
     `python -m bench.results.metrics > docs/metrics.md`. Do not edit by hand: tests/test_metrics.py fails
     when this file and the registry differ. -->

Every number scopebench writes into `summary.json` (`bench run`) and `capacity.json` (`bench capacity`), what
it counts, and how `bench compare` treats it. The definitions say what the code computes today, odd corners
included.

- **path**: inside `apps.<app>` (and inside each `repeats.<app>[]` with `--repeat`) for per-app figures;
  `<route>`, `<site>`, `<message>`, `<pool>` stand for any key, `[]` for any list element. With `--repeat`,
  `apps.<app>` holds each figure's median over the repeats, taken figure by figure: a figure defined from others
  (`hold_ms_per_request` from `littles_law`, a ceiling from a hold) is exactly so in each `repeats.<app>[]`, and
  only about so between the medians (the median of ratios is not the ratio of medians).
- **better**: which direction is an improvement; `neither` for sizes and settings.
- **window**: `load` is Locust's run; the collector keeps sampling through the `cool-down` after it;
  `end of cool-down` is the last sample. Pool figures are the pool's own counters since the app started, read
  at the last sample.
- **covers**: `all requests` counts failed requests too, `successes only` leaves them out, `every checkout`
  counts every pool checkout (failed requests' and background work's too).
- **compare**: `bench compare` lists every per-app figure, each route's and each log message's separately. A
  change counts when it is at least 5%, at least the figure's noise floor, and, with `--repeat 4` or more on
  both sides, significant under a two-sided Mann-Whitney U test (exact, ties included, up to 40 runs in all;
  alpha 0.05). The noise floor (`floor LOW–CAP`) scales with the figure: a quarter of its size (the smaller of
  base and current), at most CAP (the scheduling noise of a shared runner: 5 ms for percentiles) and at least
  LOW (a fifth of CAP: timer resolution). An 80% rise of a 6 ms figure counts (floor 1.5 ms); a 0.05 -> 0.2 ms
  wobble does not. Counts of events that can be newly failing (`!` from 0) are judged by an exact test of
  counts instead: the two sides' totals (summed over repeats) as Poisson counts weighed by the requests each
  side made (the conditional binomial test), alpha 0.05, one-sided from 0 (did it rise?), two-sided otherwise.
  From 0 at equal run lengths 1 to 4 events are chance and 5 are news; `METRIC:>0` fails on the first one.
  A count read at one instant (`db.idle_in_tx_after_load`) is `!` on any rise from 0. Marks: `+` worse, `-`
  better, `*` changed (a figure with no better direction), `~` not significant, `!` newly failing, `?` not a
  number (the figure is NaN: it could not be computed; it fails its gate). A rate per 1,000 requests
  (`count test on` below) is tested as the count it is made of, its totals weighed by the requests each side
  made. A gate `+N%` fails on an increase of more than N% that counts, `-N%` on such a decrease; from a base of
  0, a `+` gate fails on a rise that counts. A relative gate on a `speed` figure (ms, s, req/s: it measures the
  runner as much as the code) applies only with `--repeat 4` or more on both sides, where the rank test decides.
  The default gates, and the A/A spread they were derived from, are in the README's "CI verdicts" section
  (`bench/config/gates.py`). `--fail-on METRIC:+N%`, `METRIC:-N%`, `METRIC:>N` or `METRIC:<N` (`>=`, `<=`
  too) replaces a figure's default gate or adds one. METRIC is everything before the last colon, so a route's
  figure is written as listed: `endpoints.GET /read.latency_ms.p95:+20%` (quote it in the shell); a route
  neither run has is a usage error.
- **shown**: where the run's terminal summary and `report.md` / `report.html` show it.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _compare_cell(m: Metric) -> str:
    parts = ["`!` from 0"] if m.alarm and m.direction is Direction.LOWER else []
    parts += [f"count test on `{m.rate_of}`"] if m.rate_of else []
    parts += ["speed"] if m.speed else []
    parts += [f"floor {m.noise_floor * NOISE_LOW:g}–{m.noise_floor:g}"] if m.noise_floor else []
    return ", ".join(parts) or "-"


def _table(metrics: Sequence[Metric], columns: Sequence[str]) -> list[str]:
    cells: dict[str, Callable[[Metric], str]] = {
        "path": lambda m: f"`{m.path}`", "label": lambda m: m.label, "unit": lambda m: m.unit,
        "better": lambda m: m.direction.value, "window": lambda m: m.window.value,
        "covers": lambda m: m.coverage.value, "compare": _compare_cell, "shown": lambda m: m.shown.value or "-",
        "--slo": lambda m: f"`{m.slo}`" if m.slo else "-", "description": lambda m: m.description,
    }
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(cells[c](m)) for c in columns) + " |" for m in metrics]
    return lines


def _sections() -> list[tuple[str, str, list[Metric]]]:
    prefixes = [prefix for prefix, _, _ in SECTIONS if prefix]
    out = []
    for prefix, title, note in SECTIONS:
        chosen = [m for m in APP if m.path.startswith(prefix)] if prefix else \
            [m for m in APP if not m.path.startswith(tuple(prefixes))]
        out.append((title, note, chosen))
    return out


def render_markdown() -> str:
    per_app = ("path", "label", "unit", "better", "window", "covers", "compare", "shown", "description")
    simple = ("path", "label", "unit", "better", "window", "covers", "description")
    lines = [HEADER, "## summary.json: per app (`apps.<app>`)", ""]
    for title, note, chosen in _sections():
        lines += [f"### {title}", "", note, "", *_table(chosen, per_app), ""]
    lines += ["## summary.json: per run", "", "Not per app, so `bench compare` does not list them.", "",
              *_table(RUN, simple), "", "## capacity.json", "",
              ("One `results[]` entry per app and pool size, its `steps[]` cut from one continuous run; `--slo` "
              "names the step figure an objective judges. The capacity report's tables and plots show these."), "",
              *_table(CAPACITY, (*simple[:-1], "--slo", "description")), "",
              "## report.html and report.md: figures the report computes", "", REPORT_NOTE, "",
              *_table(REPORT, simple), "", "## Numbers that are not figures", ""]
    for scope, parts in NOT_FIGURES.items():
        lines += [f"- {scope.value}: " + "; ".join(f"`{k}`: {v}" for k, v in parts.items())]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> int:
    if argv:
        print("usage: python -m bench.results.metrics > docs/metrics.md", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(render_markdown())
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
