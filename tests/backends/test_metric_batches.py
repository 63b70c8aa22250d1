"""Keyed metric batches on the SQL store (what the team server writes with): a key stored
once makes the same batch a no-op, and expired keys are pruned."""

from __future__ import annotations

import os
import time
import uuid

import pytest
import sqlalchemy as sa

from modelyard import Yard
from modelyard.backends.metadata.base import MetricPoint, RunInfo
from modelyard.backends.metadata.sql import tables as t
from modelyard.backends.metadata.sql import tracking_store


def _run(yard: Yard) -> str:
    store = yard.tracking.store
    run_id = uuid.uuid4().hex
    exp = store.create_experiment("e").experiment_id
    store.create_run(RunInfo(run_id, exp, "r", "running", 1, None, None, "u", "h",
                             os.getpid(), 1), {})
    return run_id


def _keys(yard: Yard) -> int:
    with yard.stores.engine.connect() as conn:  # type: ignore[attr-defined]
        return int(conn.execute(sa.select(sa.func.count()).select_from(
            t.idempotency_keys)).scalar_one())


def test_a_batch_sent_twice_under_its_key_is_logged_once(yard: Yard) -> None:
    run_id = _run(yard)
    batch = [MetricPoint(run_id, "loss", float(i), i, 1_000 + i) for i in range(5)]
    yard.tracking.store.log_metrics(batch, heartbeat=[run_id], batch_key="k1")
    yard.tracking.store.log_metrics(batch, heartbeat=[run_id], batch_key="k1")
    yard.tracking.store.log_metrics(batch[:1], batch_key=None)  # unkeyed: always appended
    steps = [p.step for p in yard.tracking.store.metric_history(run_id, "loss")]
    assert steps == [0, 0, 1, 2, 3, 4]
    assert yard.tracking.store.get_run(run_id).info.heartbeat > 1  # the retry still beats
    assert _keys(yard) == 1


def test_embedded_batches_are_not_keyed(yard: Yard) -> None:
    assert not yard.tracking.store.keys_batches
    with yard.start_run("e") as run:
        for step in range(3):
            run.log_metric("loss", 1.0, step=step)
    assert _keys(yard) == 0


def test_expired_batch_keys_are_pruned(yard: Yard, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracking_store, "PRUNE_EVERY", 1)
    monkeypatch.setattr(tracking_store, "BATCH_KEY_TTL_MS", 0)
    run_id = _run(yard)
    point = MetricPoint(run_id, "loss", 1.0, 0, 1)
    yard.tracking.store.log_metrics([point], batch_key="old")
    time.sleep(0.01)
    yard.tracking.store.log_metrics([point], batch_key="new")  # prunes "old"
    with yard.stores.engine.connect() as conn:  # type: ignore[attr-defined]
        keys = set(conn.execute(sa.select(t.idempotency_keys.c.key)).scalars())
    assert keys == {"new"}
