"""The source rows a point-in-time read at one instant can use, kept from a stream of batches.

A materialization at T reads, per entity, the latest row at or before T (row features: the
latest event time, ties broken by ingestion time and then table position) and the rows of the
window ``(T - longest window, T]`` (window features). :class:`Candidates` keeps exactly those
rows of the batches fed to it, in the order they came, and drops the rest batch by batch. The
engine then computes from the kept rows the very values it would compute from the whole
table: every row it could choose is there, ties included, in the same relative order.

This holds because feature expressions are row-level (an aggregate or window function in an
expression is refused when defined) and only when the group has no Python transform, which
may look across rows: for a group with one, every row is kept (``keep_all``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from modelyard.backends.offline.engine import micros

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

_MIN_REDUCE_ROWS = 65_536  # re-reduce the kept rows once this many (or as many again) arrive


class TooManyRows(Exception):
    """The rows to keep outgrew the limit (long windows over a large table)."""


class Candidates:
    """Keeps, of the batches fed, the rows with ``keys`` all set and ``timestamp`` at or
    before ``at_us`` that are either their entity's latest such rows or younger than
    ``window_us`` (0: no window features); with ``keep_all``, every row. Holding more than
    ``limit`` rows raises :class:`TooManyRows`."""

    def __init__(self, keys: Sequence[str], timestamp: str, at_us: int, window_us: int,
                 limit: int, *, keep_all: bool = False) -> None:
        self.keep_all = keep_all
        self.keys = list(keys)
        self.timestamp = timestamp
        self.at_us = at_us
        self.low_us = at_us - window_us if window_us > 0 else None
        self.limit = limit
        self._parts: list[pa.Table] = []
        self._rows = 0
        self._reduced_rows = 0  # rows held after the last reduction

    @property
    def rows(self) -> int:
        return self._rows

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        import pyarrow as pa

        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        kept = self._reduce(table)
        if kept.num_rows == 0:
            return
        self._parts.append(kept)
        self._rows += kept.num_rows
        if self._rows - self._reduced_rows >= max(_MIN_REDUCE_ROWS, self._reduced_rows):
            self._reduce_all()
        if self._rows > self.limit:
            raise TooManyRows(f"more than {self.limit:,} rows to keep")

    def table(self, schema: pa.Schema) -> pa.Table:
        """The kept rows, in the order they were fed (``schema``: that of an empty result)."""
        self._reduce_all()
        return self._parts[0] if self._parts else schema.empty_table()

    def _reduce_all(self) -> None:
        import pyarrow as pa

        if len(self._parts) > 1 or self._rows != self._reduced_rows:
            whole = pa.concat_tables(self._parts) if len(self._parts) > 1 else self._parts[0]
            whole = self._reduce(whole)
            self._parts = [whole] if whole.num_rows else []
            self._rows = self._reduced_rows = whole.num_rows

    def _reduce(self, table: pa.Table) -> pa.Table:
        import numpy as np
        import pyarrow.compute as pc

        if table.num_rows == 0 or self.keep_all:
            return table
        times = micros(table.column(self.timestamp))
        visible = pc.and_(pc.is_valid(times), pc.less_equal(times, self.at_us))
        for key in self.keys:
            visible = pc.and_(visible, pc.is_valid(table.column(key)))
        shown = visible.to_numpy(zero_copy_only=False)
        if not shown.any():
            return table.slice(0, 0)
        us = times.fill_null(0).to_numpy(zero_copy_only=False)
        codes, groups = self._codes(table)
        newest = np.full(groups, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(newest, codes[shown], us[shown])
        keep = shown & (us == newest[codes])
        if self.low_us is not None:
            keep |= shown & (us > self.low_us)
        return table.filter(keep)

    def _codes(self, table: pa.Table) -> tuple[np.ndarray, int]:
        """One integer per row naming its entity (any key types; null keys get some code,
        and are never visible), and how many codes there are."""
        import numpy as np
        import pyarrow.compute as pc

        combined: np.ndarray | None = None
        groups = 1
        for key in self.keys:
            encoded = pc.dictionary_encode(table.column(key).combine_chunks())
            size = len(encoded.dictionary) + 1
            code = encoded.indices.fill_null(size - 1).to_numpy(zero_copy_only=False)
            code = code.astype(np.int64)
            if combined is None:
                combined, groups = code, size
            else:
                combined, dense = np.unique(combined * size + code, return_inverse=True)
                combined, groups = dense.astype(np.int64), len(combined)
        assert combined is not None
        return combined, groups
