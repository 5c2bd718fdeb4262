"""Line charts as inline SVG text: axes with ticks, a wrapped legend, shaded phases, ranges, reference lines, gaps,
and hover values (a ``<title>`` per column of the plot, which browsers show on hover without any script).

The report modules draw their plots with it, so report.html needs no plotting library, script or network.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

WIDTH, HEIGHT = 640, 320
# Plot area inside the SVG: room for the title and legend above, tick labels left and below.
LEFT, RIGHT, TOP, BOTTOM = 64, 18, 58, 44
LEGEND_ROW = 18  # each further legend row pushes the plot area down by this much
MAX_POINTS = 1000
AXIS, GRID, TEXT, MUTED, BAND = "#4a4a4a", "#e3e3e3", "#1f1f1f", "#6b6b6b", "#eef0f3"
# A white outline behind labels drawn over data, so a line crossing them does not make them unreadable.
HALO = 'paint-order="stroke" stroke="#ffffff" stroke-width="3" stroke-linejoin="round"'


@dataclass(frozen=True)
class Series:
    """One line; NaN values leave a gap (e.g. no checkout happened in that interval). ``low``/``high`` shade a
    range around it (a per-second min-max, p50-p99); ``step`` draws a histogram's flat tops."""

    name: str
    x: FloatArray
    y: FloatArray
    color: str
    low: FloatArray | None = None
    high: FloatArray | None = None
    dash: str = ""
    width: float = 1.8
    step: FloatArray | None = None  # a histogram's bin edges (len(y) + 1): drawn as flat tops between them


@dataclass(frozen=True)
class Band:
    """A shaded stretch of the x axis, such as the cool-down after the load stopped."""

    x0: float
    x1: float
    label: str


@dataclass(frozen=True)
class Reference:
    """A dashed horizontal line at a fixed value, such as the pool size or a threshold; drawn over the series."""

    y: float
    label: str
    color: str = MUTED


@dataclass(frozen=True)
class Hover:
    """A column of the plot, x0 to x1, that shows ``text`` when the pointer rests on it."""

    x0: float
    x1: float
    text: str


@dataclass(frozen=True, kw_only=True)
class Chart:
    title: str
    y_label: str
    x_label: str = "seconds since load start"
    series: tuple[Series, ...]
    bands: tuple[Band, ...] = ()
    references: tuple[Reference, ...] = ()
    first_label: str = ""  # written at the left edge of the plot area, e.g. "load"
    hover: tuple[Hover, ...] = ()
    x_log: bool = False  # a log axis (histograms of latency): x values must be positive
    y_max: float | None = None  # the y axis's top at least this (charts meant to be read side by side)
    empty_note: str = "no data recorded"


@dataclass(frozen=True)
class _Frame:
    """Maps data coordinates to SVG pixels."""

    x_min: float
    x_max: float
    y_max: float
    top: float
    x_log: bool = False

    def _u(self, x: FloatArray | float) -> FloatArray:
        values = np.asarray(x, dtype=float)
        return np.log10(np.maximum(values, 1e-12)) if self.x_log else values

    def px(self, x: FloatArray | float) -> FloatArray | float:
        low, high = float(self._u(self.x_min)), float(self._u(self.x_max))
        if high == low:
            return float(LEFT)
        return LEFT + (WIDTH - LEFT - RIGHT) * (self._u(x) - low) / (high - low)

    def py(self, y: FloatArray | float) -> FloatArray | float:
        return HEIGHT - BOTTOM - (HEIGHT - self.top - BOTTOM) * np.asarray(y) / self.y_max


@dataclass(frozen=True)
class Binned:
    """A long series reduced to equal-count bins: the mean per bin, and the range it spans."""

    x: FloatArray
    mean: FloatArray
    low: FloatArray
    high: FloatArray


def binned(x: FloatArray, y: FloatArray, bins: int, low: FloatArray | None = None,
           high: FloatArray | None = None) -> Binned:
    """Bins of consecutive points; a bin with nothing measured is NaN, so the line shows a gap. The range is that
    of ``low``/``high`` when given (a band stays a band), else of ``y``."""
    size = math.ceil(len(x) / bins)
    bins = math.ceil(len(x) / size)
    pad = bins * size - len(x)

    def shaped(values: FloatArray) -> FloatArray:
        return np.concatenate([values, np.full(pad, np.nan)]).reshape(bins, size)

    xx, yy = shaped(x), shaped(y)
    ll, hh = shaped(y if low is None else low), shaped(y if high is None else high)
    present = ~np.isnan(yy)
    count = present.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(present, yy, 0.0).sum(axis=1) / count
        centre = np.where(np.isnan(xx), 0.0, xx).sum(axis=1) / (~np.isnan(xx)).sum(axis=1)
    lo = np.where(np.isnan(ll), np.inf, ll).min(axis=1)
    hi = np.where(np.isnan(hh), -np.inf, hh).max(axis=1)
    empty = count == 0
    return Binned(x=centre, mean=np.where(empty, np.nan, mean), low=np.where(empty | ~np.isfinite(lo), np.nan, lo),
                  high=np.where(empty | ~np.isfinite(hi), np.nan, hi))


def nice_ticks(high: float, target: int = 5) -> list[float]:
    """Ticks from 0 at a 1-2-5 step, the last one at or above ``high``."""
    if not math.isfinite(high) or high <= 0:
        return [0.0, 1.0]
    raw = high / target
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    count = math.ceil(high / step - 1e-9)
    return [round(i * step, 10) for i in range(count + 1)]


def log_ticks(low: float, high: float) -> list[float]:
    """1-2-5 ticks per decade between ``low`` and ``high``; only powers of ten when the span is wide."""
    steps = (1.0, 2.0, 5.0) if math.log10(high / low) <= 4 else (1.0,)
    out = []
    for decade in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        out += [m * 10.0**decade for m in steps if low * 0.999 <= m * 10.0**decade <= high * 1.001]
    return out


def tick_label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 10_000:
        return f"{value / 1000:g}k"
    return f"{value:,.3g}" if abs(value) < 1 else f"{value:,g}"


def render(chart: Chart) -> str:
    """The chart as one ``<svg>`` element, sized by viewBox so it scales with the page."""
    legend, rows = _legend(chart)
    frame = _frame(chart, TOP + LEGEND_ROW * (rows - 1))
    title = html.escape(chart.title)
    parts = [
        (f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{title}" '
         f'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" font-size="12">'),
        f"<title>{title}</title>",
        f'<text class="chart-title" x="{LEFT}" y="20" font-size="15" font-weight="600" fill="{TEXT}">{title}</text>',
        *_bands(chart, frame),
        *_grid_and_axes(chart, frame),
        *(_series(s, frame) for s in chart.series),
        *_references(chart, frame),
        *legend,
        *_hover(chart, frame),
    ]
    if not any(len(s.x) and not np.isnan(s.y).all() for s in chart.series):
        parts.append(f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{(frame.top + HEIGHT - BOTTOM) / 2}" '
                     f'text-anchor="middle" fill="{MUTED}">{html.escape(chart.empty_note)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _frame(chart: Chart, top: float) -> _Frame:
    xs = [float(np.nanmax(s.step if s.step is not None else s.x)) for s in chart.series if len(s.x)]
    xs += [b.x1 for b in chart.bands]
    tops = [s.high if s.high is not None else s.y for s in chart.series]
    ys = [float(np.nanmax(t)) for t in tops if len(t) and not np.isnan(t).all()]
    ys += [r.y for r in chart.references] + ([chart.y_max] if chart.y_max else [])
    x_max = max([v for v in xs if math.isfinite(v)], default=1.0) or 1.0
    x_min = 0.0
    if chart.x_log:
        lows = [float(np.nanmin(s.step if s.step is not None else s.x)) for s in chart.series if len(s.x)]
        x_min = min([v for v in lows if v > 0], default=x_max / 10)
    # Headroom over the highest line or reference, so a reference line (the pool size) never sits on the frame.
    y_top = max([v for v in ys if math.isfinite(v)], default=0.0) * 1.12
    return _Frame(x_min=x_min, x_max=x_max, y_max=nice_ticks(y_top)[-1], top=top, x_log=chart.x_log)


def _grid_and_axes(chart: Chart, frame: _Frame) -> list[str]:
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    out = []
    for value in nice_ticks(frame.y_max):
        y = frame.py(value)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="{GRID}"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y:.1f}" dy="4" text-anchor="end" fill="{MUTED}">'
                   f"{tick_label(value)}</text>")
    ticks = log_ticks(frame.x_min, frame.x_max) if chart.x_log else \
        [v for v in nice_ticks(frame.x_max, target=8) if v <= frame.x_max * 1.0001]
    for value in ticks:
        x = frame.px(value)
        out.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 5}" stroke="{AXIS}"/>')
        out.append(f'<text x="{x:.1f}" y="{bottom + 18}" text-anchor="middle" fill="{MUTED}">'
                   f"{tick_label(value)}</text>")
    out.append(f'<line x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="{AXIS}"/>')
    out.append(f'<line x1="{LEFT}" y1="{frame.top}" x2="{LEFT}" y2="{bottom}" stroke="{AXIS}"/>')
    out.append(f'<text x="{(LEFT + right) / 2}" y="{HEIGHT - 6}" text-anchor="middle" fill="{TEXT}">'
               f"{html.escape(chart.x_label)}</text>")
    middle = (frame.top + bottom) / 2
    out.append(f'<text x="14" y="{middle}" text-anchor="middle" fill="{TEXT}" '
               f'transform="rotate(-90 14 {middle})">{html.escape(chart.y_label)}</text>')
    return out


def _bands(chart: Chart, frame: _Frame) -> list[str]:
    out = []
    if chart.first_label:
        out.append(f'<text x="{LEFT + 6}" y="{frame.top + 14}" fill="{MUTED}" {HALO}>'
                   f"{html.escape(chart.first_label)}</text>")
    for band in chart.bands:
        x0, x1 = frame.px(band.x0), frame.px(band.x1)
        out.append(f'<rect class="band" x="{x0:.1f}" y="{frame.top}" width="{max(0.0, float(x1 - x0)):.1f}" '
                   f'height="{HEIGHT - frame.top - BOTTOM}" fill="{BAND}"/>')
        out.append(f'<line x1="{x0:.1f}" y1="{frame.top}" x2="{x0:.1f}" y2="{HEIGHT - BOTTOM}" stroke="{MUTED}" '
                   f'stroke-dasharray="3 3"/>')
        # A narrow band (a short cool-down after an hour of load) gets its label outside, on the left.
        inside = float(x1 - x0) >= 8 * len(band.label) + 12
        x, anchor = (float(x0) + 6, "start") if inside else (float(x0) - 6, "end")
        out.append(f'<text x="{x:.1f}" y="{frame.top + 14}" text-anchor="{anchor}" fill="{MUTED}" {HALO}>'
                   f"{html.escape(band.label)}</text>")
    return out


def _references(chart: Chart, frame: _Frame) -> list[str]:
    # Drawn after the series: a series running along the pool size must not hide the line that names it; the
    # dashes' gaps let such a series show through.
    out = []
    for ref in chart.references:
        y = frame.py(ref.y)
        out.append(f'<line class="reference" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
                   f'stroke="{ref.color}" stroke-width="1.8" stroke-dasharray="7 4"/>')
        out.append(f'<text x="{WIDTH - RIGHT - 4}" y="{y:.1f}" dy="-5" text-anchor="end" fill="{ref.color}" '
                   f'font-weight="600" {HALO}>{html.escape(ref.label)}</text>')
    return out


def _series(series: Series, frame: _Frame) -> str:
    name = html.escape(series.name)
    parts = [f'<g class="series" data-name="{name}">']
    x, y, low, high = series.x, series.y, series.low, series.high
    # A range's polygon carries each point twice (its top and its bottom), so it is thinned at half the length.
    limit = MAX_POINTS // 2 if low is not None and high is not None else MAX_POINTS
    if series.step is None and len(x) > limit:
        # Too many points for the page: draw the mean per bin over a faint band of each bin's range (of the
        # series' own range when it has one), so both the typical level and the spikes stay visible.
        reduced = binned(x, y, limit // 2, low, high)
        x, y, low, high = reduced.x, reduced.mean, reduced.low, reduced.high
    if low is not None and high is not None:
        for start, stop in _runs(np.where(np.isnan(low) | np.isnan(high), np.nan, y)):
            xs = np.concatenate([x[start:stop], x[start:stop][::-1]])
            ys = np.concatenate([high[start:stop], low[start:stop][::-1]])
            parts.append(f'<polygon class="range" points="{_points(frame, xs, ys)}" fill="{series.color}" '
                         'fill-opacity="0.16" stroke="none"/>')
    dash = f' stroke-dasharray="{series.dash}"' if series.dash else ""
    if series.step is not None:
        parts.append(_steps(series, frame, dash))
    for start, stop in ([] if series.step is not None else _runs(y)):
        if stop - start == 1:
            cx, cy = frame.px(float(x[start])), frame.py(float(y[start]))
            parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2.2" fill="{series.color}"/>')
        else:
            parts.append(f'<polyline points="{_points(frame, x[start:stop], y[start:stop])}" fill="none" '
                         f'stroke="{series.color}" stroke-width="{series.width:g}" stroke-linejoin="round"{dash}/>')
    parts.append("</g>")
    return "".join(parts)


def _steps(series: Series, frame: _Frame, dash: str) -> str:
    """A histogram's outline: flat across each bin, down to 0 at both ends; lightly filled."""
    edges = np.asarray(series.step, dtype=float)
    heights = np.nan_to_num(series.y)
    xs = np.concatenate([[edges[0]], np.repeat(edges[1:-1], 2), [edges[-1]]])
    ys = np.repeat(heights, 2)
    xs, ys = np.concatenate([[edges[0]], xs, [edges[-1]]]), np.concatenate([[0.0], ys, [0.0]])
    points = _points(frame, xs, ys)
    return (f'<polygon points="{points}" fill="{series.color}" fill-opacity="0.12" stroke="none"/>'
            f'<polyline points="{points}" fill="none" stroke="{series.color}" stroke-width="{series.width:g}" '
            f'stroke-linejoin="round"{dash}/>')


def _hover(chart: Chart, frame: _Frame) -> list[str]:
    """Transparent columns over the plot, each with its values as a <title>: the browser's tooltip shows them on
    hover, no script needed (report.html's policy forbids scripts). Drawn last, so they are on top."""
    if not chart.hover:
        return []
    out = ['<g class="hover">']
    height = HEIGHT - frame.top - BOTTOM
    for cell in chart.hover:
        x0 = float(np.clip(frame.px(cell.x0), LEFT, WIDTH - RIGHT))
        x1 = float(np.clip(frame.px(cell.x1), LEFT, WIDTH - RIGHT))
        if x1 - x0 <= 0:
            continue
        out.append(f'<rect x="{x0:.1f}" y="{frame.top}" width="{x1 - x0:.2f}" height="{height}" fill="#000000" '
                   f'fill-opacity="0"><title>{html.escape(cell.text)}</title></rect>')
    out.append("</g>")
    return out


def _runs(y: FloatArray) -> list[tuple[int, int]]:
    """(start, stop) of each stretch of finite values: a NaN means "nothing measured", never bridged."""
    finite = np.isfinite(y).astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], finite, [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _points(frame: _Frame, x: FloatArray, y: FloatArray) -> str:
    px, py = np.asarray(frame.px(x), dtype=float), np.asarray(frame.py(y), dtype=float)
    return " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py, strict=True))


def _legend(chart: Chart) -> tuple[list[str], int]:
    """The legend, wrapped onto as many rows as it needs; and how many rows that is."""
    out, x, y, rows = [], float(LEFT), 42.0, 1
    entries = [(s.name, s.color, f' stroke-dasharray="{s.dash}"' if s.dash else "", s.low is not None)
               for s in chart.series]
    entries += [(r.label, r.color, ' stroke-dasharray="7 4"', False) for r in chart.references]
    for name, color, dash, ranged in entries:
        width = 40 + 6.6 * len(name)
        if x > LEFT and x + width > WIDTH - RIGHT:
            x, y, rows = float(LEFT), y + LEGEND_ROW, rows + 1
        if ranged:
            out.append(f'<rect x="{x:.0f}" y="{y - 10}" width="22" height="12" fill="{color}" fill-opacity="0.16"/>')
        out.append(f'<line x1="{x:.0f}" y1="{y - 4}" x2="{x + 22:.0f}" y2="{y - 4}" stroke="{color}" '
                   f'stroke-width="2.5"{dash}/>')
        out.append(f'<text x="{x + 28:.0f}" y="{y}" fill="{TEXT}">{html.escape(name)}</text>')
        x += width
    if chart.bands:
        label = chart.bands[0].label
        if x > LEFT and x + 40 + 6.6 * len(label) > WIDTH - RIGHT:
            x, y, rows = float(LEFT), y + LEGEND_ROW, rows + 1
        out.append(f'<rect x="{x:.0f}" y="{y - 10}" width="22" height="12" fill="{BAND}" stroke="{GRID}"/>')
        out.append(f'<text x="{x + 28:.0f}" y="{y}" fill="{TEXT}">{html.escape(label)}</text>')
    return out, rows
