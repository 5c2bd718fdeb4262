"""bench capacity's parts from known inputs: SLO and sweep parsing, knee and plateau, queueing, step cutting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.analysis.assessment import LOST_OBJECTIVE, assess, recommend
from bench.analysis.bottleneck import DATABASE, LOOP, NOT_REACHED, POOL, name_bottleneck
from bench.analysis.knee import Point, find_knee, plateau, saturated_steps, turned_up
from bench.analysis.queueing import erlang_c, littles_ceiling, max_rate, mdc_wait_s
from bench.analysis.steps import StepFigures, cut_steps
from bench.config.slo import DEFAULT_SLO, Slo
from bench.config.sweep import SweepPlan, build_plan, parse_levels, parse_pool_sizes
from bench.errors import UsageError
from bench.instrument import Histogram

DATA = Path(__file__).parent / "data" / "capacity-steps.json"


# --- SLO ----------------------------------------------------------------------------------------

def test_default_slo_parses_to_thresholds_in_ms_and_fractions() -> None:
    slo = Slo.parse(DEFAULT_SLO)
    assert [(o.metric, o.op, o.threshold) for o in slo.objectives] == [
        ("p95", "<", 250.0), ("errors", "<", 0.01), ("pool_wait_p95", "<", 50.0)]
    assert Slo.parse("p99<=1.5s").objectives[0].threshold == 1500.0
    assert slo.text == "p95<250ms, errors<1%, pool_wait_p95<50ms"


def test_slo_judges_a_step() -> None:
    slo = Slo.parse("p95<250ms,errors<1%,pool_wait_p95<50ms")
    step = {"latency_ms": {"p95": 120.0}, "error_rate": 0.0, "pool_wait_ms": {"p95": 3.0}}
    assert slo.missed(step) == []
    worse = {"latency_ms": {"p95": 260.0}, "error_rate": 0.02, "pool_wait_ms": {"p95": None}}
    # A step without a figure (no pool endpoint) does not meet the objective: no data is no evidence.
    assert slo.missed(worse) == ["p95<250ms", "errors<1%", "pool_wait_p95<50ms"]


@pytest.mark.parametrize(("text", "message"), [
    ("", "names no objective"),
    ("p95<abc", "cannot read 'p95<abc'"),
    ("p95>250ms", "cannot read"),
    ("p96<250ms", "unknown metric 'p96'"),
    ("pool_wiat_p95<5ms", "did you mean 'pool_wait_p95'?"),
    ("p95<250", "give p95 with a unit"),
    ("errors<1ms", "give errors as a percentage"),
    ("errors<0.01", "give errors as a percentage"),
    ("p95<250ms,p95<300ms", "names p95 twice"),
    ("p95<0ms", "must be above 0"),
])
def test_bad_slo_is_a_one_line_usage_error(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        Slo.parse(text)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert caught.value.exit_code == 2


# --- sweep plan ---------------------------------------------------------------------------------

def test_levels_from_ranges_and_lists() -> None:
    assert parse_levels("25:100:25", "--rates") == (25, 50, 75, 100)
    assert parse_levels("10, 20,50", "--rates") == (10, 20, 50)
    assert parse_levels("0.5:1.5:0.5", "--rates") == (0.5, 1.0, 1.5)
    assert parse_pool_sizes("10,5") == (5, 10)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"rates": "50,20"}, "levels must increase"),
    ({"rates": "0:10:5"}, "0 < START"),
    ({"rates": "a,b"}, "not a list of numbers"),
    ({"rates": "1:1000:1"}, "at most 200"),
    ({"rates": "10", "users": "10"}, "not both"),
    ({"users": "1.5,3"}, "whole numbers"),
    ({"step": "1s"}, "too short"),
    ({"step": "4s", "settle": "4s"}, "leaves nothing"),
    ({"arrivals": "bursty"}, "constant or poisson"),
])
def test_bad_sweep_flags_are_usage_errors(kwargs: dict[str, str], message: str) -> None:
    args = {"rates": None, "users": None, "step": "10s", "settle": None, "drain": None, "max_concurrency": 100,
            "arrivals": "constant", "pool_sizes": (5,)} | kwargs
    with pytest.raises(UsageError, match=message):
        build_plan(**args)  # type: ignore[arg-type]


def test_plan_defaults_and_pacer_settings() -> None:
    plan = build_plan(rates=None, users=None, step="10s", settle=None, drain=None, max_concurrency=80,
                      arrivals="constant", pool_sizes=(5, 10))
    assert plan.levels[0] == 25 and plan.levels[-1] == 400 and len(plan.levels) == 16
    assert plan.settle_s == 2.0 and plan.drain_s == 5.0 and plan.duration_s == 165.0
    sent = json.loads(plan.pacer_env()["BENCH_LOAD_STEPS"])
    assert sent["mode"] == "rate" and sent["max_users"] == 80 and sent["step_s"] == 10.0
    closed = build_plan(rates=None, users="10:30:10", step="4s", settle=None, drain=None, max_concurrency=80,
                        arrivals="constant", pool_sizes=(5,))
    assert closed.mode == "users" and closed.users == 30 and closed.drain_s == 0 and closed.settle_s == 1.0


# --- knee and plateau ---------------------------------------------------------------------------

def _pool_bound(rates: list[float], ceiling: float, hold_ms: float = 105.0) -> list[Point]:
    """An open-model sweep of an app capped at ``ceiling`` req/s: flat, then a queue, then drops."""
    points = []
    for rate in rates:
        over = rate > ceiling
        points.append(Point(level=rate, throughput_rps=min(rate, ceiling) * (0.99 if over else 1.0),
                            latency_p95_ms=2000.0 if over else hold_ms + 10, pool_wait_p95_ms=1800.0 if over else 0.1,
                            offered_rps=rate))
    return points


def test_knee_of_a_pool_bound_sweep_is_the_first_step_past_the_ceiling() -> None:
    points = _pool_bound([10, 20, 30, 40, 50, 60, 80], ceiling=47.6)
    knee = find_knee(points)
    assert knee is not None and knee.level == 50 and knee.last_flat_level == 40
    assert any("latency p95" in r for r in knee.reasons) and any("pool wait" in r for r in knee.reasons)
    steps = saturated_steps(points, knee)
    assert steps == [4, 5, 6]
    assert plateau(points, steps) == pytest.approx(47.6 * 0.99)


def test_a_lone_noisy_step_is_not_a_knee() -> None:
    points = _pool_bound([10, 20, 30, 40], ceiling=1000)
    blip = Point(level=25, throughput_rps=25, latency_p95_ms=400.0, pool_wait_p95_ms=0.1, offered_rps=25)
    noisy = [points[0], points[1], blip, points[2], points[3]]
    assert find_knee(noisy) is None
    assert saturated_steps(noisy, None) == [] and plateau(noisy, []) is None


def test_knee_in_the_closed_model_is_where_each_user_gets_less_done() -> None:
    # N users, 0.1 s per request, a pool of 5: throughput N/0.1 until 5 users, then 50 req/s and waits.
    points = [Point(level=n, throughput_rps=min(n, 5) / 0.1, latency_p95_ms=100 * max(1.0, n / 5),
                    pool_wait_p95_ms=max(0.0, 100 * (n / 5 - 1))) for n in (1, 2, 4, 6, 10, 20)]
    knee = find_knee(points)
    assert knee is not None and knee.level == 6 and knee.last_flat_level == 4
    assert plateau(points, saturated_steps(points, knee)) == pytest.approx(50)


def test_knee_on_recorded_sweeps() -> None:
    """Per-step figures recorded by a real `bench capacity long-session` sweep (see capacity-steps.json)."""
    recorded = json.loads(DATA.read_text())
    for run in recorded["runs"]:
        points = [Point(**p) for p in run["points"]]
        knee = find_knee(points)
        assert knee is not None, run["name"]
        assert knee.last_flat_level == run["expected_last_flat"], (run["name"], knee)
        value = plateau(points, saturated_steps(points, knee))
        assert value is not None and value == pytest.approx(run["expected_plateau"], rel=0.02), run["name"]


# --- queueing -----------------------------------------------------------------------------------

def test_erlang_c_known_values() -> None:
    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: the probability of waiting is rho
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(5, 5.0) == 1.0 and erlang_c(5, 0.0) == 0.0
    assert 0 < erlang_c(200, 150.0) < 1  # the recurrence stays finite for big pools


def test_mdc_wait_and_max_rate() -> None:
    assert littles_ceiling(5, 0.1) == pytest.approx(50)
    assert mdc_wait_s(5, 60, 0.1) is None  # past the ceiling: no steady state
    # M/D/1 mean wait is exactly half of M/M/1's: rho * S / (2 (1 - rho)).
    assert mdc_wait_s(1, 5, 0.1) == pytest.approx(0.5 * 0.1 / (2 * 0.5))
    low, high = mdc_wait_s(5, 20, 0.1, 0.95), mdc_wait_s(5, 45, 0.1, 0.95)
    assert low is not None and high is not None and low < high
    top = max_rate(5, 0.1, 0.05, 0.95)
    assert top is not None and 0 < top < 50
    wait = mdc_wait_s(5, top, 0.1, 0.95)
    assert wait is not None and wait == pytest.approx(0.05, rel=1e-3)


# --- cutting steps out of one run ---------------------------------------------------------------

def _hist(values: list[float]) -> dict[str, object]:
    hist = Histogram()
    for v in values:
        hist.record(v)
    return hist.to_json()


def _synthetic_run(folder: Path, t0: float, **extra: object) -> None:
    """Two 4 s steps at 10 and 20 rps; the first second of each (settling) carries outliers to discard.
    ``extra`` goes into every sample."""
    folder.mkdir(parents=True)
    rows = ["start_epoch_s,request_type,name,response_time_ms,response_length,failed,error"]
    for step, rate in enumerate((10, 20)):
        for i in range(4 * rate):
            t = t0 + step * 4 + i / rate
            latency = 5000.0 if t - (t0 + step * 4) < 1 else 100.0 + step * 50
            rows.append(f'{t:.6f},POST,"POST /x",{latency},10,0,""')
    rows.append(f'{t0 + 6.5:.6f},DROPPED,"scheduled arrival",0,0,1,"Dropped: no free user"')
    (folder / "requests.csv").write_text("\n".join(rows) + "\n")
    samples = []
    for k in range(80):
        t = t0 + k * 0.1
        samples.append({"t": t, "phase": "load", "pool_checked_out": 1 + (t >= t0 + 4), "pool_pending": 0,
                        "pool_timeouts": 0, "active": 0, "idle_in_tx": 1, "app_cpu_s": 10 + 0.05 * k,
                        "host_cpu": 0.5, "wait_hist": _hist([0.001]), "hold_hist": _hist([0.1]),
                        "lag_hist": _hist([0.002]), **extra})
    (folder / "samples.jsonl").write_text("\n".join(json.dumps(s) for s in samples) + "\n")
    steps = [{"index": i, "level": rate, "start": t0 + 4 * i, "end": t0 + 4 * (i + 1), "generator_cpu": 0.1,
              "lateness_ms": {"p95": 2.0}} for i, rate in enumerate((10, 20))]
    (folder / "pacer.json").write_text(json.dumps({"mode": "rate", "t0": t0, "steps": steps}))


def test_steps_are_cut_from_one_run_after_settling(tmp_path: Path) -> None:
    t0 = 1_800_000_000.0
    _synthetic_run(tmp_path / "bad", t0)
    plan = build_plan(rates="10,20", users=None, step="4s", settle="1s", drain=None, max_concurrency=10,
                      arrivals="constant", pool_sizes=(5,))
    first, second = cut_steps(tmp_path / "bad", plan)
    assert (first.level, second.level) == (10, 20)
    assert first.start == pytest.approx(t0 + 1) and first.end == pytest.approx(t0 + 4)
    # The settling second's 5 s outliers are gone; each window keeps its own latency.
    assert first.latency_ms["p95"] == 100.0 and second.latency_ms["max"] == 150.0
    assert first.offered_rps == pytest.approx(10) and second.offered_rps == pytest.approx(61 / 3, rel=1e-3)
    assert second.dropped == 1 and second.error_rate == pytest.approx(1 / 61, rel=1e-3)
    assert first.pool_busy == 1 and second.pool_busy == 2
    assert first.app_cpu == pytest.approx(0.5, rel=0.01)  # 0.05 CPU-s per 0.1 s sample
    assert first.app_loops == 1  # samples without app_loops: one process
    assert first.pool_wait_ms["p95"] == pytest.approx(1.0, rel=0.01)
    assert first.hold_ms_per_checkout == pytest.approx(100.0, rel=0.01)


def test_bottleneck_names() -> None:
    t0 = 1_800_000_000.0

    def step(busy: float, cpu: float, lag: float) -> StepFigures:
        return StepFigures(index=0, level=50, start=t0, end=t0 + 8, offered_rps=50, throughput_rps=47, requests=400,
                           failures=0, dropped=0, unfinished=0, error_rate=0, latency_ms={"p95": 2000.0},
                           pool_wait_ms={"p95": 1500.0}, hold_ms_per_checkout=105, hold_s=40, served=376,
                           pool_busy=busy, pool_pending=30, timeouts=0, loop_lag_ms={"p95": lag}, app_cpu=cpu,
                           host_cpu=0.3, host_cores=0.6, db_active=0.1, idle_in_tx=4.9, generator_cpu=0.05,
                           start_lateness_ms_p95=2.0)

    assert name_bottleneck([step(5.0, 0.15, 1.0)], [0], 5, 105).name == POOL
    assert name_bottleneck([step(2.0, 0.97, 30.0)], [0], 5, 105).name == LOOP
    assert name_bottleneck([step(5.0, 0.95, 30.0)], [0], 5, 105).name == LOOP  # a busy loop fills the pool too
    assert name_bottleneck([step(2.0, 0.3, 1.0)], [], 5, 105).name == NOT_REACHED


def _loaded_step(*, busy: float, cpu: float, loops: int, hold_ms: float = 105) -> StepFigures:
    """A step past the knee on a quiet machine (1.2 of 2 cores busy), its loops' lag low."""
    t0 = 1_800_000_000.0
    return StepFigures(index=0, level=50, start=t0, end=t0 + 8, offered_rps=50, throughput_rps=47, requests=400,
                       failures=0, dropped=0, unfinished=0, error_rate=0, latency_ms={"p95": 2000.0},
                       pool_wait_ms={"p95": 1500.0}, hold_ms_per_checkout=hold_ms, hold_s=hold_ms * 0.376,
                       served=376, pool_busy=busy, pool_pending=30, timeouts=0, loop_lag_ms={"p95": 2.0},
                       app_cpu=cpu, app_loops=loops, host_cpu=0.6, host_cores=1.2, db_active=0.1, idle_in_tx=4.9,
                       generator_cpu=0.05, start_lateness_ms_p95=2.0)


def test_the_busy_loop_rule_judges_one_loop_not_the_sum_over_workers() -> None:
    # Two uvicorn workers at half a core each: 1.0 core summed, which read as one loop past the 0.85 busy mark.
    two_half_busy = _loaded_step(busy=5.0, cpu=1.0, loops=2)
    found = name_bottleneck([two_half_busy], [0], 5, 105)
    assert found.name == POOL, found.evidence  # the pool is full while each loop has CPU to spare
    assert "app CPU 50% of a core per loop (2 loops, 1.00 cores)" in found.evidence
    # The same 1.0 core in one process is a loop at its limit.
    assert name_bottleneck([_loaded_step(busy=5.0, cpu=1.0, loops=1)], [0], 5, 105).name == LOOP
    # Two loops at 0.9 each are both busy: the loop, whatever the pool does.
    assert name_bottleneck([_loaded_step(busy=2.0, cpu=1.8, loops=2)], [0], 5, 105).name == LOOP
    # 0.9 core over two loops, the pool half used, holds twice as long as at light load: the database.
    slow = _loaded_step(busy=2.5, cpu=0.9, loops=2, hold_ms=210)
    assert name_bottleneck([slow], [0], 5, 105).name == DATABASE


def test_steps_carry_the_loops_the_app_cpu_is_summed_over(tmp_path: Path) -> None:
    _synthetic_run(tmp_path / "bad", 1_800_000_000.0, app_loops=2)
    plan = build_plan(rates="10,20", users=None, step="4s", settle="1s", drain=None, max_concurrency=10,
                      arrivals="constant", pool_sizes=(5,))
    first, second = cut_steps(tmp_path / "bad", plan)
    assert first.app_loops == second.app_loops == 2 and first.to_json()["app_loops"] == 2
    assert first.app_cpu == pytest.approx(0.5, rel=0.01)  # still the sum: capacity.json's figure is unchanged


# --- issue 12, item 11: the knee, the plateau and what a step sustains ----------------------------

def _plan(levels: str) -> SweepPlan:
    return build_plan(rates=levels, users=None, step="10s", settle="2s", drain=None, max_concurrency=100,
                      arrivals="constant", pool_sizes=(5,))


def _open_step(index: int, rate: float, *, ok_share: float = 1.0, answered_share: float = 1.0,
               dropped_share: float = 0.0, p95: float = 110.0) -> StepFigures:
    """One 8 s measured window of an open-model step at ``rate``: flat latency, no pool wait unless told."""
    t0, span = 1_800_000_000.0 + 10 * index, 8.0
    requests = int(rate * span)
    dropped = int(requests * dropped_share)
    served = int((requests - dropped) * answered_share)
    failures = dropped + served - int(served * ok_share)
    return StepFigures(index=index, level=rate, start=t0 + 2, end=t0 + 2 + span, offered_rps=rate,
                       throughput_rps=int(served * ok_share) / span, requests=requests, failures=failures,
                       dropped=dropped, unfinished=0, error_rate=failures / requests, latency_ms={"p95": p95},
                       pool_wait_ms={"p95": 0.1}, hold_ms_per_checkout=5.0, hold_s=served * 0.005, served=served,
                       pool_busy=0.5, pool_pending=0, timeouts=0, loop_lag_ms={"p95": 1.0}, app_cpu=0.3,
                       host_cpu=0.3, host_cores=0.6, db_active=0.1, idle_in_tx=0.0, generator_cpu=0.05,
                       start_lateness_ms_p95=1.0)


def test_designed_failures_do_not_make_a_knee_or_a_plateau() -> None:
    # background-task answers a fifth of its requests with a 404 by design: it keeps up with every rate all the
    # same. Counting successes only put the knee at step 0 and reported its throughput as an overload plateau.
    steps = [_open_step(i, rate, ok_share=0.8) for i, rate in enumerate((20, 40, 60, 80))]
    result = assess(app="bad", pool_size=5, capacity=5, steps=steps, plan=_plan("20,40,60,80"),
                    slo=Slo.parse("p95<250ms"))
    assert result.knee is None and result.saturated == () and result.plateau_rps is None
    assert result.max_slo_index == 3 and result.sustained == 80


def test_a_lone_noisy_last_step_is_not_a_knee() -> None:
    points = _pool_bound([10, 20, 30, 40], ceiling=1000)
    blip = Point(level=50, throughput_rps=50, latency_p95_ms=400.0, pool_wait_p95_ms=30.0, offered_rps=50)
    assert turned_up([*points, blip], 4) and find_knee([*points, blip]) is None
    # The last step that falls behind its load over the whole step is a knee: nothing above it need confirm it.
    behind = Point(level=50, throughput_rps=30, latency_p95_ms=400.0, pool_wait_p95_ms=30.0, offered_rps=50)
    knee = find_knee([*points, behind])
    assert knee is not None and knee.index == 4 and knee.last_flat_level == 40


def test_what_a_pool_sustains_is_said_as_the_lower_bound_it_is() -> None:
    # Every step within the SLO: the limit lies above the sweep. A step that misses: it lies between the two.
    slo = Slo.parse("p95<250ms")
    top = assess(app="good", pool_size=5, capacity=5, steps=[_open_step(i, r) for i, r in enumerate((20, 40))],
                 plan=_plan("20,40"), slo=slo)
    between = assess(app="bad", pool_size=5, capacity=5, plan=_plan("20,40,60"), slo=slo,
                     steps=[_open_step(0, 20), _open_step(1, 40), _open_step(2, 60, p95=400.0)])
    text = recommend([top, between], slo, "long-session")
    assert "good: pool 5 sustains at least 40 rps, the top of the sweep (its limit lies above)" in text
    assert "bad: pool 5 sustains at least 40 rps (60 rps, the next step, misses it)" in text


def test_the_capacity_glossary_is_the_registrys_text() -> None:
    from bench.results.capacity_figures import CAPACITY
    from bench.run.capacity import GLOSSARY

    # A percentile family's definition without its "95th percentile: " lead, every other one word for word.
    words = {m.description for m in CAPACITY} | {m.description.split(": ", 1)[-1].lower() for m in CAPACITY}
    assert [name for name, text in GLOSSARY.items() if text not in words and text.lower() not in words] == []
    app_cpu = next(m for m in CAPACITY if m.path == "results[].steps[].app_cpu")
    assert GLOSSARY["app_cpu"] == app_cpu.description and "in cores" in GLOSSARY["app_cpu"]


def test_dropped_arrivals_count_against_sustaining() -> None:
    # An SLO without an errors objective: the step that dropped half its arrivals kept its latency (latency
    # covers only what was sent), yet it did not sustain 80 req/s.
    steps = [_open_step(0, 20), _open_step(1, 40), _open_step(2, 60), _open_step(3, 80, dropped_share=0.5)]
    result = assess(app="bad", pool_size=5, capacity=5, steps=steps, plan=_plan("20,40,60,80"),
                    slo=Slo.parse("p95<250ms"))
    assert result.missed[3] == (LOST_OBJECTIVE,) and result.max_slo_index == 2 and result.sustained == 60
    # A stray dropped arrival (under 1%) is not a miss; with an errors objective the error rate judges them.
    stray = [_open_step(0, 20), _open_step(1, 40, dropped_share=0.005)]
    assert assess(app="bad", pool_size=5, capacity=5, steps=stray, plan=_plan("20,40"),
                  slo=Slo.parse("p95<250ms")).max_slo_index == 1
    judged = assess(app="bad", pool_size=5, capacity=5, steps=steps, plan=_plan("20,40,60,80"),
                    slo=Slo.parse("p95<250ms,errors<1%"))
    assert judged.missed[3] == ("errors<1%",) and judged.max_slo_index == 2
