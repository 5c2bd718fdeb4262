"""The pool's figures of summary.json (``pool.*``): waits, holds, connections, leaks and Little's law, from the
instrumentation's snapshots and the collector's samples. summary_figures places them among an app's figures.
"""

from __future__ import annotations

from bench.results.metric import (
    ALL,
    BOTH,
    CHECKOUTS,
    HIGHER,
    HIST,
    LOAD,
    LOWER,
    NEITHER,
    NONE,
    OK,
    Metric,
    Shown,
    Window,
    family,
)
from bench.results.site_figures import HOLD_SITES

POOL: tuple[Metric, ...] = (
    *family("pool.wait_ms", "pool wait", "time a checkout waited for the pool to hand it a connection slot (the "
             "queue, and an overflow slot), minus any time that checkout spent opening a new connection in the "
             "pool's `_do_get`; reopening the slot's connection after an invalidation, a recycle or a reclaim "
             "comes after that and is never in it (it is in `connect_ms`). Over the checkouts whose wait ended "
             "inside `littles_law`'s window (those that timed out or were cancelled included): the collector's "
             "per-interval wait histograms (`wait_hist` in samples.jsonl) added up over the window. These are the "
             "checkouts of the requests answered in it, but for those still holding a connection at either end "
             "(see `count`). The requests Locust left queued at its stop get their connection in the cool-down "
             "and are in no latency figure; they are in no wait figure either, so wait and latency count the same "
             "requests. Without pool samples or their histograms (a run recorded before the samples carried "
             "them), every checkout's, from the pool's own histogram. The max is the largest wait recorded up to "
             "the window's last sample (the samples carry the pool's running maximum); the collector's first "
             "sample comes before the load's first checkout, so it is the window's own",
             HIST, unit="ms", direction=LOWER, window=LOAD, coverage=CHECKOUTS,
             shown={"p95": Shown.ALWAYS}, histogram=True),
    Metric(path="pool.wait_ms.count", label="waits ranked", unit="checkouts", direction=NEITHER, window=LOAD,
           coverage=CHECKOUTS,
           description="Checkout waits `wait_ms` ranks: those that ended inside `littles_law`'s window, timed-out "
                       "and cancelled checkouts included; where the samples make no window, every one "
                       "(`checkouts` + `timeouts` + `cancelled`). For an app that checks out one connection per "
                       "request for the whole request, with no timeout, it is `littles_law.requests` give or take "
                       "`capacity`: a request counted in one and not the other holds a connection at an end of the "
                       "window (a saturated app's reads `requests` + `capacity`: none held at the first sample, "
                       "every connection at the last). Or one or two more: a sample's time is taken as the collector "
                       "starts its reads, and a wait that ends while the app answers its pool read is in that "
                       "sample's interval though its request came after the sample's time."),
    *family("pool.hold_ms", "pool hold", "time a connection stayed checked out, from checkout to its checkin, or "
             "to the detach that freed its slot when the garbage collector reclaimed a leaked connection (see "
             "`reclaimed`) or the app detached it; a connection still checked out is not in it",
             HIST, unit="ms", direction=LOWER, window=BOTH, coverage=CHECKOUTS,
             shown={"mean": Shown.REPORT}, histogram=True),
    *family("pool.connect_ms", "connect", "time to open a database connection, the pool's connect listeners "
             "included, per connection opened: new ones and those reopened in a slot after an invalidation, "
             "a recycle or a reclaim, so its count equals `connections_opened`",
             HIST, unit="ms", direction=LOWER, window=BOTH, coverage=NONE, histogram=True),
    Metric(path="pool.connect_ms.count", label="connects timed", unit="connections", direction=NEITHER,
           window=BOTH, coverage=NONE,
           description="Connections whose opening `connect_ms` timed: every connection the pool opened, new and "
                       "reopened, so it equals `connections_opened` (and the server's count of sessions the app "
                       "started); a gap is connects the instrumentation missed."),
    Metric(path="pool.checkouts", label="checkouts", unit="checkouts", direction=NEITHER, window=BOTH,
           coverage=CHECKOUTS, description="Connections the pool handed out: each checkout (`TimedAsyncPool.connect`, "
                                           "or the pool's checkout event for another pool)."),
    Metric(path="pool.checkouts_per_request", label="checkouts per request", unit="checkouts/request",
           direction=LOWER, window=BOTH, coverage=ALL,
           description="`checkouts` / (`requests_recorded` + `requests_unfinished`): every checkout over every "
                       "request the app was sent, those Locust stopped waiting for included (the app serves them in "
                       "the cool-down, and they check out too). Set by the code: the long-session twin that opens "
                       "two short sessions makes 2, the one that holds one session 1; background work and sessions "
                       "reopened after a leak add to it. Null when no request was logged."),
    Metric(path="pool.timeouts", label="checkout timeouts", unit="checkouts", direction=LOWER, window=BOTH,
           coverage=CHECKOUTS, alarm=True, shown=Shown.NONZERO,
           description="Checkouts that gave up after pool_timeout (SQLAlchemy's TimeoutError \"QueuePool limit "
                       "... reached\")."),
    Metric(path="pool.timeouts_per_1k_requests", label="checkout timeouts per 1,000 requests",
           unit="per 1k requests", direction=LOWER, window=BOTH, coverage=ALL, alarm=True, rate_of="pool.timeouts",
           description="`timeouts` × 1000 / `requests`. bench compare tests it as a count: the timeouts' totals "
                       "weighed by the requests made."),
    Metric(path="pool.connect_failures", label="connect failures", unit="connections", direction=LOWER, window=BOTH,
           coverage=NONE, alarm=True, shown=Shown.NONZERO,
           description="Connects the pool tried that raised (refused, timed out, rejected by the server), new "
                       "connections and those reopened in a slot alike; a checkout cancelled while it connected "
                       "is not one."),
    Metric(path="pool.cancelled", label="checkouts cancelled", unit="checkouts", direction=LOWER, window=BOTH,
           coverage=CHECKOUTS,
           description="Checkouts cancelled (asyncio.CancelledError) before the app had its connection: waiting in "
                       "the pool's queue, or while the pool opened or reopened the slot's connection; a client that "
                       "hangs up or a timeout around the request cancels them. A connect that failed is not one "
                       "(`connect_failures`)."),
    Metric(path="pool.checked_out_max", label="checked out, most", unit="connections", direction=LOWER,
           window=BOTH, coverage=NONE,
           description="Most connections checked out at once: the instrumentation's count (checkouts minus "
                       "checkins, reclaims and detaches) at its peaks, capped by the pool's own count of lent "
                       "slots, so never more than `capacity`. A leak shows as `reclaimed`, not here."),
    Metric(path="pool.checked_out_share", label="checked out, most, of capacity", unit="fraction",
           direction=LOWER, window=BOTH, coverage=NONE,
           description="`checked_out_max` / `capacity`: 1 when the pool ran out of connections at least once. "
                       "Null without a capacity."),
    Metric(path="pool.pending_max", label="waiting checkouts, most", unit="checkouts", direction=LOWER,
           window=BOTH, coverage=CHECKOUTS,
           description="Most checkouts waiting in the pool's queue at once."),
    Metric(path="pool.connections_opened", label="connections opened", unit="connections", direction=LOWER,
           window=BOTH, coverage=NONE,
           description="New database connections the pool opened, the first ones included: churn (invalidated "
                       "connections replaced) shows as more than `capacity`."),
    Metric(path="pool.invalidated", label="connections invalidated", unit="connections", direction=LOWER,
           window=BOTH, coverage=NONE, alarm=True,
           description="Connections the pool invalidated (closed as unusable: a cancelled close, a broken "
                       "connection)."),
    Metric(path="pool.invalidated_per_1k_requests", label="connections invalidated per 1,000 requests",
           unit="per 1k requests", direction=LOWER, window=BOTH, coverage=ALL, alarm=True,
           rate_of="pool.invalidated",
           description="`invalidated` × 1000 / `requests`: connection churn (a cancelled close, broken "
                       "connections). bench compare tests it as a count: the invalidations' totals weighed by the "
                       "requests made."),
    Metric(path="pool.reclaimed", label="connections reclaimed by the GC", unit="connections", direction=LOWER,
           window=BOTH, coverage=NONE, alarm=True, shown=Shown.NONZERO,
           description="Checked-out connections the garbage collector took back because the app dropped them "
                       "without returning them (a leaked session): with an async driver SQLAlchemy's finalizer "
                       "detaches the connection from its slot and terminates it, no checkin fires, and the slot's "
                       "next checkout reopens a connection. Each one's hold ends at the reclaim."),
    Metric(path="pool.reclaimed_per_1k_requests", label="connections reclaimed by the GC per 1,000 requests",
           unit="per 1k requests", direction=LOWER, window=BOTH, coverage=ALL, alarm=True, rate_of="pool.reclaimed",
           description="`reclaimed` × 1000 / `requests`. bench compare tests it as a count: the reclaims' totals "
                       "weighed by the requests made."),
    Metric(path="pool.capacity", label="pool capacity", unit="connections", direction=NEITHER,
           window=Window.SETTING, coverage=NONE,
           description="Connections the pool may hold at most: pool size + max_overflow as the app's pool "
                       "reports them, else as configured."),
    Metric(path="pool.hold_s", label="connection time", unit="conn-s", direction=NEITHER, window=BOTH,
           coverage=CHECKOUTS,
           description="Connection-seconds held, summed over every hold `hold_ms` counts: the "
                       "instrumentation's total hold, to set against the server's `idle_in_transaction_time` + "
                       "`active_time`. Holds still open at the last reading are `hold_open_s`."),
    Metric(path="pool.holds_open", label="holds still open", unit="connections", direction=LOWER, window=BOTH,
           coverage=CHECKOUTS,
           description="Connections checked out and not yet returned at the pool's last reading (in the "
                       "cool-down): connections the app never gives back (a session kept forever) and requests "
                       "still running. In no other hold figure, which count ended holds."),
    Metric(path="pool.hold_open_s", label="connection time still open", unit="conn-s", direction=LOWER,
           window=BOTH, coverage=CHECKOUTS,
           description="Connection-seconds of the `holds_open` so far: each one's age at the pool's last reading, "
                       "summed. With `hold_s` it is all the connection time the pool lent since the app started."),
    Metric(path="pool.hold_open_max_ms", label="oldest hold still open", unit="ms", direction=LOWER, window=BOTH,
           coverage=CHECKOUTS,
           description="Age of the oldest of the `holds_open` at the pool's last reading: the run's longest hold "
                       "when a connection is never returned (`hold_ms.max` counts ended holds only); 0 when none "
                       "is open."),
    Metric(path="pool.littles_law.window_s", label="Little's-law window", unit="s", direction=NEITHER,
           window=LOAD, coverage=NONE,
           description="Seconds from the collector's first pool sample in the load to its last pool sample in the "
                       "load taken at or before the last response: the stretch the Little's-law figures are "
                       "measured over (falls back to `load_window_s` when there are fewer than two such samples). "
                       "A sample stands for the interval since the one before it, so the window's figures take "
                       "the samples after its first, up to and including its last."),
    Metric(path="pool.littles_law.hold_s", label="Little's-law connection time", unit="conn-s",
           direction=NEITHER, window=LOAD, coverage=CHECKOUTS,
           description="Connection-seconds the pool lent inside `littles_law.window_s`: the growth, between its "
                       "two samples, of the ended holds' total plus the open holds' age so far, i.e. the integral "
                       "of checked-out connections over the window, so a connection never returned counts all "
                       "along. In the fallback, the ended and open holds of the pool's last reading."),
    Metric(path="pool.littles_law.requests", label="Little's-law requests", unit="requests", direction=NEITHER,
           window=LOAD, coverage=ALL,
           description="Requests whose response (or failure) came inside `littles_law.window_s`, after its first "
                       "sample and at or before its last (start + response time in the request log), failed ones "
                       "included: they hold connections too."),
    Metric(path="pool.littles_law.rps", label="Little's-law rate", unit="req/s", direction=NEITHER, window=LOAD,
           coverage=ALL, description="`littles_law.requests` / `littles_law.window_s`: requests answered per second."),
    Metric(path="pool.hold_ms_per_request", label="connection time per request", unit="ms/request",
           direction=LOWER, window=LOAD, coverage=ALL, noise=31.0,
           description="`littles_law.hold_s` × 1000 / `littles_law.requests`: connection time per request, all "
                       "its checkouts together, never rounded (1.37 checkouts per request count as 1.37). Both "
                       "come from the same window, so the requests Locust left unanswered at its stop, which the app "
                       "serves afterwards, count on neither side. 0 when no hold was recorded."),
    Metric(path="pool.hold_share_by_route.<route>", label="share of pool time", unit="fraction",
           direction=NEITHER, window=BOTH, coverage=CHECKOUTS,
           description="The route's share of all connection-holding time (the sum of its holds over the sum of "
                       "all), by the route that checked out; largest first. A hold still open at the last pool "
                       "reading counts with its time so far (`hold_open_s`), so a connection the app never returns "
                       "is its route's."),
    Metric(path="pool.idle_in_tx_app_s", label="idle in tx total, app-side", unit="conn-s", direction=LOWER,
           window=BOTH, coverage=CHECKOUTS, shown=Shown.REPORT,
           description="Idle in transaction as the instrumented app timed it, with no sampling: per transaction "
                       "(its first statement to its commit or rollback, the pool's rollback on return included), "
                       "the time with no statement running, summed, open transactions' time so far included. It "
                       "counts from the app's reading of a statement's answer to its sending the next one, so it "
                       "misses the moments the server's answer waits for the app's busy event loop, which the "
                       "server's `db.idle_in_tx_seconds` counts. Null when the app's instrumentation does not "
                       "time transactions."),
    Metric(path="pool.idle_in_tx_app_per_request_ms", label="idle in tx per request, app-side",
           unit="ms/request", direction=LOWER, window=LOAD, coverage=OK, shown=Shown.REPORT,
           description="The app's own exact idle time in transaction (see `idle_in_tx_app_s`) per successful "
                       "request, over `littles_law`'s window: its growth from the window's first sample to its "
                       "last (ended transactions' and open ones' so far) × 1000 / the successful requests answered "
                       "inside the window, the same count as `db.idle_in_tx_per_request_ms`. Below that figure by "
                       "the moments the server's answers wait for the app's busy event loop, which only the server "
                       "sees. Without that window, or from samples that do not carry the open ones (an older "
                       "collector): `idle_in_tx_app_s` × 1000 / successful requests (load). Null "
                       "when none succeeded, or when the app's instrumentation does not time transactions "
                       "(`bench.instrument.instrument()` does; an app without it reports null)."),
    Metric(path="pool.transactions", label="transactions", unit="transactions", direction=NEITHER,
           window=BOTH, coverage=CHECKOUTS,
           description="Transactions the app ran (a first statement after a commit or rollback begins one), open "
                       "ones included: what `idle_in_tx_app_s` is summed over. Null when the app does not time transactions."),
    *HOLD_SITES,
    Metric(path="pool.littles_law_ceiling_rps", label="Little's-law ceiling", unit="req/s", direction=HIGHER,
           window=LOAD, coverage=ALL, shown=Shown.REPORT,
           description="`capacity` × 1000 / `hold_ms_per_request`: the requests per second the pool could serve "
                       "with every connection busy all the time (Little's law, L = λW, with L = capacity). Null "
                       "when no hold was recorded."),
    Metric(path="pool.ceiling_utilisation", label="ceiling utilisation", unit="fraction", direction=NEITHER,
           window=LOAD, coverage=ALL,
           description="`littles_law.rps` / `littles_law_ceiling_rps`, both over the same window: the share of the "
                       "pool's connection time in use (= `littles_law.hold_s` / (`capacity` × "
                       "`littles_law.window_s`)); near 1 the pool is what caps the throughput. Null when there is "
                       "no ceiling."),
)
