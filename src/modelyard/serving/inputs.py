"""Request rows checked against a model's signature, and turned into what the model takes.

A :class:`InputDecoder` is compiled once per loaded version from its signature: one small
checker per input column. Decoding a request walks its values once, collects every problem
(``instances[3].age: expected a number, got "x"``) and raises one
:class:`~modelyard.errors.InvalidInputError` listing them, so a client fixes its request in
one round. What comes out is either a float matrix (when every input is numeric and the
model takes one numeric tensor: no pandas on that path) or a pandas frame in the types the
signature check gives.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from modelyard.registry.signature import Signature

__all__ = ["MAX_PROBLEMS", "MAX_ROWS", "InputDecoder", "Problem"]

MAX_ROWS = 100_000  # rows in one request
MAX_PROBLEMS = 20  # problems listed in one error
_MISSING = object()
Checker = Callable[[Any], Any]  # the value as the model takes it, or raises _Bad


class _Bad(Exception):
    """A value that does not fit its column (the message says what was expected)."""


@dataclass(frozen=True)
class Problem:
    field: str
    problem: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "problem": self.problem}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _float(value: Any) -> float:
    if isinstance(value, float):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iuf":
        return float(value)
    raise _Bad(f"expected a number, got {_json_type(value)} {_shown(value)}")


def _int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iu":
        return int(value)
    if isinstance(value, float):
        raise _Bad(f"expected a whole number, got {_shown(value)}")
    raise _Bad(f"expected a whole number, got {_json_type(value)} {_shown(value)}")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if hasattr(value, "dtype") and getattr(value.dtype, "kind", "") == "b":
        return bool(value)
    raise _Bad(f"expected true or false, got {_json_type(value)} {_shown(value)}")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise _Bad(f"expected a string, got {_json_type(value)} {_shown(value)}")


def _timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
    raise _Bad(f"expected an ISO 8601 date and time, got {_json_type(value)} {_shown(value)}")


def _date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise _Bad(f"expected an ISO 8601 date (YYYY-MM-DD), got {_json_type(value)} "
               f"{_shown(value)}")


_CHECKERS: dict[str, Checker] = {
    "int": _int, "float": _float, "bool": _bool, "string": _text, "category": _text,
    "timestamp": _timestamp, "date": _date,
}
_NUMERIC = frozenset({"int", "float", "bool"})
# the Python types a checker passes through unchanged
_EXACT: dict[Checker, set[type]] = {_float: {float}, _int: {int}, _bool: {bool},
                                     _text: {str}}


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class InputDecoder:
    """Checks request rows against a signature's inputs (compiled once per version)."""

    def __init__(self, signature: Signature) -> None:
        self.signature = signature
        self.names = signature.input_names
        self._columns = [(c.name, _CHECKERS[c.type], c.nullable) for c in signature.inputs]
        self.numeric = all(c.type in _NUMERIC for c in signature.inputs)

    def columns(self, rows: Sequence[Mapping[str, Any]], field: str = "instances"
                ) -> dict[str, list[Any]]:
        """The input columns of ``rows`` (JSON-like dicts), every value checked and
        converted (a null is None). Raises InvalidInputError listing each problem, each
        named ``field[i].column``."""
        out, bad = self.split(rows, field, limit=MAX_PROBLEMS)
        if bad:
            raise invalid([p for problems in bad.values() for p in problems])
        return out

    def split(self, rows: Sequence[Any], field: str = "instances",
              limit: int | None = None) -> tuple[dict[str, list[Any]], dict[int, list[Problem]]]:
        """The checked columns of the rows that fit, and the problems of each row that
        does not (by row position). With ``limit``, stop after that many problems."""
        quick = self._whole_columns(rows)
        if quick is not None:
            return quick, {}
        out: dict[str, list[Any]] = {name: [] for name in self.names}
        bad: dict[int, list[Problem]] = {}
        count = 0
        for i, row in enumerate(rows):
            values, problems = self._row(row, f"{field}[{i}]")
            if problems:
                bad[i] = problems
                count += len(problems)
                if limit is not None and count >= limit:
                    break
                continue
            for name, value in zip(self.names, values, strict=True):
                out[name].append(value)
        return out, bad

    def _whole_columns(self, rows: Sequence[Any]) -> dict[str, list[Any]] | None:
        """The columns, when every value already has its column's exact Python type (the
        common case, checked a column at a time); None sends the rows through the per-value
        checks, which convert what they may and name every problem."""
        if not all(type(row) is dict for row in rows):
            return None
        out: dict[str, list[Any]] = {}
        try:
            for name, check, nullable in self._columns:
                values = [row[name] for row in rows]
                kinds = set(map(type, values))
                exact = _EXACT.get(check)
                if exact is None or not kinds <= exact | ({type(None)} if nullable else set()):
                    return None
                if float in kinds and any(v != v for v in values):  # NaN is a null
                    if not nullable:
                        return None
                    values = [None if v != v else v for v in values]
                out[name] = values
        except KeyError:
            return None
        return out

    def _row(self, row: Any, where: str) -> tuple[list[Any], list[Problem]]:
        if not isinstance(row, Mapping):
            return [], [Problem(where, f"expected an object of input values, got "
                                       f"{_json_type(row)}")]
        values: list[Any] = []
        problems: list[Problem] = []
        missing = []
        for name, check, nullable in self._columns:
            value = row.get(name, _MISSING)
            if value is _MISSING:
                missing.append(name)
            elif _is_null(value):
                if not nullable:
                    problems.append(Problem(f"{where}.{name}", "may not be null"))
                values.append(None)
            else:
                try:
                    values.append(check(value))
                except _Bad as bad:
                    problems.append(Problem(f"{where}.{name}", str(bad)))
        if missing:
            problems.append(Problem(where, f"missing input{'s' * (len(missing) > 1)} "
                                           f"{', '.join(missing)}"))
        return values, problems

    def matrix(self, columns: Mapping[str, list[Any]]) -> np.ndarray:
        """Numeric columns as one float64 matrix (rows x inputs, nulls as NaN)."""
        import numpy as np

        if not self.names:
            return np.empty((0, 0), dtype=np.float64)
        # NumPy turns None into NaN on the way to float64
        return np.array([columns[n] for n in self.names], dtype=np.float64).T

    def frame(self, columns: Mapping[str, list[Any]]) -> pd.DataFrame:
        """The columns as the pandas frame the model takes (the signature's types)."""
        import pandas as pd

        return self.signature.check(pd.DataFrame({n: columns[n] for n in self.names}))


def invalid(problems: Sequence[Problem]) -> InvalidInputError:
    shown = "; ".join(f"{p.field}: {p.problem}" for p in problems[:MAX_PROBLEMS])
    more = "" if len(problems) <= MAX_PROBLEMS else f" (and {len(problems) - MAX_PROBLEMS} more)"
    return InvalidInputError(
        f"the request does not fit the model's inputs: {shown}{more}",
        field=problems[0].field, problems=[p.to_dict() for p in problems[:MAX_PROBLEMS]])


def rows_of(payload: Mapping[str, Any], key: str) -> list[Any]:
    """``payload[key]`` as a non-empty list of at most MAX_ROWS rows."""
    rows = payload[key]
    if not isinstance(rows, list):
        raise InvalidInputError(f"'{key}' must be a list of objects, not {_json_type(rows)}",
                                field=key)
    if not rows:
        raise InvalidInputError(f"'{key}' is empty; send at least one row", field=key)
    if len(rows) > MAX_ROWS:
        raise InvalidInputError(f"'{key}' has {len(rows):,} rows; at most {MAX_ROWS:,} fit "
                                "in one request (score larger sets with modelyard predict)",
                                field=key)
    return rows
