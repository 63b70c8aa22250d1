"""`modelyard experiments list|create` on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from modelyard import Yard
from modelyard.errors import AlreadyExistsError, InvalidInputError

from .conftest import Invoke, fits, narrow, sqlite_only, words


@sqlite_only
def test_list_with_no_experiments_says_how_to_make_one(
    invoke: Invoke, yard: Yard, store_uri: str
) -> None:
    result = invoke("experiments", "list", "--uri", store_uri)
    assert result.exit_code == 0, result.output
    assert "No experiments yet" in result.output


def test_create_then_list(invoke: Invoke, yard: Yard, store_uri: str) -> None:
    created = invoke("experiments", "create", "claims", "-d", "claim value [regression]",
                     "--uri", store_uri)
    assert created.exit_code == 0, created.output
    assert "Created experiment claims" in created.output
    with yard.start_run("churn", name="r"):
        pass

    listed = invoke("experiments", "list", "--uri", store_uri)
    assert listed.exit_code == 0, listed.output
    rows = [line.split() for line in listed.output.splitlines()]
    names = [(row[1], row[2]) for row in rows if row and row[0].isdigit()]
    assert names == [("claims", "0"), ("churn", "1")]  # name, number of runs
    assert "claim value [regression]" in listed.output  # user text is not Rich markup
    assert [e.name for e in yard.list_experiments()] == ["claims", "churn"]


@sqlite_only
def test_a_long_description_wraps_between_words_at_80_columns(
    invoke: Invoke, yard: Yard, store_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = ("Predicts the settled value of an insurance claim from the customer's earlier "
            "claims over sliding windows and their vehicle")
    assert invoke("experiments", "create", "claims-value-regression", "-d", text,
                  "--uri", store_uri).exit_code == 0
    narrow(monkeypatch)
    listed = invoke("experiments", "list", "--uri", store_uri)
    assert listed.exit_code == 0 and fits(listed.output), listed.output
    assert set(text.split()) | {"claims-value-regression"} <= words(listed.output)


@sqlite_only
def test_create_twice_is_refused(invoke: Invoke, yard: Yard, store_uri: str) -> None:
    assert invoke("experiments", "create", "claims", "--uri", store_uri).exit_code == 0
    again = invoke("experiments", "create", "claims", "--uri", store_uri)
    assert again.exit_code == 1
    assert isinstance(again.exception, AlreadyExistsError)
    assert "already exists" in again.exception.message


@sqlite_only
def test_create_refuses_a_bad_name(invoke: Invoke, yard: Yard, store_uri: str) -> None:
    result = invoke("experiments", "create", "/abs", "--uri", store_uri)
    assert isinstance(result.exception, InvalidInputError)
    assert yard.list_experiments() == []
