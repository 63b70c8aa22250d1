"""Idempotency keys and write intents, on SQLite and PostgreSQL: a retry under a key is a
no-op returning the first result, the key with other content is refused, and what a dead
writer left half-done is completed or rolled back on the next open."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

import modelyard
from modelyard import Entity, Feature, FeatureGroup, IdempotencyConflictError, Source, Yard
from modelyard.backends.metadata.writes import WriteIntent

customer = Entity("customer", key="customer_id")
events = Source.frame("events", timestamp="ts")
stats = FeatureGroup("stats", entity=customer, source=events,
                     features=[Feature("amount", "amount")])


def rows(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"customer_id": np.arange(n, dtype=np.int64),
                         "ts": pd.Timestamp("2025-01-01", tz="UTC"),
                         "amount": rng.uniform(0, 100, n)})


def model(seed: int = 0) -> LinearRegression:
    frame = rows(30, seed)
    return LinearRegression().fit(frame[["amount"]], frame["amount"] * 2 + seed)


@pytest.fixture
def fyard(yard: Yard) -> Iterator[Yard]:
    yard.apply([customer, events, stats])
    yield yard


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _reopen(yard: Yard) -> Yard:
    return modelyard.connect(yard.settings.uri, capture_packages=False, capture_git=False)


def test_ingest_retry_returns_the_first_commit(fyard: Yard) -> None:
    first = fyard.ingest("events", rows(20), idempotency_key="batch-1")
    again = fyard.ingest("events", rows(20), idempotency_key="batch-1")
    assert again == first
    assert fyard.features.tables.read("events").num_rows == 20
    with pytest.raises(IdempotencyConflictError, match="batch-1") as caught:
        fyard.ingest("events", rows(20, seed=1), idempotency_key="batch-1")
    assert caught.value.http_status == 409
    assert fyard.features.tables.read("events").num_rows == 20
    assert fyard.writes.list_intents() == []
    fyard.ingest("events", rows(20))  # no key: a second commit
    assert fyard.features.tables.read("events").num_rows == 40


def test_register_log_artifact_and_promote_under_keys(fyard: Yard, tmp_path: Path) -> None:
    v1 = fyard.models.register(model(0), "m", idempotency_key="reg-1")
    assert fyard.models.register(model(0), "m", idempotency_key="reg-1") == v1
    with pytest.raises(IdempotencyConflictError):
        fyard.models.register(model(1), "m", idempotency_key="reg-1")
    with fyard.start_run("e") as run:
        v2 = run.log_model(model(1), "m", idempotency_key="reg-2")
        assert run.log_model(model(1), "m", idempotency_key="reg-2") == v2
    assert [v.version for v in fyard.models.versions("m")] == [1, 2]

    file = tmp_path / "notes.txt"
    file.write_text("hello")
    with fyard.start_run("e") as run:
        entries = run.log_artifact(file, idempotency_key="art-1")
        assert run.log_artifact(file, idempotency_key="art-1") == entries
        file.write_text("changed")
        with pytest.raises(IdempotencyConflictError):
            run.log_artifact(file, idempotency_key="art-1")

    done = fyard.models.promote("m", 1, "production", idempotency_key="promo-1")
    again = fyard.models.promote("m", 1, "production", idempotency_key="promo-1")
    assert (replace(again.event, id=0), again.report_id, again.previous) == (
        done.event, done.report_id, None)
    with pytest.raises(IdempotencyConflictError):
        fyard.models.promote("m", 2, "production", idempotency_key="promo-1")
    assert len(fyard.models.history("m", "production")) == 1
    with pytest.raises(IdempotencyConflictError):  # a key names one write of one kind
        fyard.ingest("events", rows(5), idempotency_key="promo-1")
    assert fyard.writes.list_intents() == []


def test_a_commit_without_its_profile_is_completed_on_open(fyard: Yard) -> None:
    """A writer killed between the Delta commit and the profile: the next open stores the
    profile with the key, so a retry returns that commit and adds no rows."""
    from modelyard.features import recovery
    from modelyard.features.profiles import profile

    features = fyard.features
    data = rows(10)
    import pyarrow as pa

    table = pa.Table.from_pandas(data, preserve_index=False)
    digest = recovery.table_digest(table)
    write = modelyard.idempotency.guard(fyard.writes, "ingest", "k-crash", source="events",
                                        rows=digest)
    intent = fyard.writes.begin("ingest", "events", {
        "commit_id": "c" * 32, "profile": profile(table).to_dict(),
        "fingerprint": write.fingerprint,
        "table_paths": recovery.table_paths(features, "events")}, "k-crash")
    features.tables.append("events", table, commit_id="c" * 32)
    _set_owner(fyard, intent, _dead_pid())

    with _reopen(fyard) as other:
        assert [r.action for r in other.repairs] == ["completed"]
        assert other.features.commit_profile("events")["rows"] == 10
        again = other.ingest("events", data, idempotency_key="k-crash")
        assert again.commit_id == "c" * 32
        assert other.features.tables.read("events").num_rows == 10
        assert other.writes.list_intents() == []
        assert other.writes.repairs()[0].action == "completed"


def test_a_missing_profile_is_computed_from_the_committed_rows(fyard: Yard) -> None:
    import pyarrow as pa

    commit = fyard.features.tables.append(
        "events", pa.Table.from_pandas(rows(7), preserve_index=False))
    assert fyard.features.commit_profile("events", commit.commit_id)["rows"] == 7
    assert fyard.features.commit_report("events").profile.rows == 7


def test_dead_writers_intents_are_rolled_back_and_listed(fyard: Yard) -> None:
    blob, _ = fyard.tracking.artifacts.put_bytes(b"orphan")
    intent = fyard.writes.begin("register", "m", {"blobs": [blob]})
    live = fyard.writes.begin("log_artifact", "run", {"blobs": []})
    listed = {i.intent_id: i for i in fyard.writes.list_intents()}
    assert set(listed) == {intent.intent_id, live.intent_id}
    assert listed[intent.intent_id].blobs == (blob,)
    assert listed[live.intent_id].owner_alive()
    _set_owner(fyard, intent, _dead_pid())
    with _reopen(fyard) as other:
        assert [(r.kind, r.action) for r in other.repairs] == [("register", "rolled back")]
        assert blob[:12] in other.repairs[0].detail
        # the live writer (this process) is left alone
        assert [i.intent_id for i in other.writes.list_intents()] == [live.intent_id]


def test_a_key_held_by_a_live_writer_is_refused(fyard: Yard) -> None:
    fyard.writes.begin("ingest", "events", {"commit_id": "x" * 32}, "busy")
    with pytest.raises(IdempotencyConflictError, match="in flight"):
        fyard.ingest("events", rows(3), idempotency_key="busy")


def _set_owner(yard: Yard, intent: WriteIntent, pid: int) -> None:


    from modelyard.backends.metadata.sql import tables as t

    with yard._engine.begin() as conn:
        conn.execute(t.write_intents.update()
                     .where(t.write_intents.c.intent_id == intent.intent_id)
                     .values(owner_pid=pid))



def test_doctor_shows_half_done_writes_and_repairs_them(fyard: Yard) -> None:
    from typer.testing import CliRunner

    from modelyard.cli import render
    from modelyard.cli.app import app
    from modelyard.diagnostics import diagnose

    intent = fyard.writes.begin("log_artifact", "r1", {"blobs": ["ab" * 32]})
    _set_owner(fyard, intent, _dead_pid())
    seen = diagnose(fyard.settings.uri)
    assert [i.intent_id for i in seen.intents] == [intent.intent_id] and not seen.repairs
    render.console._width = 200  # type: ignore[attr-defined]
    shown = CliRunner().invoke(app, ["doctor", "--uri", fyard.settings.uri])
    assert shown.exit_code == 0, shown.output
    assert "half-done" in shown.output and "log_artifact r1" in shown.output
    repaired = CliRunner().invoke(app, ["doctor", "--repair", "--uri", fyard.settings.uri])
    assert repaired.exit_code == 0, repaired.output
    assert "rolled back" in repaired.output and "half-done" not in repaired.output
    assert fyard.writes.list_intents() == []


def test_an_owner_is_alive_until_its_process_is_gone() -> None:
    import os
    import socket

    from modelyard.backends.metadata.writes import FOREIGN_OWNER_STALE_MS, process_start

    me = WriteIntent("i", "ingest", "events", None, 1_000, os.getpid(), socket.gethostname(),
                     {}, process_start(os.getpid()))
    assert me.owner_alive()
    assert not replace(me, owner_pid=_dead_pid()).owner_alive()
    # a pid reused by another process (a restarted container) is not the owner
    assert not replace(me, owner_start="1").owner_alive()
    elsewhere = replace(me, owner_host="other-host")  # no pid to look at: a day's grace
    assert elsewhere.owner_alive(now_ms=1_000 + FOREIGN_OWNER_STALE_MS - 1)
    assert not elsewhere.owner_alive(now_ms=1_000 + FOREIGN_OWNER_STALE_MS)


def test_a_key_must_be_printable_text(fyard: Yard) -> None:
    from modelyard import InvalidInputError

    for bad in ("", "x" * 256, "tab\there", 7):
        with pytest.raises(InvalidInputError, match="idempotency_key"):
            fyard.ingest("events", rows(2), idempotency_key=bad)  # type: ignore[arg-type]
    assert not fyard.features.tables.exists("events")
