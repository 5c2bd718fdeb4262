"""Line charts as inline SVG text: axes with ticks, a legend, shaded phases, reference lines, gaps.

The report module draws its time-series plots with it, so report.html needs no plotting library or network.
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
MAX_POINTS = 1000
AXIS, GRID, TEXT, MUTED, BAND = "#4a4a4a", "#e3e3e3", "#1f1f1f", "#6b6b6b", "#eef0f3"
# A white outline behind labels drawn over data, so a line crossing them does not make them unreadable.
HALO = 'paint-order="stroke" stroke="#ffffff" stroke-width="3" stroke-linejoin="round"'



@dataclass(frozen=True)
class Series:
    """One line; NaN values leave a gap (e.g. no checkout happened in that interval)."""

    name: str
    x: FloatArray
    y: FloatArray
    color: str


@dataclass(frozen=True)
class Band:
    """A shaded stretch of the x axis, such as the cool-down after the load stopped."""

    x0: float
    x1: float
    label: str


@dataclass(frozen=True)
class Reference:
    """A dashed horizontal line at a fixed value, such as the pool size or a threshold."""

    y: float
    label: str
    color: str = MUTED


@dataclass(frozen=True, kw_only=True)
class Chart:
    title: str
    y_label: str
    x_label: str = "seconds since load start"
    series: tuple[Series, ...]
    bands: tuple[Band, ...] = ()
    references: tuple[Reference, ...] = ()
    first_label: str = ""  # written at the left edge of the plot area, e.g. "load"


@dataclass(frozen=True)
class _Frame:
    """Maps data coordinates to SVG pixels."""

    x_max: float
    y_max: float

    def px(self, x: FloatArray | float) -> FloatArray | float:
        return LEFT + (WIDTH - LEFT - RIGHT) * np.asarray(x) / self.x_max if self.x_max else LEFT

    def py(self, y: FloatArray | float) -> FloatArray | float:
        return HEIGHT - BOTTOM - (HEIGHT - TOP - BOTTOM) * np.asarray(y) / self.y_max


@dataclass(frozen=True)
class Binned:
    """A long series reduced to equal-count bins: the mean per bin, and the range it spans."""

    x: FloatArray
    mean: FloatArray
    low: FloatArray
    high: FloatArray


def binned(x: FloatArray, y: FloatArray, bins: int) -> Binned:
    """Bins of consecutive points; a bin with nothing measured is NaN, so the line shows a gap."""
    size = math.ceil(len(x) / bins)
    bins = math.ceil(len(x) / size)
    pad = bins * size - len(x)
    xx = np.concatenate([x, np.full(pad, np.nan)]).reshape(bins, size)
    yy = np.concatenate([y, np.full(pad, np.nan)]).reshape(bins, size)
    present = ~np.isnan(yy)
    count = present.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(present, yy, 0.0).sum(axis=1) / count
        centre = np.where(np.isnan(xx), 0.0, xx).sum(axis=1) / (~np.isnan(xx)).sum(axis=1)
    low = np.where(present, yy, np.inf).min(axis=1)
    high = np.where(present, yy, -np.inf).max(axis=1)
    empty = count == 0
    return Binned(x=centre, mean=np.where(empty, np.nan, mean), low=np.where(empty, np.nan, low),
                  high=np.where(empty, np.nan, high))


def nice_ticks(high: float, target: int = 5) -> list[float]:
    """Ticks from 0 at a 1-2-5 step, the last one at or above ``high``."""
    if not math.isfinite(high) or high <= 0:
        return [0.0, 1.0]
    raw = high / target
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    count = math.ceil(high / step - 1e-9)
    return [round(i * step, 10) for i in range(count + 1)]


def tick_label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 10_000:
        return f"{value / 1000:g}k"
    return f"{value:,.3g}" if abs(value) < 1 else f"{value:,g}"


def render(chart: Chart) -> str:
    """The chart as one ``<svg>`` element, sized by viewBox so it scales with the page."""
    frame = _frame(chart)
    title = html.escape(chart.title)
    parts = [
        (f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{title}" '
        f'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" font-size="12">'),
        f"<title>{title}</title>",
        f'<text class="chart-title" x="{LEFT}" y="20" font-size="15" font-weight="600" fill="{TEXT}">{title}</text>',
        *_bands(chart, frame),
        *_grid_and_axes(chart, frame),
        *_references(chart, frame),
        *(_series(s, frame) for s in chart.series),
        *_legend(chart),
    ]
    if not any(len(s.x) for s in chart.series):
        parts.append(f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{(TOP + HEIGHT - BOTTOM) / 2}" '
                     f'text-anchor="middle" fill="{MUTED}">no data recorded</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _frame(chart: Chart) -> _Frame:
    xs = [float(np.nanmax(s.x)) for s in chart.series if len(s.x)] + [b.x1 for b in chart.bands]
    ys = [float(np.nanmax(s.y)) for s in chart.series if len(s.y) and not np.isnan(s.y).all()]
    ys += [r.y for r in chart.references]
    x_max = max([v for v in xs if math.isfinite(v)], default=1.0) or 1.0
    y_top = max([v for v in ys if math.isfinite(v)], default=0.0) * 1.05
    return _Frame(x_max=x_max, y_max=nice_ticks(y_top)[-1])


def _grid_and_axes(chart: Chart, frame: _Frame) -> list[str]:
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    out = []
    for value in nice_ticks(frame.y_max):
        y = frame.py(value)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="{GRID}"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y:.1f}" dy="4" text-anchor="end" fill="{MUTED}">'
                   f"{tick_label(value)}</text>")
    for value in nice_ticks(frame.x_max, target=8):
        if value > frame.x_max * 1.0001:
            break
        x = frame.px(value)
        out.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 5}" stroke="{AXIS}"/>')
        out.append(f'<text x="{x:.1f}" y="{bottom + 18}" text-anchor="middle" fill="{MUTED}">'
                   f"{tick_label(value)}</text>")
    out.append(f'<line x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="{AXIS}"/>')
    out.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="{AXIS}"/>')
    out.append(f'<text x="{(LEFT + right) / 2}" y="{HEIGHT - 6}" text-anchor="middle" fill="{TEXT}">'
               f"{html.escape(chart.x_label)}</text>")
    middle = (TOP + bottom) / 2
    out.append(f'<text x="14" y="{middle}" text-anchor="middle" fill="{TEXT}" '
               f'transform="rotate(-90 14 {middle})">{html.escape(chart.y_label)}</text>')
    return out


def _bands(chart: Chart, frame: _Frame) -> list[str]:
    out = []
    if chart.first_label:
        out.append(f'<text x="{LEFT + 6}" y="{TOP + 14}" fill="{MUTED}" {HALO}>{html.escape(chart.first_label)}</text>')
    for band in chart.bands:
        x0, x1 = frame.px(band.x0), frame.px(band.x1)
        out.append(f'<rect class="band" x="{x0:.1f}" y="{TOP}" width="{max(0.0, float(x1 - x0)):.1f}" '
                   f'height="{HEIGHT - TOP - BOTTOM}" fill="{BAND}"/>')
        out.append(f'<line x1="{x0:.1f}" y1="{TOP}" x2="{x0:.1f}" y2="{HEIGHT - BOTTOM}" stroke="{MUTED}" '
                   f'stroke-dasharray="3 3"/>')
        # A narrow band (a short cool-down after an hour of load) gets its label outside, on the left.
        inside = float(x1 - x0) >= 8 * len(band.label) + 12
        x, anchor = (float(x0) + 6, "start") if inside else (float(x0) - 6, "end")
        out.append(f'<text x="{x:.1f}" y="{TOP + 14}" text-anchor="{anchor}" fill="{MUTED}" {HALO}>'
                   f"{html.escape(band.label)}</text>")
    return out


def _references(chart: Chart, frame: _Frame) -> list[str]:
    out = []
    for ref in chart.references:
        y = frame.py(ref.y)
        out.append(f'<line class="reference" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
                   f'stroke="{ref.color}" stroke-width="1.5" stroke-dasharray="6 4"/>')
        out.append(f'<text x="{WIDTH - RIGHT - 4}" y="{y:.1f}" dy="-4" text-anchor="end" fill="{ref.color}" {HALO}>'
                   f"{html.escape(ref.label)}</text>")
    return out


def _series(series: Series, frame: _Frame) -> str:
    name = html.escape(series.name)
    parts = [f'<g class="series" data-name="{name}"><title>{name}</title>']
    if len(series.x) > MAX_POINTS:
        # Too many points for the page: draw the mean per bin, over a faint band of each bin's range,
        # so both the typical level and the spikes stay visible.
        reduced = binned(series.x, series.y, MAX_POINTS // 2)
        x, y = reduced.x, reduced.mean
        for start, stop in _runs(reduced.mean):
            xs = np.concatenate([reduced.x[start:stop], reduced.x[start:stop][::-1]])
            ys = np.concatenate([reduced.high[start:stop], reduced.low[start:stop][::-1]])
            parts.append(f'<polygon class="range" points="{_points(frame, xs, ys)}" fill="{series.color}" '
                         'fill-opacity="0.18" stroke="none"/>')
    else:
        x, y = series.x, series.y
    for start, stop in _runs(y):
        if stop - start == 1:
            cx, cy = frame.px(float(x[start])), frame.py(float(y[start]))
            parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="1.8" fill="{series.color}"/>')
        else:
            parts.append(f'<polyline points="{_points(frame, x[start:stop], y[start:stop])}" fill="none" '
                         f'stroke="{series.color}" stroke-width="1.8" stroke-linejoin="round"/>')
    parts.append("</g>")
    return "".join(parts)


def _runs(y: FloatArray) -> list[tuple[int, int]]:
    """(start, stop) of each stretch of finite values: a NaN means "nothing measured", never bridged."""
    finite = np.isfinite(y).astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], finite, [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _points(frame: _Frame, x: FloatArray, y: FloatArray) -> str:
    px, py = np.asarray(frame.px(x), dtype=float), np.asarray(frame.py(y), dtype=float)
    return " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py, strict=True))


def _legend(chart: Chart) -> list[str]:
    out, x, y = [], float(LEFT), 42
    entries = [(s.name, s.color, "") for s in chart.series]
    entries += [(r.label, r.color, ' stroke-dasharray="6 4"') for r in chart.references]
    for name, color, dash in entries:
        label = html.escape(name)
        out.append(f'<line x1="{x:.0f}" y1="{y - 4}" x2="{x + 22:.0f}" y2="{y - 4}" stroke="{color}" '
                   f'stroke-width="2.5"{dash}/>')
        out.append(f'<text x="{x + 28:.0f}" y="{y}" fill="{TEXT}">{label}</text>')
        x += 40 + 7 * len(name)
    if chart.bands:
        out.append(f'<rect x="{x:.0f}" y="{y - 10}" width="22" height="12" fill="{BAND}" stroke="{GRID}"/>')
        out.append(f'<text x="{x + 28:.0f}" y="{y}" fill="{TEXT}">{html.escape(chart.bands[0].label)}</text>')
    return out
