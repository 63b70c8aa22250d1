"""Request rows checked against a model's signature, and turned into what the model takes.

A :class:`InputDecoder` is compiled once per loaded version from its signature: one small
checker per input column. Decoding a request walks its values once, collects every problem
(``instances[3].age: expected a number, got "x"``) and raises one
:class:`~modelyard.errors.InvalidInputError` listing them, so a client fixes its request in
one round. What comes out is either a float matrix (when every input is numeric and the
model takes one numeric tensor: no pandas on that path) or a pandas frame in the types the
signature check gives.

Each input has a domain, checked value by value: an ``int`` input takes whole numbers within
int64 (what the model is given; ``true``/``false`` count as 1/0 and ``3.0`` as 3); a
``float`` input finite numbers within float64, or float32 where the model computes in it
(whole numbers only where float64 holds them exactly). ``null`` and NaN are one missing
value, allowed only where the input is nullable; infinities (and ``1e309``, which JSON reads
as one) never are. A key that is no input is refused by name. :class:`Fields` decides how a
problem names its value: ``instances[3].age`` on ``/v1``; the ``/v2`` layer renames those
onto tensor elements (``age[3]``).
"""

from __future__ import annotations

import math
import operator
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from itertools import chain
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from modelyard.registry.signature import Signature

__all__ = ["FLOAT32_MAX", "INT64_MAX", "INT64_MIN", "MAX_PROBLEMS", "MAX_ROWS", "Fields",
           "InputDecoder", "Problem", "float_checker", "int_checker", "key_name"]

MAX_ROWS = 100_000  # rows in one request
MAX_PROBLEMS = 20  # problems listed in one error
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # what an ``int`` input is computed in
FLOAT32_MAX = 3.4028234663852886e38  # numpy.finfo(numpy.float32).max
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


def _range(lo: float, hi: float, width: str, whole: bool) -> str:
    what = "a whole number" if whole else "a finite number"
    return f"expected {what} from {lo:.17g} to {hi:.17g} ({width})" if not whole else \
        f"expected {what} from {int(lo)} to {int(hi)} ({width})"


def _numpy_kind(value: Any) -> str:
    """The NumPy dtype kind of a NumPy scalar (``"i"``, ``"f"``...), else ``""``."""
    if type(value).__module__ == "numpy" and hasattr(value, "dtype"):
        return str(getattr(value.dtype, "kind", ""))
    return ""


def float_checker(width: str = "float64") -> Checker:
    """A float column's check: a finite number within ``width``'s range (``float64``, or
    ``float32`` where the model computes in it). A whole number is accepted where it
    converts to float64 exactly; a boolean is not a number."""
    hi = FLOAT32_MAX if width == "float32" else sys.float_info.max
    expected = _range(-hi, hi, width, whole=False)

    def check(value: Any) -> float:
        if isinstance(value, float):
            number = value
        elif isinstance(value, int) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:
                raise _Bad(f"{expected}, got {_shown(value)}") from None
            if number != value:  # compared exactly: Python's int/float comparison
                raise _Bad(f"expected a number that float64 holds exactly, got {_shown(value)} "
                           f"(it would become {number!r})")
        elif _numpy_kind(value) in ("i", "u", "f"):
            number = float(value)
        else:
            raise _Bad(f"expected a number, got {_json_type(value)} {_shown(value)}")
        if not -hi <= number <= hi:
            raise _Bad(f"{expected}, got {_shown(value)}")
        return number

    return check


def int_checker(lo: int = INT64_MIN, hi: int = INT64_MAX, width: str = "int64") -> Checker:
    """An int column's check: a whole number within ``width``'s range. A boolean is taken
    as 0 or 1, a float with no fraction as its whole number."""
    expected = _range(lo, hi, width, whole=True)

    def check(value: Any) -> int:
        if isinstance(value, int):  # bool included: True is 1
            number = int(value)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise _Bad(f"{expected}, got {_shown(value)}")
            if not value.is_integer():
                raise _Bad(f"expected a whole number, got {_shown(value)}")
            number = int(value)
        elif _numpy_kind(value) in ("i", "u", "b"):
            number = int(value)
        elif _numpy_kind(value) == "f":
            return check(float(value))
        else:
            raise _Bad(f"expected a whole number, got {_json_type(value)} {_shown(value)}")
        if not lo <= number <= hi:
            raise _Bad(f"{expected}, got {_shown(value)}")
        return number

    return check


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if _numpy_kind(value) == "b":
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


_NUMERIC = frozenset({"int", "float", "bool"})


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class Fields:
    """How problems name what they are about: ``instances[3]`` for a row and
    ``instances[3].age`` for one of its values (the ``/v1`` body's own paths)."""

    def __init__(self, prefix: str = "instances") -> None:
        self.prefix = prefix

    def row(self, i: int) -> str:
        return f"{self.prefix}[{i}]"

    def value(self, i: int, column: str) -> str:
        return f"{self.prefix}[{i}].{column}"


class InputDecoder:
    """Checks request rows against a signature's inputs (compiled once per version).

    ``float_width`` is what the model computes floats in: ``float32`` (an ONNX twin taking
    float tensors) narrows the range a float input accepts to float32's. ``extra`` says
    what a row's keys that are no input get: ``"refuse"`` (a problem naming each, the
    server's rule) or ``"ignore"``.
    """

    def __init__(self, signature: Signature, *, float_width: str = "float64",
                 extra: str = "refuse") -> None:
        self.signature = signature
        self.names = signature.input_names
        self._known = frozenset(self.names)
        self.float_width = float_width
        self.refuse_extra = extra == "refuse"
        checkers: dict[str, Checker] = {
            "int": int_checker(), "float": float_checker(float_width), "bool": _bool,
            "string": _text, "category": _text, "timestamp": _timestamp, "date": _date}
        self._columns = [(c.name, c.type, checkers[c.type], c.nullable)
                         for c in signature.inputs]
        self._float_max = FLOAT32_MAX if float_width == "float32" else sys.float_info.max
        self.numeric = all(c.type in _NUMERIC for c in signature.inputs)
        # The matrix fast path (numeric signatures): each row's values in input order, the
        # exact Python type each must have, and each column's largest magnitude.
        self._getter = operator.itemgetter(*self.names) if self.names else None
        self._row_types = [_EXACT_TYPE[c.type] for c in signature.inputs] \
            if self.numeric else []
        self._limits: Any = None

    def checker(self, name: str) -> tuple[Checker, bool]:
        """The check of input ``name`` and whether it may be null."""
        for column, _, check, nullable in self._columns:
            if column == name:
                return check, nullable
        raise KeyError(name)

    def check_value(self, name: str, value: Any) -> Any:
        """``value`` checked as input ``name``; raises ValueError saying what was expected
        (None for a null where nulls are allowed)."""
        check, nullable = self.checker(name)
        if _is_null(value):
            if not nullable:
                raise ValueError("may not be null")
            return None
        try:
            return check(value)
        except _Bad as bad:
            raise ValueError(str(bad)) from None

    def columns(self, rows: Sequence[Mapping[str, Any]], field: str | Fields = "instances"
                ) -> dict[str, list[Any]]:
        """The input columns of ``rows`` (JSON-like dicts), every value checked and
        converted (a null is None). Raises InvalidInputError listing each problem, each
        named ``field[i].column``."""
        out, bad = self.split(rows, field, limit=MAX_PROBLEMS)
        if bad:
            raise invalid([p for problems in bad.values() for p in problems])
        return out

    def split(self, rows: Sequence[Any], field: str | Fields = "instances",
              limit: int | None = None) -> tuple[dict[str, list[Any]], dict[int, list[Problem]]]:
        """The checked columns of the rows that fit, and the problems of each row that
        does not (by row position). With ``limit``, stop after that many problems."""
        quick = self._whole_columns(rows)
        if quick is not None:
            return quick, {}
        fields = field if isinstance(field, Fields) else Fields(field)
        out: dict[str, list[Any]] = {name: [] for name in self.names}
        bad: dict[int, list[Problem]] = {}
        count = 0
        for i, row in enumerate(rows):
            values, problems = self._row(row, i, fields)
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
        """The columns, when every value already has its column's exact Python type and
        lies in its range (the common case, checked a column at a time); None sends the
        rows through the per-value checks, which convert what they may and name every
        problem."""
        if not all(type(row) is dict for row in rows):
            return None
        if self.refuse_extra and rows and set(map(len, rows)) != {len(self.names)}:
            return None  # a key that is no input (or one missing): named one by one
        out: dict[str, list[Any]] = {}
        try:
            for name, kind, _, nullable in self._columns:
                values = [row[name] for row in rows]
                kinds = set(map(type, values))
                exact = _EXACT.get(kind)
                if exact is None or not kinds <= exact | ({type(None)} if nullable else set()):
                    return None
                numbers = [v for v in values if v is not None] if type(None) in kinds \
                    else values
                if kind == "int" and numbers and (
                        min(numbers) < INT64_MIN or max(numbers) > INT64_MAX):
                    return None
                if kind == "float" and numbers:
                    if not math.isfinite(sum(numbers)):  # a NaN, an infinity, or just big
                        if not nullable or not all(map(math.isfinite, filter(
                                lambda v: v == v, numbers))):
                            return None
                        values = [None if v != v else v for v in values]  # NaN is a null
                        numbers = [v for v in numbers if v == v]
                    if self.float_width != "float64" and numbers and (
                            min(numbers) < -self._float_max or max(numbers) > self._float_max):
                        return None
                out[name] = values
        except KeyError:
            return None
        return out

    def _row(self, row: Any, i: int, fields: Fields) -> tuple[list[Any], list[Problem]]:
        if not isinstance(row, Mapping):
            return [], [Problem(fields.row(i), f"expected an object of input values, got "
                                               f"{_json_type(row)}")]
        values: list[Any] = []
        problems: list[Problem] = []
        missing = []
        for name, _, check, nullable in self._columns:
            value = row.get(name, _MISSING)
            if value is _MISSING:
                missing.append(name)
            elif _is_null(value):
                if not nullable:
                    problems.append(Problem(fields.value(i, name), "may not be null"))
                values.append(None)
            else:
                try:
                    values.append(check(value))
                except _Bad as bad:
                    problems.append(Problem(fields.value(i, name), str(bad)))
        if missing:
            problems.append(Problem(fields.row(i), f"missing input{'s' * (len(missing) > 1)} "
                                                   f"{', '.join(missing)}"))
        if self.refuse_extra and len(row) > len(self.names) - len(missing):
            problems.extend(self.unknown(row, i, fields))
        return values, problems

    def unknown(self, row: Mapping[Any, Any], i: int, fields: Fields,
                allowed: frozenset[str] = frozenset()) -> list[Problem]:
        """A problem for each key of ``row`` that is neither an input nor ``allowed``."""
        takes = ", ".join(self.names) or "no inputs"
        return [Problem(fields.value(i, key_name(key)), f"unknown input; the model takes "
                                                          f"{takes}")
                for key in row if key not in self._known and key not in allowed]

    def rows_matrix(self, rows: Sequence[Any], field: str | Fields = "instances"
                    ) -> np.ndarray:
        """The rows of a numeric signature as one float64 matrix (rows x inputs), every
        value checked as :meth:`columns` checks it. Rows whose values already have their
        column's exact type (a float for ``float``, an int for ``int``, a bool for
        ``bool``), with no key missing or unknown, are checked whole: their types in one
        comparison, their ranges in one vectorised one (NaN, infinities and values beyond
        the column's width fail it); anything else goes through :meth:`columns`, which
        converts what it may and names every problem."""
        quick = self._quick_matrix(rows)
        if quick is not None:
            return quick
        return self.matrix(self.columns(rows, field))

    def _quick_matrix(self, rows: Sequence[Any]) -> np.ndarray | None:
        import numpy as np

        count, width = len(rows), len(self.names)
        if not self.numeric or not width or not count or set(map(type, rows)) != {dict}:
            return None
        if self.refuse_extra and set(map(len, rows)) != {width}:
            return None  # a key that is no input (or one missing): named one by one
        try:
            values = list(map(self._getter, rows))  # type: ignore[arg-type]
        except KeyError:
            return None
        flat = values if width == 1 else chain.from_iterable(values)
        if list(map(type, flat)) != self._row_types * count:
            return None
        try:
            matrix = np.array(values, dtype=np.float64).reshape(count, width)
        except OverflowError:  # an integer beyond float64
            return None
        limits = self._limits
        if limits is None:
            bound = {"float": self._float_max, "int": _INT64_BELOW, "bool": 1.0}
            limits = self._limits = np.array([bound[c.type] for c in self.signature.inputs])
        if not (np.abs(matrix) <= limits).all():  # NaN compares False too
            return None
        return matrix

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


# the Python types a column's values may already have to skip the per-value checks
_EXACT: dict[str, set[type]] = {"float": {float}, "int": {int}, "bool": {bool},
                                "string": {str}, "category": {str}}
_EXACT_TYPE: dict[str, type] = {"float": float, "int": int, "bool": bool}
# the largest float64 below 2**63: an int column's value as a float, when it is surely
# within int64 (the values near the bound go through the exact per-value check)
_INT64_BELOW = 9223372036854774784.0


def key_name(key: Any) -> str:
    """A client's key as a field name: as it is when printable, else quoted and escaped
    (an empty key is ``''``), at most 64 characters."""
    text = str(key)
    if text.isprintable() and text.strip():
        return text if len(text) <= 64 else text[:61] + "..."
    return repr(text[:61]) + ("..." if len(text) > 61 else "")


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
