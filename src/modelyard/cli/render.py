"""Shared Rich consoles and small rendering helpers for the CLI.

Everything printed here stays readable without a terminal: colour is an extra, never the
only carrier of meaning, and text is plain ASCII apart from table borders (which Rich swaps
for ASCII when the output encoding needs it).

Tables (:func:`listing`, printed by :func:`show`) never break a number or a name: their
columns do not wrap, except the free-text ones named ``wrap``, which wrap between words.
A table too wide for the terminal even so (80 columns when the output is piped) is printed
as one block of ``header  value`` lines per row instead.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from datetime import date, datetime

from rich import box
from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.table import Column, Table
from rich.text import Text

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


def listing(title: str | None, headers: Iterable[str], *, wrap: Iterable[str] = (),
            right: Iterable[str] = ()) -> Table:
    """A table with a header row and no outer frame, for lists of things; print it with
    :func:`show`. Only the ``wrap`` columns (free text) may wrap, between words; ``right``
    columns (numbers) are right-aligned."""
    table = Table(title=title, title_justify="left", title_style="bold", header_style="bold",
                  box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    wrapping, righted = set(wrap), set(right)
    for header in headers:
        table.add_column(header, no_wrap=header not in wrapping, overflow="fold",
                         justify="right" if header in righted else "left")
    return table


#: Characters between two columns of a :func:`listing`: padding, rule, padding.
_GAP = 3
#: A word longer than this in a wrapping column may be folded rather than widen the column;
#: so may a path or a URI (a word with a ``/``) of any length.
_LONGEST_WORD = 24


def _lines(renderable: RenderableType | str) -> list[str]:
    if isinstance(renderable, Text):
        return renderable.plain.split("\n")
    return str(renderable).split("\n")


def _widths(column: Column) -> tuple[int, int]:
    """A column's natural width, and the least it can take without breaking a word."""
    lines = [line for item in (column.header, *column.cells) for line in _lines(item)]
    natural = max((cell_len(line) for line in lines), default=0)
    if column.no_wrap:
        return natural, natural
    words = [cell_len(word) for line in lines for word in line.split() if "/" not in word]
    return natural, min(max(words, default=0), _LONGEST_WORD, natural)


def fits(table: Table, target: Console | None = None) -> bool:
    """Whether :func:`show` prints ``table`` as a table (wrapping its free text at most)."""
    out = target or console
    least = sum(m for _, m in (_widths(c) for c in table.columns))
    return least + _GAP * (len(table.columns) - 1) <= out.width


def show(table: Table, target: Console | None = None) -> None:
    """Print a :func:`listing` so that nothing breaks: as it is when it fits, with its free
    text wrapped when that is enough, else one block per row."""
    out = target or console
    columns = table.columns
    if not columns:
        return
    sizes = [_widths(c) for c in columns]
    room = out.width - _GAP * (len(columns) - 1)
    if sum(n for n, _ in sizes) <= room:
        out.print(table)
        return
    if not fits(table, out):
        _print_records(table, out)
        return
    spare = room - sum(m for _, m in sizes)
    stretch = sum(n - m for n, m in sizes)
    for column, (natural, least) in zip(columns, sizes, strict=True):
        grow = (natural - least) * spare // stretch if stretch else 0
        column.width = least + grow
    out.print(table)


def _print_records(table: Table, out: Console) -> None:
    """Each row as ``header  value`` lines, rows apart by a blank line."""
    if table.title:
        out.print(Text(str(table.title), style="bold"))
    headers = [" ".join(_lines(c.header)) for c in table.columns]
    for index, row in enumerate(zip(*(list(c.cells) for c in table.columns), strict=True)):
        block = Table(show_header=False, box=None, pad_edge=False, padding=(0, 2, 0, 0))
        block.add_column(no_wrap=True)
        block.add_column(overflow="fold")
        for header, value in zip(headers, row, strict=True):
            block.add_row(Text(header, style="dim"), value)
        if index:
            out.print()
        out.print(block)
