"""Parallel coordinates drawn on the server as inline SVG: one vertical axis per param that
differs between the compared runs, and a last axis for the chosen metric; each run is a
line across them (its own colour and dash pattern, named in the legend). A numeric axis is
scaled from its lowest to its highest value; any other is a list of the values met, in
order."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from modelyard.ui.charts import COLOURS, DASHES

__all__ = ["Line", "parallel_coordinates"]


@dataclass(frozen=True)
class Line:
    """One run: its label and its value on each axis (absent: it has none there)."""

    label: str
    values: Mapping[str, object]


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _dash(pattern: str) -> str:
    return f' stroke-dasharray="{pattern}"' if pattern else ""


def _text(value: float) -> str:
    return f"{value:.4g}"


def _scale(values: list[object]) -> tuple[dict[str, float], list[tuple[float, str]]]:
    """Each value's place on [0, 1] (keyed by its text) and the axis's labelled ticks."""
    numbers = [_number(v) for v in values]
    if numbers and all(n is not None for n in numbers):
        low, high = min(n for n in numbers if n is not None), max(
            n for n in numbers if n is not None)
        span = high - low
        places = {str(v): (0.5 if span == 0 else ((n or 0.0) - low) / span)
                  for v, n in zip(values, numbers, strict=True)}
        ticks = [(0.0, _text(low)), (1.0, _text(high))] if span else [(0.5, _text(low))]
        return places, ticks
    met = sorted({str(v) for v in values})
    places = {v: (0.5 if len(met) == 1 else 1 - i / (len(met) - 1))  # A at the top
              for i, v in enumerate(met)}
    return places, [(p, v) for v, p in places.items()]


def parallel_coordinates(axes: Sequence[str], lines: Sequence[Line], *, title: str,
                         width: int = 760, height: int = 300) -> str:
    """An SVG with one axis per name in ``axes`` (left to right) and one line per run."""
    label = escape(title)
    if len(axes) < 2 or not lines:
        return (f'<p class="empty" role="note">Parallel coordinates need two axes or more '
                f'(params that differ, and a metric) for {label}.</p>')
    left, right, top, bottom = 60, 60, 28, 22
    plot_w, plot_h = width - left - right, height - top - bottom
    step = plot_w / (len(axes) - 1)
    scales = {a: _scale([ln.values[a] for ln in lines if ln.values.get(a) is not None])
              for a in axes}
    parts = [f'<svg class="chart parallel" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{label}"><title>{label}</title>']
    for i, axis in enumerate(axes):
        x = left + i * step
        parts.append(f'<line class="frame" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" '
                     f'y2="{top + plot_h}" stroke="currentColor"/>'
                     f'<text class="axis" x="{x:.1f}" y="{top - 10}" text-anchor="middle">'
                     f'{escape(axis)}</text>')
        for place, text in scales[axis][1]:
            y = top + plot_h - place * plot_h
            parts.append(f'<text class="tick" x="{x - 5:.1f}" y="{y + 4:.1f}" '
                         f'text-anchor="end">{escape(text)}</text>')
    for n, line in enumerate(lines):
        colour, dash = COLOURS[n % len(COLOURS)], DASHES[n % len(DASHES)]
        points: list[tuple[float, float] | None] = []
        for i, axis in enumerate(axes):
            value = line.values.get(axis)
            if value is None:
                points.append(None)
                continue
            place = scales[axis][0][str(value)]
            points.append((left + i * step, top + plot_h - place * plot_h))
        run: list[str] = []
        segments: list[list[str]] = []
        for point in points:  # a missing value breaks the line
            if point is None:
                if run:
                    segments.append(run)
                run = []
            else:
                run.append(f"{point[0]:.1f},{point[1]:.1f}")
        if run:
            segments.append(run)
        described = ", ".join(f"{a} = {line.values[a]}" for a in axes
                              if line.values.get(a) is not None)
        for seg in segments:
            parts.append(f'<polyline class="line" fill="none" stroke="{colour}" '
                         f'stroke-width="2"{_dash(dash)} points="{" ".join(seg)}">'
                         f'<title>{escape(line.label)}: {escape(described)}</title>'
                         f'</polyline>')
    parts.append("</svg>")
    legend = "".join(
        f'<li><svg width="26" height="10" aria-hidden="true"><line x1="0" x2="26" y1="5" '
        f'y2="5" stroke="{COLOURS[n % len(COLOURS)]}" stroke-width="2.5"'
        f'{_dash(DASHES[n % len(DASHES)])}'
        f'/></svg> {escape(line.label)}</li>' for n, line in enumerate(lines))
    return (f'<figure class="chart-box">{"".join(parts)}<ul class="legend">{legend}</ul>'
            f'</figure>')
