"""JSON encoding of answers: always valid JSON, whatever the values."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest

from modelyard.errors import InvalidInputError
from modelyard.server.responses import dumps, parse_json, strict_dumps


def strict_loads(data: bytes) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(data, parse_constant=refuse)


def test_non_finite_numbers_become_null_at_any_depth() -> None:
    payload = {"rows": [{"a": float("nan"), "b": [1.5, float("inf"), {"c": -float("inf")}],
                         "d": (float("nan"),)}], "n": 2}
    assert strict_loads(dumps(payload)) == {"rows": [{"a": None, "b": [1.5, None, {"c": None}],
                                                      "d": [None]}], "n": 2}
    with pytest.raises(ValueError):
        strict_dumps(payload)


def test_values_json_lacks() -> None:
    moment = datetime(2025, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    payload = {"at": moment, "day": date(2025, 1, 2), "t": time(3, 4), "span": timedelta(
        minutes=1, milliseconds=500), "raw": b"\x00\xff", "price": Decimal("1.25"),
        "bad": Decimal("NaN"), "set": frozenset({1}), "text": "ünïcode"}
    assert strict_loads(dumps(payload)) == {
        "at": "2025-01-02T03:04:05.006000+00:00", "day": "2025-01-02", "t": "03:04:00",
        "span": 60.5, "raw": "AP8=", "price": 1.25, "bad": None, "set": [1], "text": "ünïcode"}


@pytest.mark.parametrize("body", [b"", b"  \n", b"{", b"\xff", b"[1,", b"nul",
                                  pytest.param(b"[" * 100_000, id="deep")])
def test_parse_json_refuses_what_is_not_json(body: bytes) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_json(body)
    assert caught.value.details == {"field": "body"}


def test_parse_json() -> None:
    assert parse_json(b'{"a": [1, 2.5, "x", null]}') == {"a": [1, 2.5, "x", None]}
