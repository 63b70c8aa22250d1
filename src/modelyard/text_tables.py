"""Rich tables that never break a number or a name, shared by the CLI and the demo.

A :func:`listing`'s columns do not wrap, except the free-text ones named ``wrap``, which
wrap between words. :func:`show` prints it as it is when it fits the console, with its free
text wrapped when that is enough, and otherwise (a table too wide for the terminal even so;
80 columns when the output is piped) as one block of ``header  value`` lines per row.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich import box
from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.table import Column, Table
from rich.text import Text

__all__ = ["fits", "listing", "show"]

#: Characters between two columns of a :func:`listing`: padding, rule, padding.
GAP = 3
#: A word longer than this in a wrapping column may be folded rather than widen the column;
#: so may a path or a URI (a word with a ``/``) of any length.
LONGEST_WORD = 24


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
    return natural, min(max(words, default=0), LONGEST_WORD, natural)


def fits(table: Table, out: Console) -> bool:
    """Whether :func:`show` prints ``table`` on ``out`` as a table (wrapping its free text at
    most)."""
    least = sum(m for _, m in (_widths(c) for c in table.columns))
    return least + GAP * (len(table.columns) - 1) <= out.width


def show(table: Table, out: Console) -> None:
    """Print a :func:`listing` on ``out`` so that nothing breaks: as it is when it fits,
    with its free text wrapped when that is enough, else one block per row."""
    columns = table.columns
    if not columns:
        return
    sizes = [_widths(c) for c in columns]
    room = out.width - GAP * (len(columns) - 1)
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
