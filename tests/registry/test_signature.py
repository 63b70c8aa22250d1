"""Signatures: inferred from example frames, enforced on requests, compared across versions."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from modelyard.errors import InvalidInputError
from modelyard.registry.signature import COLUMN_TYPES, ColumnSpec, Signature

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def spec(*columns: tuple[str, str, bool]) -> tuple[ColumnSpec, ...]:
    return tuple(ColumnSpec(*c) for c in columns)


def example() -> dict[str, list[Any]]:
    return {
        "age": [31, 45, 27],
        "income": [1200.5, None, 800.0],
        "member": [True, False, True],
        "city": ["Oslo", "Lima", None],
        "seen": [T0, T0, T0],
        "born": [date(1990, 1, 2), date(1980, 3, 4), date(1999, 5, 6)],
    }


EXPECTED = spec(("age", "int", False), ("income", "float", True), ("member", "bool", False),
                ("city", "string", True), ("seen", "timestamp", False),
                ("born", "date", False))


# --- infer ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pandas", "arrow", "polars"])
def test_infer_from_every_frame_kind(kind: str) -> None:
    maker: Any = {"pandas": pd.DataFrame, "arrow": pa.table, "polars": pl.DataFrame}[kind]
    signature = Signature.infer(maker(example()))
    assert signature.inputs == EXPECTED
    assert signature.outputs == ()
    assert signature.input_names == ["age", "income", "member", "city", "seen", "born"]


@pytest.mark.parametrize("kind", ["pandas", "arrow", "polars"])
def test_nullable_ints_and_bools_stay_ints_and_bools(kind: str) -> None:
    data = {"n": [1, None, 3], "flag": [True, None, False], "x": [1.0, float("nan"), 2.0]}
    maker: Any = {"pandas": lambda d: pd.DataFrame({"n": pd.array(d["n"], dtype="Int64"),
                                                    "flag": pd.array(d["flag"],
                                                                     dtype="boolean"),
                                                    "x": d["x"]}),
                  "arrow": pa.table, "polars": pl.DataFrame}[kind]
    signature = Signature.infer(maker(data))
    assert signature.inputs == spec(("n", "int", True), ("flag", "bool", True),
                                    ("x", "float", True))


def test_infer_categories_and_outputs() -> None:
    frame = pd.DataFrame({"plan": pd.Categorical(["a", "b", "a"]), "x": [1.0, 2.0, 3.0]})
    assert Signature.infer(frame).inputs[0] == ColumnSpec("plan", "category", False)
    assert Signature.infer(pl.DataFrame({"plan": ["a", "b"]}, schema={
        "plan": pl.Categorical})).inputs[0].type == "category"
    assert Signature.infer(frame, np.array([0.5, 1.5, np.nan])).outputs == spec(
        ("prediction", "float", True))
    assert Signature.infer(frame, pd.Series(["yes", "no", "yes"], name="churn")).outputs == spec(
        ("churn", "string", False))
    assert Signature.infer(frame, np.array([[0.1, 0.9], [0.4, 0.6], [1.0, 0.0]])).outputs == spec(
        ("prediction_0", "float", False), ("prediction_1", "float", False))
    assert Signature.infer(frame, [1, 0, 1]).outputs == spec(("prediction", "int", False))
    assert Signature.infer(frame, pd.DataFrame({"score": [1, 2, 3]})).outputs == spec(
        ("score", "int", False))


def test_infer_refuses_columns_it_cannot_describe() -> None:
    frame = pd.DataFrame({"ok": [1, 2], "span": pd.to_timedelta([1, 2], unit="s")})
    with pytest.raises(InvalidInputError) as info:
        Signature.infer(frame)
    assert info.value.details["field"] == "span"
    with pytest.raises(InvalidInputError):
        Signature.infer(pd.DataFrame({"mixed": [1, "a"]}))
    with pytest.raises(InvalidInputError) as info:
        Signature.infer([{"a": 1}])
    assert info.value.details["field"] == "inputs"


def test_round_trip_through_dict() -> None:
    signature = Signature(EXPECTED, spec(("prediction", "float", False)))
    data = signature.to_dict()
    assert data["inputs"][0] == {"name": "age", "type": "int", "nullable": False}
    assert Signature.from_dict(data) == signature
    with pytest.raises(InvalidInputError):
        Signature.from_dict({"inputs": [{"name": "a", "type": "complex"}]})
    with pytest.raises(InvalidInputError):
        Signature.from_dict({"outputs": []})
    with pytest.raises(InvalidInputError):
        Signature(spec(("a", "int", False), ("a", "float", False)))
    assert set(COLUMN_TYPES) == {"int", "float", "bool", "string", "category", "timestamp",
                                 "date"}


# --- check ------------------------------------------------------------------------------------


SIG = Signature(spec(("age", "int", False), ("income", "float", True), ("city", "string", True)))


@pytest.mark.parametrize("kind", ["pandas", "arrow", "polars", "rows", "columns"])
def test_check_returns_the_input_columns_in_order(kind: str) -> None:
    data = {"city": ["Oslo", None], "extra": [1, 2], "income": [10, None], "age": [3.0, 4.0]}
    rows = [dict(zip(data, values, strict=True)) for values in zip(*data.values(), strict=True)]
    frame: Any = {"pandas": pd.DataFrame, "arrow": pa.table, "polars": pl.DataFrame,
                  "rows": lambda _: rows, "columns": lambda d: d}[kind](data)
    out = SIG.check(frame)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["age", "income", "city"]
    assert out["age"].dtype == np.int64 and out["age"].tolist() == [3, 4]  # 3.0 -> 3
    assert out["income"].dtype == np.float64  # int -> float
    assert out["income"].iloc[0] == 10.0 and np.isnan(out["income"].iloc[1])
    assert out["city"].iloc[0] == "Oslo" and pd.isna(out["city"].iloc[1])


def test_check_converts_categories_and_dates_without_loss() -> None:
    signature = Signature(spec(("plan", "category", False), ("name", "string", False),
                               ("day", "date", False), ("n", "int", True),
                               ("flag", "bool", True)))
    frame = pd.DataFrame({
        "plan": ["a", "b"],
        "name": pd.Categorical(["x", "y"]),
        "day": pd.to_datetime(["2024-01-01", "2024-01-02"]),
        "n": pd.array([1, None], dtype="Int64"),
        "flag": pd.array([True, None], dtype="boolean"),
    })
    out = signature.check(frame)
    assert isinstance(out["plan"].dtype, pd.CategoricalDtype)
    assert out["name"].tolist() == ["x", "y"]
    assert out["day"].tolist() == [date(2024, 1, 1), date(2024, 1, 2)]
    assert out["n"].dtype == np.float64 and out["n"].iloc[0] == 1.0
    assert str(out["flag"].dtype) == "boolean"
    with pytest.raises(InvalidInputError) as info:
        signature.check(frame.assign(day=pd.to_datetime(["2024-01-01 10:00", "2024-01-02 00:00"])))
    assert info.value.details["field"] == "day"


def test_check_names_every_missing_column() -> None:
    with pytest.raises(InvalidInputError) as info:
        SIG.check(pd.DataFrame({"city": ["Oslo"]}))
    assert info.value.details["field"] == "columns"
    assert info.value.details["missing"] == ["age", "income"]
    assert "age" in info.value.message and "income" in info.value.message


@pytest.mark.parametrize(("column", "values", "words"), [
    ("age", ["3", "4"], ["string", "expected int"]),  # "3" -> int is not lossless
    ("age", [2.5, 3.0], ["not whole numbers", "2.5"]),
    ("income", [True, False], ["bool", "expected float"]),  # bool -> int only
    ("income", ["1.5", "2"], ["string", "expected float"]),
    ("city", [1, 2], ["int", "expected string"]),
])
def test_check_names_a_column_of_the_wrong_type(column: str, values: list[Any],
                                                words: list[str]) -> None:
    good = {"age": [1, 2], "income": [1.0, 2.0], "city": ["a", "b"]}
    with pytest.raises(InvalidInputError) as info:
        SIG.check(pd.DataFrame({**good, column: values}))
    assert info.value.details["field"] == column
    assert repr(column) in info.value.message
    for word in words:
        assert word in info.value.message


def test_check_refuses_nulls_in_a_non_nullable_column() -> None:
    with pytest.raises(InvalidInputError) as info:
        SIG.check({"age": [1, None], "income": [None, None], "city": [None, None]})
    assert info.value.details["field"] == "age"
    assert "null" in info.value.message
    # nullable columns take nulls, even a column of nothing but nulls
    out = SIG.check({"age": [1, 2], "income": [None, None], "city": [None, None]})
    assert out["income"].isna().all() and out["city"].isna().all()


def test_check_lists_every_bad_column() -> None:
    with pytest.raises(InvalidInputError) as info:
        SIG.check({"age": [None], "income": ["x"], "city": ["ok"]})
    problems = info.value.details["problems"]
    assert [p["column"] for p in problems] == ["age", "income"]


def test_check_refuses_what_is_not_a_table() -> None:
    with pytest.raises(InvalidInputError) as info:
        SIG.check("age=3")
    assert info.value.details["field"] == "frame"


# --- compatibility ---------------------------------------------------------------------------


OLD = Signature(spec(("age", "int", True), ("city", "string", False), ("plan", "string", False)),
                spec(("prediction", "int", False)))


def test_same_or_looser_signature_is_compatible() -> None:
    assert OLD.compatible_with(OLD) == []
    looser = Signature(
        spec(("age", "float", True), ("city", "category", True)),  # widened, dropped plan
        spec(("prediction", "int", False), ("score", "float", True)))  # added an output
    assert looser.compatible_with(OLD) == []


def test_breaking_changes_are_listed() -> None:
    newer = Signature(
        spec(("age", "int", False), ("city", "int", False), ("plan", "string", False),
             ("tenure", "float", True)),
        spec(("prediction", "float", True)))
    problems = newer.compatible_with(OLD)
    assert problems == [
        "input 'age' no longer accepts nulls",
        "input 'city' changed type from string to int",
        "input 'tenure' (float) is new and required",
        "output 'prediction' changed type from int to float",
        "output 'prediction' may now be null",
    ]
    narrowed = Signature(spec(("age", "int", True), ("city", "string", False),
                              ("plan", "string", False)), ())
    assert narrowed.compatible_with(OLD) == ["output 'prediction' was removed"]
    float_to_int = Signature(spec(("age", "int", True),), ())
    older_float = Signature(spec(("age", "float", True),), ())
    assert float_to_int.compatible_with(older_float) == [
        "input 'age' changed type from float to int"]


DOMAIN = Signature((ColumnSpec("n", "int", False), ColumnSpec("x", "float", True)))


@pytest.mark.parametrize(("rows", "column", "expected"), [
    ([{"n": 2**64 - 1, "x": 1.0}], "n", "outside int64"),  # uint64: never wrapped to -1
    ([{"n": 10**30, "x": 1.0}], "n", "outside int64"),
    ([{"n": 1.5e19, "x": 1.0}], "n", "outside int64"),
    ([{"n": 1, "x": float("inf")}], "x", "infinite"),
    ([{"n": 1, "x": 2**60 + 1}], "x", "cannot hold exactly"),
])
def test_values_outside_a_columns_domain_are_refused(rows: list[dict[str, object]],
                                                     column: str, expected: str) -> None:
    with pytest.raises(InvalidInputError, match=expected) as raised:
        DOMAIN.check(rows)
    assert raised.value.details["field"] == column


def test_lossless_coercions_are_accepted() -> None:
    import pandas as pd

    frame = DOMAIN.check(pd.DataFrame({"n": [True, False], "x": [3, 2**60]}))
    assert frame["n"].dtype == "int64" and frame["n"].tolist() == [1, 0]
    assert frame["x"].dtype == "float64" and frame["x"].tolist() == [3.0, 2.0**60]
    nullable = DOMAIN.check(pd.DataFrame({"n": pd.array([True, False], dtype="boolean"),
                                          "x": [None, 1.0]}))
    assert nullable["n"].tolist() == [1, 0]
    assert DOMAIN.check([{"n": 2**63 - 1, "x": None}])["n"].tolist() == [2**63 - 1]
