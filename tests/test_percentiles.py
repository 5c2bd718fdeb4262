"""One percentile rule everywhere (nearest rank): the summary, the capacity steps, the report's per-second chart,
the pacer's lateness and the pool histograms all give a value some sample really had, at rank ceil(p·n / 100).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bench.analysis.stats import nearest_rank
from bench.analysis.timeline import Timeline
from bench.instrument import Histogram

TWENTY = [float(v) for v in range(1, 21)]  # n = 20: p95 is the 19th value, not the largest


def test_nearest_rank_is_numpys_inverted_cdf() -> None:
    # bench.analysis.summary computes the run's latency percentiles with numpy's inverted_cdf.
    rng = np.random.default_rng(12)
    for n in range(1, 120):
        values = rng.exponential(100.0, size=n)
        for p in (50, 90, 95, 99):
            assert nearest_rank(values, p) == np.percentile(values, p, method="inverted_cdf"), (n, p)
    assert nearest_rank(TWENTY, 95) == 19.0 and nearest_rank(TWENTY, 50) == 10.0 and nearest_rank([], 95) is None


def test_the_pool_histograms_rank_the_same_way() -> None:
    for n in (1, 7, 20, 101):
        values = [0.001 * (1.5 ** k) for k in range(n)]  # each value in a bucket of its own
        hist = Histogram()
        for v in values:
            hist.record(v)
        for p in (50, 95, 99):
            expected = nearest_rank(values, p)
            assert expected is not None and hist.percentile(p) == pytest.approx(expected, rel=0.01), (n, p)


def test_the_per_second_chart_p95_is_not_the_maximum() -> None:
    requests = pd.DataFrame({"end_s": [0.05 * i for i in range(20)], "response_time_ms": TWENTY[::-1],
                             "failed": [0] * 20, "name": ["GET /x"] * 20})
    timeline = Timeline(requests=requests, samples=pd.DataFrame({"x": []}), load_end_s=None, end_s=1.0,
                        load_window_s=1.0)
    second = timeline.per_second()
    assert second.ok_rps.tolist() == [20.0] and second.p95_ms.tolist() == [19.0]


def test_the_pacers_lateness_uses_the_same_rule() -> None:
    # The pacer runs inside Locust (gevent) and imports nothing from bench: ask it in a process of its own.
    script = (
        "import json, random\n"
        "from bench.locust_plugins.pacer import StepLog, nearest_rank\n"
        "log = StepLog(level=10.0, start=1.0, end=2.0, lateness_ms=list(range(20, 0, -1)))\n"
        "rng = random.Random(12)\n"
        "cases = [sorted(rng.uniform(0, 50) for _ in range(n)) for n in range(1, 80)]\n"
        "print(json.dumps({'step': log.to_json(0)['lateness_ms'], 'cases': cases,\n"
        "                  'picked': [[nearest_rank(c, p) for p in (50, 95, 99)] for c in cases]}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(done.stdout.strip().splitlines()[-1])
    assert data["step"] == {"p50": 10.0, "p95": 19.0, "max": 20.0}
    for values, picked in zip(data["cases"], data["picked"], strict=True):
        assert picked == [round(nearest_rank(values, p) or 0.0, 3) for p in (50, 95, 99)]
