"""The run report's plots: per-second series over time, per-route series, and latency and pool-wait histograms,
good and bad overlaid, each column of a plot carrying its values as a hover title.

bench.render.run_report calls ``time_charts``, ``route_charts`` and ``distribution_charts`` with each app's
Timeline (bench.analysis.timeline); bench.render.svgplot draws them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bench.analysis.distribution import Binned, binned, bucket_binned, edges_between, log_edges
from bench.analysis.timeline import Gauge, Timeline
from bench.render.svgplot import Band, Chart, Hover, Reference, Series

FloatArray = NDArray[np.float64]
# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
COLORS = {"good": "#0072B2", "bad": "#D55E00", "target": "#009E73"}
SPARE_COLORS = ("#CC79A7", "#E69F00", "#56B4E9")
ROUTE_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
MAX_ROUTES = len(ROUTE_COLORS)  # per-route plots show the busiest; the per-route table lists them all
MAX_HOVER = 240  # hover columns per plot: one per second up to four minutes, then one per few seconds


@dataclass(frozen=True)
class _Phases:
    """What every plot over time shares: the cool-down band and the "load" label at its left."""

    bands: tuple[Band, ...]
    first_label: str


@dataclass(frozen=True)
class _Line:
    """One app's (or route's) values on the shared one-second grid, and how its hover text reads them."""

    name: str
    y: FloatArray
    color: str
    fmt: str  # "{:,.1f} ms"
    low: FloatArray | None = None
    high: FloatArray | None = None
    words: tuple[str, str, str] = ("", "", "")  # what y, low and high are: ("p95", "p50", "p99")
    dash: str = ""


def app_colors(apps: Sequence[str]) -> dict[str, str]:
    return {app: COLORS.get(app, SPARE_COLORS[i % len(SPARE_COLORS)]) for i, app in enumerate(apps)}


def time_charts(timelines: dict[str, Timeline], pool_refs: tuple[Reference, ...],
                idle_threshold_ms: float | None) -> list[Chart]:
    colors = app_colors(list(timelines))
    seconds = {app: t.per_second() for app, t in timelines.items()}
    gauges = {column: {app: t.gauge(column) for app, t in timelines.items()}
              for column in ("pool_checked_out", "idle_in_tx", "idle_in_tx_oldest_s")}
    common = _phases(timelines)
    ok = [_Line(a, s.ok_rps, colors[a], "{:,.1f} req/s") for a, s in seconds.items()]
    latency = [_Line(f"{a} p95", s.p95_ms, colors[a], "{:,.1f} ms", s.p50_ms, s.p99_ms, ("p95", "p50", "p99"))
               for a, s in seconds.items()]
    charts = [
        _chart("Throughput (successful responses per second)", "requests/s", ok, common),
        _chart("Latency per second (ms): p95, band p50 to p99", "ms", latency, common),
    ]
    failed = [_Line(a, s.failed_rps, colors[a], "{:,.1f} failed/s") for a, s in seconds.items()]
    if any(np.nansum(line.y) > 0 for line in failed):
        charts.append(_chart("Failed responses per second", "failures/s", failed, common))
    charts.append(_pool_wait_chart(timelines, colors, common))
    charts += [
        _chart("Connections checked out (mean per second, band min–max)", "connections",
               _gauge_lines(gauges["pool_checked_out"], colors), common, references=pool_refs),
        _chart("Idle in transaction (mean per second, band min–max)", "connections",
               _gauge_lines(gauges["idle_in_tx"], colors), common),
    ]
    oldest = [_Line(a, _on_grid(g.x, g.high), colors[a], "{:,.3f} s") for a, g in gauges["idle_in_tx_oldest_s"].items()
              if g.x.size]
    refs = (Reference(idle_threshold_ms / 1000, f"long: past {idle_threshold_ms:g} ms"),) if idle_threshold_ms else ()
    charts.append(_chart("Oldest idle-in-transaction age (s), largest per second", "seconds", oldest, common,
                         references=refs))
    return charts


def route_charts(timelines: dict[str, Timeline]) -> list[Chart]:
    """Per app, throughput and latency p95 per second of its busiest routes; the same route has the same colour in
    every plot, and each pair of plots shares its y axis so the apps compare at a glance."""
    routes = list(dict.fromkeys(r for t in timelines.values() for r in t.routes()))[:MAX_ROUTES]
    if len(routes) < 2:
        return []
    colors = dict(zip(routes, ROUTE_COLORS, strict=False))
    common = _phases(timelines)
    per_app = {app: {r: t.per_second(r) for r in routes} for app, t in timelines.items()}
    rate_top = max((float(np.nanmax(s.ok_rps)) for v in per_app.values() for s in v.values()
                    if s.ok_rps.size and not np.isnan(s.ok_rps).all()), default=0.0)
    p95_top = max((float(np.nanmax(s.p95_ms)) for v in per_app.values() for s in v.values()
                   if s.p95_ms.size and not np.isnan(s.p95_ms).all()), default=0.0)
    charts = []
    for app, series in per_app.items():
        charts.append(_chart(f"{app}: successful responses per second, by route", "requests/s",
                             [_Line(r, s.ok_rps, colors[r], "{:,.1f} req/s") for r, s in series.items()], common,
                             y_max=rate_top))
        charts.append(_chart(f"{app}: latency p95 per second, by route (ms)", "ms",
                             [_Line(r, s.p95_ms, colors[r], "{:,.1f} ms") for r, s in series.items()], common,
                             y_max=p95_top))
    return charts


def distribution_charts(timelines: dict[str, Timeline]) -> list[Chart]:
    colors = app_colors(list(timelines))
    values = {a: t.requests["response_time_ms"].to_numpy(dtype=float) for a, t in timelines.items()}
    edges = log_edges(list(values.values()))
    charts = [_histogram("Latency distribution (share of requests per bin)", "response time (ms, log scale)",
                         {a: binned(v, edges) for a, v in values.items() if v.size}, colors, "requests")]
    waits = {a: c for a, t in timelines.items() if (c := t.wait_counts()) is not None and c.total}
    if waits:
        low = min(max((c.percentile(1) or 0.0) * 1000, 1e-3) for c in waits.values())
        edges = edges_between(low, max(c.max_s for c in waits.values()) * 1000)
        charts.append(_histogram("Pool wait distribution (share of checkouts per bin)",
                                 "pool wait (ms, log scale)", {a: bucket_binned(c, edges) for a, c in waits.items()}, colors,
                                 "checkouts"))
    return charts


# --- building blocks ----------------------------------------------------------------------------

def _phases(timelines: dict[str, Timeline]) -> _Phases:
    # The cool-down from the load's stop (the samples' own phase turns a moment later, once Locust has exited).
    load_ends = [t.stop_s for t in timelines.values() if t.load_end_s is not None or t.load_window_s is not None]
    bands = (Band(min(load_ends), max(t.end_s for t in timelines.values()), "cool-down"),) if load_ends else ()
    return _Phases(bands=bands, first_label="load" if timelines else "")


def _chart(title: str, y_label: str, lines: list[_Line], common: _Phases,
           references: tuple[Reference, ...] = (), y_max: float | None = None) -> Chart:
    n = max((line.y.size for line in lines), default=0)
    lines = [_padded(line, n) for line in lines]
    x = np.arange(n, dtype=float) + 0.5
    series = tuple(Series(line.name, x, line.y, line.color, low=line.low, high=line.high, dash=line.dash)
                   for line in lines if line.y.size and not np.isnan(line.y).all())
    return Chart(title=title, y_label=y_label, series=series, references=references, y_max=y_max or None,
                 hover=_time_hover(lines, n), bands=common.bands, first_label=common.first_label)


def _pool_wait_chart(timelines: dict[str, Timeline], colors: dict[str, str], common: _Phases) -> Chart:
    lines = []
    for app, t in timelines.items():
        counts = t.waits  # every sample's, load and cool-down: the chart shows both
        if counts is not None:
            seconds = math.ceil(t.end_s) if t.end_s > 0 else 0
            lines.append(_Line(app, counts.per_group(95, seconds) * 1000, colors[app], "{:,.2f} ms"))
    if lines or not timelines:
        return _chart("Pool wait p95 per second (ms)", "ms", lines, common)
    # A run recorded before the samples carried their wait histograms: each sample's own interval p95, per second.
    sampled = {app: t.gauge("pool_wait_p95_ms") for app, t in timelines.items()}
    return _chart("Pool wait p95 per sample interval (ms): mean per second, band min–max", "ms",
                  _gauge_lines(sampled, colors), common)


def _gauge_lines(gauges: dict[str, Gauge], colors: dict[str, str]) -> list[_Line]:
    return [_Line(app, _on_grid(g.x, g.mean), colors[app], "{:,.2f}", _on_grid(g.x, g.low), _on_grid(g.x, g.high),
                  ("mean", "min", "max")) for app, g in gauges.items() if g.x.size]


def _on_grid(x: FloatArray, y: FloatArray) -> FloatArray:
    """Values at bucket middles i + 0.5 onto an array indexed by i."""
    out = np.full(int(x.max()) + 1 if x.size else 0, np.nan)
    out[np.floor(x).astype(np.int64)] = y
    return out


def _padded(line: _Line, n: int) -> _Line:
    """The line on a grid of ``n`` seconds: NaN past its own end (one app may have run a second longer)."""
    def pad(values: FloatArray) -> FloatArray:
        return np.concatenate([values, np.full(n - values.size, np.nan)])

    return _Line(line.name, pad(line.y), line.color, line.fmt, None if line.low is None else pad(line.low),
                 None if line.high is None else pad(line.high), line.words, line.dash)


def _time_hover(lines: list[_Line], n: int) -> tuple[Hover, ...]:
    """One column per second (per few seconds on long runs, each line's mean over them): every line's value."""
    size = max(1, math.ceil(n / MAX_HOVER))
    columns = math.ceil(n / size)
    grouped = [_Grouped.of(line, size, columns) for line in lines]
    out = []
    for i in range(columns):
        start, stop = i * size, min(n, (i + 1) * size)
        parts = [text for g in grouped if (text := g.describe(i))]
        if parts:
            span = f"{start}–{stop} s" + (" (means)" if stop - start > 1 else "")
            out.append(Hover(float(start), float(stop), f"{span}: " + " · ".join(parts)))
    return tuple(out)


@dataclass(frozen=True)
class _Grouped:
    """A line's values per hover column: the mean of y, the least low and the largest high of its seconds."""

    line: _Line
    y: FloatArray
    low: FloatArray | None
    high: FloatArray | None

    @classmethod
    def of(cls, line: _Line, size: int, columns: int) -> _Grouped:
        def shaped(values: FloatArray) -> FloatArray:
            return np.concatenate([values, np.full(columns * size - values.size, np.nan)]).reshape(columns, size)

        with warnings.catch_warnings():  # an all-NaN column is NaN: nothing measured there
            warnings.simplefilter("ignore", RuntimeWarning)
            y = np.nanmean(shaped(line.y), axis=1)
            ranged = line.low is not None and line.high is not None
            low = np.nanmin(shaped(line.low), axis=1) if ranged else None  # type: ignore[arg-type]
            high = np.nanmax(shaped(line.high), axis=1) if ranged else None  # type: ignore[arg-type]
        return cls(line=line, y=y, low=low, high=high)

    def describe(self, i: int) -> str:
        if np.isnan(self.y[i]):
            return ""
        line, fmt = self.line, self.line.fmt.format
        word, low_word, high_word = line.words
        named = line.name if not word or line.name.endswith(word) else f"{line.name} {word}"
        text = f"{named} {fmt(float(self.y[i]))}"
        if self.low is not None and self.high is not None and not np.isnan(self.low[i]):
            text += f" ({low_word} {fmt(float(self.low[i]))}, {high_word} {fmt(float(self.high[i]))})"
        return text


def _histogram(title: str, x_label: str, distributions: dict[str, Binned], colors: dict[str, str],
               unit: str) -> Chart:
    series = tuple(Series(app, np.sqrt(d.edges_ms[:-1] * d.edges_ms[1:]), 100 * d.share, colors[app],
                          step=d.edges_ms) for app, d in distributions.items())
    hover = []
    edges = next(iter(distributions.values())).edges_ms if distributions else np.array([])
    for i in range(len(edges) - 1):
        parts = [f"{app} {100 * d.share[i]:.1f}% ({d.count[i]:,} {unit if d.count[i] != 1 else unit[:-1]})"
                 for app, d in distributions.items()]
        hover.append(Hover(float(edges[i]), float(edges[i + 1]),
                           f"{_ms(edges[i])}–{_ms(edges[i + 1])} ms: " + " · ".join(parts)))
    return Chart(title=title, y_label=f"% of {unit}", x_label=x_label, series=series, hover=tuple(hover),
                 x_log=True, empty_note=f"no {unit} recorded")


def _ms(value: float) -> str:
    return f"{value:,.3g}" if value < 100 else f"{value:,.0f}"
