"""The rules of ``bench lint``, one per seed rule, each tied to the scenario that measures its cost.

The costs are the README's scenario table (one 15 s run each, good → bad); ``tests/test_lint.py`` checks they agree.
"""

from __future__ import annotations

from bench.lint.finding import Rule

RULES: dict[str, Rule] = {
    rule.id: rule
    for rule in (
        Rule(
            "SB001",
            "session-across-slow-await",
            "session held across an await of non-database work inside its scope",
            "long-session",
            "430 → 47 req/s (99% of the Little's-law ceiling); pool wait p95 8.7 → 1695 ms",
        ),
        Rule(
            "SB002",
            "session-handed-to-task",
            "request or Depends session handed to a background task, a task or a thread",
            "background-task",
            "0 → 61 acknowledged-but-lost writes; hold p50 1.6 → 156 ms",
        ),
        Rule(
            "SB003",
            "session-around-websocket-loop",
            "session opened around a websocket receive loop",
            "websocket-loop",
            "0 → 90 sockets closed with 1011; idle in tx past threshold 0 → 68 s",
        ),
        Rule(
            "SB004",
            "session-never-closed",
            "session created without `async with` or a close",
            "unclosed-session",
            "760 → 1.4 req/s; 0 → 160 checkout timeouts; 0 → 15 GC-terminated connections",
        ),
        Rule(
            "SB005",
            "session-used-after-its-block",
            "session used after its `async with` block",
            "use-after-close",
            "297 → 1.4 req/s; 0 → 15 leaked connections reclaimed by the GC",
        ),
        Rule(
            "SB006",
            "unshielded-close",
            "hand-written `__aexit__` or close awaiting without a shield",
            "cancelled-close",
            "5 → 1333 connections opened (one per request); 0 → 1333 invalidated",
        ),
        Rule(
            "SB007",
            "scoped-session-scope",
            "`async_scoped_session` whose scope is not per request or whose `remove()` is not in `finally`",
            "scoped-session",
            "0 → 19 checkout timeouts, whole pool idle in tx after load",
        ),
        Rule(
            "SB008",
            "session-kept-by-stream",
            "session kept open by a streaming generator",
            "streaming-session",
            "26 → 4.7 req/s (95% of the Little's-law ceiling, 5 connections / 1 s stream)",
        ),
    )
}
