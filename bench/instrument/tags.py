"""Statement tags: each statement prefixed with the route and the app's line that checked its connection out, so
the database's own view names them. ``pool.instrument`` calls ``tag_statements``; apps may call it alone.
"""

from __future__ import annotations

import weakref
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.instrument.asgi import current_route
from bench.instrument.frames import RESOLVER, CodePosition
from bench.instrument.holds import HOLD_KEY, Hold

_MAX_COMMENTS = 10_000  # (route, checkout line) comments kept; past it, each new hold makes its own
# Engines whose statements are tagged already: the README's lines once called tag_statements next to instrument().
_tagged: weakref.WeakSet[Any] = weakref.WeakSet()


def tag_statements(engine: AsyncEngine) -> None:
    """Prefix every statement with a comment in the style of sqlcommenter,
    ``/*route='GET /items/{item_id}',site='app/items.py:41'*/``: the route that checked the connection out and
    the line of the app that did, so the database's own view (pg_stat_activity.query of a connection idle in
    transaction, a leaked one included) names both. A prefix, not sqlcommenter's suffix: the server keeps only
    the start of a long statement (track_activity_query_size). ``instrument`` calls this unless told not to;
    calling it again does nothing.

    Through the dialect's ``do_execute`` events, not the engine's ``before_cursor_execute``: an engine with any
    listener of its own makes SQLAlchemy dispatch events on every connection it hands out, statements or not
    (about 8 µs a checkout, measured), where these run only when a statement does.
    """
    sync_engine = engine.sync_engine
    if sync_engine in _tagged:
        return
    _tagged.add(sync_engine)
    dialect = sync_engine.dialect
    # A driver with the format paramstyle reads "%" in a statement as a placeholder.
    percent = dialect.paramstyle in ("format", "pyformat")

    # One comment per route and checkout line, made once: a hold takes it at its first statement.
    comments: dict[tuple[str, CodePosition | None], str] = {}

    def tagged(statement: str, context: Any) -> str:
        hold = _hold_of(context)
        if hold is None:
            return _comment(current_route(), None, percent) + statement
        if hold.tag is None:
            key = (hold.route, hold.first)
            tag = comments.get(key)
            if tag is None:
                tag = _comment(hold.route, RESOLVER.site(hold.first).where if hold.first else None, percent)
                if len(comments) < _MAX_COMMENTS:
                    comments[key] = tag
            hold.tag = tag
        return hold.tag + statement

    @event.listens_for(sync_engine, "do_execute")
    def _execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        dialect.do_execute(cursor, tagged(statement, context), parameters, context)
        return True

    @event.listens_for(sync_engine, "do_executemany")
    def _executemany(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        dialect.do_executemany(cursor, tagged(statement, context), parameters, context)
        return True

    @event.listens_for(sync_engine, "do_execute_no_params")
    def _execute_no_params(cursor: Any, statement: str, context: Any) -> bool:
        dialect.do_execute_no_params(cursor, tagged(statement, context), context)
        return True


def _hold_of(context: Any) -> Hold | None:
    """The hold of the connection a statement runs on (its pool record's ``info``), if the pool is instrumented."""
    try:
        hold: Hold | None = context.root_connection.info.get(HOLD_KEY)
    # No context (a statement SQLAlchemy runs for itself), the dialect's first connect (its connection has no
    # pool record), or a connection already invalidated.
    except (AttributeError, NotImplementedError, exc.SQLAlchemyError):
        return None
    return hold


def _comment(route: str, site: str | None, percent: bool) -> str:
    pairs = [(k, v) for k, v in (("route", route if route != "-" else None), ("site", site)) if v]
    if not pairs:
        return ""
    text = ",".join(f"{key}='{_escaped(value)}'" for key, value in pairs)
    return f"/*{text.replace('%', '%%') if percent else text}*/ "


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'").replace("*/", "* /")
