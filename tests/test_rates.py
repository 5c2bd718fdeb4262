"""Figures per request (bench.analysis.rates): failure causes read from the request log's error text, and, end to
end, every rate recomputed from a real run's raw files and set against a second source that counts the same events.

A bad long-session run with a short pool timeout: each checkout that times out is a 500 to the client, a
"QueuePool limit" line in the app's log and a timeout in the pool's counters; three sources, one count.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bench.analysis.rates import add_rates, checkouts_per_request, failure_cause, failures_by_cause, per_thousand
from tests.conftest import run_bench


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        ("LocustBadStatusCode: URL http://127.0.0.1:45591/orders/739/checkout: code=500", "HTTP 500"),
        ("HTTPError: 503 Server Error: Service Unavailable for url: http://x/y", "HTTP 503"),
        ("ConnectionRefusedError: [Errno 111] Connection refused", "ConnectionRefusedError"),
        ("http.client.RemoteDisconnected: Remote end closed connection without response", "RemoteDisconnected"),
        ("WebSocketConnectionClosedException: socket is already closed.", "WebSocketConnectionClosedException"),
        ("", "unknown"),
        ("   ", "unknown"),
        ("the upstream went away", "the upstream went away"),  # neither a status nor an exception's name
        ("x" * 50 + " no name and no status", "x" * 40),
    ],
)
def test_failure_cause(error: str, cause: str) -> None:
    assert failure_cause(error) == cause


def test_failures_by_cause_counts_failed_rows_most_frequent_first() -> None:
    frame = pd.DataFrame(
        {
            "failed": [1, 0, 1, 1, 1, 0],
            "error": [
                "LocustBadStatusCode: URL /a: code=500",
                "",
                "ConnectionResetError: reset",
                "LocustBadStatusCode: URL /b: code=500",
                "LocustBadStatusCode: URL /b: code=503",
                "",
            ],
        }
    )
    assert list(failures_by_cause(frame).items()) == [("HTTP 500", 2), ("ConnectionResetError", 1), ("HTTP 503", 1)]
    assert failures_by_cause(frame.iloc[0:0]) == {}
    assert per_thousand(3, 1500) == 2.0 and per_thousand(3, 0) is None


def test_causes_tied_in_count_are_in_name_order_whatever_order_they_came_in() -> None:
    frame = pd.DataFrame({"failed": [1, 1, 1, 1], "error": ["code=503", "TimeoutError: t", "code=503", "BError: b"]})
    assert list(failures_by_cause(frame).items()) == [("HTTP 503", 2), ("BError", 1), ("TimeoutError", 1)]


def test_rates_per_thousand_and_per_request_keep_four_decimals_and_need_a_count_and_a_divisor() -> None:
    assert per_thousand(1, 3) == 333.3333 and per_thousand(None, 100) is None and per_thousand(2, None) is None
    assert checkouts_per_request({"checkouts": 7}, 3) == 2.3333
    assert checkouts_per_request({"checkouts": 7}, 0) is None and checkouts_per_request({}, 10) is None


@pytest.mark.parametrize(
    ("app", "pool", "expected"),
    [
        # served = answered + unfinished (the app serves the unfinished ones in the cool-down)
        ({"requests": 10, "requests_recorded": 10, "requests_unfinished": 4},
         {"capacity": 5, "checked_out_max": 3, "checkouts": 28},
         {"checkouts_per_request": 2.0, "checked_out_share": 0.6}),
        ({"requests": 10, "requests_recorded": 10}, {"capacity": 3, "checked_out_max": 2, "checkouts": 20},
         {"checkouts_per_request": 2.0, "checked_out_share": 0.6667}),
        ({"requests": 0, "requests_recorded": 0, "requests_unfinished": 4}, {"capacity": 5, "checkouts": 8},
         {"checkouts_per_request": 2.0, "checked_out_share": 0.0}),
        ({"requests": 10, "requests_recorded": 10}, {"capacity": None, "checked_out_max": 2, "checkouts": 10},
         {"checkouts_per_request": 1.0, "checked_out_share": None}),
        ({"requests": 10, "requests_recorded": 10}, {"capacity": 0, "checked_out_max": 2, "checkouts": 10},
         {"checkouts_per_request": 1.0, "checked_out_share": None}),
    ],
)
def test_pool_rates_worked_out_by_hand(app: dict[str, Any], pool: dict[str, Any], expected: dict[str, Any]) -> None:
    app = {**app, "pool": dict(pool)}
    add_rates(app, pd.DataFrame({"failed": pd.Series([], dtype=int), "error": pd.Series([], dtype=str)}))
    assert {key: app["pool"][key] for key in expected} == expected
    assert app["failures_by_cause"] == {} and app["failures_per_1k_requests"] == {}


def _causes_from_log(path: Path) -> tuple[dict[str, int], int, int]:
    """(failed rows by cause, rows answered or failed, rows unfinished), read with the csv module on its own rule."""
    causes: dict[str, int] = {}
    answered = unfinished = 0
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["request_type"] == "UNFINISHED":
                unfinished += 1
                continue
            answered += 1
            if row["failed"] == "1":
                code = re.search(r"code=(\d+)", row["error"])
                cause = f"HTTP {code.group(1)}" if code else row["error"].split(":")[0]
                causes[cause] = causes.get(cause, 0) + 1
    return causes, answered, unfinished


@pytest.mark.e2e
def test_rates_agree_with_the_raw_files_and_a_second_source(tmp_path: Path, pg_home: Path) -> None:
    out = tmp_path / "timeouts"
    # 50 users queue ~1 s for 5 connections each held 110 ms: a 0.3 s pool timeout turns many checkouts into 500s.
    result, summary = run_bench("long-session", out, pg_home, app="bad", duration_s="5s", pool_timeout_s=0.3)
    assert result.exit_code in (0, 1), result.error
    bad: dict[str, Any] = summary["apps"]["bad"]
    causes, answered, unfinished = _causes_from_log(out / "bad" / "requests.csv")
    assert bad["failures_by_cause"] == causes and causes.get("HTTP 500", 0) > 10, causes
    assert bad["failures_per_1k_requests"] == {c: round(n * 1000 / bad["requests"], 4) for c, n in causes.items()}
    pool = bad["pool"]
    # The pool's timeouts, the app log's "QueuePool limit" lines, the client's 500s: the same events.
    log_lines = len(
        re.findall(r"QueuePool limit of size \d+ overflow -?\d+ reached", (out / "bad" / "app.log").read_text())
    )
    assert pool["timeouts"] == log_lines
    # The client saw a 500 for each but those of requests it stopped waiting for (served in the cool-down).
    assert causes["HTTP 500"] <= pool["timeouts"] <= causes["HTTP 500"] + unfinished
    assert pool["timeouts_per_1k_requests"] == round(pool["timeouts"] * 1000 / bad["requests"], 4)
    # Checkouts per request: the pool's last count in samples.jsonl over every request the log holds.
    last = [json.loads(line) for line in (out / "bad" / "samples.jsonl").read_text().splitlines()]
    checkouts = [s["pool_checkouts"] for s in last if s.get("pool_checkouts") is not None][-1]
    assert pool["checkouts"] == checkouts
    assert pool["checkouts_per_request"] == pytest.approx(checkouts / (answered + unfinished), abs=1e-4)
    assert pool["checked_out_share"] == pool["checked_out_max"] / pool["capacity"]


@pytest.mark.e2e
def test_the_culprit_in_one_request_in_k(tmp_path: Path, pg_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """BENCH_APP_HOLD_EVERY=4: 3 requests in 4 take the correct twin's two short sessions, 1 the held one; 1.75
    checkouts per request, where the culprit alone makes 1 and the twin 2."""
    monkeypatch.setenv("BENCH_APP_HOLD_EVERY", "4")
    out = tmp_path / "quarter"
    result, summary = run_bench("long-session", out, pg_home, app="bad", duration_s="4s", users=10)
    assert result.exit_code in (0, 1), result.error
    pool = summary["apps"]["bad"]["pool"]
    assert pool["checkouts_per_request"] == pytest.approx(1.75, abs=0.02)
