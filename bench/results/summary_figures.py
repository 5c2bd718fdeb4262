"""Every figure of summary.json, defined as today's code computes it (bench.analysis.summary, bench.run.collector,
bench.analysis.applog). bench.results.metrics joins these into the registry; nothing else imports this module.
"""

from __future__ import annotations

from bench.results.metric import Coverage, Direction, Metric, Scope, Shown, Window, family
from bench.results.site_figures import HOLD_SITES, IDLE_BY_SITE, LINT_CONFIRMED

LOWER, HIGHER, NEITHER = Direction.LOWER, Direction.HIGHER, Direction.NEITHER
LOAD, BOTH, SHUTDOWN = Window.LOAD, Window.BOTH, Window.TO_SHUTDOWN
ALL, OK, CHECKOUTS, NONE = Coverage.ALL, Coverage.SUCCESSES, Coverage.CHECKOUTS, Coverage.NONE

_RANK = "nearest rank: the latency at rank ceil(p·n / 100) of the n sorted, one some request really had"

# (prefix, title, what holds for every figure under it): docs/metrics.md puts the note above the block's rows.
SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("", "Requests", ("From Locust's own count (locust.json) and the harness's per-request log (requests.csv, "
     "written by the Locust recorder plugin), over the load.")),
    ("pool.", "Pool (`pool`)", ("From the app's pool instrumentation, as of the collector's last reading of the "
     "pool endpoint (in the cool-down): the pool's own counters and histograms since the app started. The block "
     "is null without a pool endpoint (target mode without --pool-url).")),
    ("db.", "Database (`db`)", ("From the collector: pg_stat_activity samples of the app's backends (its "
     "application_name; in target mode without --app-name, every client backend of the database) every "
     "`config.sample_interval_s` through load and cool-down, intervals timed on the harness's own monotonic clock, "
     "ages on the server's; and (`server`) deltas of pg_stat_database for the run's database from just before the "
     "load until the app stopped. Those counters are database-wide, so they are the app's only when the database "
     "is: a paired app's own database, or a target sampled whole (no --app-name). With --app-name, `server` is "
     "empty and no figure uses it; it is also empty when the server's counters were reset during the run.")),
    ("integrity.", "Write integrity (`integrity`)", ("Acknowledged writes against rows in the database, counted "
     "after the app stopped. The block is null when the scenario declares no write routes, and in target mode.")),
    ("endpoints.", "Per route (`endpoints.<route>`)", ("From the per-request log, grouped by Locust's request "
     "name; the pool figures by the route the pool instrumentation saw, which must be the same name (null when "
     "the pool reported nothing for it).")),
    ("app_log.", "App log (`app_log`)", ("Lines of the app's log (app.log, from the app's start to its stop); a "
     "line may count for several kinds. The block is null in target mode.")),
    ("lint.", "Lint findings under load (`lint`)", ("`bench lint` over the app's files its hold sites name, at "
     "summary time: the findings the run's long holds confirm. The block is null when the app served no hold "
     "sites or their files are not found where bench runs.")),
)
HIST = ("p50", "p95", "p99", "max", "mean")
LATENCY = ("p50", "p95", "p99", "max")

REQUESTS: tuple[Metric, ...] = (
    Metric(path="throughput_rps", label="throughput", unit="req/s", direction=HIGHER, window=LOAD, coverage=OK,
           shown=Shown.ALWAYS,
           description="Successful responses in the per-request log divided by `load_window_s`, the whole load "
                       "period: a stretch in which the app answered nothing (a stall) lowers it."),
    Metric(path="failures", label="failures", unit="requests", direction=LOWER, window=LOAD, coverage=ALL,
           alarm=True, shown=Shown.ALWAYS,
           description="Requests Locust counted as failed (error status, exception, timeout), from locust.json; "
                       "the per-request log's failed rows when there is none. A count, not a rate: it grows with "
                       "the run's length (`failures_per_1k_requests` is the rate, by cause)."),
    Metric(path="failures_by_cause.<cause>", label="failures by cause", unit="requests", direction=LOWER,
           window=LOAD, coverage=ALL, alarm=True,
           description="Failed rows of the per-request log by cause: `HTTP <status>` for an error status, else "
                       "the exception's name (`ConnectionRefusedError`, `RemoteDisconnected`), `unknown` when the "
                       "row has no error text; most frequent first. Their sum is the log's failed rows, which may "
                       "differ from Locust's own `failures` by the rows the log missed."),
    Metric(path="failures_per_1k_requests.<cause>", label="failures per 1,000 requests, by cause",
           unit="per 1k requests", direction=LOWER, window=LOAD, coverage=ALL, alarm=True,
           rate_of="failures_by_cause.<cause>",
           description="`failures_by_cause.<cause>` × 1000 / `requests`: how often a request fails for that "
                       "cause, whatever the run's length and throughput. bench compare tests it as a count (the "
                       "causes' totals weighed by the requests made); a cause one side never had is 0 there."),
    Metric(path="requests", label="requests", unit="requests", direction=NEITHER, window=LOAD, coverage=ALL,
           description="Requests Locust made, failed ones included: its own final count (locust.json, summed "
                       "over its endpoints); the per-request log's rows when Locust wrote no locust.json."),
    Metric(path="requests_recorded", label="requests recorded", unit="requests", direction=NEITHER, window=LOAD,
           coverage=ALL,
           description="Rows in the harness's own per-request log (requests.csv, written by the Locust recorder "
                       "plugin) of requests that were answered or failed (UNFINISHED rows are "
                       "`requests_unfinished`). Every request figure but `requests` and `failures` is computed from "
                       "these rows; a gap to `requests` is requests the log missed."),
    Metric(path="requests_dropped", label="arrivals dropped", unit="requests", direction=LOWER,
           window=LOAD, coverage=ALL,
           description="bench capacity's open model only: scheduled arrivals that found no free user at their start "
                       "and were never sent (DROPPED rows of requests.csv, as k6 counts dropped iterations). Not "
                       "requests, failures or latency samples; a step's sustain rule counts them against it."),
    Metric(path="requests_unfinished", label="requests unfinished", unit="requests", direction=NEITHER,
           window=LOAD, coverage=ALL,
           description="Requests still waiting for their response when Locust stopped the load, logged as "
                       "UNFINISHED rows with their age at the stop as response time (by the recorder for Locust's "
                       "HttpUser and FastHttpUser clients; in bench capacity's rate mode by its pacer). Locust stops "
                       "every user at once, so a closed-model run ends with up to one per user: they are not "
                       "failures, and no other request figure counts them. A custom client's are not seen."),
    Metric(path="requests_unreadable", label="request log rows unreadable", unit="rows", direction=LOWER,
           window=LOAD, coverage=ALL, alarm=True, shown=Shown.NONZERO,
           description="Rows of the per-request log that could not be read (a last line torn when Locust was "
                       "killed, fields that are not numbers): left out of every request figure, and counted here "
                       "rather than dropped in silence."),
    Metric(path="load_window_s", label="load window", unit="s", direction=NEITHER, window=LOAD, coverage=ALL,
           description="Seconds of load the harness drove, on its own clock: from its go signal (Locust's users "
                       "start) to Locust's stop at its `--run-time` (earlier when Locust exited early). A stall is "
                       "inside it: the span `throughput_rps` is measured over."),
    Metric(path="stalls", label="stalls", unit="stalls", direction=LOWER, window=LOAD, coverage=ALL, alarm=True,
           shown=Shown.NONZERO,
           description="Stretches of the load period with no response while requests were waiting, each at least "
                       "5 s and at least 5 median response times long: the app or its database stopped answering. "
                       "Each is an event on the time line (`events`: \"no response for 12.0 s while 50 requests "
                       "were waiting\"), and every run checks `<app>: stalls == 0`, so a stall fails it (exit 1)."),
    Metric(path="longest_stall_s", label="longest stretch without a response", unit="s", direction=LOWER,
           window=LOAD, coverage=ALL, noise=1.0,
           description="Longest stretch of the load period with no response while a request was waiting (from "
                       "a response, or the next request sent after it, to the next response or the load's end), "
                       "long enough to be a stall or not; 0 when no request ever waited unanswered."),
    *family("latency_ms", "latency", f"response time of every answered request in the per-request log, failed "
             f"ones included as Locust and k6 count them ({_RANK}), as Locust timed them; 0 when none was answered",
             LATENCY, unit="ms", direction=LOWER, window=LOAD, coverage=ALL,
             shown={"p95": Shown.ALWAYS}),
    *family("success_latency_ms", "success latency", f"response time of the successful requests in the "
             f"per-request log ({_RANK}), as Locust timed them; failed requests are left out (before this figure "
             "existed, `latency_ms` was this), and it is 0 when none succeeded",
             LATENCY, unit="ms", direction=LOWER, window=LOAD, coverage=OK),
)

POOL: tuple[Metric, ...] = (
    *family("pool.wait_ms", "pool wait", "time a checkout waited for the pool to hand it a connection slot (the "
             "queue, and an overflow slot), minus any time that checkout spent opening a new connection in the "
             "pool's `_do_get`; reopening the slot's connection after an invalidation, a recycle or a reclaim "
             "comes after that and is never in it (it is in `connect_ms`). Over every checkout (those that timed "
             "out or were cancelled included)",
             HIST, unit="ms", direction=LOWER, window=BOTH, coverage=CHECKOUTS,
             shown={"p95": Shown.ALWAYS}),
    *family("pool.hold_ms", "pool hold", "time a connection stayed checked out, from checkout to its checkin, or "
             "to the detach that freed its slot when the garbage collector reclaimed a leaked connection (see "
             "`reclaimed`) or the app detached it; a connection still checked out is not in it",
             HIST, unit="ms", direction=LOWER, window=BOTH, coverage=CHECKOUTS,
             shown={"mean": Shown.REPORT}),
    *family("pool.connect_ms", "connect", "time to open a database connection, the pool's connect listeners "
             "included, per connection opened: new ones and those reopened in a slot after an invalidation, "
             "a recycle or a reclaim, so its count equals `connections_opened`",
             HIST, unit="ms", direction=LOWER, window=BOTH, coverage=NONE),
    Metric(path="pool.connect_ms.count", label="connects timed", unit="connections", direction=NEITHER,
           window=BOTH, coverage=NONE,
           description="Connections whose opening `connect_ms` timed: every connection the pool opened, new and "
                       "reopened, so it equals `connections_opened` (and the server's count of sessions the app "
                       "started); a gap is connects the instrumentation missed."),
    Metric(path="pool.checkouts", label="checkouts", unit="checkouts", direction=NEITHER, window=BOTH,
           coverage=CHECKOUTS, description="Connections the pool handed out (checkout events)."),
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
           description="Seconds from the collector's first pool sample in the load to its last one before the last "
                       "response: the stretch the Little's-law figures are measured over (falls back to "
                       "`load_window_s` when there are fewer than two such samples)."),
    Metric(path="pool.littles_law.hold_s", label="Little's-law connection time", unit="conn-s",
           direction=NEITHER, window=LOAD, coverage=CHECKOUTS,
           description="Connection-seconds the pool lent inside `littles_law.window_s`: the growth, between its "
                       "two samples, of the ended holds' total plus the open holds' age so far, i.e. the integral "
                       "of checked-out connections over the window, so a connection never returned counts all "
                       "along. In the fallback, the ended and open holds of the pool's last reading."),
    Metric(path="pool.littles_law.requests", label="Little's-law requests", unit="requests", direction=NEITHER,
           window=LOAD, coverage=ALL,
           description="Requests whose response (or failure) came inside `littles_law.window_s`, failed ones "
                       "included: they hold connections too."),
    Metric(path="pool.littles_law.rps", label="Little's-law rate", unit="req/s", direction=NEITHER, window=LOAD,
           coverage=ALL, description="`littles_law.requests` / `littles_law.window_s`: requests answered per second."),
    Metric(path="pool.hold_ms_per_request", label="connection time per request", unit="ms/request",
           direction=LOWER, window=LOAD, coverage=ALL,
           description="`littles_law.hold_s` × 1000 / `littles_law.requests`: connection time per request, all "
                       "its checkouts together, never rounded (1.37 checkouts per request count as 1.37). Both "
                       "come from the same window, so the requests Locust left unanswered at its stop, which the app "
                       "serves afterwards, count on neither side. 0 when no hold was recorded."),
    Metric(path="pool.hold_share_by_route.<route>", label="share of pool time", unit="fraction",
           direction=NEITHER, window=BOTH, coverage=CHECKOUTS,
           description="The route's share of all connection-holding time (the sum of its holds over the sum of "
                       "all), by the route that checked out; largest first. Holds that never ended are missing."),
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
           unit="ms/request", direction=LOWER, window=BOTH, coverage=OK, shown=Shown.REPORT,
           description="`idle_in_tx_app_s` × 1000 / successful requests (load). Null when none succeeded or the "
                       "app does not time transactions."),
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

DB: tuple[Metric, ...] = (
    Metric(path="db.idle_in_tx_max", label="idle in tx, most", unit="connections", direction=LOWER, window=BOTH,
           coverage=NONE, description="Most connections idle in transaction in any one sample in any sample."),
    Metric(path="db.idle_in_tx_mean", label="idle in tx, mean", unit="connections", direction=LOWER,
           window=BOTH, coverage=NONE, noise=0.5,
           description="Mean number of connections idle in transaction over load and cool-down, weighted by time: "
                       "`idle_in_tx_seconds_sampled` / the seconds the samples span."),
    Metric(path="db.idle_in_tx_oldest_s", label="idle in tx oldest", unit="s", direction=LOWER, window=BOTH,
           coverage=NONE, shown=Shown.REPORT,
           description="Oldest idle-in-transaction age (now − state_change) seen in any sample."),
    Metric(path="db.idle_in_tx_seconds", label="idle in tx total", unit="conn-s", direction=LOWER, window=BOTH,
           coverage=NONE, shown=Shown.REPORT,
           description="Connection-seconds idle in transaction: the server's own figure "
                       "(`server.idle_in_transaction_time`, exact for every spell the backend ended with a state "
                       "change) plus `idle_in_tx_unreported_seconds` (the spells it never counts). Without the "
                       "server's figure (target mode with --app-name, counters reset), `idle_in_tx_seconds_sampled`."),
    Metric(path="db.idle_in_tx_long_seconds", label="idle in tx past threshold", unit="conn-s", direction=LOWER,
           window=BOTH, coverage=NONE, shown=Shown.ALWAYS,
           description="Connection-seconds of connections idle in transaction for longer than "
                       "`config.idle_threshold_ms` (default 50 ms) in the samples: such a connection counts the "
                       "whole interval since the previous sample, the part before it crossed the threshold "
                       "included. Short idle moments between statements are normal; long ones are the "
                       "anti-patterns."),
    # Its noise floor is the one bench.config.gates' rule derives: a correct twin's 0 to 3.6 ms per request in three
    # identical runs on a busy machine must not count, while a culprit's 67 to 8,400 ms does.
    Metric(path="db.idle_in_tx_long_per_request_ms", label="idle in tx past threshold per request",
           unit="ms/request", direction=LOWER, window=BOTH, coverage=OK, noise=55.0,
           description="`idle_in_tx_long_seconds` (load + cool-down) × 1000 / successful requests (load). Null "
                       "when none succeeded."),
    Metric(path="db.idle_in_tx_per_request_ms", label="idle in tx per request", unit="ms/request",
           direction=LOWER, window=BOTH, coverage=OK, shown=Shown.REPORT,
           description="`idle_in_tx_seconds` (load + cool-down) × 1000 / successful requests (load). Null when "
                       "none succeeded."),
    Metric(path="db.idle_in_tx_after_load", label="idle in tx after load", unit="connections", direction=LOWER,
           window=Window.COOLDOWN, coverage=NONE, alarm=True, shown=Shown.NONZERO,
           description="Connections idle in transaction for longer than `config.idle_threshold_ms` at the last "
                       "sample, when the cool-down ends (the load's end without a cool-down): leaks. A connection "
                       "caught in a brief moment between two statements is not one."),
    Metric(path="db.connections_max", label="connections, most", unit="connections", direction=LOWER,
           window=BOTH, coverage=NONE,
           description="Most backends of the app in any one sample."),
    Metric(path="db.idle_in_tx_seconds_sampled", label="idle in tx total, sampled", unit="conn-s",
           direction=LOWER, window=BOTH, coverage=NONE,
           description="Sum of (connections idle in transaction × seconds since the previous sample), "
                       "over the samples: an unbiased estimate of connection-seconds."),
    Metric(path="db.idle_in_tx_unreported_seconds", label="idle in tx the server missed", unit="conn-s",
           direction=LOWER, window=BOTH, coverage=NONE,
           description="Connection-seconds of the spells PostgreSQL never adds to `idle_in_transaction_time`, "
                       "which it counts only when a backend's state changes: spells ended by a disconnect or a "
                       "terminated backend (the backend is gone at the next sample; half an interval is added for "
                       "its unseen end) and spells still open at the last sample. From their ages on the server's "
                       "clock, counted from the first sample. A backend that commits and disconnects between two "
                       "samples counts here too, though the server saw its spell: rare with a pool, which keeps its "
                       "connections."),
    Metric(path="db.idle_in_tx_sampled_share", label="sampled share", unit="fraction", direction=NEITHER,
           window=BOTH, coverage=NONE,
           description="`idle_in_tx_seconds_sampled` / `idle_in_tx_seconds`: how much of the total the samples "
                       "saw, not capped, so above 1 when they saw more than it. Null when the total is 0."),
    Metric(path="db.xact_oldest_s", label="oldest transaction", unit="s", direction=LOWER, window=BOTH,
           coverage=NONE, description="Oldest open transaction (now − xact_start, any state) seen in any sample."),
    Metric(path="db.samples", label="samples", unit="samples", direction=NEITHER, window=BOTH, coverage=NONE,
           description="pg_stat_activity samples the collector took (every `config.sample_interval_s`)."),
    Metric(path="db.idle_in_tx_long_by_route.<route>", label="idle in tx past threshold, by route",
           unit="conn-s", direction=LOWER, window=BOTH, coverage=NONE,
           description="`idle_in_tx_long_seconds` split by the route tag of the connection's last statement "
                       "(\"SQL: …\" and the statement when untagged); the 10 largest."),
    IDLE_BY_SITE,
    *(Metric(path=f"db.server.{key}", label=label, unit=unit, direction=direction, window=SHUTDOWN,
             coverage=NONE, alarm=direction is LOWER and unit == "sessions",
             shown=Shown.NONZERO if key == "sessions_fatal" else Shown.NO,
             description=f"{what} (pg_stat_database delta; empty in target mode with --app-name).")
      for key, label, unit, direction, what in (
          ("idle_in_transaction_time", "server: idle in tx", "conn-s", LOWER,
           "Seconds backends spent idle in transaction, counted by the server when each spell ends"),
          ("active_time", "server: active", "conn-s", NEITHER, "Seconds backends spent running statements"),
          ("session_time", "server: session time", "conn-s", NEITHER, "Seconds backends were connected"),
          ("sessions", "server: sessions", "sessions", NEITHER, "Backends started"),
          ("sessions_abandoned", "server: sessions abandoned", "sessions", LOWER,
           "Sessions ended because the client went away without closing"),
          ("sessions_fatal", "backends ended by the server", "sessions", LOWER,
           "Sessions ended by a fatal error (e.g. idle_in_transaction_session_timeout)"),
          ("sessions_killed", "server: sessions killed", "sessions", LOWER,
           "Sessions ended by an operator (pg_terminate_backend)"),
          ("xact_commit", "server: commits", "transactions", NEITHER, "Transactions committed"),
          ("xact_rollback", "server: rollbacks", "transactions", NEITHER,
           ("Transactions rolled back (SQLAlchemy ends every session that did not commit with one: not an error "
           "count)")),
      )),
)

_WRITES = (
    ("acknowledged_writes", "acknowledged writes", "writes", NEITHER, LOAD, OK,
     "Successful responses of the write route(s) in the per-request log"),
    ("rows_written", "rows written", "rows", NEITHER, SHUTDOWN, NONE,
     ("Rows tagged with the write route(s) in the orders table: writes that finished after Locust stopped "
     "waiting for them count too, so it may exceed the acknowledged writes")),
    ("lost_writes", "lost writes", "writes", LOWER, SHUTDOWN, OK,
     ("Acknowledged writes minus rows written, per route, at least 0 (a surplus on one route never offsets a "
     "loss on another): writes the client was told succeeded that are not in the database")),
)
INTEGRITY: tuple[Metric, ...] = tuple(
    Metric(path=f"{where}{key}", label=f"{label}{suffix}", unit=unit, direction=direction, window=window,
           coverage=coverage, alarm=key == "lost_writes",
           shown=Shown.NONZERO if key == "lost_writes" and not where.endswith(">.") else Shown.NO,
           description=f"{what}{detail}.")
    for where, suffix, detail in (("integrity.", "", ", over the write routes"),
                                  ("integrity.by_route.<route>.", ", by route", ", of one write route"))
    for key, label, unit, direction, window, coverage, what in _WRITES
)

_ROUTE = "of the route in the per-request log"
ROUTES: tuple[Metric, ...] = (
    Metric(path="endpoints.<route>.requests", label="route requests", unit="requests", direction=NEITHER,
           window=LOAD, coverage=ALL, description=f"Requests {_ROUTE} (logged rows, not Locust's own count)."),
    Metric(path="endpoints.<route>.failures", label="route failures", unit="requests", direction=LOWER,
           window=LOAD, coverage=ALL, alarm=True, description=f"Failed requests {_ROUTE}."),
    *family("endpoints.<route>.latency_ms", "route latency", f"response time of every answered request {_ROUTE}, "
            f"failed ones included ({_RANK})", LATENCY, unit="ms", direction=LOWER, window=LOAD, coverage=ALL),
    *family("endpoints.<route>.success_latency_ms", "route success latency", f"response time of the successful "
            f"requests {_ROUTE} ({_RANK}); 0 when none succeeded", LATENCY, unit="ms", direction=LOWER,
            window=LOAD, coverage=OK),
    *family("endpoints.<route>.pool_hold_ms", "route pool hold", "hold time of the route's checkins", HIST, unit="ms", direction=LOWER, window=BOTH, coverage=CHECKOUTS),
    *family("endpoints.<route>.pool_wait_ms", "route pool wait", "queue wait of the route's checkouts", HIST, unit="ms", direction=LOWER, window=BOTH, coverage=CHECKOUTS),
)

_LOG = "Lines of app.log {}"
APP_LOG: tuple[Metric, ...] = (
    Metric(path="app_log.gc_cleanups", label="log: gc cleanups", unit="connections", direction=LOWER,
           window=Window.APP_LIFE, coverage=NONE, alarm=True,
           description="Connections the garbage collector cleaned up without a checkin, as the app's log tells "
                       "(\"The garbage collector is trying to clean up non-checked-in connection\"): one per "
                       "cleanup, though SQLAlchemy says each twice, as its pool logger's error line and as an "
                       "SAWarning; the larger of the two counts, so silencing either form hides none. With the "
                       "pool instrumentation, `pool.reclaimed` counts the same leaks."),
    *(Metric(path=f"app_log.{key}", label=f"log: {key.replace('_', ' ')}", unit="lines", direction=LOWER,
             window=Window.APP_LIFE, coverage=NONE, alarm=key != "warnings" and key != "errors",
             description=_LOG.format(what) + ".")
      for key, what in (
          ("invalidations", "that say \"Invalidate connection\""),
          ("unhandled_errors", ("that say \"Exception in ASGI application\", \"Exception in callback\" or "
                               "\"Task exception was never retrieved\"")),
          ("timeouts", "that say \"QueuePool limit of size … reached\""),
          ("concurrent_use", ("that say \"concurrent operations are not permitted\" or \"another operation is "
                             "in progress\"")),
          ("illegal_state", "that name IllegalStateChangeError"),
          ("warnings", "holding the word WARNING or SAWarning"),
          ("errors", "holding the word ERROR"),
      )),
    Metric(path="app_log.lines", label="log: lines", unit="lines", direction=NEITHER, window=Window.APP_LIFE,
           coverage=NONE, description=_LOG.format("in all") + "."),
    Metric(path="app_log.exceptions.<message>", label="log: exception", unit="lines", direction=LOWER,
           window=Window.APP_LIFE, coverage=NONE,
           description=_LOG.format("that start with an exception name, per \"Name: message\" (message cut at "
                                   "120 characters); the 5 most frequent") + "."),
)

RUN: tuple[Metric, ...] = (
    Metric(path="timings.database_start_s", label="database start", unit="s", direction=LOWER,
           window=Window.STARTUP, coverage=NONE, scope=Scope.RUN,
           description="Seconds the embedded PostgreSQL took to start; absent with --dsn."),
    Metric(path="timings.startup_s", label="start-up", unit="s", direction=LOWER, window=Window.STARTUP,
           coverage=NONE, scope=Scope.RUN,
           description="Seconds from the harness process's start to the first request of the first app."),
    Metric(path="checks[].value", label="check value", unit="as its metric", direction=NEITHER,
           window=Window.OF_METRIC,
           coverage=NONE, scope=Scope.RUN,
           description="The figure a scenario check judged; for a pair check (`bad/good: …`) the first app's "
                       "figure over the second's (\"inf\" when the second's is 0); null when the figure is missing."),
    Metric(path="checks[].threshold", label="check threshold", unit="as its metric", direction=NEITHER,
           window=Window.SETTING, coverage=NONE, scope=Scope.RUN,
           description="The bound the check compares its value with, from the scenario catalog."),
)

# The figures under apps.<app>, in the order the report and bench compare list them.
APP: tuple[Metric, ...] = (*REQUESTS, *POOL, *DB, *INTEGRITY, *ROUTES, *APP_LOG, *LINT_CONFIRMED)
