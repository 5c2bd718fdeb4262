"""Every figure of summary.json, defined as today's code computes it (bench.analysis.summary, bench.run.collector,
bench.analysis.applog). bench.results.metrics joins these into the registry; nothing else imports this module.
"""

from __future__ import annotations

from bench.results.metric import (
    ALL,
    BOTH,
    CHECKOUTS,
    HIGHER,
    HIST,
    LATENCY,
    LOAD,
    LOWER,
    NEITHER,
    NONE,
    OK,
    SHUTDOWN,
    Metric,
    Scope,
    Shown,
    Window,
    family,
)
from bench.results.pool_figures import POOL
from bench.results.site_figures import IDLE_BY_SITE, LINT_CONFIRMED

_RANK = "nearest rank: the latency at rank ceil(p·n / 100) of the n sorted, one some request really had"

# (prefix, title, what holds for every figure under it): docs/metrics.md puts the note above the block's rows.
SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("", "Requests", ("From Locust's own count (locust.json) and the harness's per-request log (requests.csv, "
     "written by the Locust recorder plugin), over the load.")),
    ("pool.", "Pool (`pool`)", ("From the app's pool instrumentation, as of the collector's last reading of the "
     "pool endpoint (in the cool-down), kept in the app's folder as pool.json: the pool's own counters and "
     "histograms since the app started, per route too, and the hold sites (the last reading is a full one). The "
     "block is null, and there is no pool.json, without a pool endpoint (target mode without "
     "--pool-url).")),
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
           description="Longest quiet stretch of the load period: a stretch with no response while a request "
                       "was waiting, from a response (or the load's start), or from the next request sent after it "
                       "when none was waiting, to the next response or the load's end. The stretch before the first "
                       "response counts (its requests wait for it). Long enough to be a stall or not; 0 when no "
                       "request ever waited unanswered. The stalls are the quiet stretches long enough."),
    *family("latency_ms", "latency", f"response time of every answered request in the per-request log, failed "
             f"ones included as Locust and k6 count them ({_RANK}), as Locust timed them; 0 when none was answered",
             LATENCY, unit="ms", direction=LOWER, window=LOAD, coverage=ALL,
             shown={"p95": Shown.ALWAYS}),
    *family("success_latency_ms", "success latency", f"response time of the successful requests in the "
             f"per-request log ({_RANK}), as Locust timed them; failed requests are left out (before this figure "
             "existed, `latency_ms` was this), and it is 0 when none succeeded",
             LATENCY, unit="ms", direction=LOWER, window=LOAD, coverage=OK),
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
    # Its noise floor and the two below are the ones bench.config.gates' rule derives from the A/A spread (README,
    # "CI verdicts"): a correct twin's run-to-run swing on a busy 2-core machine must not count, while a culprit's
    # 67 to 8,400 ms per request does.
    Metric(path="db.idle_in_tx_long_per_request_ms", label="idle in tx past threshold per request",
           unit="ms/request", direction=LOWER, window=LOAD, coverage=OK, noise=10.0,
           description="Idle in transaction past the threshold per successful request, over `pool.littles_law`'s "
                       "window: the samples' connection-seconds idle past `config.idle_threshold_ms` inside the "
                       "window (each sample's count times the interval since the sample before, as "
                       "`idle_in_tx_long_seconds` counts them) × 1000 / the successful requests answered inside "
                       "it. Without that window (no pool samples): `idle_in_tx_long_seconds` (load + cool-down) × "
                       "1000 / successful requests (load). Null when none succeeded."),
    Metric(path="db.idle_in_tx_per_request_ms", label="idle in tx per request", unit="ms/request",
           direction=LOWER, window=LOAD, coverage=OK, shown=Shown.REPORT, noise=39.0,
           description="Idle in transaction per successful request, over `pool.littles_law`'s window (the "
                       "stretch of the load `pool.hold_ms_per_request` is taken over): the part of "
                       "`idle_in_tx_seconds` inside the window × 1000 / the successful requests answered inside "
                       "it. The part inside is the server's exact total less the samples' estimate of the part "
                       "outside (`idle_in_tx_seconds_sampled` less the samples' own part inside the window, never "
                       "below 0): the time before the window and the cool-down, where the app serves the requests "
                       "Locust left waiting at its stop and a leak stays idle. Short spells outside the window "
                       "that no sample caught stay in, so a correct app's figure can read a percent or two high. "
                       "Idle in transaction is a part of holding a connection: with no failed request it comes out "
                       "at or under `pool.hold_ms_per_request`, or past it by a fraction of a percent (the part "
                       "outside the window is the samples' estimate). Failed requests count there and not here, "
                       "so a change "
                       "that makes requests fail raises this figure. The whole run's idle time is "
                       "`idle_in_tx_seconds`, a leak's after the load `idle_in_tx_after_load`. Without that window "
                       "(no pool samples): `idle_in_tx_seconds` (load + cool-down) × 1000 / successful requests "
                       "(load). Null when none succeeded."),
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
    *family("endpoints.<route>.pool_hold_ms", "route pool hold", "hold time of the route's checkins", HIST, unit="ms", direction=LOWER, window=BOTH, coverage=CHECKOUTS,
            histogram=True),
    *family("endpoints.<route>.pool_wait_ms", "route pool wait", "queue wait of the route's checkouts, every one, "
            "load and cool-down: the samples carry no histogram per route, so unlike `pool.wait_ms` it also counts "
            "the requests Locust left queued at its stop, served in the cool-down", HIST, unit="ms", direction=LOWER, window=BOTH, coverage=CHECKOUTS,
            histogram=True),
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
                       "figure over the second's, both as summary.json shows them, so the division can be redone "
                       "from the file (\"inf\" when the second's is 0); null when the figure is missing. Where the "
                       "ratio is 1,000× or more, or infinite, the terminal, the report and the JUnit failure message "
                       "show the two figures beside it as the file holds them (`249,674× (bad 961.496 vs good 0.003851 ms)`): a ratio that large "
                       "says the second figure is next to nothing, not that the first is huge. A "
                       "`--slo` objective's value is the figure it names (`p95`: `latency_ms.p95`, `pool_wait_p95`: "
                       "`pool.wait_ms.p95`, a route's from `endpoints.<route>`), and `errors` is `failures` / "
                       "`requests`, a fraction shown as a percentage."),
    Metric(path="checks[].threshold", label="check threshold", unit="as its metric", direction=NEITHER,
           window=Window.SETTING, coverage=NONE, scope=Scope.RUN,
           description="The bound the check compares its value with, from the scenario catalog."),
)

# The figures under apps.<app>, in the order the report and bench compare list them.
APP: tuple[Metric, ...] = (*REQUESTS, *POOL, *DB, *INTEGRITY, *ROUTES, *APP_LOG, *LINT_CONFIRMED)
