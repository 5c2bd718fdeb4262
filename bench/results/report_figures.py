"""Every number the run report computes itself from an app's raw files (requests.csv, samples.jsonl), defined as
bench.analysis.timeline and bench.analysis.distribution compute it. bench.results.metrics joins these into the
registry (scope ``report.html``); they are stored in no result file, so bench compare does not list them.
"""

from __future__ import annotations

from bench.results.metric import Coverage, Direction, Metric, Scope, Window

LOWER, HIGHER, NEITHER = Direction.LOWER, Direction.HIGHER, Direction.NEITHER
LOAD, BOTH = Window.LOAD, Window.BOTH
ALL, OK, CHECKOUTS, NONE = Coverage.ALL, Coverage.SUCCESSES, Coverage.CHECKOUTS, Coverage.NONE

NOTE = ("Computed by `bench run` / `bench report` from each app's raw files (its first run with --repeat): "
        "requests.csv's answered rows (UNFINISHED rows are left out) and samples.jsonl. Times are seconds since the "
        "app's load started (its first load sample or first request, whichever came first), so good and bad line "
        "up. A one-second bucket is [k, k+1) s. Percentiles are nearest rank (the value at rank ceil(p·n / 100) of "
        "the n sorted), as everywhere in the harness. Not in summary.json: bench compare does not list them.")

_BUCKET = ("in each one-second bucket of completion time (start + response time), from the load's start to its "
           "stop (`load_window_s` after it), divided by the part of the bucket inside the load: the last bucket, "
           "cut short by the stop, is scaled up to a rate, and left out when less than half of it is inside "
           "(a handful of responses would swing it either way)")
_RANK = ("nearest rank over every answered request, failed ones included, that completed in the one-second bucket "
         "(the buckets of `over_time.throughput_rps`); no point for a bucket without one")
_GAUGE = ("of the samples the collector took in each one-second bucket (about 10), load and cool-down; the plot "
          "draws the mean as its line over a band from the least to the largest")
_LADDER = ("p50, p75, p90, p95, p99, p99.9 (written `p99_9`) and the largest (`max`)")
_BINS = ("ten bins per decade, edges at 10^(k/10) ms, from the bin holding the smaller of the apps' 1st percentiles "
         "(anything below counts in it) to the one holding the largest value")


def _m(path: str, label: str, unit: str, direction: Direction, window: Window, coverage: Coverage,
       description: str) -> Metric:
    return Metric(path=path, label=label, unit=unit, direction=direction, window=window, coverage=coverage,
                  scope=Scope.REPORT, description=description)


REPORT: tuple[Metric, ...] = (
    _m("over_time.throughput_rps", "throughput per second", "req/s", HIGHER, LOAD, OK,
       f"Successful responses {_BUCKET}."),
    _m("over_time.failures_per_s", "failed responses per second", "req/s", LOWER, LOAD, ALL,
       f"Failed responses {_BUCKET}. Plotted only when some app has a failure."),
    *(_m(f"over_time.latency_ms.{p}", f"latency {p} per second", "ms", LOWER, LOAD, ALL,
         f"The {p.removeprefix('p')}th percentile of response time, {_RANK}; the plot draws p95 as its line over "
         "a band from p50 to p99.") for p in ("p50", "p95", "p99")),
    _m("over_time.pool_wait_ms.p95", "pool wait p95 per second", "ms", LOWER, BOTH, CHECKOUTS,
       "95th percentile of the pool waits of the checkouts the samples taken in the one-second bucket saw: each "
       "sample's wait histogram since the previous sample (`wait_hist` in samples.jsonl) merged over the bucket, "
       "ranked as `pool.wait_ms` is (the bucket's midpoint, within 0.5%). A run recorded before the samples "
       "carried it shows the mean per second of each sample's own `pool_wait_p95_ms` (the p95 of the checkouts "
       "since the previous sample) over a band from their least to their largest."),
    *(_m(f"over_time.{key}.{stat}", f"{label}, {word} per second", "connections", LOWER, BOTH, NONE,
         f"The {word} `{field}` {_GAUGE}.")
      for key, label, field in (("checked_out", "checked out", "pool_checked_out"),
                                ("idle_in_tx", "idle in tx", "idle_in_tx"))
      for stat, word in (("mean", "mean"), ("min", "least"), ("max", "largest"))),
    _m("over_time.idle_in_tx_oldest_s.max", "idle in tx oldest, per second", "s", LOWER, BOTH, NONE,
       f"The largest `idle_in_tx_oldest_s` {_GAUGE.split('; ')[0]}."),
    _m("over_time.by_route.<route>.throughput_rps", "route throughput per second", "req/s", HIGHER, LOAD, OK,
       "As `over_time.throughput_rps`, for one route; plotted per app for the busiest routes (up to 7) when the "
       "run has more than one."),
    _m("over_time.by_route.<route>.latency_ms.p95", "route latency p95 per second", "ms", LOWER, LOAD, ALL,
       "As `over_time.latency_ms.p95`, for one route; plotted alongside it."),
    _m("latency_histogram.<bin>", "latency distribution", "fraction", NEITHER, LOAD, ALL,
       f"Share of the answered requests (failed ones included) whose response time falls in the bin: {_BINS}."),
    _m("pool_wait_histogram.<bin>", "pool wait distribution", "fraction", NEITHER, LOAD, CHECKOUTS,
       f"Share of the checkouts whose pool wait falls in the bin, each histogram bucket counted at its midpoint: "
       f"the samples' `wait_hist` summed over `pool.littles_law`'s window, the checkouts `pool.wait_ms` ranks "
       f"(summed over the run where the samples make no window); {_BINS}. Not shown for runs recorded before the "
       f"samples carried it."),
    _m("percentiles.latency_ms.<p>", "latency percentiles", "ms", LOWER, LOAD, ALL,
       f"{_LADDER} of the response time of every answered request, failed ones included, by nearest rank: the "
       "ones `latency_ms` also has are equal to it."),
    _m("percentiles.pool_wait_ms.<p>", "pool wait percentiles", "ms", LOWER, LOAD, CHECKOUTS,
       f"{_LADDER} of the pool wait of the checkouts `pool.wait_ms` ranks, from the `wait_hist` summed over its "
       "window (see `pool_wait_histogram`), ranked as `pool.wait_ms` is: the ones it also has are equal to it."),
    _m("percentiles.<distribution>.count", "values ranked", "requests", NEITHER, LOAD, ALL,
       "Answered requests (latency) or checkouts (pool wait: `pool.wait_ms.count`) the row's percentiles rank."),
    _m("endpoints.<route>.rate_rps", "route rate", "req/s", NEITHER, LOAD, ALL,
       "`endpoints.<route>.requests` (answered, failed ones included) / `load_window_s`."),
    _m("failures_by_message.<route>.<message>.occurrences", "failures with this message", "requests", LOWER, LOAD,
       ALL, "Failed requests of the route whose `error` in requests.csv is this message once URLs and object "
             "addresses are blanked (`<url>`, `0x…`), so one error over many items is one row, as Locust's own "
             "Failures table groups them."),
    _m("failures_by_message.<route>.<message>.share", "share of the route's requests", "fraction", LOWER, LOAD, ALL,
       "`occurrences` / the route's answered requests (failed ones included)."),
    _m("failures_by_message.<route>.<message>.first_s", "first failure", "s", NEITHER, LOAD, ALL,
       "Completion time of the first of them, in seconds since the load started."),
)
