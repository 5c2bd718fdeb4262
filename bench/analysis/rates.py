"""Figures per request that follow from the code, not from the runner's speed: checkouts per request, failures by
cause, checkout timeouts, GC reclaims and invalidated connections per 1,000 requests, and the pool's busiest moment
against its capacity.

bench.analysis.summary adds them to each app's figures (``add_rates``); bench compare's default gates judge them.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

PER = 1000  # rare events are counted per 1,000 requests: readable where per request they would be 0.000x
# The request log's error text: "LocustBadStatusCode: URL http://…: code=500" (FastHttpUser), "HTTPError: 500 Server
# Error: …" (HttpUser). A status is the cause; any other failure is known by its exception's name.
_STATUS = re.compile(r"(?:\bcode=|^HTTPError:\s*)(\d{3})\b")
_NAME = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*:")


def failure_cause(error: str) -> str:
    """``HTTP 500`` for an error status, else the exception's name (``ConnectionRefusedError``), else ``unknown``."""
    status = _STATUS.search(error)
    if status:
        return f"HTTP {status.group(1)}"
    name = _NAME.match(error)
    return name.group(1).rsplit(".", 1)[-1] if name else (error.strip()[:40] or "unknown")


def failures_by_cause(answered: pd.DataFrame) -> dict[str, int]:
    """Failed rows of the request log per cause, most frequent first (a tie by name)."""
    if answered.empty:
        return {}
    failed = answered.loc[answered["failed"] == 1, "error"].astype(str)
    counts = failed.map(failure_cause).value_counts()
    return {str(cause): int(n) for cause, n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))}


def per_thousand(count: float | None, requests: float | None) -> float | None:
    """``count`` per 1,000 requests; None without requests to divide by."""
    if count is None or not requests:
        return None
    return round(count * PER / requests, 4)


def checkouts_per_request(pool: dict[str, Any], served: int) -> float | None:
    """Every checkout of the app's pool (as of the collector's last reading, in the cool-down) over every request
    the app was sent: those answered or failed, and those Locust stopped waiting for, which the app serves in the
    cool-down. Over a stretch of the load instead, a checkout made while its request queued before the stretch
    and answered in it counts on one side only: the bad long-session twin's 1 read as 1.27 in a 4 s run."""
    checkouts = pool.get("checkouts")
    return round(float(checkouts) / served, 4) if checkouts is not None and served else None


def add_rates(app: dict[str, Any], answered: pd.DataFrame) -> None:
    """Write the figures into one app's summary (its ``pool`` block too, when it has one)."""
    requests = app.get("requests")
    causes = failures_by_cause(answered)
    app["failures_by_cause"] = causes
    app["failures_per_1k_requests"] = {cause: per_thousand(n, requests) for cause, n in causes.items()}
    pool = app.get("pool")
    if not isinstance(pool, dict):
        return
    capacity = pool.get("capacity") or 0
    served = int(app.get("requests_recorded") or 0) + int(app.get("requests_unfinished") or 0)
    pool["checkouts_per_request"] = checkouts_per_request(pool, served)
    pool["checked_out_share"] = round(pool.get("checked_out_max", 0) / capacity, 4) if capacity else None
    pool["timeouts_per_1k_requests"] = per_thousand(pool.get("timeouts"), requests)
    pool["reclaimed_per_1k_requests"] = per_thousand(pool.get("reclaimed"), requests)
    pool["invalidated_per_1k_requests"] = per_thousand(pool.get("invalidated"), requests)
