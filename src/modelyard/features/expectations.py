"""Expectations: rules a column should follow, and the rows of a batch that break them.

An :class:`Expectation` is plain data (range, not null, allowed values, unique) that
round-trips through a dict, so rules can be declared once and stored. :func:`check_expectations`
tests a whole Arrow table column-wise with ``pyarrow.compute`` and returns one
:class:`Violation` per broken rule, with the count of bad rows and a few examples.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelyard.errors import InvalidInputError

__all__ = ["Expectation", "ExpectationKind", "Violation", "check_expectations"]

_EXAMPLES = 3

ExpectationKind = Literal["range", "not_null", "allowed_values", "unique"]


@dataclass(frozen=True)
class Expectation:
    """A rule a column should follow. Build one with the class methods."""

    kind: ExpectationKind
    column: str
    min: Any = None
    max: Any = None
    values: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("range", "not_null", "allowed_values", "unique"):
            raise InvalidInputError(
                f"unknown expectation {self.kind!r}: use range, not_null, allowed_values "
                "or unique", kind=self.kind)
        if self.kind == "range" and self.min is None and self.max is None:
            raise InvalidInputError("a range expectation needs a min, a max or both",
                                    column=self.column)

    @classmethod
    def range(cls, column: str, min: Any = None, max: Any = None) -> Expectation:
        return cls("range", column, min=min, max=max)

    @classmethod
    def not_null(cls, column: str) -> Expectation:
        return cls("not_null", column)

    @classmethod
    def allowed_values(cls, column: str, values: Iterable[Any]) -> Expectation:
        return cls("allowed_values", column, values=tuple(values))

    @classmethod
    def unique(cls, column: str) -> Expectation:
        return cls("unique", column)

    def describe(self) -> str:
        if self.kind == "range":
            low = "-inf" if self.min is None else repr(self.min)
            high = "inf" if self.max is None else repr(self.max)
            return f"{self.column} in [{low}, {high}]"
        if self.kind == "allowed_values":
            return f"{self.column} in {{{', '.join(map(repr, self.values))}}}"
        return f"{self.column} {self.kind.replace('_', ' ')}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "column": self.column, "min": self.min, "max": self.max,
                "values": list(self.values)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Expectation:
        return cls(data["kind"], data["column"], data.get("min"), data.get("max"),
                   tuple(data.get("values") or ()))


@dataclass(frozen=True)
class Violation:
    expectation: Expectation
    rows: int
    examples: tuple[tuple[int, str], ...] = ()  # (row position, value as text)
    problem: str = ""

    def to_text(self) -> str:
        plural = "s" * (self.rows != 1)
        text = f"{self.expectation.describe()}: {self.rows} row{plural} {self.problem}"
        if self.examples:
            text += ", e.g. " + ", ".join(f"row {i}: {v}" for i, v in self.examples)
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"expectation": self.expectation.to_dict(), "rows": self.rows,
                "examples": [list(e) for e in self.examples], "problem": self.problem}


def check_expectations(table: pa.Table, expectations: Iterable[Expectation]
                       ) -> list[Violation]:
    """The expectations ``table`` breaks, each with the count of bad rows and examples."""
    found: list[Violation] = []
    for rule in expectations:
        if rule.column not in table.column_names:
            found.append(Violation(rule, table.num_rows, (), "have no such column"))
            continue
        column = table[rule.column]
        mask, problem = _broken(rule, column)
        rows = np.flatnonzero(np.asarray(
            pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool))
        if rows.size:
            shown = rows[:_EXAMPLES]
            values = column.take(pa.array(shown, pa.int64())).to_pylist()
            examples = tuple((int(i), _show(v)) for i, v in zip(shown, values, strict=True))
            found.append(Violation(rule, int(rows.size), examples, problem))
    return found


def _broken(rule: Expectation, column: pa.ChunkedArray) -> tuple[Any, str]:
    floating = pa.types.is_floating(column.type)
    try:
        if rule.kind == "not_null":
            return pc.is_null(column, nan_is_null=True), "are null"
        if rule.kind == "range":
            checks = [pc.is_nan(column)] if floating else []
            if rule.min is not None:
                checks.append(pc.less(column, _scalar(rule.min, column.type)))
            if rule.max is not None:
                checks.append(pc.greater(column, _scalar(rule.max, column.type)))
            return functools.reduce(pc.or_, checks), "are out of range"
        if rule.kind == "allowed_values":
            allowed = pa.array(list(rule.values)).cast(column.type)
            return (pc.and_(pc.is_valid(column), pc.invert(pc.is_in(column, allowed))),
                    "hold other values")
        counts = pc.value_counts(column)  # unique
        repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
        return pc.and_(pc.is_valid(column), pc.is_in(column, repeated)), "repeat a value"
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise InvalidInputError(
            f"expectation {rule.describe()} does not apply to column {rule.column!r} of "
            f"type {column.type}: {exc}", column=rule.column) from exc


def _scalar(value: Any, kind: pa.DataType) -> pa.Scalar:
    if pa.types.is_integer(kind) and isinstance(value, float):
        return pa.scalar(value, pa.float64())
    return pa.scalar(value).cast(kind)


def _show(value: Any) -> str:
    text = repr(value.isoformat() if hasattr(value, "isoformat") else value)
    return text if len(text) <= 40 else text[:37] + "..."
