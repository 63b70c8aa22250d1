"""The pieces of the monitoring HTML page (:mod:`modelyard.monitoring.html`).

Formatting: every helper returns HTML with each value taken from the result escaped
(:func:`esc`); :func:`num`, :func:`pct`, :func:`signed`, :func:`when` and :func:`stamp` write
numbers and times for a reader, a dash for a missing value; :func:`table`, :func:`section`,
:func:`note`, :func:`bullets` and :func:`figure` wrap already escaped text. And the top of the
page: :func:`header` (model, version, window, reference) and :func:`verdicts`, the strip of
cards that gives each check's verdict at a glance.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

__all__ = ["DASH", "bullets", "esc", "figure", "header", "iso_us", "note", "num", "pct",
           "section", "signed", "stamp", "table", "verdicts", "when"]

DASH = "&ndash;"
_NUMBER = re.compile(r"[+-]?[\d,]*\.?\d+(e[+-]?\d+)?%?( ms)?|&ndash;")


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def num(value: Any, digits: int = 4) -> str:
    """Escaped text of a value: numbers with thousands separators or ``digits``
    significant digits, ``None`` as a dash."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.{digits}g}"
    return esc(value)


def pct(value: Any) -> str:
    return num(value) if not isinstance(value, int | float) else f"{value:.1%}"


def signed(value: Any, *, percent: bool = False) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return DASH
    return f"{value:+.1%}" if percent else f"{value:+.3g}"


def when(value: Any) -> str:
    if not isinstance(value, str):
        return num(value)
    try:
        found = datetime.fromisoformat(value)
    except ValueError:
        return esc(value)
    if found.tzinfo is not None:
        found = found.astimezone(UTC)
    shown = found.strftime("%Y-%m-%d %H:%M:%S" if found.second else "%Y-%m-%d %H:%M")
    return esc(shown + (" UTC" if found.tzinfo is not None else ""))


def stamp(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or not math.isfinite(seconds):
        return num(seconds)
    return when(datetime.fromtimestamp(seconds, UTC).isoformat())


def iso_us(value: Any) -> str:
    return datetime.fromtimestamp(float(value) / 1e6, UTC).isoformat()


def table(headers: Sequence[str], rows: Sequence[Sequence[str]],
           hits: Sequence[bool] = ()) -> str:
    """A table of already escaped cells; rows whose ``hits`` flag is set are marked, cells
    that read as numbers are right-aligned."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    lines = []
    for row, hit in zip(rows, [*hits, *[False] * len(rows)], strict=False):
        cells = "".join(f'<td class="n">{c}</td>' if _NUMBER.fullmatch(c) else f"<td>{c}</td>"
                        for c in row)
        lines.append(f'<tr class="hit">{cells}</tr>' if hit else f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>\n"


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}">\n<h2>{title}</h2>\n{body}</section>\n'


def note(text: str) -> str:
    return f'<p class="note">{text}</p>\n'


def bullets(items: Sequence[Any]) -> str:
    return "<ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>\n"


def figure(svg: str, caption: str = "") -> str:
    text = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f"<figure>{svg}{text}</figure>\n"


# --- the page top --------------------------------------------------------------------------

def header(result: Mapping[str, Any]) -> str:
    rows = result.get("rows_per_version") or {}
    versions = [num(v) + (f" ({num(rows[str(v)])} rows)" if str(v) in rows else "")
                for v in result.get("versions") or [] if v is not None]
    version = (f"version {num(result['version'])}" if result.get("version") is not None
               else "all versions")
    if versions and (len(versions) > 1 or result.get("version") is None):
        version += f"; in the window: {', '.join(versions)}"
    window, reference = result.get("window") or {}, result.get("reference") or {}
    shown_reference = (f"version {num(reference.get('version'))}, "
                       f"{num(reference.get('rows'))} rows" if reference else "none")
    items = [("Version", version),
             ("Window", f"{when(window.get('start'))} &ndash; {when(window.get('end'))}"),
             ("Checked", when(result.get("checked_at"))), ("Rows", num(result.get("rows"))),
             ("Reference", shown_reference)]
    spans = "".join(f"<span><b>{k}</b>: {v}</span>" for k, v in items)
    return (f"<header>\n<h1>Monitoring report: {esc(result.get('model', ''))}</h1>\n"
            f'<p class="meta">{spans}</p>\n</header>\n')


def _card(key: str, value: str, detail: str, state: str) -> str:
    return (f'<div class="card {state}"><span class="k">{key}</span><b>{value}</b>'
            f"<small>{detail}</small></div>")


def verdicts(result: Mapping[str, Any]) -> str:
    cards = [_drift_card(result.get("drift"))]
    quality = result.get("quality")
    issues = len((quality or {}).get("issues") or [])
    cards.append(_card("Data quality", "not checked" if quality is None else
                       f"{issues} issue{'s' if issues != 1 else ''}",
                       "" if quality is None else f"{num(quality.get('rows'))} rows checked",
                       "" if quality is None else "warn" if issues else "ok"))
    cards.append(_performance_card(result.get("performance")))
    estimate = result.get("estimate")
    if estimate and estimate.get("metrics"):
        name, value = next(iter(estimate["metrics"].items()))
        cards.append(_card("Estimated", f"{esc(name)} {num(value)}",
                           f"{esc(estimate.get('method', ''))}, "
                           f"{num(estimate.get('rows'))} rows, no labels", ""))
    health = result.get("health")
    if health is None:
        cards.append(_card("Serving health", "not measured", "no serving logs", ""))
    else:
        p99 = (health.get("latency_ms") or {}).get("p99")
        requests, unmeasured = health.get("requests") or 0, health.get("unmeasured") or 0
        latency = f"p99 latency {num(p99)} ms"
        if unmeasured:
            latency = ("latency not measured (scored in batch)" if p99 is None else
                       f"{latency} over {num(requests - unmeasured)} served")
        cards.append(_card("Error rate", pct(health.get("error_rate")),
                           f"{latency}, {num(requests)} requests", ""))
    alerts = result.get("alerts") or []
    fired = [a for a in alerts if a.get("fired")]
    cards.append(_card("Alerts", f"{len(fired)} fired", f"of {len(alerts)} rules",
                       "bad" if fired else "ok"))
    return f'<div class="cards">{"".join(cards)}</div>\n'


def _drift_card(drift: Mapping[str, Any] | None) -> str:
    if drift is None:
        return _card("Data drift", "not checked", "no drift result", "")
    predictions = any(p.get("drifted") for p in drift.get("predictions") or [])
    detail = (f"{pct(drift.get('drifted_share'))} of columns drifted (bound "
              f"{pct(drift.get('share_bound'))})" + ("; predictions drifted" * predictions))
    state = ("bad" if drift.get("dataset_drift")
             else "warn" if drift.get("drifted_columns") or predictions else "ok")
    return _card("Dataset drift", num(bool(drift.get("dataset_drift"))), detail, state)


def _performance_card(performance: Mapping[str, Any] | None) -> str:
    if performance is None or not performance.get("metrics"):
        return _card("Performance", "not measured", "no labels in this window", "")
    changes = [c for c in performance.get("changes") or [] if c.get("change") is not None]
    worse = [c for c in changes if c.get("worse")]
    if not changes:
        name, value = next(iter(performance["metrics"].items()))
        return _card("Performance", f"{esc(name)} {num(value)}", "no registered metric", "")
    pick = max(worse or changes, key=lambda c: abs(c.get("relative_change") or 0.0))
    relative = pick.get("relative_change")
    change = (signed(relative, percent=True) if relative is not None
              else signed(pick.get("change")))
    return _card("Performance", f"{esc(pick['metric'])} {num(pick.get('value'))}",
                 f"{change} vs registered {num(pick.get('reference'))}",
                 "bad" if worse else "ok")
