"""Little's law's inputs (bench.analysis.littleslaw) at their edges, each against numbers worked out by hand: the
window's ends exactly on a sample, a response that ends a fraction of a millisecond inside it, the fewest samples
and requests that make a window, an app that reports no open holds, the whole-run fallback, and the note's text.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from bench.analysis.littleslaw import IdleWindow, LittleWindow, note, whole_run, windows
from bench.instrument import Histogram
from bench.results.samples import SampleHistogram


def _answered(*spans: tuple[float, float]) -> pd.DataFrame:
    """Requests by (start in epoch seconds, response time in ms)."""
    return pd.DataFrame({"start_epoch_s": [s for s, _ in spans], "response_time_ms": [ms for _, ms in spans]})


def _samples(*rows: tuple[float, str, float, float | None]) -> pd.DataFrame:
    """Collector samples by (t, phase, ended holds' total, open holds' age so far or None)."""
    return pd.DataFrame(
        {
            "t": [r[0] for r in rows],
            "phase": [r[1] for r in rows],
            "pool_hold_s": [r[2] for r in rows],
            "pool_hold_open_s": [math.nan if r[3] is None else r[3] for r in rows],
        }
    )


def test_the_window_runs_from_the_first_load_sample_to_the_last_before_the_last_response() -> None:
    # Samples at 1, 2, 3 and 4 s; the last response ends at 3.0 exactly, so the sample at 3 closes the window and
    # the one at 4 is past it. Responses ending at 1.0 (on the first sample) are before the window; at 3.0 inside.
    answered = _answered((0.5, 500.0), (1.2, 300.0), (2.0, 1000.0))  # ends 1.0, 1.5, 3.0
    samples = _samples((1.0, "load", 2.0, 0.0), (2.0, "load", 3.0, 0.5), (3.0, "load", 5.0, 0.25),
                       (4.0, "load", 9.0, 0.0))
    law = windows(samples, answered).law
    assert law == LittleWindow(window_s=2.0, hold_s=(5.0 + 0.25) - (2.0 + 0.0), requests=2)


def test_a_response_a_fraction_of_a_millisecond_inside_the_window_is_in_it() -> None:
    answered = _answered((0.5, 500.4), (1.5, 500.0))  # ends 1.0004 (inside, after the sample at 1.0) and 2.0
    samples = _samples((1.0, "load", 0.0, None), (2.0, "load", 1.0, None))
    law = windows(samples, answered).law
    assert law is not None and law.requests == 2 and law.hold_s == 1.0


def test_two_load_samples_and_one_request_make_a_window() -> None:
    answered = _answered((1.1, 400.0))  # ends 1.5
    samples = _samples((1.0, "load", 0.0, None), (2.0, "cooldown", 0.5, None), (1.5, "load", 0.5, None))
    law = windows(samples, answered).law
    assert law == LittleWindow(window_s=0.5, hold_s=0.5, requests=1)
    assert law.hold_ms_per_request == 500.0 and law.rps == 2.0


def test_no_window_without_what_it_needs() -> None:
    answered = _answered((1.1, 400.0))
    samples = _samples((1.0, "load", 0.0, None), (1.5, "load", 0.5, None))
    assert windows(None, answered).law is None
    assert windows(samples, answered.iloc[0:0]).law is None
    assert windows(samples.drop(columns="phase"), answered).law is None
    assert windows(samples.drop(columns="pool_hold_s"), answered).law is None
    assert windows(samples.iloc[:1], answered).law is None  # one load sample: no stretch
    still = _samples((1.0, "load", 0.5, 0.0), (1.5, "load", 0.5, 0.0))
    assert windows(still, answered).law is None  # no connection time in the window
    little = _samples((1.0, "load", 0.0, None), (1.5, "load", 0.5, None))
    assert windows(little, answered).law == LittleWindow(window_s=0.5, hold_s=0.5, requests=1)  # under 1 conn-s


def test_a_sample_without_an_open_holds_figure_counts_its_ended_holds_only() -> None:
    # The first sample has no open-holds figure (NaN: an app that does not report them), the last 0.75 s of them.
    answered = _answered((1.0, 800.0), (1.0, 1500.0))  # ends 1.8 (in the window) and 2.5 (after it)
    samples = _samples((1.0, "load", 1.0, None), (2.0, "load", 1.5, 0.75), (3.0, "load", 2.0, 0.0))
    law = windows(samples, answered).law
    assert law == LittleWindow(window_s=1.0, hold_s=(1.5 + 0.75) - 1.0, requests=1)  # 3.0 is past the response


def test_idle_over_the_window_counts_each_samples_interval_and_the_successes_inside() -> None:
    # Samples at 0.5 (before the load), 1, 2, 3 (the window: 1 to 3) and 4 (the cool-down). Each counts for the
    # interval since the one before: inside, the samples at 2 (1 s x 2 idle, 1 past the threshold) and 3 (1 s x 4,
    # 3 past it). The app's idle so far, ended and open, grows from 0.25 + 0.0 at 1 to 2.0 + 0.5 at 3.
    answered = _answered((0.5, 600.0), (1.0, 500.0), (1.2, 1000.0), (1.5, 1000.0), (2.5, 500.0))
    answered["failed"] = [0, 0, 1, 0, 0]  # ends 1.1, 1.5 (both inside), 2.2 failed, 2.5 and 3.0 inside
    samples = _samples((0.5, "warmup", 0.0, 0.0), (1.0, "load", 1.0, 0.0), (2.0, "load", 2.0, 0.5),
                       (3.0, "load", 4.0, 0.0), (4.0, "cooldown", 6.0, 0.0))
    samples["idle_in_tx"] = [9, 5, 2, 4, 7]
    samples["idle_in_tx_long"] = [9, 5, 1, 3, 7]
    samples["pool_idle_in_tx_s"] = [0.0, 0.25, 1.0, 2.0, 3.0]
    samples["pool_idle_in_tx_open_s"] = [0.0, 0.0, math.nan, 0.5, 0.0]  # NaN: not reported in that sample
    window = windows(samples, answered).idle
    assert window == IdleWindow(successes=4, sampled_s=2.0 + 4.0, long_s=1.0 + 3.0, app_s=(2.0 + 0.5) - 0.25)
    assert windows(samples.drop(columns="idle_in_tx"), answered).idle is None
    assert windows(samples.drop(columns=["pool_idle_in_tx_s", "pool_idle_in_tx_open_s"]), answered).idle == \
        IdleWindow(successes=4, sampled_s=6.0, long_s=4.0, app_s=None)
    # A collector that kept no open spells: a session left open would count nothing, so no app-side figure.
    assert windows(samples.assign(pool_idle_in_tx_open_s=math.nan), answered).idle == \
        IdleWindow(successes=4, sampled_s=6.0, long_s=4.0, app_s=None)
    answered["failed"] = 1
    assert windows(samples, answered).idle is None  # no success to divide by


def _waits(*seconds: float) -> SampleHistogram:
    """A sample's wait histogram field as read_samples gives it; ``max_s`` is the pool's running maximum."""
    hist = Histogram()
    for value in seconds:
        hist.record(value)
    return SampleHistogram.of(hist.to_json())  # type: ignore[return-value]


def test_waits_over_the_window_are_the_intervals_inside_it() -> None:
    # Samples at 0.5 (before the load), 1, 2, 3 (the window: 1 to 3, the last response ends at 3.0) and 4 (the
    # cool-down, where the requests queued at the stop get their connection, here after 2 s and more). The samples
    # at 2 and 3 stand for the intervals inside; the one at 1 for the interval before the window.
    answered = _answered((0.5, 600.0), (1.5, 1000.0), (2.0, 1000.0))  # ends 1.1, 2.5 and 3.0
    samples = _samples((0.5, "warmup", 0.0, 0.0), (1.0, "load", 1.0, 0.0), (2.0, "load", 2.0, 0.5),
                       (3.0, "load", 4.0, 0.0), (4.0, "cooldown", 6.0, 0.0))
    samples["wait_hist"] = [_waits(0.001), _waits(0.002), None, _waits(0.010, 0.020, 0.030), _waits(2.0, 2.5)]
    waits = windows(samples, answered).waits
    assert waits is not None and waits.count == 3
    assert waits.total == pytest.approx(0.060) and waits.max == pytest.approx(0.030)
    assert waits.percentile(50) == pytest.approx(0.020, rel=0.005)
    assert waits.percentile(100) == pytest.approx(0.030)  # capped at the largest, never the cool-down's 2.5 s
    # No window, or no histograms (a collector that did not write them): none, and the summary reads the pool's.
    assert windows(samples.iloc[:2], answered).waits is None
    assert windows(samples.drop(columns="wait_hist"), answered).waits is None
    assert windows(samples.assign(wait_hist=None), answered).waits is None


def _pool(ended: list[float], open_s: float | None) -> dict[str, Any]:
    use = Histogram()
    for seconds in ended:
        use.record(seconds)
    gauges = {} if open_s is None else {"hold_open_s": open_s}
    return {"use_time": use.to_json(), "gauges": gauges}


def test_whole_run_counts_the_ended_holds_and_the_open_ones_over_every_answer() -> None:
    answered = _answered((1.0, 10.0), (1.5, 10.0), (2.0, 10.0), (2.5, 10.0))
    law = whole_run(_pool([0.25, 0.25, 0.5], 1.5), answered, window_s=0.5)
    assert law == LittleWindow(window_s=0.5, hold_s=2.5, requests=4)
    assert whole_run(_pool([0.25], None), answered, window_s=8.0) == LittleWindow(8.0, 0.25, 4)
    assert whole_run({"use_time": _pool([0.25], None)["use_time"]}, answered, 8.0) == LittleWindow(8.0, 0.25, 4)


def test_whole_run_needs_a_pool_answers_a_window_and_connection_time() -> None:
    answered = _answered((1.0, 10.0))
    assert whole_run(None, answered, 5.0) is None
    assert whole_run(_pool([0.25], None), answered.iloc[0:0], 5.0) is None
    assert whole_run(_pool([0.25], None), answered, 0.0) is None
    assert whole_run(_pool([], 0.0), answered, 5.0) is None


def _app(used: float | None = 0.8, ceiling: float | None = 250.0, law: Any = "window") -> dict[str, Any]:
    window = {"window_s": 2.0, "hold_s": 4.0, "requests": 400, "rps": 200.0} if law == "window" else law
    return {"pool": {"capacity": 5, "hold_ms_per_request": 10.0, "littles_law": window,
                     "littles_law_ceiling_rps": ceiling, "ceiling_utilisation": used}}


def test_the_note_shows_the_arithmetic_it_used() -> None:
    assert note("bad", _app()) == (
        "bad: Little's-law ceiling 5 connections / 10.0 ms per request (4.00 conn-s held over 400 requests) = "
        "250.0 req/s; 200.0 req/s answered between pool samples (400 in 2.00 s) = 80% of it"
    )


@pytest.mark.parametrize(
    "app",
    [{}, {"pool": None}, {"pool": ["not", "a", "block"]}, _app(law=None), _app(ceiling=None), _app(used=None)],
)
def test_no_note_without_the_figures_it_shows(app: dict[str, Any]) -> None:
    assert note("good", app) is None
