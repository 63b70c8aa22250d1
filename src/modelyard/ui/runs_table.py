"""The runs table's columns: which the user chose (``col`` params in the URL), what each
cell shows, and how a header sorts.

A column is named as in the search language, ``metrics.rmse``, ``params.max_depth``,
``tags.model.family``, and a metric column may ask for the smallest or largest value the
run ever logged instead of its last: ``metrics.rmse:min``, ``metrics.rmse:max``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from modelyard.backends.metadata.base import MetricRange, RunRecord
from modelyard.errors import InvalidInputError

__all__ = ["Column", "default_columns", "order_text", "parse_columns"]

Kind = Literal["metric", "param", "tag"]
Stat = Literal["last", "min", "max"]
_PREFIXES: dict[str, Kind] = {"metrics": "metric", "params": "param", "tags": "tag"}
_PLAIN_KEY = re.compile(r"[A-Za-z_][\w\-/:]*(\.[A-Za-z_0-9][\w\-/:]*)*")
MAX_COLUMNS = 40


@dataclass(frozen=True)
class Column:
    kind: Kind
    key: str
    stat: Stat = "last"

    @property
    def spec(self) -> str:
        """The column as the URL names it."""
        prefix = {"metric": "metrics", "param": "params", "tag": "tags"}[self.kind]
        return f"{prefix}.{self.key}" + ("" if self.stat == "last" else f":{self.stat}")

    @property
    def label(self) -> str:
        return self.key + ("" if self.stat == "last" else f" ({self.stat})")

    @property
    def sortable(self) -> bool:
        """The store sorts by a metric's last value, a param or a tag; not by min/max."""
        return self.stat == "last"

    def cell(self, run: RunRecord,
             ranges: Mapping[tuple[str, str], MetricRange]) -> float | str | None:
        if self.kind == "param":
            return run.params.get(self.key)
        if self.kind == "tag":
            return run.tags.get(self.key)
        if self.stat == "last":
            latest = run.metrics.get(self.key)
            return None if latest is None else latest.value
        found = ranges.get((run.info.run_id, self.key))
        return None if found is None else (found.min if self.stat == "min" else found.max)


def parse_columns(specs: Sequence[str]) -> list[Column]:
    """The columns named in the URL, in order, each once."""
    found: list[Column] = []
    for spec in specs[:MAX_COLUMNS]:
        prefix, dot, rest = spec.partition(".")
        kind = _PREFIXES.get(prefix)
        if kind is None or not dot or not rest:
            raise InvalidInputError(
                f"column {spec!r} is not a metrics., params. or tags. column (for example "
                "metrics.rmse, metrics.rmse:min, params.max_depth)", field="col")
        stat: Stat = "last"
        if kind == "metric" and rest.endswith((":min", ":max", ":last")):
            rest, _, which = rest.rpartition(":")
            stat = "min" if which == "min" else "max" if which == "max" else "last"
        column = Column(kind, rest, stat)
        if column not in found:
            found.append(column)
    return found


def default_columns(runs: Sequence[RunRecord]) -> list[Column]:
    """Without a choice: the four metrics most runs of the page logged, and the three
    params that most often differ between them."""
    metrics = Counter(k for r in runs for k in r.metrics)
    values: dict[str, set[str | None]] = {}
    for r in runs:
        for k, v in r.params.items():
            values.setdefault(k, set()).add(v)
    for k, seen in values.items():  # a run without the param differs from one with it
        if any(k not in r.params for r in runs):
            seen.add(None)
    varying = sorted((k for k, seen in values.items() if len(seen) > 1),
                     key=lambda k: (-len(values[k]), k))
    chosen = [Column("metric", k) for k, _ in sorted(metrics.items(),
                                                     key=lambda kv: (-kv[1], kv[0]))[:4]]
    return chosen + [Column("param", k) for k in varying[:3]]


def order_text(column: Column | str, descending: bool) -> str:
    """The ``order`` URL param that sorts by ``column`` (an attribute name, or a column)."""
    if isinstance(column, str):
        name = column
    else:
        prefix = {"metric": "metrics", "param": "params", "tag": "tags"}[column.kind]
        key = column.key if _PLAIN_KEY.fullmatch(column.key) else (
            '"' + column.key.replace("\\", "\\\\").replace('"', '\\"') + '"')
        name = f"{prefix}.{key}"
    return f"{name} {'desc' if descending else 'asc'}"
