"""Pool metrics across the worker processes of one app (``uvicorn --workers N``): each process writes
its snapshot to a shared folder, and the pool endpoint serves their sum, whichever worker answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.instrument.histogram import Histogram

if TYPE_CHECKING:  # for annotations: the pool module brings SQLAlchemy's asyncio layer
    from bench.instrument.poolmetrics import PoolMetrics

_HISTOGRAMS = ("wait_time", "create_time", "use_time")
_BY_ROUTE = ("use_time_by_route", "wait_time_by_route")
_STALE_S = 5.0  # a snapshot this old belongs to a worker that is gone
_AGES = frozenset({"hold_open_max_s"})  # an age across workers is the oldest of them, not their sum


def write_snapshot(metrics: PoolMetrics, folder: Path) -> None:
    """This process's snapshot, written atomically (readers never see half a file)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{os.getpid()}.json"
    tmp = folder / f".{os.getpid()}.json.tmp"
    tmp.write_text(json.dumps(metrics.snapshot()), encoding="utf-8")
    os.replace(tmp, path)


async def keep_writing(metrics: PoolMetrics, folder: Path, interval_s: float = 0.1) -> None:
    """Runs for the app's lifetime (started in its lifespan); the last write happens at shutdown."""
    try:
        while True:
            await asyncio.to_thread(write_snapshot, metrics, folder)
            await asyncio.sleep(interval_s)
    finally:
        write_snapshot(metrics, folder)


def read_merged(folder: Path) -> dict[str, Any] | None:
    now = time.time()
    snapshots = []
    for path in folder.glob("*.json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if now - float(data.get("time", 0)) <= _STALE_S:
            snapshots.append(data)
    return merge(snapshots) if snapshots else None


def merge(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """Sums counters and gauges, merges histograms; peaks are summed too (an upper bound across workers), the oldest
    open hold is the oldest of any worker's.
    Every worker has its own event loop and CPU: see ``_merged_loop``."""
    out: dict[str, Any] = {**snapshots[0], "workers": len(snapshots), "time": max(s["time"] for s in snapshots)}
    loop = _merged_loop([s["loop"] for s in snapshots if isinstance(s.get("loop"), dict)])
    if loop is None:
        out.pop("loop", None)
    else:
        out["loop"] = loop
    for block in ("gauges", "counters"):
        keys = {k for s in snapshots for k in s.get(block, {})}
        out[block] = {k: (_max if k in _AGES else _sum)(s.get(block, {}).get(k) for s in snapshots)
                      for k in sorted(keys)}
    if "timeout_s" in out["gauges"]:  # a setting, the same in every worker's pool: not added up
        out["gauges"]["timeout_s"] = max(s.get("gauges", {}).get("timeout_s", 0) for s in snapshots)
    for name in _HISTOGRAMS:
        out[name] = _merged([s.get(name, {}) for s in snapshots])
    for name in _BY_ROUTE:
        routes = {r for s in snapshots for r in s.get(name, {})}
        out[name] = {r: _merged([s.get(name, {}).get(r, {}) for s in snapshots]) for r in sorted(routes)}
    if any("hold_open_s_by_route" in s for s in snapshots):
        open_by_route: dict[str, float] = {}
        for snapshot in snapshots:
            for route, seconds in (snapshot.get("hold_open_s_by_route") or {}).items():
                open_by_route[route] = open_by_route.get(route, 0.0) + float(seconds)
        out["hold_open_s_by_route"] = {route: round(v, 6) for route, v in sorted(open_by_route.items())}
    sites = [s["hold_sites"] for s in snapshots if isinstance(s.get("hold_sites"), dict)]
    if sites:
        out["hold_sites"] = _merged_sites(sites)
    if any("idle_in_tx_by_route" in s for s in snapshots):
        out["idle_in_tx_by_route"] = _merged_idle_routes([s.get("idle_in_tx_by_route", {}) for s in snapshots])
        out["idle_in_tx_by_site"] = _merged_idle_sites([s.get("idle_in_tx_by_site", []) for s in snapshots])
    return out


def _merged_idle_routes(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Every worker's exact idle in transaction of the same route added up."""
    out: dict[str, dict[str, Any]] = {}
    for part in parts:
        for route, row in part.items():
            into = out.setdefault(route, {"idle_s": 0.0, "transactions": 0})
            into["idle_s"] = _sum((into["idle_s"], row.get("idle_s")))
            into["transactions"] = _sum((into["transactions"], row.get("transactions")))
    return dict(sorted(out.items()))


def _merged_idle_sites(parts: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Rows of the same route and checkout line added up, most idle first."""
    rows: dict[tuple[Any, Any], dict[str, Any]] = {}
    for part in parts:
        for row in part:
            key = (row.get("route"), row.get("checkout_site"))
            into = rows.get(key)
            if into is None:
                rows[key] = dict(row)
                continue
            for name in ("idle_s", "transactions"):
                into[name] = _sum((into.get(name), row.get(name)))
            into["longest_idle_s"] = _max((into.get("longest_idle_s"), row.get("longest_idle_s")))
    return sorted(rows.values(), key=lambda r: -float(r.get("idle_s", 0.0)))


_SITE_KEY = ("route", "site", "returned", "checkout_site")
_SITE_SUMS = ("holds", "held_s", "idle_s", "reclaimed", "lost", "open")


def _merged_sites(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Every worker's rows of the same route, holding line and checkout line added up (the oldest open hold
    is the oldest of any worker's); the same line in two workers is the same code."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for part in parts:
        for row in part.get("sites", []):
            key = tuple(row.get(k) for k in _SITE_KEY)
            into = rows.get(key)
            if into is None:
                rows[key] = dict(row)
                continue
            for name in _SITE_SUMS:
                into[name] = _sum((into.get(name), row.get(name)))
            into["open_age_s"] = max(into.get("open_age_s", 0.0), row.get("open_age_s", 0.0))
    ordered = sorted(rows.values(), key=lambda r: (-r.get("held_s", 0.0), -r.get("idle_s", 0.0)))
    return {"threshold_s": parts[0].get("threshold_s"), "dropped": _sum(p.get("dropped") for p in parts),
            "sites": ordered}


def _merged_loop(loops: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The app's loop figures over its workers: every worker's lag ticks in one histogram (so the p95 is
    over all loops, not one), CPU seconds summed (the app's CPU in cores, up to one per worker), and
    ``workers``, the number of loops, for a per-loop figure (a loop is busy at one core, not at N)."""
    if not loops:
        return None
    out: dict[str, Any] = {
        "period_s": loops[0].get("period_s"),
        "cpu_s": _sum(loop.get("cpu_s") for loop in loops),
        "ticks": _sum(loop.get("ticks") for loop in loops),
        "workers": len(loops),
    }
    if any("lag" in loop for loop in loops):
        out["lag"] = _merged([loop.get("lag", {}) for loop in loops])
    return out


def _sum(values: Any) -> float | int:
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return sum(numbers)


def _max(values: Any) -> float | int:
    return max((v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)), default=0)


def _merged(parts: list[dict[str, Any]]) -> dict[str, Any]:
    total = Histogram()
    for part in parts:
        if part:
            total.merge(Histogram.from_json(part))
    return total.to_json()


def served(metrics: PoolMetrics, shared_dir: str | Path | None, histograms: bool = True) -> dict[str, Any] | None:
    """The figures an endpoint or a scrape serves: with ``shared_dir``, every worker's sum (None before any
    worker wrote a snapshot), whichever worker answers; without it, this process's own."""
    if shared_dir:
        return read_merged(Path(shared_dir))
    return metrics.snapshot(histograms)
