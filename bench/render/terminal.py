"""What a person sees in the terminal: the run header, a live progress line, the k6-style final summary.

The runner calls ``Console``; output goes to stderr (progress) and stdout (summary), never a DSN password.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from bench.analysis.loadperiod import STALL_EVENT
from bench.config.catalog import Scenario
from bench.config.options import RunConfig
from bench.results.layout import RunFiles
from bench.results.metric import Direction, Shown
from bench.results.metrics import SHOWN, ratio, value_at

if TYPE_CHECKING:
    from bench.results.records import DbFigures
    from bench.results.requestlog import RequestTail


class LiveFigures(Protocol):
    """What the progress line reads from the run's collector (bench.run.collector, a layer above this one)."""

    @property
    def last_pool(self) -> dict[str, Any] | None: ...

    @property
    def figures(self) -> DbFigures: ...


# (label, metric path, format, lower is better), from the metric registry (bench.results.metrics): the report's
# headline table shows every row; the terminal the HEADLINE ones always, the SHOWN_WHEN_NONZERO ones only where
# some app has a non-zero value.
ROWS: tuple[tuple[str, str, str, bool], ...] = tuple(
    (m.heading, m.path, m.number_format, m.direction is Direction.LOWER) for m in SHOWN
)
HEADLINE = tuple(m.path for m in SHOWN if m.shown is Shown.ALWAYS)
SHOWN_WHEN_NONZERO = tuple(m.path for m in SHOWN if m.shown is Shown.NONZERO)
LABEL_WIDTH = max(30, *(len(label) for label, *_ in ROWS))


def lookup(app: dict[str, Any], path: str) -> float | None:
    return value_at(app, path.split("."))


PROGRESS_EVERY_S = 5.0  # between progress lines written to a log rather than redrawn on a terminal


class Console:
    def __init__(self, out: TextIO | None = None, err: TextIO | None = None, quiet: bool = False) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.quiet = quiet
        self.live = self.err.isatty()
        self._phase: tuple[str, str] | None = None
        self._lines_due = 0
        self._width = 0

    def info(self, message: str) -> None:
        self.end_progress()
        print(message, file=self.err, flush=True)

    def header(self, config: RunConfig, scenario: Scenario, folder: Path) -> None:
        apps = " then ".join(config.apps)
        line = (
            f"scopebench · {scenario.name} · {apps} · {config.users} users · {config.duration_s:g}s load"
            f" + {config.cooldown_s:g}s cool-down"
        )
        if config.target is None and config.serve is None:
            # The paired apps' pool and upstream are what the harness set; a service of the user's (--target,
            # --serve) has its own, which the harness does not know.
            line += (
                f" · pool {config.pool_size}+{config.max_overflow} (timeout {config.pool_timeout_s:g}s)"
                f" · upstream {config.upstream_latency_ms:g} ms"
            )
        else:
            line += " · your service (--serve)" if config.serve is not None else " · your service (--target)"
        self.info(line)
        self.info(f"run folder: {folder}")

    def progress(
        self, app: str, phase: str, elapsed: float, total: float, tail: RequestTail, collector: LiveFigures,
        last: bool = False,
    ) -> None:
        """The app's phase so far: one line redrawn in place on a terminal; else (a log, CI) a line every
        PROGRESS_EVERY_S of the phase and one at its end (``last``), the same lines for every app."""
        due = int(elapsed // PROGRESS_EVERY_S)  # how many PROGRESS_EVERY_S of the phase have passed
        if (app, phase) != self._phase:
            self._phase, self._lines_due = (app, phase), 0
        # Past the phase's length, only its last line: the one the phase's end gives, with its final counts.
        if self.quiet or (not self.live and not last and (due <= self._lines_due or elapsed >= total)):
            return
        self._lines_due = due
        pool = collector.last_pool or {}
        gauges = pool.get("gauges", {})
        rate = tail.requests / elapsed if phase == "load" and elapsed > 0 else 0.0
        # The cool-down keeps the load's columns: Locust has stopped, so its count stays and there is no rate.
        line = (
            f"{app:>4} {phase:<9} {f'{elapsed:.1f}/{total:g}s':>11}  {tail.requests:>7} req"
            f"{f'  {rate:7.1f} req/s' if phase == 'load' else ' ' * 15}  {tail.failures} failed"
            f"  pool {gauges.get('checked_out', '?'):>3}/{gauges.get('size', '?'):<3} out, {gauges.get('pending', 0):>4} waiting"
            f"  idle in tx past threshold {collector.figures.idle_in_tx_after_load}"
        )
        if self.live:
            pad = max(0, self._width - len(line))
            self.err.write("\r" + line + " " * pad)
            self.err.flush()
            self._width = len(line)
        else:
            print(line, file=self.err, flush=True)

    def end_progress(self) -> None:
        if self.live and self._width:
            self.err.write("\r" + " " * self._width + "\r")
            self.err.flush()
            self._width = 0

    def final(self, summary: dict[str, Any], folder: Path, error: str | None, report: Path | None = None) -> None:
        self.end_progress()
        print(render_summary(summary, folder, report), file=self.out, flush=True)
        if error:
            print(f"error: {error}", file=self.err, flush=True)


def render_summary(summary: dict[str, Any], folder: Path, report: Path | None = None) -> str:
    # Loaded with the summary, not before a run's first request: these bring in the analysis and numpy.
    from bench.analysis import littleslaw as littles_law
    from bench.render.hold_sites import terminal_lines as hold_site_lines
    from bench.render.lint_lines import terminal_lines as lint_lines
    from bench.render.report_tables import check_figures, check_label, check_value, figure_text

    apps: dict[str, Any] = summary.get("apps", {})
    names = list(apps)
    lines = [""]
    if names:
        ratio = len(names) == 2
        head = (
            f"  {'':<{LABEL_WIDTH}}"
            + "".join(f"{n:>12}" for n in names)
            + (f"{names[1] + '/' + names[0]:>12}" if ratio else "")
        )
        lines.append(head)
        for label, path, fmt, _lower in ROWS:
            values = [lookup(apps[n], path) for n in names]
            if path not in HEADLINE and not (path in SHOWN_WHEN_NONZERO and any(values)):
                continue
            cells = "".join(f"{figure_text(v, fmt) if v is not None else '-':>12}" for v in values)
            if ratio:
                cells += f"{_ratio_text(values[0], values[1]):>12}"
            lines.append(f"  {label:<{LABEL_WIDTH}}{cells}")
        lines.extend(f"  {note}" for name in names if (note := littles_law.note(name, apps[name])))
        lines.extend(_culprits(apps))
        lines.extend(hold_site_lines(apps))
        lines.extend(lint_lines(apps))
    lines.extend(_stalls(summary.get("events", [])))
    checks = summary.get("checks", [])
    if checks:
        lines.append("")
        lines.append("checks")
        for check in checks:
            # As the report shows it: the registry's label ("good/bad: throughput ≥ 5×"), not the raw path.
            mark = "✓" if check["passed"] else "✗"
            lines.append(f"  {mark} {check_label(check):<52} {check_value(check):>9}{check_figures(check, apps)}")
        if failed := sum(not check["passed"] for check in checks):
            lines.append(f"{failed} of {len(checks)} checks failed")
    startup = summary.get("timings", {}).get("startup_s")
    if startup is not None:
        lines.append(f"\nstart-up: {startup:.2f}s from command to first request")
    status = summary.get("status", "?")
    lines.append(f"{status}: {RunFiles(folder).summary_json}")
    if report is not None:
        lines.append(f"report: {report} (and {RunFiles(folder).report_md.name} beside it)")
    return "\n".join(lines)


def _culprits(apps: dict[str, Any]) -> list[str]:
    """Per app, the route that holds the pool most and the one the database sees idle in transaction
    most (a leaked connection never returns to the pool, so only the database side sees it)."""
    lines = []
    for name, app in apps.items():
        shares = (app.get("pool") or {}).get("hold_share_by_route") or {}
        if len(shares) >= 2:
            route, share = next(iter(shares.items()))
            lines.append(f"  {name}: {route} holds {100 * share:.0f}% of pool time")
        idle = (app.get("db") or {}).get("idle_in_tx_long_by_route") or {}
        if idle and (len(shares) >= 2 or len(idle) >= 2):
            route, seconds = next(iter(idle.items()))
            requests = (app.get("endpoints") or {}).get(route, {}).get("requests")
            per = f", {_ms(seconds / requests * 1000)} ms per request" if requests else ""
            lines.append(f"  {name}: {route} left connections idle in transaction {seconds:.1f} s{per}")
    return lines


def _ms(value: float) -> str:
    """Two significant digits under 10 (0.14 ms is not 0), whole numbers above."""
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def _stalls(events: list[dict[str, Any]]) -> list[str]:
    """The time line's stalls, by name: a frozen app must not read as a quiet, healthy run."""
    return [
        f"  ✗ {e.get('app', '?')}: {e.get('detail', 'stalled')}"
        for e in events
        if isinstance(e, dict) and e.get("event") == STALL_EVENT
    ]


def _ratio_text(base: float | None, other: float | None) -> str:
    value = ratio(base, other)
    if value is None:
        return "-"
    if base == 0:
        return "=" if value == 1.0 else "∞"
    return f"{value:.2f}x" if math.isfinite(value) else "-"
