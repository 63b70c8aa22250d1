"""Line charts drawn on the server as inline SVG: no script, no network, readable without
colour (each series also has its own dash pattern and a legend entry).

``line_chart`` takes any number of series, draws axes with round ticks (numbers, or dates
when the x axis is time), and reduces a long series to at most ``MAX_POINTS`` per series by
keeping each bucket's lowest and highest point, so a million-step metric stays a small page
while its spikes stay visible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

__all__ = ["MAX_POINTS", "Series", "histogram_chart", "line_chart", "nice_ticks"]

MAX_POINTS = 1_000
COLOURS = ("#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7d8c",
           "#57606a")
DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 2", "10 4", "4 4", "3 6")


@dataclass(frozen=True)
class Series:
    """One line: ``xs`` (steps, or epoch seconds on a time axis) and ``ys`` of equal length."""

    label: str
    xs: Sequence[float]
    ys: Sequence[float]


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (about ``count`` of them)."""
    if not math.isfinite(low) or not math.isfinite(high):
        return []
    if high <= low:
        return [low]
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(0.0 if abs(value) < step * 1e-9 else value)
        value += step
    return ticks


def _reduce(xs: Sequence[float], ys: Sequence[float]) -> list[tuple[float, float]]:
    points = list(zip(xs, ys, strict=True))
    if len(points) <= MAX_POINTS:
        return points
    size = math.ceil(len(points) / (MAX_POINTS // 2))
    kept: list[tuple[float, float]] = []
    for start in range(0, len(points), size):
        bucket = points[start:start + size]
        low = min(bucket, key=lambda p: p[1])
        high = max(bucket, key=lambda p: p[1])
        kept.extend(sorted({low, high}))
    return kept


def _label(value: float, time_axis: bool, span: float) -> str:
    if time_axis:
        moment = datetime.fromtimestamp(value, UTC)
        return moment.strftime("%H:%M:%S" if span < 2 * 86_400 else "%Y-%m-%d")
    if abs(value) >= 1e5 or (value and abs(value) < 1e-3):
        return f"{value:.2e}"
    return f"{value:.6g}"


def _dash(pattern: str) -> str:
    return f' stroke-dasharray="{pattern}"' if pattern else ""


def line_chart(series: Sequence[Series], *, x_label: str, y_label: str = "",
               time_axis: bool = False, x_range: tuple[float | None, float | None] = (None, None),
               width: int = 760, height: int = 280, title: str = "") -> str:
    """An SVG chart of ``series`` (empty ones are skipped); ``x_range`` zooms to part of
    the x axis (None: the data's own end)."""
    lo_x, hi_x = x_range
    reduced: list[tuple[str, list[tuple[float, float]]]] = []
    for s in series:
        points = [(x, y) for x, y in zip(s.xs, s.ys, strict=True)
                  if math.isfinite(y) and (lo_x is None or x >= lo_x)
                  and (hi_x is None or x <= hi_x)]
        if points:
            reduced.append((s.label, _reduce([p[0] for p in points], [p[1] for p in points])))
    label = escape(title or y_label or "chart")
    if not reduced:
        return (f'<p class="empty" role="note">No points to draw for {label}'
                f'{" in this range" if lo_x is not None or hi_x is not None else ""}.</p>')
    all_x = [x for _, pts in reduced for x, _ in pts]
    all_y = [y for _, pts in reduced for _, y in pts]
    x0, x1 = min(all_x), max(all_x)
    y0, y1 = min(all_y), max(all_y)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        pad = abs(y0) * 0.05 or 1.0
        y0, y1 = y0 - pad, y1 + pad
    left, right, top, bottom = 70, 16, 14, 44
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return top + plot_h - (y - y0) / (y1 - y0) * plot_h

    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{label}">',
             f'<title>{label}</title>']
    for tick in nice_ticks(y0, y1):
        y = py(tick)
        parts.append(f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" '
                     f'y2="{y:.1f}"/><text class="tick" x="{left - 6}" y="{y + 4:.1f}" '
                     f'text-anchor="end">{escape(_label(tick, False, 0))}</text>')
    for tick in nice_ticks(x0, x1, 6):
        x = px(tick)
        parts.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" '
                     f'y2="{top + plot_h}"/><text class="tick" x="{x:.1f}" '
                     f'y="{top + plot_h + 16}" text-anchor="middle">'
                     f'{escape(_label(tick, time_axis, x1 - x0))}</text>')
    parts.append(f'<rect class="frame" x="{left}" y="{top}" width="{plot_w}" '
                 f'height="{plot_h}" fill="none"/>')
    parts.append(f'<text class="axis" x="{left + plot_w / 2:.1f}" y="{height - 6}" '
                 f'text-anchor="middle">{escape(x_label)}</text>')
    if y_label:
        parts.append(f'<text class="axis" transform="translate(14 {top + plot_h / 2:.1f}) '
                     f'rotate(-90)" text-anchor="middle">{escape(y_label)}</text>')
    for i, (name, pts) in enumerate(reduced):
        colour, dash = COLOURS[i % len(COLOURS)], DASHES[i % len(DASHES)]
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        parts.append(f'<polyline class="line" fill="none" stroke="{colour}" '
                     f'stroke-width="1.8"{_dash(dash)} points="{coords}">'
                     f'<title>{escape(name)}</title></polyline>')
        if len(pts) <= 60:
            for x, y in pts:
                parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" '
                             f'fill="{colour}"><title>{escape(name)}: '
                             f'{escape(_label(x, time_axis, x1 - x0))} → {y:.6g}</title>'
                             f'</circle>')
    parts.append("</svg>")
    legend = "".join(
        f'<li><svg width="26" height="10" aria-hidden="true"><line x1="0" x2="26" y1="5" '
        f'y2="5" stroke="{COLOURS[i % len(COLOURS)]}" stroke-width="2.5"'
        f'{_dash(DASHES[i % len(DASHES)])}/></svg> {escape(name)}</li>'
        for i, (name, _) in enumerate(reduced))
    return f'<figure class="chart-box">{"".join(parts)}<ul class="legend">{legend}</ul></figure>'


def histogram_chart(edges: Sequence[float], counts: Sequence[int], *, title: str,
                    width: int = 360, height: int = 150) -> str:
    """Bars of ``counts`` over the bins ``edges`` (one more edge than counts), each bar
    titled with its range and count."""
    label = escape(title)
    if len(edges) != len(counts) + 1 or not counts:
        return f'<p class="empty" role="note">No histogram for {label}.</p>'
    left, right, top, bottom = 44, 8, 8, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    tallest = max(counts) or 1
    bar_w = plot_w / len(counts)
    parts = [f'<svg class="chart histogram" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{label}"><title>{label}</title>']
    for tick in nice_ticks(0, tallest, 3):
        y = top + plot_h - tick / tallest * plot_h
        parts.append(f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" '
                     f'y2="{y:.1f}"/><text class="tick" x="{left - 4}" y="{y + 4:.1f}" '
                     f'text-anchor="end">{escape(_label(tick, False, 0))}</text>')
    for i, count in enumerate(counts):
        h = count / tallest * plot_h
        parts.append(f'<rect class="bar" x="{left + i * bar_w + 0.5:.1f}" '
                     f'y="{top + plot_h - h:.1f}" width="{max(bar_w - 1, 0.5):.1f}" '
                     f'height="{h:.1f}" fill="{COLOURS[0]}"><title>'
                     f'{escape(_label(edges[i], False, 0))} to '
                     f'{escape(_label(edges[i + 1], False, 0))}: {count}</title></rect>')
    for value, anchor, x in ((edges[0], "start", left), (edges[-1], "end", left + plot_w)):
        parts.append(f'<text class="tick" x="{x}" y="{top + plot_h + 16}" '
                     f'text-anchor="{anchor}">{escape(_label(value, False, 0))}</text>')
    parts.append("</svg>")
    return "".join(parts)
