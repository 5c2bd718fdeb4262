"""The report's opening: what the scenario does, where its anti-pattern and the correct twin are in the code, and a
one-line verdict built from the run's figures. bench.render.run_report puts it first.
"""

from __future__ import annotations

import math
import re
from functools import cache
from pathlib import Path
from typing import Any

from bench.config.catalog import load_catalog
from bench.errors import UsageError
from bench.render.page import CodeRef, Pattern, Story
from bench.results.metric import Metric, Shown
from bench.results.metrics import COMPARED, SHOWN, times, value_at

# The apps' sources, next to the bench package in a checkout and in an installed wheel alike.
APPS_ROOT = Path(__file__).resolve().parents[2] / "target_apps"
MARKER = re.compile(r"#\s*(ANTI-PATTERN|CORRECT)\(([\w-]+)\):?\s*(.*)")
ROUTE = re.compile(r"""@router\.(get|post|put|patch|delete|websocket)\(\s*["']([^"']+)["']""")
MARKED_APP = {"ANTI-PATTERN": "bad", "CORRECT": "good"}


def build_story(scenario: str, apps: dict[str, dict[str, Any]]) -> Story:
    entry = _catalog().get(scenario)
    routes = list(dict.fromkeys(r for figures in apps.values() for r in _obj(figures.get("endpoints"))))
    return Story(
        description=entry[0] if entry else "",
        symptom=entry[1] if entry else "",
        verdict=verdict(apps),
        patterns=patterns(scenario, routes),
    )


@cache
def _catalog() -> dict[str, tuple[str, str]]:
    try:
        return {name: (s.description, s.symptom) for name, s in load_catalog().items()}
    except UsageError:  # a catalog that cannot be read costs the report its opening lines, not the report
        return {}


# --- where in the code --------------------------------------------------------------------------


def patterns(scenario: str, routes: list[str]) -> tuple[Pattern, ...]:
    """The scenario's own markers (its id), else those of the modules serving the run's routes (``mixed``)."""
    markers = _markers()
    if scenario in markers:
        return (Pattern(name=scenario, routes=(), code=markers[scenario]),)
    served = _served()
    found: dict[str, list[str]] = {}
    for route in routes:
        for name in served.get(route, ()):
            found.setdefault(name, []).append(route)
    return tuple(
        Pattern(name=name, routes=tuple(rs), code=markers[name]) for name, rs in found.items() if name in markers
    )


@cache
def _markers() -> dict[str, tuple[CodeRef, ...]]:
    """Every ``# ANTI-PATTERN(<id>)`` in target_apps/bad and ``# CORRECT(<id>)`` in target_apps/good, with the
    comment's text (its continuation lines included), bad first."""
    out: dict[str, list[CodeRef]] = {}
    for app in ("bad", "good"):
        for path in sorted((APPS_ROOT / app).glob("*.py")):
            lines = path.read_text(encoding="utf-8").splitlines()
            for number, line in enumerate(lines, start=1):
                match = MARKER.search(line)
                if match is None or MARKED_APP[match.group(1)] != app:
                    continue
                text = [match.group(3).strip()]
                for following in lines[number:]:
                    stripped = following.strip()
                    if not stripped.startswith("#") or MARKER.search(stripped):
                        break
                    text.append(stripped.lstrip("#").strip())
                where = f"{APPS_ROOT.name}/{app}/{path.name}:{number}"
                out.setdefault(match.group(2), []).append(CodeRef(app=app, where=where, text=" ".join(text)))
    return {name: tuple(refs) for name, refs in out.items()}


@cache
def _served() -> dict[str, tuple[str, ...]]:
    """Route name as Locust names it ("POST /orders/{item_id}/checkout") -> the marker ids of the modules serving
    it in the bad app."""
    out: dict[str, list[str]] = {}
    for path in sorted((APPS_ROOT / "bad").glob("*.py")):
        source = path.read_text(encoding="utf-8")
        ids = list(dict.fromkeys(m.group(2) for m in MARKER.finditer(source) if m.group(1) == "ANTI-PATTERN"))
        for method, route in ROUTE.findall(source):
            name = f"{'WS' if method == 'websocket' else method.upper()} {route}"
            out.setdefault(name, []).extend(ids)
    return {route: tuple(dict.fromkeys(ids)) for route, ids in out.items()}


# --- the verdict ---------------------------------------------------------------------------------

# Connections that never came back: the garbage collector's reclaims, and those still idle in transaction once the
# load stopped. The pool's Little's-law ceiling counts the holds that ended, so a leak's connection is out of it:
# with leaks, how full that ceiling ran says nothing of why checkouts waited.
LEAKS = ("pool.reclaimed", "db.idle_in_tx_after_load")
TIMEOUTS = "pool.timeouts"
# At or past this share of its ceiling the pool is the bound, and checkout timeouts follow from it.
POOL_BOUND = 0.8


def verdict(apps: dict[str, dict[str, Any]]) -> str:
    """One line from the figures: the connection time per request -> what bound the pool (how full it ran; or the
    connections it lost to leaks, and the checkouts that timed out) -> what it cost. With good and bad, about bad
    against good; with one app, about that app."""
    names = list(apps)
    if not names:
        return ""
    subject = "bad" if "bad" in apps and len(names) == 2 else names[-1]
    other = next((n for n in names if n != subject), None)
    me, them = apps[subject], apps[other] if other else None
    causes, named = _causes(subject, me, them)
    steps = [s for s in (_hold(subject, me, other, them), *causes) if s]
    steps.append(_outcome(subject, me, other, them))
    alarms = _alarms(me, them, named)
    return " → ".join(steps) + (f"; also {alarms}" if alarms else "")


def _causes(subject: str, me: dict[str, Any], them: dict[str, Any] | None) -> tuple[list[str], set[str]]:
    """The steps between the hold and the outcome, and the figures they name. Leaked connections, then the
    checkout timeouts, when the subject has more of them than the other app; the pool's share of its ceiling when
    no leak makes it meaningless and, with timeouts, when it shows the pool as the bound (below that, the timeouts
    are the cause and the share would blame the pool for them)."""
    leaks = [m for m in (_metric(p) for p in LEAKS) if m is not None and _worse(me, them, m.path)]
    timeouts = _metric(TIMEOUTS)
    starved = timeouts is not None and _worse(me, them, timeouts.path)
    used = _at(me, "pool.ceiling_utilisation")
    steps: list[str] = []
    if leaks:
        steps.append(f"{subject} leaks connections: " + ", ".join(_count(me, m) for m in leaks))
    elif not starved or (used is not None and used >= POOL_BOUND):
        steps.append(_pool(me))
    if starved and timeouts is not None:
        steps.append(_count(me, timeouts))
    return steps, {m.path for m in leaks} | ({TIMEOUTS} if starved else set())


def _worse(me: dict[str, Any], them: dict[str, Any] | None, path: str) -> bool:
    value, base = _at(me, path), _at(them, path) if them is not None else None
    return bool(value and value > 0 and (base is None or base < value))


def _count(app: dict[str, Any], metric: Metric) -> str:
    return f"{metric.number_format.format(_at(app, metric.path) or 0)} {metric.label}"


@cache
def _metric(path: str) -> Metric | None:
    return next((m for m in COMPARED if m.path == path), None)


def _hold(subject: str, me: dict[str, Any], other: str | None, them: dict[str, Any] | None) -> str:
    # A summary from before the per-request figure existed has the mean hold per checkout, nearly the same for
    # routes that check out once.
    path, per = (
        ("pool.hold_ms_per_request", "request")
        if _at(me, "pool.hold_ms_per_request") is not None
        else ("pool.hold_ms.mean", "checkout")
    )
    held = _at(me, path)
    if held is None:
        return ""
    base = _at(them, path) if them is not None else None
    notes = [f"{other} {base:,.1f} ms"] if base is not None else []
    shares = _obj(_obj(me.get("pool")).get("hold_share_by_route"))
    if len(shares) >= 2:  # several routes: name the one that holds the pool most
        route, share = next(iter(shares.items()))
        notes.append(f"{route} holds {100 * float(share):.0f}% of {subject}'s connection time")
    return f"{subject} holds a connection {held:,.1f} ms per {per}" + (f" ({'; '.join(notes)})" if notes else "")


def _pool(me: dict[str, Any]) -> str:
    used, ceiling = _at(me, "pool.ceiling_utilisation"), _at(me, "pool.littles_law_ceiling_rps")
    if used is None or ceiling is None:
        return ""
    return f"pool at {100 * used:.0f}% of its Little's-law ceiling ({ceiling:,.1f} req/s)"


def _outcome(subject: str, me: dict[str, Any], other: str | None, them: dict[str, Any] | None) -> str:
    rps, p95 = _at(me, "throughput_rps"), _at(me, "latency_ms.p95")
    base_rps, base_p95 = (_at(them, "throughput_rps"), _at(them, "latency_ms.p95")) if them else (None, None)
    if rps is None:
        return f"{subject}: no throughput figure"
    if other is None or base_rps is None:
        return f"{rps:,.1f} req/s" + (f", latency p95 {p95:,.1f} ms" if p95 is not None else "")
    if rps > 0 and base_rps / rps >= 1.1:
        text = f"{times(base_rps / rps)}x less throughput than {other} ({rps:,.1f} vs {base_rps:,.1f} req/s)"
    elif base_rps > 0 and rps / base_rps >= 1.1:
        text = f"{times(rps / base_rps)}x more throughput than {other} ({rps:,.1f} vs {base_rps:,.1f} req/s)"
    elif rps == 0:
        text = f"no successful response ({other} {base_rps:,.1f} req/s)"
    else:
        text = f"throughput within 10% of {other}'s ({rps:,.1f} vs {base_rps:,.1f} req/s)"
    if p95 is not None and base_p95:
        # As the checks show a ratio: the check's 9.15× and the story's 9.1x once sat on one page.
        text += f", latency p95 {times(p95 / base_p95)}x ({p95:,.1f} vs {base_p95:,.1f} ms)"
    return text


def _alarms(me: dict[str, Any], them: dict[str, Any] | None, named: set[str]) -> str:
    """The counts that should be 0 and are not (failures, timeouts, lost writes...), labelled as the registry
    labels them; only those the other app has fewer of, and not those the chain named already."""
    found = []
    for metric in SHOWN:
        if (metric.shown is not Shown.NONZERO and metric.path != "failures") or metric.path in named:
            continue
        if _worse(me, them, metric.path):
            found.append(_count(me, metric))
    return ", ".join(found)


def _at(app: dict[str, Any] | None, path: str) -> float | None:
    value = value_at(app, path.split(".")) if app is not None else None
    return value if value is not None and math.isfinite(value) else None


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
