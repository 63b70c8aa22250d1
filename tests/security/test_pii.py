"""PII policies: features tagged ``pii`` masked for a principal without ``pii:read``, in
training sets and online lookups from the Yard API, the same way in both, and audited."""

from __future__ import annotations

import hashlib
import hmac
import stat
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from modelyard import Entity, Feature, FeatureGroup, Source, Yard
from modelyard.errors import InvalidDefinitionError, PermissionDeniedError
from modelyard.security import Principal
from modelyard.security.pii import (
    REDACTED,
    load_key,
    mask_arrow,
    mask_columns,
    mask_frame,
    policy_of,
)

CANARY = "canary.4f7e@example.org"
KEY = b"k" * 32

customer = Entity("customer", key="customer_id")
people_events = Source.frame("people_events", timestamp="ts")
people = FeatureGroup("people", entity=customer, source=people_events, features=[
    Feature("email", "email", tags=["pii"]),  # the default policy: hash
    Feature("name", "name", tags=["pii:redact", "owner:crm"]),
    Feature("age", "age", tags=["pii:redact"]),  # not text: null
    Feature("phone", "phone", tags=["pii:drop"]),
    Feature("spend", "spend"),
])


def _hash(value: str, key: bytes = KEY) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def test_policies_come_from_the_tags() -> None:
    assert policy_of(["pii"]) == "hash"
    assert policy_of(["team", "pii:drop"]) == "drop"
    assert policy_of(["pii", "pii:redact"]) == "redact"
    assert policy_of(["private"]) is None
    with pytest.raises(InvalidDefinitionError, match="'pii:encrypt'"):
        policy_of(["pii:encrypt"])


def test_masking_arrow_pandas_and_columns_agree() -> None:
    table = pa.table({"email": ["a@x", None, "a@x"], "age": [30, 40, None],
                      "name": ["Ann", "Bo", None], "phone": ["1", "2", "3"], "n": [1, 2, 3]})
    policies = {"email": "hash", "age": "redact", "name": "redact", "phone": "drop",
                "absent": "drop"}
    masked = mask_arrow(table, policies, KEY)  # type: ignore[arg-type]
    assert masked.column_names == ["email", "age", "name", "n"]
    assert masked.column("email").to_pylist() == [_hash("a@x"), None, _hash("a@x")]
    assert masked.column("age").to_pylist() == [None, None, None]
    assert masked.schema.field("age").type == pa.int64()
    assert masked.column("name").to_pylist() == [REDACTED, REDACTED, None]
    assert masked.column("n").to_pylist() == [1, 2, 3]
    frame = table.to_pandas()
    frame.index = [10, 20, 30]  # masked by position, whatever the index
    masked_frame = mask_frame(frame, policies, KEY)  # type: ignore[arg-type]
    assert list(masked_frame.columns) == ["email", "age", "name", "n"]
    assert masked_frame["email"].tolist()[0] == _hash("a@x")
    assert masked_frame["name"].tolist()[:2] == [REDACTED, REDACTED]
    assert masked_frame["age"].isna().all() and frame["age"].notna().sum() == 2  # a copy
    columns = mask_columns({"email": ["a@x"], "age": [30], "phone": ["1"]}, policies, KEY)  # type: ignore[arg-type]
    assert columns == {"email": [_hash("a@x")], "age": [None]}
    assert mask_arrow(pa.table({"n": [5]}), {"n": "hash"}, KEY).column("n").to_pylist() == [
        _hash("5")]  # numbers hash as their text


def test_the_project_key_is_made_once_private(tmp_path: Path) -> None:
    path = tmp_path / "pii.key"
    key = load_key(path)
    assert len(key) == 32 and load_key(path) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    racing = tmp_path / "raced.key"
    with ThreadPoolExecutor(8) as pool:  # many first uses at once agree on one key
        keys = set(pool.map(lambda _: load_key(racing), range(16)))
    assert len(keys) == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["pii.key",
                                                                          "raced.key"]


def _people_yard(yard: Yard) -> None:
    yard.apply([people])
    yard.ingest(people_events, pd.DataFrame({
        "customer_id": [1, 2], "ts": pd.to_datetime(["2025-01-01", "2025-01-02"], utc=True),
        "email": [CANARY, "b@example.org"], "name": ["Ann Canary", "Bob"], "age": [31, 47],
        "phone": ["+44 7700 900001", "+44 7700 900002"], "spend": [10.5, 20.0]}))


def _spine() -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [1, 2, 1],
                         "at": pd.to_datetime(["2025-02-01"] * 3, utc=True)})


def _principal(yard: Yard, name: str, *roles: str) -> Principal:
    local = Principal.local()
    yard.security.create_user(name, by=local)
    for role in roles:
        yard.security.grant(name, role, by=local)
    return yard.security.authenticate(yard.security.create_token(name, by=local).token)


def test_training_sets_and_lookups_are_masked_without_pii_read(
        yard: Yard, project: Path) -> None:
    _people_yard(yard)
    viewer = _principal(yard, "vic", "viewer")
    masked = yard.training_set(_spine(), ["people:*"], timestamp="at", principal=viewer)
    frame = masked.to_pandas()
    assert list(frame.columns) == ["customer_id", "at", "email", "name", "age", "spend"]
    key = (project / ".modelyard" / "pii.key").read_bytes()
    assert frame["email"].tolist() == [_hash(CANARY, key), _hash("b@example.org", key),
                                       _hash(CANARY, key)]
    assert frame["name"].tolist() == [REDACTED] * 3
    assert frame["age"].isna().all() and frame["spend"].tolist() == [10.5, 20.0, 10.5]
    assert CANARY not in frame.to_csv() and "Ann" not in frame.to_csv()

    yard.materialize(at=datetime(2025, 2, 1, tzinfo=UTC))
    online = yard.online_features(["people:email", "people:phone", "people:spend"],
                                  {"customer_id": [1, 2]}, principal=viewer)
    assert online.values == {"email": [_hash(CANARY, key), _hash("b@example.org", key)],
                             "spend": [10.5, 20.0]}  # the same hash as the training set

    entries = yard.security.audit_entries(actor="user:vic", limit=None)
    assert [(e.action, e.outcome) for e in reversed(entries)] == [
        ("training_sets:read", "ok"), ("online:read", "ok")]
    assert entries[1].detail["pii"] == {"age": "redact", "email": "hash", "name": "redact",
                                        "phone": "drop"}
    assert entries[0].detail["pii"] == {"email": "hash", "phone": "drop"}
    with yard._engine.connect() as conn:  # the audit log holds no personal data either
        dump = repr(conn.execute(sa.text("SELECT * FROM audit_log")).all())
    assert CANARY not in dump and _hash(CANARY, key) not in dump


def test_pii_read_shows_values_and_is_audited(yard: Yard) -> None:
    _people_yard(yard)
    reader = _principal(yard, "ria", "viewer", "pii:read")
    clear = yard.training_set(_spine(), ["people:email", "people:phone"], timestamp="at",
                              principal=reader)
    assert clear.to_pandas()["email"].tolist() == [CANARY, "b@example.org", CANARY]
    assert clear.to_pandas()["phone"].tolist()[0] == "+44 7700 900001"
    entry = yard.security.audit_entries(actor="user:ria")[0]
    assert entry.action == "pii:read"
    assert entry.detail["pii"] == {"email": "clear", "phone": "clear"}
    assert yard.training_set(_spine(), ["people:email"], timestamp="at").to_pandas()[
        "email"].tolist()[0] == CANARY  # no principal: the local operator's own files


def test_a_principal_without_a_role_gets_nothing(yard: Yard) -> None:
    _people_yard(yard)
    nobody = _principal(yard, "nob")
    with pytest.raises(PermissionDeniedError, match="training_sets:read"):
        yard.training_set(_spine(), ["people:*"], timestamp="at", principal=nobody)
    with pytest.raises(PermissionDeniedError, match="online:read"):
        yard.online_features(["people:email"], {"customer_id": [1]}, principal=nobody)
    assert [e.outcome for e in yard.security.audit_entries(actor="user:nob")] == [
        "denied", "denied"]
