"""Request rows checked against a signature: every problem named, values converted once."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pytest

from modelyard.errors import InvalidInputError
from modelyard.registry.signature import ColumnSpec, Signature
from modelyard.serving.inputs import MAX_PROBLEMS, MAX_ROWS, InputDecoder, rows_of

SIGNATURE = Signature((
    ColumnSpec("age", "int", False),
    ColumnSpec("value", "float", True),
    ColumnSpec("region", "category", False),
    ColumnSpec("insured", "bool", False),
    ColumnSpec("since", "timestamp", True),
    ColumnSpec("born", "date", True),
))
ROW = {"age": 40, "value": 1.5, "region": "north", "insured": True,
       "since": "2025-01-02T03:04:05Z", "born": "1985-06-07"}


def test_a_good_row_is_converted_to_the_signature_types() -> None:
    columns = InputDecoder(SIGNATURE, extra="ignore").columns(
        [ROW, {**ROW, "value": None, "age": 7.0, "extra": "ignored"}])
    assert columns["age"] == [40, 7] and isinstance(columns["age"][1], int)
    assert columns["value"] == [1.5, None]
    assert columns["since"][0] == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert columns["born"][0] == date(1985, 6, 7)
    assert "extra" not in columns


def test_every_problem_is_named_by_row_and_column() -> None:
    rows = [{**ROW, "age": "40"}, {**ROW, "insured": 1}, {k: v for k, v in ROW.items()
                                                         if k not in ("age", "region")},
            {**ROW, "region": None}, {**ROW, "age": 2.5}, {**ROW, "since": "yesterday"},
            "not an object"]
    with pytest.raises(InvalidInputError) as raised:
        InputDecoder(SIGNATURE).columns(rows)
    problems = {p["field"]: p["problem"] for p in raised.value.details["problems"]}
    assert problems["instances[0].age"] == "expected a whole number, got a string '40'"
    assert problems["instances[1].insured"].startswith("expected true or false")
    assert problems["instances[2]"] == "missing inputs age, region"
    assert problems["instances[3].region"] == "may not be null"
    assert problems["instances[4].age"] == "expected a whole number, got 2.5"
    assert problems["instances[5].since"].startswith("expected an ISO 8601 date and time")
    assert problems["instances[6]"].startswith("expected an object")
    assert raised.value.details["field"] == "instances[0].age"
    assert "instances[3].region: may not be null" in raised.value.message


def test_a_key_that_is_no_input_is_refused_by_name() -> None:
    with pytest.raises(InvalidInputError) as raised:
        InputDecoder(SIGNATURE).columns([ROW, {**ROW, "colour": "red", "\x07": 1}])
    problems = {p["field"]: p["problem"] for p in raised.value.details["problems"]}
    assert problems["instances[1].colour"].startswith("unknown input; the model takes age")
    assert "instances[1].'\\x07'" in problems  # control characters shown escaped


NUMBERS = Signature((ColumnSpec("n", "int", False), ColumnSpec("x", "float", True)))


@pytest.mark.parametrize(("value", "field", "expected"), [
    (2**63, "n", "from -9223372036854775808 to 9223372036854775807 (int64)"),
    (-(2**63) - 1, "n", "(int64)"),
    (2**64 - 1, "n", "(int64)"),
    (10**400, "n", "(int64)"),
    (float("inf"), "n", "(int64)"),
    (1e300, "n", "(int64)"),
    (10**400, "x", "expected a finite number from -1.7976931348623157e+308 to "
                   "1.7976931348623157e+308 (float64)"),
    (float("inf"), "x", "(float64)"),
    (float("-inf"), "x", "(float64)"),
    (2**53 + 1, "x", "float64 holds exactly"),
])
def test_numbers_outside_the_input_domain_are_refused_with_the_range(
        value: object, field: str, expected: str) -> None:
    row = {"n": 1, "x": 1.0, field: value}
    with pytest.raises(InvalidInputError) as raised:
        InputDecoder(NUMBERS).columns([{"n": 2, "x": 2.0}, row])
    assert raised.value.details["field"] == f"instances[1].{field}"
    assert expected in raised.value.details["problems"][0]["problem"]


def test_the_edges_of_the_domain_and_lossless_coercions_are_accepted() -> None:
    decoder = InputDecoder(NUMBERS)
    columns = decoder.columns([{"n": 2**63 - 1, "x": 1.7976931348623157e308},
                               {"n": -(2**63), "x": 2**60}, {"n": True, "x": float("nan")},
                               {"n": 3.0, "x": None}])
    assert columns == {"n": [2**63 - 1, -(2**63), 1, 3],
                       "x": [1.7976931348623157e308, float(2**60), None, None]}


def test_nan_is_a_null_refused_where_the_input_is_not_nullable() -> None:
    with pytest.raises(InvalidInputError, match=r"instances\[0\]\.n: may not be null"):
        InputDecoder(NUMBERS).columns([{"n": float("nan"), "x": 1.0}])


def test_a_float32_model_refuses_floats_beyond_float32() -> None:
    decoder = InputDecoder(NUMBERS, float_width="float32")
    assert decoder.columns([{"n": 1, "x": 3.4e38}])["x"] == [3.4e38]
    with pytest.raises(InvalidInputError, match=r"\(float32\), got 3.5e\+38"):
        decoder.columns([{"n": 1, "x": 3.5e38}])


def test_booleans_are_not_numbers_and_numpy_scalars_are() -> None:
    signature = Signature((ColumnSpec("x", "float", False),))
    with pytest.raises(InvalidInputError, match="expected a number, got a boolean"):
        InputDecoder(signature).columns([{"x": True}])
    assert InputDecoder(signature).columns([{"x": np.float32(2.5)}, {"x": np.int64(3)}]) == {
        "x": [2.5, 3.0]}


def test_problems_are_capped_and_split_keeps_the_good_rows() -> None:
    decoder = InputDecoder(SIGNATURE)
    rows = [{**ROW, "age": "bad"} for _ in range(MAX_PROBLEMS * 3)]
    with pytest.raises(InvalidInputError) as raised:
        decoder.columns(rows)
    assert len(raised.value.details["problems"]) == MAX_PROBLEMS
    columns, bad = decoder.split([ROW, {**ROW, "region": None}, ROW], "entities")
    assert list(bad) == [1] and bad[1][0].field == "entities[1].region"
    assert columns["age"] == [40, 40]


def test_numeric_signatures_give_a_float_matrix_with_nan_for_nulls() -> None:
    signature = Signature((ColumnSpec("a", "int", False), ColumnSpec("b", "float", True)))
    decoder = InputDecoder(signature)
    assert decoder.numeric
    matrix = decoder.matrix(decoder.columns([{"a": 1, "b": None}, {"a": 2, "b": 0.5}]))
    assert matrix.dtype == np.float64 and matrix.shape == (2, 2)
    assert np.isnan(matrix[0, 1]) and matrix[1].tolist() == [2.0, 0.5]
    assert not InputDecoder(SIGNATURE).numeric


def test_the_frame_path_gives_the_types_the_signature_check_gives() -> None:
    frame = InputDecoder(SIGNATURE).frame(InputDecoder(SIGNATURE).columns([ROW]))
    assert list(frame.columns) == SIGNATURE.input_names
    assert str(frame["age"].dtype) == "int64" and str(frame["region"].dtype) == "category"


def test_rows_must_be_a_bounded_non_empty_list() -> None:
    with pytest.raises(InvalidInputError, match="'instances' must be a list"):
        rows_of({"instances": {"a": 1}}, "instances")
    with pytest.raises(InvalidInputError, match="is empty"):
        rows_of({"instances": []}, "instances")
    with pytest.raises(InvalidInputError, match="at most"):
        rows_of({"instances": [{}] * (MAX_ROWS + 1)}, "instances")


def test_the_column_fast_path_keeps_the_same_rules() -> None:
    decoder = InputDecoder(NUMBERS)
    assert decoder.columns([{"n": 1, "x": float("nan")}, {"n": 2, "x": 1.0}])["x"] == [None, 1.0]
    big = decoder.columns([{"n": 1, "x": 1e308}, {"n": 2, "x": 1e308}])  # their sum overflows
    assert big["x"] == [1e308, 1e308]
    for bad in ({"n": 1, "x": float("inf")}, {"n": 2**63, "x": 1.0}):
        with pytest.raises(InvalidInputError):
            decoder.columns([{"n": 1, "x": 1.0}, bad])
    with pytest.raises(InvalidInputError, match=r"instances\[1\]\.x: may not be null"):
        InputDecoder(Signature((ColumnSpec("x", "float", False),))).columns(
            [{"x": 1.0}, {"x": float("nan")}])


MIXED = Signature((ColumnSpec("n", "int", False), ColumnSpec("x", "float", True),
                   ColumnSpec("b", "bool", False)))
VALUES = [0, 1, -1, 2**53 + 1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 10**400, 0.5, -2.0,
          1e308, 3.5e38, -3.4e38, float("nan"), float("inf"), True, False, None, "1", [1]]


def _either(decode: Any) -> Any:
    try:
        return ("ok", decode().tolist())
    except InvalidInputError as exc:
        return ("refused", exc.message)


@pytest.mark.parametrize("width", ["float64", "float32"])
def test_the_whole_matrix_path_agrees_with_the_per_value_checks(width: str) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    decoder = InputDecoder(MIXED, float_width=width)
    value = st.sampled_from(VALUES)
    row = st.fixed_dictionaries({"n": value, "x": value, "b": value},
                                optional={"extra": value})

    @settings(max_examples=300, deadline=None, database=None, derandomize=True)
    @given(rows=st.lists(row, min_size=1, max_size=4))
    def agree(rows: list[dict[str, Any]]) -> None:
        whole = _either(lambda: decoder.rows_matrix(rows))
        one_by_one = _either(lambda: decoder.matrix(decoder.columns(rows)))
        assert str(whole) == str(one_by_one)  # (str: NaN compares equal as text)

    agree()


def test_the_whole_matrix_path_takes_exact_types_and_edges() -> None:
    decoder = InputDecoder(MIXED)
    rows = [{"n": 2**63 - 1, "x": 1e308, "b": True}, {"n": -5, "x": -0.5, "b": False}]
    assert decoder._quick_matrix(rows) is None  # at int64's edge: the exact check decides
    assert decoder.rows_matrix(rows)[:, 0].tolist() == [2.0**63, -5.0]
    quick = decoder._quick_matrix([{"n": 3, "x": 0.25, "b": True}, {"n": -5, "x": 2.0,
                                                                   "b": False}])
    assert quick is not None and quick.tolist() == [[3.0, 0.25, 1.0], [-5.0, 2.0, 0.0]]
    assert decoder._quick_matrix([{"n": 3.0, "x": 0.25, "b": True}]) is None  # 3.0: converted
    one = InputDecoder(Signature((ColumnSpec("x", "float", False),)), float_width="float32")
    assert one.rows_matrix([{"x": 1.5}, {"x": -2.0}]).tolist() == [[1.5], [-2.0]]
    with pytest.raises(InvalidInputError, match=r"instances\[1\]\.x: expected a finite"):
        one.rows_matrix([{"x": 1.5}, {"x": 3.5e38}])  # beyond float32
