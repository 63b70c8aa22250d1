"""A model's signature: the columns it takes and the columns it returns.

Column types are a small closed set (:data:`COLUMN_TYPES`):

=============  ================================================================
``int``        whole numbers (any integer width, signed or not)
``float``      floating point numbers
``bool``       true / false
``string``     text
``category``   text or values from a fixed set (pandas ``category``, Arrow dictionary)
``timestamp``  points in time, with or without a time zone
``date``       calendar days
=============  ================================================================

:meth:`Signature.infer` reads them from an example frame (pandas, pyarrow or Polars) and the
model's predictions; a column is nullable when the example has a null or NaN in it.
:meth:`Signature.check` turns a request frame into exactly the pandas frame the model
expects, converting only where nothing is lost: a ``bool`` goes into an ``int`` column (as 0
or 1), an ``int`` into a ``float`` column where float64 holds it exactly, a ``2.0`` into an
``int`` column, but never ``"3"`` into an ``int``. Every value must lie in its column's
domain: an ``int`` column holds int64 (-2**63 to 2**63-1, what the model is given), a
``float`` column finite numbers (infinities are refused; NaN is a null, allowed only in a
nullable column). In the frame it returns,
an ``int`` column with nulls is ``float64`` with NaN (what the model libraries take), a
``bool`` column with nulls is pandas ``boolean``, a ``date`` column holds ``datetime.date``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COLUMN_TYPES", "ColumnSpec", "Signature"]

COLUMN_TYPES = ("int", "float", "bool", "string", "category", "timestamp", "date")
# a value of the first type is accepted, unchanged in meaning, where the second is declared
_WIDENS = frozenset({("int", "float"), ("bool", "int"), ("string", "category"),
                     ("category", "string")})
_INT64 = (-(2**63), 2**63 - 1)
_EXACT_FLOAT = 2**53  # whole numbers up to this magnitude are all exact in float64
_MAX_EXAMPLES = 3


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a signature: its name, type (one of COLUMN_TYPES) and nullability."""

    name: str
    type: str
    nullable: bool

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidInputError("a column name must be a non-empty string", field="name")
        if self.type not in COLUMN_TYPES:
            raise InvalidInputError(
                f"column {self.name!r} has unknown type {self.type!r}: expected one of "
                f"{', '.join(COLUMN_TYPES)}", field="type", column=self.name)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "nullable": self.nullable}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnSpec:
        try:
            return cls(str(data["name"]), str(data["type"]), bool(data.get("nullable", False)))
        except (KeyError, TypeError) as exc:
            raise InvalidInputError(
                f"a column needs 'name' and 'type', got {data!r}", field="signature") from exc


@dataclass(frozen=True)
class Signature:
    """The input columns a model takes, in order, and the output columns it gives."""

    inputs: tuple[ColumnSpec, ...]
    outputs: tuple[ColumnSpec, ...] = ()

    def __post_init__(self) -> None:
        for role, columns in (("input", self.inputs), ("output", self.outputs)):
            names = [c.name for c in columns]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise InvalidInputError(
                    f"{role} column{'s' * (len(twice) > 1)} {', '.join(twice)} "
                    f"appear{'s' * (len(twice) == 1)} more than once", field="signature")

    @property
    def input_names(self) -> list[str]:
        return [c.name for c in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [c.name for c in self.outputs]

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": [c.to_dict() for c in self.inputs],
                "outputs": [c.to_dict() for c in self.outputs]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        if not isinstance(data, Mapping) or not isinstance(data.get("inputs"), list):
            raise InvalidInputError("a signature needs a list of 'inputs'", field="signature")
        outputs = data.get("outputs") or []
        if not isinstance(outputs, list):
            raise InvalidInputError("a signature's 'outputs' must be a list", field="signature")
        return cls(tuple(ColumnSpec.from_dict(c) for c in data["inputs"]),
                   tuple(ColumnSpec.from_dict(c) for c in outputs))

    @classmethod
    def infer(cls, inputs: Any, outputs: Any | None = None) -> Signature:
        """The signature of an example input frame and, optionally, the model's predictions.

        ``inputs``: a pandas, pyarrow or Polars frame. ``outputs``: a 1-D array-like or
        Series (one column, named after the Series or ``prediction``), a 2-D array
        (``prediction_0``, ``prediction_1``, ...) or a data frame. Raises InvalidInputError
        for a column whose type is none of COLUMN_TYPES.
        """
        frame = _to_pandas(inputs, "inputs", allow_plain=False)
        specs = tuple(_infer_column(str(name), frame[name]) for name in frame.columns)
        if outputs is None:
            return cls(specs)
        out = _outputs_frame(outputs)
        return cls(specs, tuple(_infer_column(str(n), out[n]) for n in out.columns))

    def check(self, frame: Any) -> pd.DataFrame:
        """``frame`` as the pandas frame the model takes: the input columns, in order.

        ``frame``: pandas, pyarrow or Polars, a list of row dicts or a dict of column lists.
        Extra columns are dropped. Raises InvalidInputError for missing columns (all of them
        named, ``field="columns"``), a column of the wrong type or with nulls it may not have
        (``field`` = that column; every such problem is listed in the message).
        """
        import pandas as pd

        data = _to_pandas(frame, "frame", allow_plain=True)
        missing = [c.name for c in self.inputs if c.name not in data.columns]
        if missing:
            raise InvalidInputError(
                f"missing input column{'s' * (len(missing) > 1)} {', '.join(missing)}; the "
                f"model takes {', '.join(self.input_names)}", field="columns", missing=missing)
        columns: dict[str, pd.Series] = {}
        problems: list[tuple[str, str]] = []
        for spec in self.inputs:
            converted = _coerce(data[spec.name], spec)
            if isinstance(converted, str):
                problems.append((spec.name, converted))
            else:
                columns[spec.name] = converted
        if problems:
            raise InvalidInputError(
                "; ".join(f"column {name!r} {text}" for name, text in problems),
                field=problems[0][0], problems=[{"column": n, "problem": t} for n, t in problems])
        return pd.DataFrame(columns, index=pd.RangeIndex(len(data)))

    def compatible_with(self, older: Signature) -> list[str]:
        """What would break callers of ``older`` if this signature replaced it (empty: nothing).

        Inputs: a column this one needs that ``older`` did not take, a type callers' values
        no longer convert to, a column that no longer accepts nulls. Outputs: a column
        removed, its type changed, or nulls where there were none.
        """
        problems: list[str] = []
        old_inputs = {c.name: c for c in older.inputs}
        for new in self.inputs:
            old = old_inputs.get(new.name)
            if old is None:
                problems.append(f"input {new.name!r} ({new.type}) is new and required")
                continue
            if old.type != new.type and (old.type, new.type) not in _WIDENS:
                problems.append(f"input {new.name!r} changed type from {old.type} to {new.type}")
            if old.nullable and not new.nullable:
                problems.append(f"input {new.name!r} no longer accepts nulls")
        new_outputs = {c.name: c for c in self.outputs}
        for old in older.outputs:
            new_out = new_outputs.get(old.name)
            if new_out is None:
                problems.append(f"output {old.name!r} was removed")
                continue
            if old.type != new_out.type:
                problems.append(
                    f"output {old.name!r} changed type from {old.type} to {new_out.type}")
            if new_out.nullable and not old.nullable:
                problems.append(f"output {old.name!r} may now be null")
        return problems


# --- frames --------------------------------------------------------------------------------


def _to_pandas(data: Any, field: str, *, allow_plain: bool) -> pd.DataFrame:
    """A pandas frame with text column names; Arrow integers keep their type (nullable)."""
    import pandas as pd

    module = type(data).__module__.split(".")[0]
    if isinstance(data, pd.DataFrame):
        frame = data
    elif module == "pyarrow" and hasattr(data, "column_names"):  # Table or RecordBatch
        frame = _from_arrow(data)
    elif module == "polars" and hasattr(data, "columns") and hasattr(data, "to_arrow"):
        frame = _from_arrow(data.to_arrow())
    elif allow_plain and isinstance(data, list | dict):
        try:
            frame = pd.DataFrame(data)
        except (ValueError, TypeError) as exc:
            raise InvalidInputError(f"{field} does not form a table: {exc}", field=field) from exc
    else:
        expected = "a pandas, pyarrow or Polars frame" + (
            ", a list of row dicts or a dict of columns" if allow_plain else "")
        raise InvalidInputError(f"{field} must be {expected}, got {type(data).__name__}",
                                field=field)
    names = [str(c) for c in frame.columns]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InvalidInputError(f"{field} has column {twice[0]!r} more than once", field=field)
    if list(frame.columns) != names:
        frame = frame.set_axis(names, axis=1)
    return frame


def _from_arrow(table: Any) -> pd.DataFrame:
    import pandas as pd
    import pyarrow as pa

    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    nullable = {pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(),
                pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype(),
                pa.uint8(): pd.UInt8Dtype(), pa.uint16(): pd.UInt16Dtype(),
                pa.uint32(): pd.UInt32Dtype(), pa.uint64(): pd.UInt64Dtype(),
                pa.bool_(): pd.BooleanDtype()}
    frame = table.to_pandas(types_mapper=nullable.get)
    assert isinstance(frame, pd.DataFrame)
    return frame


def _outputs_frame(outputs: Any) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    if isinstance(outputs, pd.Series):
        return outputs.to_frame(str(outputs.name) if outputs.name is not None else "prediction")
    module = type(outputs).__module__.split(".")[0]
    if isinstance(outputs, pd.DataFrame) or module in ("pyarrow", "polars"):
        if module == "pyarrow" and not hasattr(outputs, "column_names"):  # a single array
            return pd.DataFrame({"prediction": outputs.to_pandas()})
        if module == "polars" and not hasattr(outputs, "columns"):  # a Series
            return _to_pandas(outputs.to_frame(), "outputs", allow_plain=False)
        return _to_pandas(outputs, "outputs", allow_plain=False)
    array = np.asarray(outputs)
    if array.ndim == 1:
        return pd.DataFrame({"prediction": array})
    if array.ndim == 2:
        return pd.DataFrame({f"prediction_{i}": array[:, i] for i in range(array.shape[1])})
    raise InvalidInputError(
        f"outputs must be 1-D or 2-D, got {array.ndim} dimensions", field="outputs")


# --- types ---------------------------------------------------------------------------------


def _kind(series: pd.Series) -> str | None:
    """The COLUMN_TYPES name of a column's values, ``"empty"`` if all null, else None."""
    import pandas as pd
    from pandas.api import types as ptypes

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if ptypes.is_bool_dtype(dtype):
        return "bool"
    if ptypes.is_integer_dtype(dtype):
        return "int"
    if ptypes.is_float_dtype(dtype):
        return "float"
    if ptypes.is_datetime64_any_dtype(dtype):
        return "timestamp"
    if ptypes.is_string_dtype(dtype) and not _is_object(dtype):
        return "string"
    if not _is_object(dtype):
        return None
    inferred = ptypes.infer_dtype(series, skipna=True)
    return {"string": "string", "integer": "int", "floating": "float",
            "mixed-integer-float": "float", "decimal": "float", "boolean": "bool",
            "date": "date", "datetime": "timestamp", "datetime64": "timestamp",
            "empty": "empty"}.get(inferred)


def _is_object(dtype: Any) -> bool:
    """Whether a pandas column holds Python objects (numpy's ``object`` dtype)."""
    return getattr(dtype, "name", "") == "object"


def _infer_column(name: str, series: pd.Series) -> ColumnSpec:
    kind = _kind(series)
    if kind is None:
        raise InvalidInputError(
            f"column {name!r} holds {_describe(series)}, which a signature cannot describe: "
            f"expected {', '.join(COLUMN_TYPES)}", field=name)
    if kind == "empty":  # all null: nothing says more than that it is text-like
        kind = "string"
    return ColumnSpec(name, kind, bool(series.isna().any()))


def _describe(series: pd.Series) -> str:
    if _is_object(series.dtype):
        from pandas.api import types as ptypes

        return f"{ptypes.infer_dtype(series, skipna=True)} values"
    return f"values of type {series.dtype}"


def _coerce(series: pd.Series, spec: ColumnSpec) -> pd.Series | str:
    """The column converted to ``spec``'s type, or the problem found, as text."""
    import numpy as np

    kind = _kind(series)
    has_nulls = bool(series.isna().any())
    if has_nulls and not spec.nullable:
        return f"has {int(series.isna().sum())} null value(s) but may not be null"
    if kind == "category" and spec.type == "string":
        categories = _kind(series.cat.categories.to_series())
        if categories not in ("string", "empty"):
            return f"has type category of {categories or 'mixed'} values, expected string"
    if kind == "empty" or kind == spec.type or (kind, spec.type) in _WIDENS:
        problem = _out_of_domain(series, kind, spec.type)
        return problem if problem is not None else _canonical(series, spec.type)
    if kind == "float" and spec.type == "int":
        values = series.dropna().to_numpy(dtype=np.float64)
        bad = values[~np.isfinite(values) | (values != np.round(values))]
        if len(bad):
            shown = ", ".join(repr(float(v)) for v in bad[:_MAX_EXAMPLES])
            return f"has type float with values that are not whole numbers (e.g. {shown}), " \
                   f"expected int"
        bad = values[(values < -(2.0**63)) | (values >= 2.0**63)]
        if len(bad):
            shown = ", ".join(repr(float(v)) for v in bad[:_MAX_EXAMPLES])
            return (f"has whole numbers outside int64 (-9223372036854775808 to "
                    f"9223372036854775807), e.g. {shown}")
        return _canonical(series, "int")
    if kind == "timestamp" and spec.type == "date":
        stamps = series.dropna()
        if (stamps == stamps.dt.normalize()).all():
            return _canonical(series, "date")
        return "has type timestamp with times of day, expected date"
    return f"has type {kind or _describe(series)}, expected {spec.type}"


def _out_of_domain(series: pd.Series, kind: str | None, target: str) -> str | None:
    """What in the column lies outside ``target``'s domain (see the module docs), or None."""
    import numpy as np

    values = series.dropna()
    if not len(values):
        return None
    if kind == "int" and target in ("int", "float"):
        dtype = values.dtype
        if getattr(dtype, "kind", "O") in "iu" and dtype.itemsize <= 4:
            return None  # narrower than int64: every value fits
        if getattr(dtype, "kind", "O") == "i" and target == "int":
            return None  # int64 already
        numbers = values.tolist()  # Python ints: compared exactly, whatever their size
        if target == "int":
            bad = [v for v in numbers if not _INT64[0] <= v <= _INT64[1]]
            if bad:
                shown = ", ".join(str(v)[:24] for v in bad[:_MAX_EXAMPLES])
                return (f"has whole numbers outside int64 (-9223372036854775808 to "
                        f"9223372036854775807), e.g. {shown}")
            return None
        bad = [v for v in numbers if abs(v) > _EXACT_FLOAT and not _exact_float(v)]
        if bad:
            shown = ", ".join(str(v)[:24] for v in bad[:_MAX_EXAMPLES])
            return (f"has whole numbers that float64 cannot hold exactly, e.g. {shown}; "
                    f"expected float")
        return None
    if kind == "float" and target == "float":
        numbers = values.to_numpy(dtype=np.float64)
        bad = numbers[np.isinf(numbers)]
        if len(bad):
            return (f"has {len(bad)} infinite value(s); expected finite numbers (a missing "
                    f"value is null or NaN)")
    return None


def _exact_float(value: int) -> bool:
    try:
        return float(value) == value
    except OverflowError:
        return False


def _canonical(series: pd.Series, kind: str) -> pd.Series:
    """The series in the pandas type check() gives for ``kind`` (see the module docs)."""
    import numpy as np
    import pandas as pd

    series = series.reset_index(drop=True)
    if kind == "float":
        return pd.Series(series.to_numpy(dtype=np.float64, na_value=np.nan), name=series.name)
    if kind == "int":
        if series.isna().any():
            return pd.Series(series.to_numpy(dtype=np.float64, na_value=np.nan),
                             name=series.name)
        if series.dtype == object:  # Python ints (checked to fit) or bools
            return pd.Series(np.array([int(v) for v in series], dtype=np.int64),
                             name=series.name)
        return series.astype(np.int64)
    if kind == "bool":
        return series.astype("boolean") if series.isna().any() else series.astype(bool)
    if kind == "category":
        return series if isinstance(series.dtype, pd.CategoricalDtype) else series.astype(
            "category")
    if kind == "string":
        if isinstance(series.dtype, pd.CategoricalDtype):
            return series.astype(series.dtype.categories.dtype)
        return series
    if kind == "date":
        if not _is_object(series.dtype):
            return series.dt.date.astype(object).where(series.notna(), None)
        return series
    if _is_object(series.dtype):  # all null
        return pd.to_datetime(series)
    return series  # timestamp
