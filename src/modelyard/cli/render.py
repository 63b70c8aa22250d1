"""Shared Rich consoles and small rendering helpers for the CLI.

Everything printed here stays readable without a terminal: colour is an extra, never the
only carrier of meaning, and text is plain ASCII apart from table borders (which Rich swaps
for ASCII when the output encoding needs it).

Tables (:func:`listing`, printed by :func:`show`) never break a number or a name: their
columns do not wrap, except the free-text ones named ``wrap``, which wrap between words.
A table too wide for the terminal even so (80 columns when the output is piped) is printed
as one block of ``header  value`` lines per row instead. They live in
:mod:`modelyard.text_tables`, which the demo prints through too.
"""

from __future__ import annotations

import math
import time
from datetime import date, datetime

from rich.console import Console
from rich.table import Table
from rich.text import Text

from modelyard import text_tables
from modelyard.text_tables import listing

__all__ = ["cell", "console", "error_console", "fits", "format_duration", "format_number",
           "format_seconds", "format_size", "format_time", "format_value", "listing", "say",
           "section", "short_id", "show", "status_text"]

console = Console()
error_console = Console(stderr=True)

STATUS_STYLES = {"running": "cyan", "finished": "green", "failed": "red", "killed": "yellow"}


def cell(value: object, style: str = "") -> Text:
    """Literal text for a table cell: square brackets in user data are not Rich markup."""
    return Text("" if value is None else str(value), style=style)


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def short_id(run_id: str | None) -> str:
    return run_id[:8] if run_id else ""


def say(markup: str) -> None:
    """Print a message (Rich markup) that wraps at the terminal's edge, not at 80 columns."""
    console.print(markup, highlight=False, soft_wrap=True)


def format_time(ms: int | None, *, seconds: bool = False, compact: bool = False) -> str:
    """Epoch milliseconds as local time: ``2024-05-01 14:03``; ``compact`` drops the year
    when it is this year (``05-01 14:03``); ``seconds`` adds seconds and the UTC offset."""
    if ms is None:
        return ""
    moment = datetime.fromtimestamp(ms / 1000).astimezone()
    if seconds:
        return moment.strftime("%Y-%m-%d %H:%M:%S %z")
    if compact and moment.year == datetime.now().year:
        return moment.strftime("%m-%d %H:%M")
    return moment.strftime("%Y-%m-%d %H:%M")


def format_seconds(total: float) -> str:
    """A duration for people: ``850ms``, ``4.2s``, ``3m 05s``, ``2h 14m``, ``3d 04h``."""
    if total < 1:
        return f"{max(total, 0) * 1000:.0f}ms"
    if total < 60:
        return f"{total:.1f}s"
    whole = int(total)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600:02d}h"


def format_duration(start_ms: int, end_ms: int | None) -> str:
    """Run length; a run without an end is measured up to now and marked with ``+``."""
    if end_ms is None:
        return format_seconds((time.time_ns() // 1_000_000 - start_ms) / 1000) + "+"
    return format_seconds((end_ms - start_ms) / 1000)


def format_number(value: float | None, digits: int = 4) -> str:
    """A number rounded to ``digits`` significant digits, keeping its whole part, so float
    noise never shows: ``0.9346``, ``919.6``, ``10248``, ``3``, ``0.001235``, ``1.2e-05``.

    Whole numbers print whole; below 0.0001 or from 10^15, scientific notation."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    magnitude = abs(value)
    if float(value).is_integer() and magnitude < 1e15:
        return str(int(value))
    if magnitude >= 1e15 or magnitude < 1:
        return f"{value:.{digits}g}"
    decimals = max(digits - len(str(int(magnitude))), 0)
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if decimals else text


def format_value(value: object, digits: int = 4) -> str:
    """Any value of a record for a table cell: floats by :func:`format_number`, integers
    whole and without separators (they may be keys), times to the second, ``-`` for
    nothing."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_number(value, digits)
    if isinstance(value, datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S")
        offset = value.strftime("%z")
        return text if offset in ("", "+0000") else f"{text} {offset}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def format_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def section(title: str) -> Table:
    """A borderless two-column table of ``label  value`` lines under a bold title."""
    table = Table(title=title, title_justify="left", title_style="bold", show_header=False,
                  box=None, pad_edge=False, padding=(0, 2, 0, 0))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    return table


def fits(table: Table, target: Console | None = None) -> bool:
    """Whether :func:`show` prints ``table`` as a table (wrapping its free text at most)."""
    return text_tables.fits(table, target or console)


def show(table: Table, target: Console | None = None) -> None:
    """Print a :func:`listing` so that nothing breaks (see :mod:`modelyard.text_tables`), on
    the CLI's console unless ``target`` is given."""
    text_tables.show(table, target or console)
