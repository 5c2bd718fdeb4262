"""The gates' rules at their edges (bench.config.gates): what is malformed, a figure missing or at 0 on the base
side, a gate on a figure summary.json does not have, and the two rules that turn A/A spreads into limits, each
against a value worked out by hand or against the registry's own noise floor."""

from __future__ import annotations

import dataclasses

import pytest

from bench.config.gates import FLOOR, K_IQR, Gate, derived_limit, merge_gates, needed_floor_cap
from bench.errors import UsageError
from bench.results import metrics


@pytest.mark.parametrize("text", [":+20%", "  :>0", "pool.wait_ms.p95:up", "pool.wait_ms.p95", "+20%"])
def test_a_gate_without_a_figure_or_a_threshold_is_malformed(text: str) -> None:
    with pytest.raises(UsageError, match="is malformed; write METRIC:"):
        Gate.parse(text)


@pytest.mark.parametrize(
    ("text", "base", "current", "fails"),
    [
        ("pool.hold_ms_per_request:+20%", 0.0, 0.0, False),  # 0 to 0 did not move
        ("pool.hold_ms_per_request:+20%", 0.0, 0.5, True),  # any rise from 0 is past every relative limit
        ("throughput_rps:-10%", 0.0, 0.5, False),  # a rise never fails a gate against falls
        ("throughput_rps:-10%", 0.0, 0.0, False),
        ("pool.hold_ms_per_request:+20%", None, 3.0, False),  # no base: nothing to compare with
        ("pool.hold_ms_per_request:+20%", 3.0, None, False),  # no current figure: nothing to judge
        ("integrity.lost_writes:>0", None, None, False),
    ],
)
def test_a_base_of_zero_or_a_missing_figure(text: str, base: float | None, current: float | None, fails: bool) -> None:
    assert Gate.parse(text).fails(base, current) is fails


def test_a_gate_on_a_figure_summary_json_lacks_is_refused_with_the_closest_name() -> None:
    with pytest.raises(UsageError) as near:
        merge_gates(["pool.wait_ms.p59:+20%"])
    assert str(near.value) == (
        "--fail-on 'pool.wait_ms.p59:+20%': no figure 'pool.wait_ms.p59' in summary.json; did you mean "
        "'pool.wait_ms.p99'? see docs/metrics.md"
    )
    with pytest.raises(UsageError) as far:
        merge_gates(["zzzz:+1%"])
    assert str(far.value) == "--fail-on 'zzzz:+1%': no figure 'zzzz' in summary.json; see docs/metrics.md"
    assert {g.metric for g in merge_gates(["endpoints.GET /a.latency_ms.p95:+20%"])} >= {"endpoints.GET /a.latency_ms.p95"}


@pytest.mark.parametrize(
    ("spreads", "sign", "limit"),
    [
        ([0.04], "+", 0.15),  # 3 x 0.04 = 0.12, rounded up (not to the nearest) to 5%
        ([0.2], "-", 0.4),  # may read 1.6x as high, so 1/1.6 as low: a fall of 0.375, rounded up to 0.40
        ([0.5], "-", 0.6),  # 2.5x: a fall of 0.6 exactly, not rounded past it
        ([0.01], "-", FLOOR),
    ],
)
def test_derived_limits_worked_out_by_hand(spreads: list[float], sign: str, limit: float) -> None:
    assert derived_limit(spreads, sign) == pytest.approx(limit, abs=1e-12)


@pytest.mark.parametrize(("iqr", "median"), [(1.0, 100.0), (1.0, 4.0), (1.0, 12.0), (0.002, 0.0), (30.0, 400.0)])
def test_the_floor_cap_is_the_smallest_that_keeps_k_iqrs_from_counting(iqr: float, median: float) -> None:
    # Through the registry's own floor, min(cap, max(NOISE_LOW x cap, NOISE_SHARE x median)), in both of its
    # regimes (the figure's share decides at a large median, the cap's low end at a small one) and between them.
    metric = next(m for m in metrics.COMPARED if m.path == "db.idle_in_tx_long_per_request_ms")
    cap = needed_floor_cap(iqr, median)
    target = K_IQR * iqr
    assert dataclasses.replace(metric, noise=cap).noise_floor_at(median) == pytest.approx(target, rel=1e-12)
    assert dataclasses.replace(metric, noise=cap * 0.999).noise_floor_at(median) < target
