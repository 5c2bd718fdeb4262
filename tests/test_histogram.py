"""The pool histograms' edges (bench.instrument.histogram), each against a value worked out by hand: durations
under and exactly at MIN_S, adjacent buckets' shared edge, counts of a repeated duration, a reading's defaults,
merging, an interval with nothing new, and a percentile that lands in the lowest buckets."""

from __future__ import annotations

import math

import pytest

from bench.instrument.histogram import GROWTH, MIN_S, Histogram, bucket_bounds, bucket_index


def test_durations_under_min_s_share_bucket_minus_one_and_read_as_zero() -> None:
    hist = Histogram()
    hist.record(5e-7)
    hist.record(0.0)
    assert hist.to_json()["buckets"] == {"-1": 2}
    assert hist.percentile(50) == 0.0 and hist.percentile(100) == 0.0
    assert bucket_bounds(-1) == (0.0, MIN_S)


def test_min_s_itself_opens_bucket_zero() -> None:
    assert bucket_index(MIN_S) == 0
    assert bucket_bounds(0) == (MIN_S, MIN_S * GROWTH)
    hist = Histogram()
    hist.record(MIN_S)
    # Bucket 0's midpoint, 1.005 µs, is past the largest value recorded: the percentile is that value.
    assert hist.percentile(50) == MIN_S


@pytest.mark.parametrize("index", [0, 1, 7, 100, 1388])  # 1388: about 1 s
def test_adjacent_buckets_share_an_edge_and_a_bucket_holds_its_own_range(index: int) -> None:
    low, high = bucket_bounds(index)
    assert high == pytest.approx(bucket_bounds(index + 1)[0], rel=1e-12)
    assert high / low == pytest.approx(GROWTH, rel=1e-12)
    assert low == pytest.approx(MIN_S * GROWTH**index, rel=1e-12)
    assert bucket_index(low * (1 + 1e-9)) == index
    assert bucket_index(math.sqrt(low * high)) == index
    assert bucket_index(high * (1 + 1e-9)) == index + 1


def test_a_repeated_duration_counts_every_time() -> None:
    hist = Histogram()
    for _ in range(3):
        hist.record(0.004)
    hist.record(0.02)
    assert hist.to_json()["buckets"] == {str(bucket_index(0.004)): 3, str(bucket_index(0.02)): 1}
    assert hist.count == 4 and hist.total == pytest.approx(0.032) and hist.max == 0.02


def test_a_reading_round_trips_and_its_missing_fields_read_as_empty() -> None:
    hist = Histogram()
    for seconds in (0.001, 0.002, 0.25):
        hist.record(seconds)
    again = Histogram.from_json(hist.to_json())
    assert (again.count, again.total, again.max, again.buckets) == (3, hist.total, 0.25, hist.buckets)
    empty = Histogram.from_json({})
    assert (empty.count, empty.total, empty.max, empty.buckets) == (0, 0.0, 0.0, {})
    assert empty.percentile(99) == 0.0 and empty.mean == 0.0


def test_merging_adds_counts_and_sums_and_keeps_the_larger_max() -> None:
    one, two = Histogram(), Histogram()
    one.record(0.003)
    two.record(0.003)
    two.record(0.5)
    one.merge(two)
    assert one.count == 3 and one.total == pytest.approx(0.506) and one.max == 0.5
    assert one.buckets == {bucket_index(0.003): 2, bucket_index(0.5): 1}


def test_an_interval_with_nothing_new_has_no_buckets() -> None:
    hist = Histogram()
    hist.record(0.01)
    earlier = Histogram.from_json(hist.to_json())
    hist.record(0.2)
    delta = hist.minus(earlier)
    assert delta.buckets == {bucket_index(0.2): 1} and delta.count == 1 and delta.total == pytest.approx(0.2)
    nothing = hist.minus(Histogram.from_json(hist.to_json()))
    assert nothing.buckets == {} and nothing.count == 0


def test_a_percentile_in_a_low_bucket_is_that_buckets_midpoint() -> None:
    hist = Histogram()
    hist.record(MIN_S * GROWTH * 1.0001)  # bucket 1
    hist.record(0.1)
    low, _ = bucket_bounds(1)
    assert hist.percentile(50) == pytest.approx(low * (1 + GROWTH) / 2, rel=1e-12)
    assert bucket_bounds(bucket_index(0.1))[0] * (1 + GROWTH) / 2 > 0.1
    assert hist.percentile(100) == 0.1  # its bucket's midpoint lies past the largest value: the value, then


def test_samples_summed_at_once_are_the_histograms_merged_one_by_one() -> None:
    # bench.analysis.histbuckets.summed adds the samples' interval histograms with numpy; Histogram.merge does it
    # bucket by bucket. Intervals with values under MIN_S, shared buckets, one empty field and a missing one.
    from bench.analysis.histbuckets import BucketCounts, summed
    from bench.results.samples import SampleHistogram

    intervals = [[5e-7, 0.001, 0.001], [0.0012, 0.5], [], [0.001, 2.0, 2.0000001]]
    merged = Histogram()
    fields: list[object] = [None]
    for values in intervals:
        hist = Histogram()
        for value in values:
            hist.record(value)
        merged.merge(hist)
        fields.append(SampleHistogram.of(hist.to_json()))
    total = summed(fields)
    assert total is not None
    assert (total.buckets, total.count, total.max) == (merged.buckets, merged.count, merged.max)
    assert total.total == pytest.approx(merged.total, rel=1e-12)
    assert summed([None, "not a histogram"]) is None
    # As one group of bucket counts, it ranks as the histogram does.
    counts = BucketCounts.of_histogram(total)
    assert counts.total == merged.count and counts.max_s == merged.max
    for q in (1, 25, 50, 75, 95, 99, 100):
        assert counts.percentile(q) == merged.percentile(q), q


def test_summed_buckets_far_apart_are_counted_as_well() -> None:
    # Past _DENSE_BUCKETS between the lowest and the highest index, summed sorts the keys rather than count them in
    # one array: the same buckets either way.
    from bench.analysis.histbuckets import summed
    from bench.results.samples import SampleHistogram

    fields = [SampleHistogram.of({"count": 3, "sum_s": 1.0, "max_s": 0.5, "buckets": {"-1": 1, "200000": 2}}),
              SampleHistogram.of({"count": 2, "sum_s": 1.0, "max_s": 0.7, "buckets": {"5": 1, "200000": 1}})]
    total = summed(fields)
    assert total is not None and total.buckets == {-1: 1, 5: 1, 200000: 3}
    assert (total.count, total.total, total.max) == (5, 2.0, 0.7)


@pytest.mark.parametrize("n", [20, 1000, 2000, 3000, 10_000])
def test_a_percentile_ranks_as_the_raw_values_do(n: int) -> None:
    """Rank ceil(p·n / 100) exactly, as bench.analysis.stats.nearest_rank on the raw values: in floating point
    99.9 / 100 · 1000 is 999.0000000000001, which once ranked the 99.9th percentile one value too high. One value per
    bucket, so a rank off by one reads another bucket; the report's BucketCounts ranks the same way."""
    from bench.analysis.histbuckets import BucketCounts
    from bench.analysis.stats import nearest_rank

    values = [MIN_S * GROWTH ** (i + 0.5) for i in range(n)]  # the middle of every bucket from 1 µs
    hist = Histogram()
    for v in values:
        hist.record(v)
    for p in (50, 95, 99, 99.9):
        expected = nearest_rank(values, p)
        assert expected is not None
        assert bucket_index(hist.percentile(p)) == bucket_index(expected), (n, p)
        assert BucketCounts.of_histogram(hist).percentile(p) == hist.percentile(p), (n, p)


def test_summary_milliseconds_keep_four_significant_digits() -> None:
    """summary.json's ms: 3 decimals, and 4 significant digits under 1 ms, so a 2.49 µs wait is not 0.002 (20% off)
    and every figure is within 0.05% of the histogram's reading, well inside its own 0.5%."""
    from bench.analysis.stats import ms, rounded

    assert ms(2.4855e-6) == 0.002486 and ms(0.0149) == 14.9 and ms(1.8727484) == 1872.748 and ms(0.0) == 0.0
    assert rounded(0.00392821, 4) == 0.003928 and rounded(249674.37029, 4) == 249674.3703
    for i in range(-1, 2000, 7):
        seconds = 0.0 if i < 0 else MIN_S * GROWTH**i * (1 + GROWTH) / 2
        assert ms(seconds) == pytest.approx(seconds * 1000, rel=5e-4, abs=5e-4 if seconds >= 1e-3 else 0), seconds
