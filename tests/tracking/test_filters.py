"""The run search language, parsed without a store."""

from __future__ import annotations

import pytest

from modelyard import InvalidFilterError
from modelyard.backends.metadata.base import Comparison, OrderBy
from modelyard.tracking.filters import parse_filter, parse_order_by


def one(text: str) -> Comparison:
    [clause] = parse_filter(text)
    return clause


@pytest.mark.parametrize("text", [None, "", "   "])
def test_empty_filter_is_no_condition(text: str | None) -> None:
    assert parse_filter(text) == []


@pytest.mark.parametrize(("op", "expected"), [
    ("=", "="), ("==", "="), ("!=", "!="), ("<>", "!="),
    ("<", "<"), ("<=", "<="), (">", ">"), (">=", ">="),
])
def test_numeric_operators(op: str, expected: str) -> None:
    assert one(f"metrics.r2 {op} 0.5") == Comparison("metric", "r2", expected, 0.5)


@pytest.mark.parametrize(("text", "op", "value"), [
    ("params.opt = 'adam'", "=", "adam"),
    ("params.opt != 'adam'", "!=", "adam"),
    ("params.opt LIKE 'ad%'", "LIKE", "ad%"),
    ("params.opt like 'ad%'", "LIKE", "ad%"),
    ("params.opt ILIKE 'AD%'", "ILIKE", "AD%"),
    ("params.opt IN ('adam', 'sgd')", "IN", ("adam", "sgd")),
    ("params.opt in ('adam')", "IN", ("adam",)),
    ("params.opt NOT IN ('adam', \"sgd\")", "NOT IN", ("adam", "sgd")),
    ("params.opt not  in ('adam')", "NOT IN", ("adam",)),
])
def test_string_operators(text: str, op: str, value: str | tuple[str, ...]) -> None:
    assert one(text) == Comparison("param", "opt", op, value)


@pytest.mark.parametrize(("text", "value"), [
    ("metrics.m > 1", 1.0), ("metrics.m > -2.5", -2.5), ("metrics.m > +3", 3.0),
    ("metrics.m > .5", 0.5), ("metrics.m > 1.", 1.0), ("metrics.m > 1e3", 1000.0),
    ("metrics.m > -1.5E-2", -0.015), ("metrics.m>0.25", 0.25),
])
def test_numbers(text: str, value: float) -> None:
    assert one(text).value == value


def test_unquoted_numbers_for_params_are_taken_as_written() -> None:
    assert one("params.depth = 5").value == "5"
    assert one("params.lr = 0.10").value == "0.10"
    assert one("params.depth IN (3, 5, '7')").value == ("3", "5", "7")


def test_string_escapes() -> None:
    assert one(r"params.a = 'it\'s'").value == "it's"
    assert one(r'tags.a = "say \"hi\""').value == 'say "hi"'
    assert one("tags.a = 'and or ( ) = '").value == "and or ( ) = "


@pytest.mark.parametrize(("text", "key"), [
    ('metrics."val loss" < 1', "val loss"),
    ("metrics.`val loss` < 1", "val loss"),
    ("metrics.'val loss' < 1", "val loss"),
    ("metrics.val.loss < 1", "val.loss"),
    ("metrics.layer.0.weight < 1", "layer.0.weight"),
    ("metrics.a.b.c < 1", "a.b.c"),
    ("metrics.1.5 < 1", "1.5"),
    ("metrics.0_loss < 1", "0_loss"),
    ("metrics.val-loss < 1", "val-loss"),
    ("metrics.train/loss < 1", "train/loss"),
    ("metrics.eval:auc < 1", "eval:auc"),
])
def test_keys(text: str, key: str) -> None:
    assert one(text).key == key


@pytest.mark.parametrize(("prefix", "entity"), [
    ("metrics", "metric"), ("metric", "metric"), ("m", "metric"), ("METRICS", "metric"),
    ("params", "param"), ("param", "param"), ("p", "param"),
    ("tags", "tag"), ("tag", "tag"), ("t", "tag"),
])
def test_entity_aliases(prefix: str, entity: str) -> None:
    value = "1" if entity == "metric" else "'1'"
    assert one(f"{prefix}.x = {value}").entity == entity


@pytest.mark.parametrize(("text", "key"), [
    ("status = 'finished'", "status"),
    ("attributes.status = 'finished'", "status"),
    ("attribute.status = 'finished'", "status"),
    ("attr.status = 'finished'", "status"),
    ("a.status = 'finished'", "status"),
    ("name = 'x'", "name"),
    ("run_name = 'x'", "name"),
    ("attributes.run_name = 'x'", "name"),
    ("id = 'x'", "run_id"),
    ("run_id = 'x'", "run_id"),
    ("parent = 'x'", "parent_run_id"),
    ("parent_run_id = 'x'", "parent_run_id"),
    ("user = 'x'", "user"),
    ("host = 'x'", "host"),
    ("STATUS = 'finished'", "status"),
])
def test_attribute_aliases(text: str, key: str) -> None:
    clause = one(text)
    assert (clause.entity, clause.key) == ("attribute", key)


def test_time_attributes_are_numbers_and_status_is_normalised() -> None:
    assert one("start_time >= 1700000000000") == Comparison(
        "attribute", "start_time", ">=", 1.7e12)
    assert one("end_time < 5").value == 5.0
    assert one("status = 'FINISHED'").value == "finished"
    assert one("status IN ('failed', 'killed')").value == ("failed", "killed")
    assert one("status LIKE 'fin%'").value == "fin%"


def test_and_joins_clauses_case_insensitively() -> None:
    clauses = parse_filter("metrics.r2 > 0.9 and params.depth = '5' AND tags.t != 'x' "
                           "And status = 'finished'")
    assert [c.entity for c in clauses] == ["metric", "param", "tag", "attribute"]


BAD_FILTERS: list[tuple[str, int, str]] = [
    # (filter, position of the error, words in the message)
    ("metrics.r2 >", 12, "ended"),
    ("metrics.r2 0.9", 11, "operator"),
    ("metrics.r2 > 0.9 and", 20, "ended"),
    ("metrics.r2 > 0.9 params.a = '1'", 17, "expected AND"),
    ("metrics.r2 > 0.9 or params.a = '1'", 17, "OR is not supported"),
    ("metrics. > 1", 9, "key after"),
    ("metrics.a.>1", 10, "rest of the key"),
    ("metrics.a. b > 1", 11, "rest of the key"),
    ("foo.bar = 1", 0, "unknown prefix"),
    ("bogus = 1", 0, "unknown run attribute"),
    ("attributes.bogus = 'x'", 11, "unknown run attribute"),
    ("metrics.r2 > 'high'", 13, "is a number"),
    ("start_time > 'yesterday'", 13, "is a number"),
    ("metrics.r2 LIKE '0.%'", 16, "compares strings"),
    ("metrics.r2 IN (1, 2)", 14, "IN is not supported"),
    ("metrics.r2 NOT IN (1)", 18, "NOT IN is not supported"),
    ("params.a > '1'", 0, "not supported for the string"),
    ("tags.a <= 'x'", 0, "not supported for the string"),
    ("params.a = unquoted", 11, "quoted string"),
    ("params.a = 'unterminated", 11, "unexpected character"),
    ("metrics.`open > 1", 8, "unexpected character"),
    ("params.a IN 'x'", 12, "'('"),
    ("params.a IN ('x' 'y')", 17, "',' or ')'"),
    ("params.a IN ('x',", 17, "ended"),
    ("params.a IN ()", 13, "number or a quoted string"),
    ("params.a NOT 'x'", 9, "operator"),
    ("params.a = 'x' ; drop table runs", 15, "unexpected character"),
    ("(metrics.a > 1)", 0, "name"),
    ("metrics.a > 5x", 12, "number or a quoted string"),
    ("metrics.a > 1.5.3", 15, "expected AND"),
    ("status = 'sleeping'", 9, "unknown status"),
    ("= 1", 0, "name"),
]


@pytest.mark.parametrize(("text", "position", "words"), BAD_FILTERS,
                         ids=[t for t, _, _ in BAD_FILTERS])
def test_malformed_filters_say_where(text: str, position: int, words: str) -> None:
    with pytest.raises(InvalidFilterError) as info:
        parse_filter(text)
    err = info.value
    assert err.details["position"] == position
    assert err.details["filter"] == text
    assert words in err.message
    assert f"at position {position}" in err.message
    # the message repeats the filter with a caret under the position
    lines = err.message.splitlines()
    assert lines[1].strip() == text.strip()
    assert lines[2].index("^") - 2 == position
    assert err.http_status == 422


def test_order_by() -> None:
    assert parse_order_by(None) == []
    assert parse_order_by("metrics.r2 desc") == [OrderBy("metric", "r2", True)]
    assert parse_order_by(["metrics.`val loss` ASC", "params.depth", "start_time DESC",
                           "run_name"]) == [
        OrderBy("metric", "val loss", False),
        OrderBy("param", "depth", False),
        OrderBy("attribute", "start_time", True),
        OrderBy("attribute", "name", False),
    ]


@pytest.mark.parametrize(("text", "position"), [
    ("metrics.r2 sideways", 11), ("metrics.r2 desc desc", 16), ("bogus", 0), ("", 0),
    ("metrics.", 8),
])
def test_malformed_order_by(text: str, position: int) -> None:
    with pytest.raises(InvalidFilterError) as info:
        parse_order_by([text])
    assert info.value.details["position"] == position
