"""Monitoring charts as inline SVG, drawn on matplotlib's SVG canvas.

Each chart is drawn on its own ``Figure`` with a ``FigureCanvasSVG`` (no pyplot, no global
backend), with text kept as ``<text>`` elements (``svg.fonttype = "none"``) so a chart
weighs a few kilobytes, and math parsing off so a ``$`` in a column name stays a dollar.
matplotlib escapes every text it writes. The XML prolog, doctype and metadata are dropped
so the SVG can be placed inside an HTML page, and so are the structural group ids
(``figure_1``...) that every chart would repeat; the clip-path and marker ids are salted
with the title, so charts on one page do not share ids. The ``<svg>`` element carries
``role="img"`` and the title as its ``aria-label``. matplotlib loads when a chart is drawn.

:func:`distribution_overlay`
    one column's reference and current share per bin (numeric and timestamp columns, over
    the reference's bin edges; the two open-ended bins are shaded and drawn at a fixed
    width) or per category (bar pairs; at most :data:`MAX_BARS` bars, the rest merged into
    "other").
:func:`trend`
    one or more series of (time or number, value) points.
:func:`window_trend`
    values of checks against the time they monitored: each value at the middle of its
    window, with a bar from the window's start to its end (not the time the check ran).
:func:`period_bars`
    counts per period as bars, with an optional line on a second axis.
"""

from __future__ import annotations

import html
import io
import itertools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["MAX_BARS", "distribution_overlay", "period_bars", "trend", "window_line",
           "window_trend"]

MAX_BARS = 15  # categories drawn per overlay; the rest are merged into "other"
_LABEL_CHARS = 18  # category labels are cut to this many characters
_REFERENCE, _CURRENT, _ALARM = "#8c9cb0", "#e07020", "#c0392b"
ALARM = _ALARM  # errors and failures, for callers choosing the colours of period bars
_RC: dict[Any, Any] = {
    "svg.fonttype": "none",
    "text.parse_math": False,
    "font.size": 8,
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica", "sans-serif"],
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_PROLOG = re.compile(r"\A.*?(?=<svg\b)", re.DOTALL)
_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.DOTALL)
_GROUP_ID = re.compile(r'(<g) id="[^"]*"')  # "figure_1", "axes_1"...: the same in every chart

Point = tuple[str | float, float | None]
Span = tuple[str, str]  # a window's start and end, ISO 8601


def distribution_overlay(drift: Mapping[str, Any]) -> str:
    """Reference against current share per bin or category of one column's drift row (a
    :meth:`ColumnDrift.to_dict <modelyard.monitoring.report.ColumnDrift.to_dict>` dict)."""
    current = drift.get("current")
    reference = drift.get("reference") or {}
    if not current or not current.get("counts") or not reference.get("counts"):
        raise InvalidInputError(f"column {drift.get('column')!r} has no counts to plot",
                                field="drift")
    ref_counts, cur_counts = list(reference["counts"]), list(current["counts"])
    if len(ref_counts) != len(cur_counts):
        raise InvalidInputError(f"column {drift.get('column')!r}: the reference has "
                                f"{len(ref_counts)} bins, the current window "
                                f"{len(cur_counts)}", field="drift")
    title = str(drift.get("column"))
    if drift.get("statistic") is not None:
        relation = ">" if drift.get("drifted") else "<="
        title += (f"  ({drift.get('test')} {drift['statistic']:.3g} {relation} "
                  f"{drift.get('threshold') or 0:.3g})")
    edges = [float(e) for e in drift.get("bin_edges") or ()]
    if drift.get("kind") in ("numeric", "timestamp") and len(edges) == len(ref_counts) - 1 \
            and edges:
        timestamps = drift.get("kind") == "timestamp"
        spans = _outer_edges(edges, reference, current)
        return _render(title, lambda ax: _draw_bins(
            ax, spans, _shares(ref_counts), _shares(cur_counts), timestamps), size=(5.0, 2.5))
    labels = [str(c) for c in drift.get("categories") or ()]
    labels += ["other" if labels else "all values"] * (len(ref_counts) - len(labels))
    return _render(title, lambda ax: _draw_categories(
        ax, labels[:len(ref_counts)], _shares(ref_counts), _shares(cur_counts)),
        size=(5.0, 2.7))


def trend(points: Sequence[Point], title: str, *, ylabel: str = "", label: str | None = None,
          others: Mapping[str, Sequence[Point]] | None = None, reference: float | None = None,
          reference_label: str = "reference", percent: bool = False) -> str:
    """A line of ``points`` (x: ISO 8601 times, other labels, or numbers; y: ``None`` is
    skipped), with the series in ``others`` and a dashed line at ``reference``."""
    series = {label or ylabel or "value": points, **(others or {})}
    return _render(title, lambda ax: _draw_trend(ax, series, ylabel, reference,
                                                 reference_label, percent, label is not None
                                                 or bool(others)), size=(6.4, 2.3))


def window_trend(windows: Sequence[Span], series: Mapping[str, Sequence[float | None]],
                 title: str, *, ylabel: str = "", reference: float | None = None,
                 reference_label: str = "reference", percent: bool = False) -> str:
    """Each series' values against the windows they were measured over (``windows`` are
    (start, end) ISO 8601 times, one per value): a marker at the window's middle, a bar
    across the window, on a date axis spanning the windows; ``None`` values are skipped,
    and the line is broken across a gap longer than the windows on either side of it."""
    try:
        spans = [(_time(start), _time(end)) for start, end in windows]
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"windows must be (start, end) ISO 8601 times: {exc}",
                                field="windows") from exc
    for name, values in series.items():
        if len(values) != len(spans):
            raise InvalidInputError(f"{name!r} has {len(values)} values for {len(spans)} "
                                    "windows", field="series")
    return _render(title, lambda ax: _draw_windows(ax, spans, series, ylabel, reference,
                                                   reference_label, percent),
                   size=(6.4, 2.3))


def period_bars(starts: Sequence[str], bars: Mapping[str, Sequence[float]], title: str, *,
                ylabel: str = "", line: tuple[str, Sequence[float | None]] | None = None,
                colors: Sequence[str] | None = None) -> str:
    """Bars per period (``starts`` are ISO 8601 times; every series in ``bars`` is drawn at
    the same place, later ones in front, in ``colors`` when given), and ``line`` (label,
    values) on a second axis."""
    for name, values in [*bars.items(), *([line] if line else [])]:
        if len(values) != len(starts):
            raise InvalidInputError(f"{name!r} has {len(values)} values for {len(starts)} "
                                    "periods", field="bars")
    return _render(title, lambda ax: _draw_periods(ax, starts, bars, ylabel, line, colors),
                   size=(6.4, 2.3))


# --- rendering -------------------------------------------------------------------------------

def _render(title: str, draw: Callable[[Axes], None], *, size: tuple[float, float]) -> str:
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    buffer = io.StringIO()
    # the salt keeps clip-path ids of different charts on one page apart, and stable
    with matplotlib.rc_context({**_RC, "svg.hashsalt": f"modelyard:{title}"}):
        figure = Figure(figsize=size, dpi=72)
        FigureCanvasSVG(figure)
        ax = figure.add_subplot()
        draw(ax)
        ax.set_title(title, loc="left", fontsize=9)
        figure.savefig(buffer, format="svg", bbox_inches="tight",
                       metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    svg = _METADATA.sub("", _PROLOG.sub("", buffer.getvalue(), count=1), count=1)
    svg = _GROUP_ID.sub(r"\1", svg)
    return svg.replace("<svg ", f'<svg role="img" aria-label="{html.escape(title)}" ', 1)


def _shares(counts: Sequence[float]) -> list[float]:
    total = float(sum(counts))
    return [c / total if total else 0.0 for c in counts]


def _outer_edges(edges: list[float], reference: Mapping[str, Any],
                 current: Mapping[str, Any]) -> list[float]:
    """The inner edges with an outer edge on each side: at the smallest (largest) value
    seen, but at most three mean bin widths away (at least a quarter)."""
    width = (edges[-1] - edges[0]) / (len(edges) - 1) if len(edges) > 1 else 0.0
    if not width > 0:
        width = abs(edges[0]) * 0.1 or 1.0
    seen = [float(s[k]) for s in (reference, current) for k in ("min", "max")
            if s.get(k) is not None and math.isfinite(s[k])]
    low = edges[0] - min(seen, default=edges[0] - width)
    high = max(seen, default=edges[-1] + width) - edges[-1]
    return [edges[0] - _clip(low, width), *edges, edges[-1] + _clip(high, width)]


def _clip(gap: float, width: float) -> float:
    return min(max(gap, width / 4), 3 * width)


def _draw_bins(ax: Axes, edges: list[float], reference: list[float], current: list[float],
               timestamps: bool) -> None:
    x: list[Any] = edges
    if timestamps:
        x = [datetime.fromtimestamp(e, UTC).replace(tzinfo=None) for e in edges]
        _date_axis(ax)
    for low, high in ((x[0], x[1]), (x[-2], x[-1])):
        ax.axvspan(low, high, color="#f0f0f0", zorder=0, linewidth=0)
    ax.stairs(reference, x, fill=True, color=_REFERENCE, alpha=0.45, label="reference")
    ax.stairs(current, x, color=_CURRENT, linewidth=1.6, label="current")
    ax.set_xlim(x[0], x[-1])
    ax.set_ylabel("share of rows")
    ax.legend(frameon=False, fontsize=7)


def _draw_categories(ax: Axes, labels: list[str], reference: list[float],
                     current: list[float]) -> None:
    shown = [i for i in range(len(labels)) if reference[i] or current[i]] or [0]
    labels = [labels[i] for i in shown]
    reference, current = [reference[i] for i in shown], [current[i] for i in shown]
    if len(labels) > MAX_BARS:
        ranked = sorted(range(len(labels)), key=lambda i: -max(reference[i], current[i]))
        keep = sorted(ranked[:MAX_BARS - 1])
        rest = [i for i in range(len(labels)) if i not in set(keep)]
        labels = [labels[i] for i in keep] + [f"other (+{len(rest)})"]
        reference = [reference[i] for i in keep] + [sum(reference[i] for i in rest)]
        current = [current[i] for i in keep] + [sum(current[i] for i in rest)]
    short = [t if len(t) <= _LABEL_CHARS else t[:_LABEL_CHARS - 1] + "…" for t in labels]
    positions = list(range(len(short)))
    ax.bar([p - 0.2 for p in positions], reference, width=0.4, color=_REFERENCE,
           label="reference")
    ax.bar([p + 0.2 for p in positions], current, width=0.4, color=_CURRENT, label="current")
    rotate = len(short) > 4 or max(map(len, short), default=0) > 8
    ax.set_xticks(positions, short, rotation=30 if rotate else 0,
                  ha="right" if rotate else "center")
    ax.set_ylabel("share of rows")
    ax.legend(frameon=False, fontsize=7)


def _x_axis(ax: Axes, xs: Sequence[str | float]) -> Callable[[str | float], Any]:
    """How to place an x value: ISO times on a date axis, numbers as they are, any other
    strings as evenly spaced labels."""
    if all(not isinstance(x, str) for x in xs):
        return float
    try:
        for x in xs:
            _time(str(x))
    except ValueError:
        order = list(dict.fromkeys(str(x) for x in xs))
        ax.set_xticks(range(len(order)), order, rotation=30, ha="right")
        return lambda x: order.index(str(x))
    _date_axis(ax)
    return lambda x: _time(str(x))


def _time(text: str) -> datetime:
    found = datetime.fromisoformat(text)
    return found.astimezone(UTC).replace(tzinfo=None) if found.tzinfo else found


def _date_axis(ax: Axes) -> None:
    from matplotlib import dates

    ax.xaxis_date()
    locator = dates.AutoDateLocator(maxticks=8)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(
        dates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def _draw_trend(ax: Axes, series: Mapping[str, Sequence[Point]], ylabel: str,
                reference: float | None, reference_label: str, percent: bool,
                legend: bool) -> None:
    place = _x_axis(ax, [x for points in series.values() for x, _ in points])
    colors = [_CURRENT, "#4060a0", "#50a050", "#9060b0"]
    for index, (name, points) in enumerate(series.items()):
        kept = [(place(x), y) for x, y in points if y is not None and math.isfinite(y)]
        ax.plot([x for x, _ in kept], [y for _, y in kept], marker="o", markersize=3,
                linewidth=1.4, color=colors[index % len(colors)], label=name,
                linestyle="-" if index == 0 else "--")
    if reference is not None:
        ax.axhline(reference, color="grey", linestyle=":", linewidth=1, label=reference_label)
    if percent:
        from matplotlib.ticker import PercentFormatter

        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel(ylabel)
    if legend or reference is not None:
        ax.legend(frameon=False, fontsize=7)


def _draw_windows(ax: Axes, spans: Sequence[tuple[datetime, datetime]],
                  series: Mapping[str, Sequence[float | None]], ylabel: str,
                  reference: float | None, reference_label: str, percent: bool) -> None:
    order = sorted(range(len(spans)), key=lambda i: spans[i])
    colors = [_CURRENT, "#4060a0", "#50a050", "#9060b0"]
    for index, (name, values) in enumerate(series.items()):
        color = colors[index % len(colors)]
        kept = [(spans[i], float(y)) for i in order
                if (y := values[i]) is not None and math.isfinite(y)]
        starts: list[Any] = [start for (start, _), _ in kept]
        ends: list[Any] = [end for (_, end), _ in kept]
        ys = [y for _, y in kept]
        xs, line = window_line(kept)
        ax.plot(xs, line, marker="o", markersize=3, linewidth=1.4, color=color,
                label=name, linestyle="-" if index == 0 else "--")
        ax.hlines(ys, starts, ends, colors=color, linewidth=3, alpha=0.35)
    _date_axis(ax)
    if spans:
        low: Any = min(start for start, _ in spans)
        high: Any = max(end for _, end in spans)
        ax.set_xlim(low, high)
    if reference is not None:
        ax.axhline(reference, color="grey", linestyle=":", linewidth=1, label=reference_label)
    if percent:
        from matplotlib.ticker import PercentFormatter

        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel(ylabel)
    ax.set_xlabel("monitored window")
    if len(series) > 1 or reference is not None:
        ax.legend(frameon=False, fontsize=7)


def window_line(points: Sequence[tuple[tuple[datetime, datetime], float]]
                ) -> tuple[list[Any], list[float]]:
    """The line through ``((start, end), value)`` points sorted by start: each value at its
    window's middle, and a NaN (a break) where the time between two windows is longer than
    both of them."""
    xs: list[Any] = []
    ys: list[float] = []
    previous: tuple[datetime, datetime] | None = None
    for (start, end), y in points:
        if previous is not None and start - previous[1] > max(end - start,
                                                              previous[1] - previous[0]):
            xs.append(start)
            ys.append(math.nan)
        xs.append(start + (end - start) / 2)
        ys.append(y)
        previous = (start, end)
    return xs, ys


def _draw_periods(ax: Axes, starts: Sequence[str], bars: Mapping[str, Sequence[float]],
                  ylabel: str, line: tuple[str, Sequence[float | None]] | None,
                  colors: Sequence[str] | None = None) -> None:
    xs: list[Any] = [_time(s) for s in starts]
    gaps = [b - a for a, b in itertools.pairwise(xs) if b > a]
    width: Any = 0.8 * (min(gaps) if gaps else timedelta(hours=1))
    palette = list(colors or ()) + ["#8c9cb0", _ALARM, "#50a050"] * 4
    for (name, values), color in zip(bars.items(), palette, strict=False):
        ax.bar(xs, values, width=width, align="edge", color=color, label=name)
    _date_axis(ax)
    ax.set_ylabel(ylabel)
    handles, names = ax.get_legend_handles_labels()
    if line is not None:
        twin = ax.twinx()
        kept = [(x + width / 2, y) for x, y in zip(xs, line[1], strict=True)
                if y is not None and math.isfinite(y)]
        twin.plot([x for x, _ in kept], [y for _, y in kept], color=_CURRENT, marker="o",
                  markersize=3, linewidth=1.4, label=line[0])
        twin.set_ylabel(line[0])
        twin.spines["right"].set_visible(True)
        more, more_names = twin.get_legend_handles_labels()
        handles, names = handles + more, names + more_names
    ax.legend(handles, names, frameon=False, fontsize=7, loc="upper left")
