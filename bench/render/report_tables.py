"""The run report's tables: headline, checks, percentiles, routes, failures by message, integrity and app log.

bench.render.run_report lays them out; figures come from summary.json (labelled by the metric registry) and, for
the distributions, from each app's raw files through bench.analysis.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from bench.analysis import littleslaw as littles_law
from bench.analysis.distribution import LADDER, Ladder, bucket_ladder, failure_groups, ladder
from bench.analysis.loadperiod import STALL_EVENT
from bench.render.page import Cell, Table
from bench.results.metric import COUNT_UNITS, Metric, Shown
from bench.results.metrics import SHOWN, find, ratio, times, value_at
from bench.results.summaryfile import RunFolder

if TYPE_CHECKING:  # the terminal imports this before a run's load: the timeline's pandas loads with the report
    from bench.analysis.timeline import Timeline

# A model's bound, not an outcome: its ratio between two apps is shown without a better/worse verdict.
BOUNDS = frozenset({"pool.littles_law_ceiling_rps"})
# The two counts of idle in transaction, side by side when the app times its transactions: why they differ.
SERVER_IDLE, APP_IDLE = "db.idle_in_tx_seconds", "pool.idle_in_tx_app_s"
IDLE_NOTE = ("Idle in tx total is PostgreSQL's own count; the app-side total is the app's timing of each "
             "transaction from its statement events. The server also counts the moments an answer waits for the "
             "app's busy event loop, so on a loaded app its total is the larger (docs/metrics.md).")
OPS = {">=": "≥", "<=": "≤", "==": "=", ">": ">", "<": "<"}
MESSAGE_CHARS = 160


def headline_table(folder: RunFolder) -> Table:
    """The registry's report figures; a count that should be 0 and is 0 in every app is named in one note
    instead of a row of zeros each."""
    apps, names = folder.apps, list(folder.apps)
    pair = len(names) == 2
    columns = ("metric", *names, *([f"{names[1]}/{names[0]}"] if pair else []))
    rows, quiet = [], []
    for metric in SHOWN:
        values = [_at(apps[n], metric.path) for n in names]
        if metric.shown is Shown.NONZERO and names and not any(values):
            quiet.append(metric.label)
            continue
        cells = [Cell(metric.heading, title=metric.path), *(Cell(_fmt(v, metric.number_format), "num") for v in values)]
        if pair:
            cells.append(_ratio_cell(values[0], values[1], metric))
        rows.append(tuple(cells))
    notes = [n for name in names if (n := _ceiling_note(name, apps[name]))]
    if pair and any(r[0].title in BOUNDS for r in rows):
        notes.append("The Little's-law ceiling is a bound from the model (pool size / connection time per request), "
                     "not a measured outcome: its ratio carries no verdict.")
    if all(any(_at(apps[n], path) is not None for n in names) for path in (SERVER_IDLE, APP_IDLE)):
        notes.append(IDLE_NOTE)
    if quiet:
        notes.append(f"0 in {'every app' if len(names) > 1 else names[0]}: {', '.join(quiet)}.")
    title = f"Headline: {' vs '.join(names)}" if names else "Headline: no app finished"
    return Table("headline", title, columns, tuple(rows), tuple(notes))


# A pair check's ratio from which its two figures are shown beside it (``check_figures``).
FIGURES_PAST = 1000.0


def checks_table(folder: RunFolder) -> Table:
    checks = [c for c in folder.summary.get("checks") or [] if isinstance(c, dict)]
    passed = sum(bool(c.get("passed")) for c in checks)
    rows = tuple((Cell("✓", "pass") if c.get("passed") else Cell("✗", "fail"),
                  Cell(check_label(c), title=str(c.get("name", "?"))),
                  Cell(check_value(c) + check_figures(c, folder.apps), "num")) for c in checks)
    title = f"Checks: {passed} of {len(checks)} passed" if checks else "Checks"
    notes = () if checks else (f"no checks were evaluated (run {folder.status})",)
    stalls = tuple(f"Stall: {e.get('app', '?')}: {e.get('detail')}" for e in folder.summary.get("events") or []
                   if isinstance(e, dict) and e.get("event") == STALL_EVENT)
    return Table("checks", title, ("", "check", "value"), rows, stalls + notes)


def check_label(check: dict[str, Any]) -> str:
    """A check as the registry labels its figure: "good/bad: throughput ≥ 5×", "good: checkout timeouts = 0"."""
    metric, app = find(str(check.get("metric", ""))), str(check.get("app", "?"))
    if check.get("slo"):  # --slo: the objective as the user wrote it
        return f"{app}: {check['slo']}"
    op, threshold = OPS.get(str(check.get("op")), str(check.get("op"))), _number(check.get("threshold"))
    if metric is None or threshold is None:
        return str(check.get("name", "?"))
    if "/" in app:  # a pair check judges the ratio of the two apps' figures
        return f"{app}: {metric.label} {op} {threshold:g}×"
    return f"{app}: {metric.heading} {op} {threshold:g}"


def check_value(check: dict[str, Any]) -> str:
    value, metric = check.get("value"), find(str(check.get("metric", "")))
    number = _number(value)
    if check.get("slo") and number is not None:  # in the objective's own unit
        return f"{number * 100:.2f}%" if check.get("unit") == "ratio" else f"{number:,.1f} ms"
    if number is None:
        return "missing" if value is None else ("∞×" if str(value) == "inf" else str(value))
    if "/" in str(check.get("app", "")):
        return f"{times(number)}×"
    return (metric.number_format if metric else "{:,.4g}").format(number)


def check_figures(check: dict[str, Any], apps: dict[str, Any]) -> str:
    """" (bad 933.218 vs good 0.00251 ms)": the two figures of a pair check whose ratio is past ``FIGURES_PAST`` or
    infinite (the second's is 0), from summary.json's ``apps``; "" for any other check. "∞×" or "371,800×" alone
    hide that the second figure is next to nothing: a pool wait of 2.5 µs, a checkout that never queued."""
    metric, names = find(str(check.get("metric", ""))), str(check.get("app", "")).split("/")
    number = _number(check.get("value"))
    if metric is None or len(names) != 2 or check.get("slo") or (number is not None and number < FIGURES_PAST) \
            or (number is None and str(check.get("value")) != "inf"):
        return ""
    figures = [_number(value_at(apps.get(name) or {}, str(check["metric"]).split("."))) for name in names]
    # As summary.json holds them, every digit: the check divided these, so the quotient must come out as shown.
    shown = [f"{f:,.0f}" if f.is_integer() else f"{f:,}" for f in figures if f is not None]
    if len(shown) != 2:
        return ""
    unit = "" if metric.unit in COUNT_UNITS else f" {metric.unit}"
    return f" ({names[0]} {shown[0]} vs {names[1]} {shown[1]}{unit})"


def percentile_table(timelines: dict[str, Timeline]) -> Table:
    """Latency from requests.csv (nearest rank) and pool wait from the samples' histograms, 50th to 99.9th."""
    rows = []
    for app, timeline in timelines.items():
        rows.append(_ladder_row("latency (ms)", app, ladder(timeline.requests["response_time_ms"].to_numpy(float))))
    for app, timeline in timelines.items():
        counts = timeline.wait_counts()
        if counts is not None and counts.total:
            rows.append(_ladder_row("pool wait (ms)", app, bucket_ladder(counts)))
    columns = ("distribution", "app", "count", *(f"p{p:g}" for p in LADDER), "max")
    notes = [("Latency: every answered request in requests.csv, failed ones included (nearest rank: a latency some "
              "request had). Pool wait: the checkouts whose wait ended inside Little's-law window, as `pool.wait_ms` "
              "counts them, from the samples' histograms (bucket midpoints, within 0.5%): one per checkout of the "
              "requests answered in it (an app that checks out twice a request ranks twice as many), give or take "
              "the requests under way at either end (holding a connection, or between two checkouts). The requests "
              "Locust left queued at its stop are in neither row. Where the samples make no window, every checkout.")]
    if not any(t.wait_counts() for t in timelines.values()):
        notes.append("Pool wait: this run's samples carry no wait histograms (recorded before they did).")
    return Table("percentiles", "Percentiles", columns, tuple(rows), tuple(notes))


def _ladder_row(what: str, app: str, values: Ladder) -> tuple[Cell, ...]:
    return (Cell(what), Cell(app), Cell(f"{values.count:,}", "num"),
            *(Cell(ms_text(v), "num") for v in (*values.values, values.max)))


def ms_text(value: float | None) -> str:
    """Milliseconds to 0.1 ms, and under 1 ms to 0.001 ms: an uncontended pool wait is a few microseconds."""
    if value is None:
        return "-"
    return f"{value:.3f}" if 0 < value < 1 else f"{value:,.1f}"


def routes_table(folder: RunFolder) -> Table:
    rows = []
    order = {name: i for i, name in enumerate(folder.apps)}
    entries = [(str(route), app, _obj(e)) for app, figures in folder.apps.items()
               for route, e in _obj(figures.get("endpoints")).items()]
    for route, app, e in sorted(entries, key=lambda r: (r[0], order[r[1]])):
        failures, window = _at(e, "failures"), _at(folder.apps[app], "load_window_s")
        requests = _at(e, "requests")
        rate = requests / window if requests is not None and window else None
        rows.append((Cell(route), Cell(app), Cell(_fmt(requests, "{:,.0f}"), "num"), Cell(_fmt(rate, "{:,.1f}"), "num"),
                     Cell(_fmt(failures, "{:,.0f}"), "num worse" if failures else "num"),
                     *(Cell(_fmt(_at(e, f"latency_ms.{p}"), "{:,.1f}"), "num") for p in ("p50", "p95", "p99", "max")),
                     Cell(_fmt(_at(e, "pool_wait_ms.p95"), "{:,.1f}"), "num"),
                     Cell(_fmt(_at(e, "pool_hold_ms.p95"), "{:,.1f}"), "num")))
    columns = ("route", "app", "requests", "req/s", "failures", "p50", "p95", "p99", "max", "pool wait p95",
               "pool hold p95")
    explained = ("Times in ms. req/s: the route's requests (failed ones included) per second of the load window. "
                 "Latency: every answered request of the route; pool wait and hold: every checkout of the route, "
                 "load and cool-down (the samples carry no histogram per route), so a route's pool wait also "
                 "counts the requests Locust left queued at its stop, which the headline's does not.")
    notes = (explained,) if rows else ("no per-route figures in summary.json",)
    return Table("routes", "Per route", columns, tuple(rows), notes)


def failures_table(timelines: dict[str, Timeline]) -> Table:
    """Locust's Failures table, from the error column of requests.csv: per route and message."""
    rows = []
    for app, timeline in timelines.items():
        for group in failure_groups(timeline.requests):
            message = group.message if len(group.message) <= MESSAGE_CHARS else group.message[:MESSAGE_CHARS] + "…"
            rows.append((Cell(app), Cell(group.route), Cell(message, "wrap", title=group.message),
                         Cell(f"{group.occurrences:,}", "num worse"), Cell(f"{100 * group.share:.1f}%", "num"),
                         Cell(f"{group.first_s:,.1f}", "num")))
    notes = () if rows else ("no failed request in any app's request log",)
    return Table("failures", "Failures by route and message", ("app", "route", "message", "occurrences",
                 "of the route's requests", "first at (s)"), tuple(rows), notes)


def integrity_table(folder: RunFolder) -> Table:
    """Acknowledged vs written per app; per route too only when a scenario has more than one write route."""
    keys = ("acknowledged_writes", "rows_written", "lost_writes")
    measured = {app: _obj(f.get("integrity")) for app, f in folder.apps.items() if _obj(f.get("integrity"))}
    routes = {app: _obj(figures.get("by_route")) for app, figures in measured.items()}
    several = any(len(r) > 1 for r in routes.values())
    rows = []
    for app, figures in measured.items():
        only = next(iter(routes[app]), "") if len(routes[app]) == 1 else ("all write routes" if several else "")
        rows.append((Cell(app), Cell(only), *_count_cells(figures, keys)))
        if several:
            rows += [(Cell(app), Cell(str(route)), *_count_cells(_obj(e), keys))
                     for route, e in sorted(routes[app].items())]
    notes = (("Lost writes: acknowledged to the client but not in the database. Rows written may exceed "
              "acknowledged writes: requests in flight when the load stopped commit without Locust seeing "
              "a response."),) if rows else ("not measured: the scenario declares no write routes",)
    return Table("integrity", "Write integrity", ("app", "route", "acknowledged writes", "rows written",
                 "lost writes"), tuple(rows), notes)


def app_log_tables(folder: RunFolder) -> list[Table]:
    logs = {app: _obj(f.get("app_log")) for app, f in folder.apps.items() if _obj(f.get("app_log"))}
    if not logs:
        return []
    kinds = list(dict.fromkeys(k for log in logs.values() for k, v in log.items() if isinstance(v, int)))
    shown = [k for k in kinds if k == "lines" or any(log.get(k) for log in logs.values())]
    rows = tuple((Cell(kind), *(Cell(_fmt(_at(log, kind), "{:,.0f}"),
                                     "num" if kind == "lines" or not log.get(kind) else "num worse")
                                for log in logs.values())) for kind in shown)
    notes = () if len(shown) > 1 else ("no errors, warnings or pool complaints in the app logs",)
    tables = [Table("app-log", "App log", ("count", *logs), rows, notes)]
    examples = tuple((Cell(app), Cell(str(text), "wrap"), Cell(_fmt(_number(n), "{:,.0f}"), "num"))
                     for app, log in logs.items() for text, n in _obj(log.get("exceptions")).items())
    if examples:
        tables.append(Table("app-log-exceptions", "Most frequent exceptions in the app logs",
                            ("app", "exception", "lines"), examples))
    return tables


# --- cells --------------------------------------------------------------------------------------

def _ratio_cell(base: float | None, other: float | None, metric: Metric) -> Cell:
    value = ratio(base, other)
    if value is None or base is None or other is None:
        return Cell("-", "num")
    if base == other:
        return Cell("=", "num")
    text = "∞" if base == 0 else f"{value:,.2f}×"
    if metric.path in BOUNDS:
        return Cell(text, "num")
    worse = (other > base) == (metric.direction.value == "lower")
    return Cell(f"{text} {'worse' if worse else 'better'}", "num worse" if worse else "num better")


def _ceiling_note(name: str, app: dict[str, Any]) -> str:
    shown = littles_law.note(name, app)
    if shown is not None:
        return shown
    # A summary.json from before the ceiling's window was recorded: its ceiling came from hold_ms_per_request.
    pool = _obj(app.get("pool"))
    ceiling, used, per_request = (_at(pool, "littles_law_ceiling_rps"), _at(pool, "ceiling_utilisation"),
                                  _at(pool, "hold_ms_per_request"))
    rps = _at(app, "throughput_rps")
    if ceiling is None or used is None or per_request is None or rps is None:
        return ""
    return (f"{name}: {rps:,.1f} req/s measured vs {ceiling:,.1f} req/s Little's-law ceiling "
            f"(pool {pool.get('capacity', '?')} / {per_request:,.1f} ms held per request) = {100 * used:.0f}%")


def _count_cells(figures: dict[str, Any], keys: tuple[str, ...]) -> tuple[Cell, ...]:
    return tuple(Cell(_fmt(_at(figures, k), "{:,.0f}"), "num worse" if k == "lost_writes" and figures.get(k)
                      else "num") for k in keys)


def _at(node: Any, path: str) -> float | None:
    return value_at(node, path.split("."))


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _fmt(value: float | None, fmt: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else figure_text(value, fmt)


def figure_text(value: float, fmt: str) -> str:
    """``value`` in its metric's format, but never a bare 0 for a figure that is not 0: good's pool wait p95 of
    0.004 ms read "0.0" beside a ratio of a million; two significant digits then."""
    text = fmt.format(value)
    if value and not any(digit in text for digit in "123456789"):
        return f"{value:.2g}"
    return text
