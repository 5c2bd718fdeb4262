"""Reads a target app's log after the run: errors, warnings and the pool's own complaints, counted.

The runner passes the counts into summary.json (``apps.<app>.app_log``) so checks can gate on them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

# kind -> pattern, one count per matching line; a line may count for several kinds.
PATTERNS: dict[str, re.Pattern[str]] = {
    "invalidations": re.compile(r"Invalidate connection"),
    "unhandled_errors": re.compile(r"Exception in ASGI application|Exception in callback|Task exception was never"),
    "timeouts": re.compile(r"QueuePool limit of size \d+ overflow -?\d+ reached"),
    "concurrent_use": re.compile(r"concurrent operations are not permitted|another operation is in progress"),
    "illegal_state": re.compile(r"IllegalStateChangeError"),
    "warnings": re.compile(r"\bSAWarning\b|\bWARNING\b"),
    "errors": re.compile(r"\bERROR\b"),
}
# SQLAlchemy tells of each garbage-collector cleanup twice: its pool logger's error line and an SAWarning with the
# same message. Each form is counted apart and a cleanup is one of each; the larger count is the cleanups, so
# silencing either (a warnings filter, a logging config) does not hide them.
_GC = re.compile(r"garbage collector is trying to clean up non-checked-in connection")
_GC_WARNING = re.compile(r"\bSAWarning\b")
_EXCEPTION_LINE = re.compile(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception|Warning|Exit))\b:? ?(.*)$")


def scan(path: Path, examples: int = 5) -> dict[str, Any]:
    counts = dict.fromkeys(("gc_cleanups", *PATTERNS), 0)
    seen: dict[str, int] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return {**counts, "lines": 0, "exceptions": {}}
    lines = text.splitlines()
    gc_logged = gc_warned = 0
    for line in lines:
        for kind, pattern in PATTERNS.items():
            if pattern.search(line):
                counts[kind] += 1
        if _GC.search(line):
            if _GC_WARNING.search(line):
                gc_warned += 1
            else:
                gc_logged += 1
        match = _EXCEPTION_LINE.match(line.strip())
        if match:
            key = f"{match.group(1)}: {match.group(2)[:120]}".rstrip(": ")
            seen[key] = seen.get(key, 0) + 1
    counts["gc_cleanups"] = max(gc_logged, gc_warned)
    top = dict(sorted(seen.items(), key=lambda kv: -kv[1])[:examples])
    return {**counts, "lines": len(lines), "exceptions": top}
