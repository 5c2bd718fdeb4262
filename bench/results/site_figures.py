"""The figures of summary.json that point at the app's code: ``pool.hold_sites`` (from the pool instrumentation)
and ``db.idle_in_tx_long_by_site`` (from the statement tags the collector reads). summary_figures places them.
"""

from __future__ import annotations

from bench.results.metric import Coverage, Direction, Metric, Window

_ROW = "pool.hold_sites[]"
_WHERE = ("One row per route, holding line and checkout line, for holds longer than the instrumentation's threshold "
          "(`long_hold_ms`; the harness passes `config.idle_threshold_ms`) and for holds of any length whose "
          "connection was invalidated in the holding task (`lost`). The row's `site` (`path:line`, the path "
          "relative to the sys.path entry it was imported from), `function` and `code` (the source line) are where "
          "the holding task sat: the innermost frame of the code that checked the connection out still running in "
          "the task, sampled every half threshold (the line it sat at longest); the checkout line when that code "
          "had returned, or its task ended, with the connection still checked out (`returned`: true: a leak, or a "
          "session something else keeps), or when no sample was taken; but a connection checked out through an "
          "`async_scoped_session`'s proxy is placed at the innermost of the app's middleware on its stack (a function "
          "taking ASGI's `scope, receive, send` or a `dispatch`'s `request, call_next`), whose request scope the "
          "registry keeps the session for and whose `remove()` returns it; a lost connection is placed at the app's "
          "innermost frame when it was invalidated (a close or statement cut short). `checkout_site`, `checkout_function`, `checkout_code` are the "
          "first frame outside SQLAlchemy, the drivers, the ASGI stack (Starlette, FastAPI, anyio, uvicorn), the "
          "standard library and the instrumentation when the connection was checked out, `stack` that frame and "
          "its callers. Rows are sorted by `held_s`, then `idle_s`; the 50 largest. Null when the app's "
          "instrumentation does not look for sites (`long_hold_ms=None`, or a version before it could)")

HOLD_SITES: tuple[Metric, ...] = (
    Metric(path=f"{_ROW}.holds", label="long holds at a site", unit="checkouts", direction=Direction.LOWER,
           window=Window.BOTH, coverage=Coverage.CHECKOUTS,
           description=f"{_WHERE}. `holds`: checkouts of the row held past the threshold, those still checked out "
                       "included."),
    Metric(path=f"{_ROW}.held_s", label="held at a site", unit="conn-s", direction=Direction.LOWER,
           window=Window.BOTH, coverage=Coverage.CHECKOUTS,
           description="Connection-seconds of the row's holds, checkout to checkin (or to the garbage collector's "
                       "reclaim), a hold still checked out counted to the last reading; the lost holds' included, "
                       "short ones too."),
    Metric(path=f"{_ROW}.idle_s", label="idle at a site", unit="conn-s", direction=Direction.LOWER,
           window=Window.BOTH, coverage=Coverage.CHECKOUTS,
           description="Connection-seconds of the row's holds in which the holding task was not in the database "
                       "(no SQLAlchemy or driver frame below the holding line): the connection idle, in transaction "
                       "once it ran a statement. Sampled every half threshold: each sample's state counts for the "
                       "time since the one before (the first for the time since the checkout), the time after the "
                       "last for that sample's state."),
    Metric(path=f"{_ROW}.share", label="share of long-hold time", unit="fraction", direction=Direction.NEITHER,
           window=Window.BOTH, coverage=Coverage.CHECKOUTS,
           description="The row's `held_s` over the sum of every row's the pool endpoint served (its 50 largest): "
                       "the row's share of the connection time held past the threshold (or lost)."),
    Metric(path=f"{_ROW}.reclaimed", label="reclaimed at a site", unit="connections", direction=Direction.LOWER,
           window=Window.BOTH, coverage=Coverage.CHECKOUTS,
           description="The row's holds ended by the garbage collector reclaiming a leaked connection (see "
                       "`pool.reclaimed`)."),
    Metric(path=f"{_ROW}.lost", label="lost at a site", unit="connections", direction=Direction.LOWER,
           window=Window.BOTH, coverage=Coverage.CHECKOUTS,
           description="The row's holds whose connection was invalidated by the holding task while checked out (a "
                       "statement or a close cut short by a cancellation or a broken socket; see "
                       "`pool.invalidated`): each costs the pool a new connection. Counted whatever the hold's "
                       "length; the time of each is in `held_s`."),
    Metric(path=f"{_ROW}.open", label="still held at a site", unit="connections", direction=Direction.LOWER,
           window=Window.BOTH, coverage=Coverage.CHECKOUTS,
           description="The row's holds still checked out at the last reading of the pool endpoint: leaks, or "
                       "holds longer than the run."),
    Metric(path=f"{_ROW}.open_age_s", label="oldest still held at a site", unit="s", direction=Direction.LOWER,
           window=Window.BOTH, coverage=Coverage.CHECKOUTS,
           description="Age of the row's oldest hold still checked out at the last reading; 0 when none is."),
)

IDLE_BY_SITE = Metric(
    path="db.idle_in_tx_long_by_site.<site>", label="idle in tx past threshold, by site", unit="conn-s",
    direction=Direction.LOWER, window=Window.BOTH, coverage=Coverage.NONE,
    description="`idle_in_tx_long_seconds` split by the `site` in the tag of the connection's last statement: the "
                "app's line that checked the connection out (`bench.instrument` tags statements "
                "`/*route='…',site='path:line'*/`), so a leaked connection is placed from the database's side too; "
                "the 10 largest. Empty when the statements carry no site.")

_CONFIRMED = "lint.confirmed[]"
_LINT = ("`bench lint` run at summary time over the app's files the hold sites name (`site`, `checkout_site`; looked "
         "for under the folder bench ran in, then the repository's), its findings matched to the rows of "
         "`pool.hold_sites` that cost the pool (`idle_s` at least 0.5 s, or a hold still open, reclaimed or lost). "
         "`lint` is null when the app served no hold sites or none of their files is found; `lint.linted` names the "
         "files, `lint.not_exercised` the findings no such row falls in, `lint.load_only` the rows no finding "
         "covers (found only under load). One `confirmed` entry per finding whose span (`line` to `end_line`) holds "
         "a row's `site` or `checkout_site` (`matched_by`: `line`), or else, for rows no span holds, whose innermost "
         "enclosing block (a function, `try`, `with`, loop or `if`) does (`block`: a scoped session's hold is placed "
         "at the middleware's await, inside the `try` whose `finally` lacks the `remove()`): its rule, place, "
         "message and README link, the rows' `sites`")

LINT_CONFIRMED: tuple[Metric, ...] = (
    Metric(path=f"{_CONFIRMED}.holds", label="long holds at a confirmed finding", unit="checkouts",
           direction=Direction.LOWER, window=Window.BOTH, coverage=Coverage.CHECKOUTS,
           description=f"{_LINT}. `holds`: the sum of the matching rows' `holds`."),
    Metric(path=f"{_CONFIRMED}.held_s", label="held at a confirmed finding", unit="conn-s",
           direction=Direction.LOWER, window=Window.BOTH, coverage=Coverage.CHECKOUTS,
           description="The sum of the matching rows' `held_s` (`pool.hold_sites[].held_s`)."),
    Metric(path=f"{_CONFIRMED}.idle_s", label="idle at a confirmed finding", unit="conn-s",
           direction=Direction.LOWER, window=Window.BOTH, coverage=Coverage.CHECKOUTS,
           description="The sum of the matching rows' `idle_s` (`pool.hold_sites[].idle_s`): the connection time the "
                       "finding cost idle in transaction under load."),
)
