"""Batch validation: every bad input gets a clear error, and good input comes out typed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from modelyard.errors import DataValidationError, InvalidInputError
from modelyard.features.validation import infer_schema, to_arrow, validate_batch

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def rows(n: int = 4) -> dict[str, list[Any]]:
    return {"customer": [f"c{i}" for i in range(n)],
            "event_time": [T0 + timedelta(hours=i) for i in range(n)],
            "amount": [10.0 * i for i in range(n)]}


def check(data: Any, schema: dict[str, str] | None = None, *, keys: tuple[str, ...] = (
        "customer",), naive_utc: bool = False) -> pa.Table:
    return validate_batch(data, schema, keys=keys, timestamp="event_time",
                          naive_timestamps_are_utc=naive_utc)


def refused(data: Any, schema: dict[str, str] | None = None, **kw: Any) -> DataValidationError:
    with pytest.raises(DataValidationError) as info:
        check(data, schema, **kw)
    return info.value


# --- the three frame kinds ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["arrow", "pandas", "polars"])
def test_every_frame_kind_becomes_the_same_arrow_table(kind: str) -> None:
    data = rows()
    frame: Any = {"arrow": pa.table, "pandas": pd.DataFrame, "polars": pl.DataFrame}[kind](data)
    out = check(frame, {"amount": "float", "customer": "string"})
    assert isinstance(out, pa.Table)
    assert out.column_names == ["customer", "event_time", "amount"]
    assert out.schema.field("event_time").type == pa.timestamp("us", tz="UTC")
    assert out.schema.field("customer").type == pa.string()
    assert out["event_time"].to_pylist() == data["event_time"]
    assert out["amount"].to_pylist() == data["amount"]


def test_a_named_pandas_index_becomes_a_column() -> None:
    frame = pd.DataFrame(rows()).set_index("customer")
    out = check(frame)
    assert sorted(out.column_names) == ["amount", "customer", "event_time"]
    assert out["customer"].to_pylist() == ["c0", "c1", "c2", "c3"]


def test_something_that_is_not_a_frame_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="expected a pandas DataFrame"):
        check([1, 2, 3])
    assert to_arrow(pa.record_batch({"a": [1]})).num_rows == 1


# --- one test per kind of bad input ---------------------------------------------------------


def test_a_missing_key_column_is_named() -> None:
    data = rows()
    del data["customer"]
    err = refused(pa.table(data))
    assert ("column 'customer' is missing: 4 rows; it is the key column; "
            "the batch has event_time, amount") in err.message
    assert "nothing was written" in err.message
    assert err.details["problems"][0]["column"] == "customer"


def test_null_keys_are_counted_with_examples() -> None:
    data = rows(6)
    data["customer"] = ["a", None, "b", None, None, None]
    err = refused(pd.DataFrame(data))
    assert "column 'customer' has null values in the key column: 4 rows" in err.message
    assert "e.g. row 1: None, row 3: None, row 4: None" in err.message
    assert "row 5" not in err.message  # at most three examples
    (problem,) = err.details["problems"]
    assert problem["rows"] == 4 and len(problem["examples"]) == 3


def test_composite_keys_are_all_checked() -> None:
    data = rows(3)
    data["region"] = ["n", None, "s"]
    err = refused(pa.table(data), keys=("customer", "region"))
    assert "column 'region' has null values in the key column: 1 row, e.g. row 1" in (
        err.message)


def test_naive_timestamps_are_refused_unless_declared_utc() -> None:
    data = rows(3)
    data["event_time"] = [datetime(2024, 5, 1, 12 + i) for i in range(3)]
    err = refused(pd.DataFrame(data))
    assert ("column 'event_time' has timestamps without a time zone: 3 rows, "
            "e.g. row 0: '2024-05-01T12:00:00'") in err.message
    assert err.message.endswith("give them one, or declare that the source's naive "
                                "timestamps are UTC")

    out = check(pd.DataFrame(data), naive_utc=True)
    assert out["event_time"].to_pylist() == [T0, T0 + timedelta(hours=1),
                                             T0 + timedelta(hours=2)]


def test_timestamps_in_other_zones_are_converted_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    data = rows(2)
    data["event_time"] = [datetime(2024, 5, 1, 14, tzinfo=plus_two),
                          datetime(2024, 5, 1, 15, tzinfo=plus_two)]
    out = check(pd.DataFrame(data))
    assert out["event_time"].to_pylist() == [T0, T0 + timedelta(hours=1)]
    assert out.schema.field("event_time").type == pa.timestamp("us", tz="UTC")


def test_timestamp_text_is_read_with_its_zone_or_as_declared_utc() -> None:
    data = rows(3)
    data["event_time"] = ["2024-05-01T14:00:00+02:00", "2024-05-01 13:00:00Z",
                          "2024-05-01T14:00"]
    err = refused(pa.table(data))
    assert "timestamps without a time zone: 1 row, e.g. row 2: '2024-05-01T14:00'" in (
        err.message)
    out = check(pa.table(data), naive_utc=True)
    assert out["event_time"].to_pylist() == [T0, T0 + timedelta(hours=1),
                                             T0 + timedelta(hours=2)]
    data["event_time"] = ["2024-05-01T14:00:00Z", "yesterday", "2024-13-45T00:00:00Z"]
    err = refused(pa.table(data))
    assert ("column 'event_time' has values that do not read as timestamps: 2 rows, "
            "e.g. row 1: 'yesterday', row 2: '2024-13-45T00:00:00Z'; write them in ISO 8601"
            ) in err.message


def test_a_missing_or_null_timestamp_is_refused() -> None:
    data = rows(3)
    data["event_time"][1] = None
    err = refused(pa.table(data))
    assert "column 'event_time' has null values in the timestamp column: 1 row" in err.message
    del data["event_time"]
    err = refused(pa.table(data))
    assert "column 'event_time' is missing: 3 rows; it is the timestamp column" in err.message


def test_uncoercible_values_are_counted_with_examples() -> None:
    data = rows(6)
    data["amount"] = ["1.5", "abc", "2", "", "1e3", "1,5"]
    data["visits"] = [1.0, 2.0, 2.5, None, 7.0, 1e30]
    data["active"] = ["true", "False", "1", "yes", None, "0"]
    err = refused(pd.DataFrame(data), {"amount": "float", "visits": "int", "active": "bool"})
    assert err.message.startswith("the batch has 3 problems; nothing was written:")
    assert ("column 'amount' has values that do not convert to float: 3 rows, "
            "e.g. row 1: 'abc', row 3: '', row 5: '1,5'") in err.message
    assert ("column 'visits' has values that do not convert to int: 2 rows, "
            "e.g. row 2: 2.5, row 5: 1e+30") in err.message
    assert ("column 'active' has values that do not convert to bool: 1 row, "
            "e.g. row 3: 'yes'") in err.message
    assert [p["column"] for p in err.details["problems"]] == ["amount", "visits", "active"]


def test_a_mixed_type_pandas_column_is_read_as_text_and_checked() -> None:
    data = rows(4)
    data["code"] = [1, "2", 3.0, "x"]
    err = refused(pd.DataFrame(data), {"code": "int"})
    assert "column 'code' has values that do not convert to int: 2 rows" in err.message
    assert "row 2: '3.0', row 3: 'x'" in err.message
    out = check(pd.DataFrame(data))  # not declared: kept, as text
    assert out["code"].to_pylist() == ["1", "2", "3.0", "x"]


def test_a_type_that_cannot_convert_at_all_is_named() -> None:
    data = rows(2)
    data["flag"] = [True, False]
    err = refused(pa.table(data), {"flag": "date"})
    assert "column 'flag' is bool, which does not convert to date: 2 rows" in err.message


def test_a_missing_declared_column_is_refused() -> None:
    err = refused(pa.table(rows()), {"amount": "float", "region": "string"})
    assert "column 'region' is missing: 4 rows; it is the declared column (string)" in (
        err.message)
    (problem,) = err.details["problems"]
    assert problem["rows"] == 4


def test_duplicate_column_names_are_refused() -> None:
    frame = pd.DataFrame([[1, 2, T0]], columns=["customer", "customer", "event_time"])
    err = refused(frame)
    assert "column 'customer' appears more than once" in err.message


def test_a_bad_declaration_is_an_input_error_not_a_data_error() -> None:
    with pytest.raises(InvalidInputError, match="declared as 'money'") as info:
        check(pa.table(rows()), {"amount": "money"})
    assert not isinstance(info.value, DataValidationError)
    with pytest.raises(InvalidInputError, match="must be a timestamp"):
        check(pa.table(rows()), {"event_time": "date"})


def test_the_error_serializes_for_a_remote_client() -> None:
    from modelyard.errors import error_from_dict

    data = rows(2)
    data["customer"] = [None, "a"]
    err = refused(pa.table(data))
    again = error_from_dict(err.to_dict())
    assert isinstance(again, DataValidationError)
    assert again.details["problems"] == err.details["problems"]
    assert err.http_status == 422


# --- good input -----------------------------------------------------------------------------


def test_declared_columns_come_out_in_their_types_and_extras_are_kept() -> None:
    data = rows(3)
    data.update(visits=["1", "2", "3"], score=[1, 2, 3], day=["2024-05-01", "2024-05-02",
                                                              None],
                active=["true", "false", "1"], label=[1, 0, 1], note=["x", "y", "z"],
                big=pa.array([1, 2, 2**62]).to_pylist(), seen=[T0, T0, T0])
    table = pa.table(data)
    out = check(table, {"visits": "int", "score": "float", "day": "date", "active": "bool",
                        "label": "bool", "big": "float", "seen": "date", "amount": "string"})
    types = {f.name: f.type for f in out.schema}
    assert types["visits"] == pa.int64() and out["visits"].to_pylist() == [1, 2, 3]
    assert types["score"] == pa.float64()
    assert out["day"].to_pylist() == [date(2024, 5, 1), date(2024, 5, 2), None]
    assert out["active"].to_pylist() == [True, False, True]
    assert out["label"].to_pylist() == [True, False, True]
    assert out["big"].to_pylist()[2] == float(2**62)
    assert out["seen"].to_pylist() == [date(2024, 5, 1)] * 3
    assert out["amount"].to_pylist() == ["0", "10", "20"]
    assert types["note"] == pa.string()  # not declared: as it came
    assert out.column_names == table.column_names


def test_categorical_and_polars_text_columns_are_plain_text() -> None:
    frame = pd.DataFrame(rows(3))
    frame["tier"] = pd.Categorical(["gold", "silver", "gold"])
    out = check(frame, {"tier": "string"})
    assert out.schema.field("tier").type == pa.string()
    assert out["tier"].to_pylist() == ["gold", "silver", "gold"]
    polars_out = check(pl.DataFrame(rows(3)), {"customer": "string"})
    assert polars_out.schema.field("customer").type == pa.string()


def test_an_empty_batch_passes() -> None:
    out = check(pa.table({"customer": pa.array([], pa.string()),
                          "event_time": pa.array([], pa.timestamp("us", tz="UTC"))}))
    assert out.num_rows == 0


def test_many_bad_rows_are_found_without_a_row_loop() -> None:
    n = 200_000
    values = np.arange(n).astype(str).astype(object)
    values[::7] = "n/a"
    data = {"customer": np.arange(n).astype(str), "event_time": [T0] * n, "qty": values}
    err = refused(pa.table(data), {"qty": "int"})
    (problem,) = err.details["problems"]
    assert problem["rows"] == len(range(0, n, 7))
    assert problem["examples"][:2] == [[0, "'n/a'"], [7, "'n/a'"]]


# --- schema inference -----------------------------------------------------------------------


def test_infer_schema_names_the_declared_types() -> None:
    table = pa.table({"i": [1], "u": pa.array([1], pa.uint8()), "f": [1.5],
                      "d": pa.array([1], pa.decimal128(5, 0)), "s": ["x"],
                      "ls": pa.array(["x"], pa.large_string()), "b": [True],
                      "t": [T0], "dt": [date(2024, 1, 1)], "l": [[1, 2]], "n": pa.nulls(1),
                      "c": pa.array(["x"]).dictionary_encode()})
    assert infer_schema(table) == {"i": "int", "u": "int", "f": "float", "d": "float",
                                   "s": "string", "ls": "string", "b": "bool",
                                   "t": "timestamp", "dt": "date", "c": "string"}
    assert infer_schema(pd.DataFrame(rows(2))) == {"customer": "string",
                                                   "event_time": "timestamp",
                                                   "amount": "float"}
    # a batch validates against its own inferred schema
    table = pa.table(rows())
    assert check(table, infer_schema(table)).equals(table)
