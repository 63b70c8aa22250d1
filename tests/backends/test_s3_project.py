"""A project whose artifacts and offline tables live in S3 (SeaweedFS), from the public API:
ingest, a point-in-time training set, a logged model, the model loaded back, a forgotten
customer; credentials in the user settings file, none in the metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import modelyard
from docs import data

pytestmark = pytest.mark.s3


def _configure(project: Path, bucket: str, server: Any, monkeypatch: pytest.MonkeyPatch
               ) -> None:
    """The stores in modelyard.toml; the endpoint and credentials in the user file only."""
    text = (project / "modelyard.toml").read_text().replace(
        "[store]\n", f'[store]\nartifact_uri = "s3://{bucket}/artifacts"\n'
                     f'offline_uri = "s3://{bucket}/offline"\n', 1)
    (project / "modelyard.toml").write_text(text)
    user = project.parent / "xdg-config" / "modelyard" / "config.toml"
    user.parent.mkdir(parents=True, exist_ok=True)
    user.write_text(f'[s3]\nendpoint = "{server.endpoint}"\nregion = "{server.region}"\n'
                    f'access_key_id = "{server.access_key}"\n'
                    f'secret_access_key = "{server.secret_key}"\n')
    for name in server.env():  # nothing from the environment: the file is what reaches S3
        monkeypatch.delenv(name)


def test_ingest_train_log_and_load_a_model_with_s3_storage(
        project: Path, s3_bucket: str, s3_server: Any, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    import obstore
    from _s3 import buckets

    monkeypatch.setenv("XDG_CONFIG_HOME", str(project.parent / "xdg-config"))
    _configure(project, s3_bucket, s3_server, monkeypatch)
    data.claim_stats(project)  # applies claim_stats and ingests its claims

    with modelyard.connect(capture_packages=False, capture_git=False) as yard:
        assert yard.settings.offline_uri == f"s3://{s3_bucket}/offline"
        assert s3_server.secret_key not in repr(yard.settings)
        spine = data.labels().drop(columns=["claim_value"])
        known = yard.training_set(spine, ["claim_stats:*"]).to_pandas()
        spine["claim_value"] = data.value_of(known, seed=1)
        training = yard.training_set(spine, ["claim_stats:*"], label="claim_value")
        model = data.fit(training)
        with yard.start_run("claims") as run:
            run.log_metrics({"rows": float(len(spine))})
            version = run.log_model(model, "claims-model", training_set=training)
        loaded = yard.models.load("claims-model", version.version)
        frame = training.to_pandas()[data.STATS]
        assert np.allclose(loaded.predict(frame), model.predict(frame))

        # forgetting a customer reaches every version of the table in the bucket
        commits = yard.features.commits("claims")
        assert [c.operation for c in commits] == ["ingest"]
        yard.features.forget("customer", pd.DataFrame({"customer_id": [42]}))
        again = yard.training_set(spine, ["claim_stats:amount"]).to_pandas()
        by_customer = again.set_index("customer_id")["amount"]
        assert pd.isna(by_customer.loc[42]) and by_customer.drop(42).notna().any()
        assert [c.operation for c in yard.features.commits("claims")] == ["ingest", "forget"]

        # garbage collection on S3: an unreferenced blob goes, what records refer to stays
        orphan, _ = yard.tracking.artifacts.put_bytes(b"referenced by nothing")
        report = yard.gc(older_than=0)
        assert ("blob", orphan) in {(i.kind, i.name) for i in report.freed}, report
        assert not yard.tracking.artifacts.exists(orphan)
        assert np.allclose(yard.models.load("claims-model", version.version).predict(frame),
                           model.predict(frame))
        assert yard.training_set(spine, ["claim_stats:amount"]).to_pandas().equals(again)

    client = buckets.client(s3_server, s3_bucket)
    keys = [m["path"] for chunk in obstore.list(client) for m in chunk]
    assert any(k.startswith("artifacts/objects/") for k in keys)
    assert any(k.startswith("offline/claims/_delta_log/") for k in keys)
    # the project folder holds no artifact and no table: they are all in the bucket
    local = project / ".modelyard"
    assert not (local / "artifacts").exists() and not (local / "offline").exists()
    # no secret anywhere in the metadata database
    for db in local.glob("modelyard.db*"):
        assert s3_server.secret_key.encode() not in db.read_bytes(), db


def test_gc_keeps_the_files_of_an_ingestion_in_flight_on_s3(
        project: Path, s3_bucket: str, s3_server: Any) -> None:
    """No file lock reaches S3: the write intent in the metadata store names the table, and
    garbage collection leaves its unlisted files alone until the intent is gone."""
    import obstore
    import pyarrow as pa
    import pyarrow.parquet as pq
    from _s3 import buckets

    from modelyard.features import recovery

    uri = f"s3://{s3_bucket}/offline"
    with modelyard.connect(offline_uri=uri, capture_packages=False,
                           capture_git=False) as yard:
        tables = yard.features.tables
        tables.append("events", pa.table({"id": [1, 2]}))
        paths = recovery.table_paths(yard.features, "events")
        assert paths == [f"{uri}/events"]
        sink = pa.BufferOutputStream()
        pq.write_table(pa.table({"id": [3]}), sink)
        client = buckets.client(s3_server, s3_bucket)
        leftover = "offline/events/part-00000-in-flight-c000.snappy.parquet"
        obstore.put(client, leftover, sink.getvalue().to_pybytes())
        intent = yard.writes.begin("ingest", "events", {"commit_id": "c" * 32,
                                                        "table_paths": paths})
        kept = yard.gc(older_than=0)
        assert not [i for i in kept.freed if i.kind == "table file"], kept
        obstore.head(client, leftover)  # still there
        yard.writes.discard(intent.intent_id)
        freed = yard.gc(older_than=0)
        assert [i.name for i in freed.freed if i.kind == "table file"] == [
            "events/part-00000-in-flight-c000.snappy.parquet"]
        assert tables.read("events").num_rows == 2
