"""Every figure of a capacity sweep's capacity.json, defined as today's code computes it (bench.analysis.steps,
assessment, knee, queueing). bench.results.metrics joins these into the registry; nothing else imports this module.
"""

from __future__ import annotations

from bench.results.metric import Coverage, Direction, Metric, Scope, Window, family

LOWER, HIGHER, NEITHER = Direction.LOWER, Direction.HIGHER, Direction.NEITHER
STEP, SWEEP, SETTING = Window.STEP, Window.SWEEP, Window.SETTING
ALL, OK, NONE = Coverage.ALL, Coverage.SUCCESSES, Coverage.NONE
CAP = Scope.CAPACITY

STEP_PREFIX = "results[].steps[]."  # where a step's figures sit in capacity.json
_S = STEP_PREFIX
_IN = "in the step's measured window (after its settling time)"
_SAMPLES = f"mean over the detail collector's samples {_IN}"
_LATENCY = (f"response time of the successful requests scheduled {_IN}; open model (--rates): from the "
            f"SCHEDULED start, so a late start counts")
_HOLD = "connection time per request below the knee (every step when there is none or all are past it)"


def _m(path: str, label: str, unit: str, direction: Direction, window: Window, coverage: Coverage,
       description: str, slo: str | None = None) -> Metric:
    return Metric(path=path, label=label, unit=unit, direction=direction, window=window, coverage=coverage,
                  description=description, scope=CAP, slo=slo)


STEPS: tuple[Metric, ...] = (
    _m(f"{_S}index", "step", "index", NEITHER, SETTING, NONE, "The step's position in the sweep, from 0."),
    _m(f"{_S}level", "offered load", "req/s or users", NEITHER, SETTING, NONE,
       "What the step offered: arrivals per second (open model, --rates) or users (closed model, --users)."),
    _m(f"{_S}start", "window start", "epoch s", NEITHER, STEP, NONE, "Start of the measured window."),
    _m(f"{_S}end", "window end", "epoch s", NEITHER, STEP, NONE, "End of the measured window."),
    _m(f"{_S}offered_rps", "offered", "req/s", NEITHER, STEP, ALL,
       f"Requests scheduled (open model) or started (closed model) {_IN}, per second."),
    _m(f"{_S}throughput_rps", "throughput", "req/s", HIGHER, STEP, OK,
       f"Successful responses that completed {_IN}, per second (counted by completion time)."),
    _m(f"{_S}requests", "requests", "requests", NEITHER, STEP, ALL,
       f"Requests scheduled {_IN}, dropped and unfinished arrivals included."),
    _m(f"{_S}failures", "failures", "requests", LOWER, STEP, ALL,
       f"Failed responses plus dropped and unfinished arrivals, of the requests scheduled {_IN}."),
    _m(f"{_S}dropped", "dropped", "requests", LOWER, STEP, ALL,
       f"Open model: arrivals {_IN} that found no free Locust user at their scheduled start."),
    _m(f"{_S}unfinished", "unfinished", "requests", LOWER, STEP, ALL,
       f"Open model: arrivals {_IN} still without an answer when the sweep ended."),
    _m(f"{_S}error_rate", "error rate", "fraction", LOWER, STEP, ALL,
       f"`failures` / `requests` {_IN}.", slo="errors"),
    *family(f"{_S}latency_ms", "latency", _LATENCY, ("p50", "p90", "p95", "p99", "max", "mean"), unit="ms",
            direction=LOWER, window=STEP, coverage=OK, scope=CAP,
            slo={k: k for k in ("p50", "p90", "p95", "p99", "max")}),
    *family(f"{_S}pool_wait_ms", "pool wait", f"checkout queue wait, from the pool histograms' growth {_IN} "
            "(connect time excluded)", ("p50", "p95", "p99", "mean"), unit="ms", direction=LOWER, window=STEP,
            coverage=Coverage.CHECKOUTS, scope=CAP, slo={k: f"pool_wait_{k}" for k in ("p50", "p95", "p99", "mean")}),
    _m(f"{_S}hold_ms_per_checkout", "hold per checkout", "ms", LOWER, STEP, Coverage.CHECKOUTS,
       f"Mean hold of the checkins {_IN}."),
    _m(f"{_S}hold_s", "connection time", "conn-s", NEITHER, STEP, Coverage.CHECKOUTS,
       f"Connection-seconds held by the checkins {_IN}."),
    _m(f"{_S}served", "served", "requests", NEITHER, STEP, ALL,
       f"Requests answered {_IN}, failed ones included."),
    _m(f"{_S}hold_ms_per_request", "hold per request", "ms/request", LOWER, STEP, ALL,
       "`hold_s` × 1000 / `served`: connection time per request answered, whole (not rounded)."),
    _m(f"{_S}pool_busy", "pool busy", "connections", NEITHER, STEP, NONE, f"Connections checked out, {_SAMPLES}."),
    _m(f"{_S}pool_pending", "pool waiting", "checkouts", LOWER, STEP, NONE,
       f"Checkouts waiting in the pool's queue, {_SAMPLES}."),
    _m(f"{_S}timeouts", "checkout timeouts", "checkouts", LOWER, STEP, Coverage.CHECKOUTS,
       f"Growth of the pool's timeout counter {_IN}."),
    *family(f"{_S}loop_lag_ms", "loop lag", f"how late a 10 ms asyncio.sleep woke in the app {_IN}: a busy event "
            "loop, not a starved pool", ("p50", "p95", "p99"), unit="ms", direction=LOWER, window=STEP,
            coverage=NONE, scope=CAP, slo={k: f"loop_lag_{k}" for k in ("p50", "p95", "p99")}),
    _m(f"{_S}app_cpu", "app CPU", "cores", NEITHER, STEP, NONE,
       f"The app's CPU time per second {_IN}, in cores, summed over its uvicorn workers (each uses one at most)."),
    _m(f"{_S}app_loops", "app event loops", "loops", NEITHER, STEP, NONE,
       f"The event loops `app_cpu` is summed over, one per uvicorn worker, as the pool endpoint's `loop.workers` "
       f"reports them ({_SAMPLES}, rounded; 1 for one process). The bottleneck judges one loop's CPU: "
       "`app_cpu` / `app_loops`."),
    _m(f"{_S}host_cpu", "machine CPU", "fraction", NEITHER, STEP, NONE,
       f"The whole machine's busy share of all cores, {_SAMPLES}."),
    _m(f"{_S}host_cores", "machine cores busy", "cores", NEITHER, STEP, NONE,
       f"The whole machine's busy cores, {_SAMPLES}."),
    _m(f"{_S}db_active", "backends active", "connections", NEITHER, STEP, NONE,
       f"Backends running a statement, {_SAMPLES}."),
    _m(f"{_S}idle_in_tx", "idle in tx", "connections", LOWER, STEP, NONE,
       f"Connections idle in transaction, {_SAMPLES}."),
    _m(f"{_S}generator_cpu", "Locust CPU", "cores", NEITHER, STEP, NONE,
       "Locust's CPU time per second over the whole step, in cores, as the pacer measured it."),
    _m(f"{_S}start_lateness_ms_p95", "start lateness p95", "ms", LOWER, STEP, NONE,
       "95th percentile (nearest rank) of how late the pacer's users started scheduled arrivals over the whole "
       "step."),
)

_STEP = ("the highest step that meets every SLO objective, with every step below it (without an errors objective "
         "a step that lost 1% or more of its arrivals, dropped or unfinished, does not sustain its rate)")
RESULTS: tuple[Metric, ...] = (
    _m("results[].pool_size", "pool size", "connections", NEITHER, SETTING, NONE, "The pool size of this sweep."),
    _m("results[].capacity", "capacity", "connections", NEITHER, SETTING, NONE, "Pool size + max_overflow."),
    _m("results[].max_slo.index", "within-SLO step", "index", NEITHER, SWEEP, NONE, f"Index of {_STEP}."),
    _m("results[].max_slo.level", "within-SLO level", "req/s or users", HIGHER, SWEEP, NONE, f"Level of {_STEP}."),
    _m("results[].max_slo.sustained_rps", "sustained within SLO", "req/s", HIGHER, SWEEP, OK,
       f"Requests per second sustained within the SLO at {_STEP}: its offered rate (open model) or its "
       "throughput (closed model)."),
    _m("results[].max_slo.throughput_rps", "within-SLO throughput", "req/s", HIGHER, SWEEP, OK,
       f"`throughput_rps` of {_STEP}."),
    *family("results[].max_slo.latency_ms", "within-SLO latency", f"step latency (see steps) of {_STEP}",
            ("p50", "p90", "p95", "p99", "max", "mean"), unit="ms", direction=LOWER, window=SWEEP, coverage=OK,
            scope=CAP),
    _m("results[].first_miss.index", "first missing step", "index", NEITHER, SWEEP, NONE,
       "Index of the first step that misses an SLO objective (the one after the within-SLO step); its "
       "`slo_missed` names them, `lost arrivals<1%` for the lost-arrival rule."),
    _m("results[].first_miss.level", "first missing level", "req/s or users", NEITHER, SWEEP, NONE,
       "Level of that step."),
    _m("results[].knee.index", "knee step", "index", NEITHER, SWEEP, NONE,
       "First step where latency p95 (2× and 25 ms above the best below) or pool wait p95 (2× and 10 ms above) "
       "turns up, or it falls behind (answers per second, failed ones included: open model, under 90% of "
       "offered; closed, per user under 75% of the best below), and the next step does too; the last step, with "
       "none above to confirm it, only when it falls behind."),
    _m("results[].knee.level", "knee", "req/s or users", HIGHER, SWEEP, NONE, "Level of the knee step."),
    _m("results[].knee.last_flat_level", "last flat level", "req/s or users", HIGHER, SWEEP, NONE,
       "Level of the step before the knee; null when the knee is the first step."),
    _m("results[].saturation.steps[]", "saturated steps", "index", NEITHER, SWEEP, NONE,
       "Steps from the knee on that are overloaded: open model, those answering (failed responses included) "
       "under 97% of what was offered; closed model, all of them."),
    _m("results[].saturation.plateau_rps", "plateau", "req/s", HIGHER, SWEEP, OK,
       "Median throughput of the saturated steps: what the app levels off at under overload."),
    _m("results[].littles_law.ceiling_rps", "Little's-law ceiling", "req/s", HIGHER, SWEEP, NONE,
       f"capacity / ({_HOLD} / 1000): requests per second with every connection busy."),
    _m("results[].littles_law.hold_ms_per_request", "hold per request", "ms/request", LOWER, SWEEP, ALL,
       f"The {_HOLD}: their connection-seconds × 1000 / requests answered."),
    _m("results[].littles_law.plateau_over_ceiling", "plateau / ceiling", "fraction", NEITHER, SWEEP, NONE,
       "`plateau_rps` / `ceiling_rps`: near 1 the pool is the limit."),
    _m("results[].model.max_rate_rps", "M/D/c SLO rate", "req/s", HIGHER, SWEEP, NONE,
       "Open model: the highest arrival rate at which an M/D/c queue (c = capacity, fixed hold = the hold per "
       "request) meets the SLO's first pool-wait objective; constant arrivals queue less than its Poisson ones."),
    _m("results[].model.pool_wait_p95_ms[]", "M/D/c wait p95", "ms", LOWER, SWEEP, NONE,
       "Open model: per step, the pool wait p95 the M/D/c queue predicts at that step's rate."),
    _m("results[].bottleneck.steps[]", "bottleneck steps", "index", NEITHER, SWEEP, NONE,
       "The steps the bottleneck was judged on (the saturated ones, else those from the knee on)."),
)

SWEEPS: tuple[Metric, ...] = (
    _m("wall_time_s", "sweep wall time", "s", NEITHER, SWEEP, NONE, "Seconds the whole sweep took."),
    _m("runs.<pool>.timings.database_start_s", "database start", "s", LOWER, Window.STARTUP, NONE,
       "Seconds the embedded PostgreSQL took to start for this pool size's run; absent with --dsn."),
    _m("runs.<pool>.timings.startup_s", "start-up", "s", LOWER, Window.STARTUP, NONE,
       "Seconds from the harness process's start to that run's first request."),
    _m("pool_scaling[].from_pool", "from pool", "connections", NEITHER, SETTING, NONE, "The smaller pool size."),
    _m("pool_scaling[].to_pool", "to pool", "connections", NEITHER, SETTING, NONE, "The next larger pool size."),
    _m("pool_scaling[].pool_ratio", "pool ratio", "ratio", NEITHER, SETTING, NONE,
       "Capacity of the larger pool / capacity of the smaller."),
    _m("pool_scaling[].plateau_ratio", "plateau ratio", "ratio", HIGHER, SWEEP, OK,
       "Plateau of the larger pool / plateau of the smaller; null when either has none."),
    _m("pool_scaling[].sustained_ratio", "sustained ratio", "ratio", HIGHER, SWEEP, OK,
       "Within-SLO rate of the larger pool / that of the smaller; null when either has none."),
)

CAPACITY: tuple[Metric, ...] = (*SWEEPS, *RESULTS, *STEPS)
