"""The lines of the app behind long holds: summary.json's ``pool.hold_sites`` from the pool endpoint's rows, and
the sites a run has that another had not. ``summary`` builds the table; ``compare`` and the renderers read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TOP_SITES = 50  # rows summary.json keeps, most held first (as many as the pool endpoint serves)
# A new site below this much held time is a stray hold (a loop-lag spike past the threshold), not news: the
# noise floor bench compare gives connection-seconds.
NEW_SITE_MIN_S = 0.5

# The figures of a row, in summary.json's order (docs/metrics.md defines each).
_TEXT = ("site", "function", "code", "route", "checkout_site", "checkout_function", "checkout_code")


def hold_sites(pool: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The top rows of the pool endpoint's ``hold_sites``, most held first (then most idle), each with its share of
    all time held past the threshold or lost; None when the app's instrumentation did not look for them (older, or
    ``long_hold_ms=None``)."""
    block = pool.get("hold_sites")
    if not isinstance(block, dict):
        return None
    rows = [r for r in block.get("sites") or [] if isinstance(r, dict)]
    rows.sort(key=lambda r: (-_num(r.get("held_s")), -_num(r.get("idle_s"))))
    total = sum(_num(r.get("held_s")) for r in rows)
    out = []
    for row in rows[:TOP_SITES]:
        held = _num(row.get("held_s"))
        out.append(
            {
                **{key: str(row.get(key) or "") for key in _TEXT},
                "returned": bool(row.get("returned")),
                "stack": [str(s) for s in row.get("stack") or []],
                "holds": int(_num(row.get("holds"))),
                "held_s": round(held, 3),
                "idle_s": round(_num(row.get("idle_s")), 3),
                "share": round(held / total, 4) if total > 0 else 0.0,
                "reclaimed": int(_num(row.get("reclaimed"))),
                "lost": int(_num(row.get("lost"))),
                "open": int(_num(row.get("open"))),
                "open_age_s": round(_num(row.get("open_age_s")), 3),
            }
        )
    return out


@dataclass(frozen=True)
class NewSite:
    """A line that held connections past the threshold in the current run and not in the base."""

    app: str
    site: str
    function: str
    code: str
    route: str
    held_s: float
    idle_s: float

    def describe(self) -> str:
        code = f" — {self.code}" if self.code else ""
        return (
            f"{self.app}: {self.site} in {self.function}{code} ({self.route}): {self.idle_s:.1f} s idle of "
            f"{self.held_s:.1f} s held"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "site": self.site,
            "function": self.function,
            "code": self.code,
            "route": self.route,
            "held_s": self.held_s,
            "idle_s": self.idle_s,
        }


def new_sites(app: str, base: dict[str, Any], current: dict[str, Any]) -> list[NewSite]:
    """Sites in the current app's table, held at least ``NEW_SITE_MIN_S``, that the base's has not, by file,
    function, code and route rather than line number (an edit above a site moves its line, not its code). None
    when either run did not look for sites: nothing is new against a run that could not have seen it."""
    before = (base.get("pool") or {}).get("hold_sites")
    after = (current.get("pool") or {}).get("hold_sites")
    if not isinstance(before, list) or not isinstance(after, list):
        return []
    known = {_identity(row) for row in before if isinstance(row, dict)}
    return [
        NewSite(
            app,
            str(row.get("site")),
            str(row.get("function")),
            str(row.get("code")),
            str(row.get("route")),
            _num(row.get("held_s")),
            _num(row.get("idle_s")),
        )
        for row in after
        if isinstance(row, dict) and _identity(row) not in known and _num(row.get("held_s")) >= NEW_SITE_MIN_S
    ]


def _identity(row: dict[str, Any]) -> tuple[str, str, str, str]:
    path = str(row.get("site") or "").rsplit(":", 1)[0]
    return path, str(row.get("function")), str(row.get("code")), str(row.get("route"))


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
