"""Garbage collection on a populated project: orphans planted by killed writers go, every
referenced blob and listed table file stays and still verifies, and a writer running alongside
loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import modelyard
from modelyard import Yard
from modelyard.backends.metadata.sql import tables as t
from modelyard.backends.metadata.sql.blob_references import COLUMNS, DOCUMENTS
from modelyard.maintenance.gc import parse_age
from tests.registry.support import MODEL, holdout, linear, people, policies, setup_features
from tests.registry.support import training_set as make_training_set

_OLD = time.time() - 3 * 3600

# a process that stores a blob no version will refer to, then dies like a killed log_model
_KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from modelyard.backends.artifacts.local import LocalArtifactStore
store = LocalArtifactStore(Path(sys.argv[1]))
sha, _ = store.put_bytes(os.urandom(int(sys.argv[2])))
print(sha, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def _age_everything(root: Path) -> None:
    """Make every stored file look three hours old, so the grace period protects none."""
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (_OLD, _OLD))


def _killed_blob(yard: Yard, tmp_path: Path, size: int = 4096) -> str:
    script = tmp_path / f"writer-{uuid.uuid4().hex}.py"
    script.write_text(_KILLED_WRITER)
    proc = subprocess.run([sys.executable, str(script), str(yard.tracking.artifacts.root),
                           str(size)], capture_output=True, text=True, env=_env(), timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return proc.stdout.strip()


def _unlisted_file(yard: Yard, table: str) -> Path:
    """A Parquet file in the table's folder that no commit lists (a killed ingestion)."""
    folder = Path(yard.settings.offline_uri[len("file://"):]) / table
    path = folder / f"part-00000-{uuid.uuid4()}-c000.parquet"
    pq.write_table(pa.table({"x": list(range(1000))}), path)
    return path


@pytest.fixture
def populated(project: Path) -> Iterator[Yard]:
    """Runs with artifacts, a model with its ONNX twin, reference profile, background and
    spine, an evaluation with plots, a monitoring reference, two ingestions with profiles."""
    yard = modelyard.connect(capture_packages=False, capture_git=False)
    rows = setup_features(yard)
    ts = make_training_set(yard, rows)
    with yard.start_run("claims") as run:
        run.log_text("hello", "notes.txt")
        run.log_model(linear(ts), MODEL, training_set=ts)
    yard.models.evaluate(f"{MODEL}:1", holdout(rows), label="cost", dataset="holdout")
    yard.monitoring.set_reference(f"{MODEL}:1", holdout(rows)[["age", "vehicle_value"]])
    later = people(30, seed=11)
    later["customer_id"] += 1000
    yard.ingest(policies, later.drop(columns=["gender"]))
    try:
        yield yard
    finally:
        yard.close()


def _referenced(yard: Yard) -> dict[str, str]:
    from modelyard.backends.metadata.sql.blob_references import SqlBlobReferences

    return SqlBlobReferences(yard._engine).referenced_blobs()


def test_every_sha256_column_is_a_reference() -> None:
    covered = {(c.table.name, c.name) for c, _ in COLUMNS + DOCUMENTS}
    for table in t.metadata.sorted_tables:
        for column in table.columns:
            if "sha256" in column.name:
                assert (table.name, column.name) in covered, f"{table.name}.{column.name}"


@pytest.mark.slow
def test_gc_removes_orphans_and_keeps_every_reference(populated: Yard, tmp_path: Path
                                                      ) -> None:
    yard = populated
    store = yard.tracking.artifacts
    refs = _referenced(yard)
    kinds = set(refs.values())
    assert {"run artifact", "model archive", "ONNX twin", "model spec", "evaluation plot",
            "reference profile"} <= kinds
    kept = {b.sha256 for b in store.iter_blobs()}
    assert {sha for sha in refs if store.exists(sha)} == kept  # every stored blob is in use
    orphans = {_killed_blob(yard, tmp_path), _killed_blob(yard, tmp_path, 70_000)}
    stray = _unlisted_file(yard, "policies")
    partial = store.root / "tmp" / "put-999999999-left-by-a-dead-writer"
    partial.write_bytes(b"half")
    before_rows = yard.features.tables.read("policies").num_rows
    first_commit = yard.features.tables.history("policies")[0].commit_id
    as_of_rows = yard.features.tables.read("policies", as_of=first_commit).num_rows
    _age_everything(yard.settings.data_dir)
    log = Path(yard.settings.offline_uri[len("file://"):]) / "policies" / "_delta_log"
    log_files = sorted(p.name for p in log.iterdir())

    dry = yard.gc(dry_run=True)
    assert {i.name for i in dry.freed if i.kind == "blob"} == orphans
    assert all(store.exists(sha) for sha in orphans) and stray.exists() and partial.exists()

    report = yard.gc()
    freed = {i.name for i in report.freed if i.kind == "blob"}
    assert freed == orphans and not any(store.exists(sha) for sha in orphans)
    assert [i.name for i in report.freed if i.kind == "table file"] == [
        f"policies/{stray.name}"]
    assert not stray.exists() and not partial.exists()
    assert report.totals()["blob"][1] == sum(i.size for i in dry.freed if i.kind == "blob")
    assert report.referenced == len(kept)
    assert {b.sha256 for b in store.iter_blobs()} == kept
    for sha in kept:
        store.get_bytes(sha)  # present and verified
    yard.models.load(f"{MODEL}:1")
    assert yard.models.get_version(f"{MODEL}:1").onnx_sha256 is not None
    assert yard.features.tables.read("policies").num_rows == before_rows
    assert yard.features.tables.read("policies", as_of=first_commit).num_rows == as_of_rows
    assert yard.gc().count == 0
    assert sorted(p.name for p in log.iterdir()) == log_files  # gc commits nothing


_INGEST_LOOP = """
import sys
import numpy as np, pyarrow as pa
from pathlib import Path
from modelyard.backends.offline.delta import DeltaTableStore

store = DeltaTableStore(Path(sys.argv[1]))
store.append("t", pa.table({"k": np.arange(10), "v": np.zeros(10), "w": np.zeros(10)}))
print("ready", flush=True)
rng = np.random.default_rng(0)
n = 1_000_000
big = pa.table({"k": np.arange(n), "v": rng.random(n), "w": rng.random(n)})
while True:
    store.append("t", big)
"""


def _written(folder: Path, listed: set[str]) -> bool:
    """Whether a new file in ``folder`` holds data already."""
    for name in set(os.listdir(folder)) - listed:
        try:
            if (folder / name).stat().st_size > 0:
                return True
        except FileNotFoundError:
            pass
    return False


@pytest.mark.slow
def test_a_killed_ingestion_leaves_files_gc_removes(tmp_path: Path) -> None:
    """SIGKILL while the Delta writer is writing a data file: the table stays whole, and the
    file no version lists (an unfinished upload's staging file, or a complete file never
    committed) is found and removed."""
    from modelyard.backends.offline.delta import DeltaTableStore

    root = tmp_path / "offline"
    script = tmp_path / "ingest.py"
    script.write_text(_INGEST_LOOP)
    store = DeltaTableStore(root)
    for _ in range(3):  # the kill must land during a write: almost always the first time
        writer = subprocess.Popen([sys.executable, str(script), str(root)], env=_env(),
                                  stdout=subprocess.PIPE, text=True)
        assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
        listed = set(os.listdir(root / "t"))
        deadline = time.time() + 60
        while not _written(root / "t", listed) and time.time() < deadline:
            time.sleep(0.002)
        writer.send_signal(signal.SIGKILL)
        writer.communicate()
        leftovers = store.unlisted_files("t", time.time() + 1)
        if leftovers:
            break
    assert leftovers and sum(f.size for f in leftovers) > 0
    rows = store.read("t").num_rows
    assert rows % 1_000_000 == 10  # whole ingestions only
    assert store.in_flight() == set()  # the dead writer's mark does not count
    deleted = store.delete_unlisted("t", leftovers)
    assert deleted == leftovers
    assert store.unlisted_files("t", time.time() + 1) == []
    assert store.read("t").num_rows == rows


_KILLED_LOG_MODEL = """
import os, signal
import numpy as np, pandas as pd
import modelyard
from modelyard.backends.metadata.sql.registry_store import SqlRegistryStore
from sklearn.ensemble import RandomForestRegressor

def die(self, record, **kwargs):  # the process is killed just before the version row is written
    print(record.artifact_sha256, record.onnx_sha256, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

SqlRegistryStore.add_version = die
yard = modelyard.connect(capture_packages=False, capture_git=False)
rng = np.random.default_rng(0)
x = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
model = RandomForestRegressor(n_estimators=20, random_state=0).fit(x, x["a"] + x["b"])
with yard.start_run("killed") as run:
    run.log_model(model, "killed", input_example=x)
"""


@pytest.mark.slow
def test_a_killed_log_model_leaves_blobs_gc_removes(project: Path, tmp_path: Path) -> None:
    script = tmp_path / "log_model.py"
    script.write_text(_KILLED_LOG_MODEL)
    done = subprocess.run([sys.executable, str(script)], cwd=project, env=_env(),
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr
    archive, onnx = done.stdout.split()
    with modelyard.connect(capture_packages=False, capture_git=False) as yard:
        store = yard.tracking.artifacts
        assert store.exists(archive) and store.exists(onnx)
        orphans = {b.sha256 for b in store.iter_blobs()}  # archive, twin, profile, background
        assert yard.gc().count == 0  # all younger than the default grace
        report = yard.gc(older_than=0)  # the writer is dead: its marks protect nothing
        assert {i.name for i in report.freed if i.kind == "blob"} == orphans
        assert report.totals()["blob"][1] > 0
        assert not store.exists(archive) and not store.exists(onnx)


def test_gc_on_each_metadata_store(yard: Yard, tmp_path: Path) -> None:
    """The references are read from SQLite and from PostgreSQL alike."""
    with yard.start_run("exp") as run:
        entry = run.log_text("kept", "notes.txt")
    orphan = _killed_blob(yard, tmp_path)
    _age_everything(yard.tracking.artifacts.root)
    report = yard.gc()
    assert [i.name for i in report.freed] == [orphan] and report.referenced == 1
    assert yard.tracking.artifacts.get_bytes(entry.sha256) == b"kept"


def test_young_orphans_stay_and_dry_run_removes_nothing(project: Path, tmp_path: Path
                                                        ) -> None:
    with modelyard.connect(capture_packages=False, capture_git=False) as yard:
        young = _killed_blob(yard, tmp_path)
        old = _killed_blob(yard, tmp_path)
        old_path = yard.tracking.artifacts._path(old)
        os.utime(old_path, (_OLD, _OLD))
        dry = yard.gc(dry_run=True, older_than="1h")
        assert [i.name for i in dry.freed] == [old] and dry.young == 1
        assert old_path.exists()
        report = yard.gc(older_than="1h")
        assert [i.name for i in report.freed] == [old]
        assert yard.tracking.artifacts.exists(young)
        assert not yard.tracking.artifacts.exists(old)


def test_a_live_writers_blobs_are_in_flight(project: Path) -> None:
    """Blobs this very process stored (and may be about to record) are kept even with no
    grace at all; another process's, once it died, are not."""
    with modelyard.connect(capture_packages=False, capture_git=False) as yard:
        sha, _ = yard.tracking.artifacts.put_bytes(b"about to be recorded")
        report = yard.gc(older_than=0)
        assert report.count == 0 and report.in_flight == 1
        assert yard.tracking.artifacts.exists(sha)


def test_parse_age() -> None:
    assert parse_age("90s") == 90 and parse_age("30m") == 1800 and parse_age("1h") == 3600
    assert parse_age("2d") == 172800 and parse_age(5) == 5.0
    with pytest.raises(modelyard.errors.InvalidInputError, match="older_than"):
        parse_age("soon")


_LOOP_WRITER = """
import sys
import numpy as np, pandas as pd
import modelyard
from sklearn.linear_model import LinearRegression

yard = modelyard.connect(capture_packages=False, capture_git=False)
rng = np.random.default_rng(0)
for i in range(int(sys.argv[1])):
    x = pd.DataFrame({"a": rng.normal(size=50), "b": rng.normal(size=50)})
    model = LinearRegression().fit(x, x["a"] * 2 + i)
    with yard.start_run("loop") as run:
        run.log_text(f"iteration {i}", "notes.txt")
        run.log_model(model, "looped", input_example=x)
    print(i, flush=True)
yard.close()
"""


@pytest.mark.slow
def test_a_concurrent_writer_loses_nothing(project: Path, tmp_path: Path) -> None:
    script = tmp_path / "loop.py"
    script.write_text(_LOOP_WRITER)
    writer = subprocess.Popen([sys.executable, str(script), "6"], cwd=project, env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = held = 0
    with modelyard.connect(capture_packages=False, capture_git=False) as yard:
        while writer.poll() is None:
            report = yard.gc(older_than=0)  # no grace: only the in-flight marks protect
            held = max(held, report.in_flight)
            runs += 1
        _, err = writer.communicate()
        assert writer.returncode == 0, err
        yard.gc(older_than=0)
        versions = yard.models.versions("looped")
        assert [v.version for v in versions] == list(range(1, 7))
        for v in versions:
            yard.models.load(f"looped:{v.version}")
            for sha in (v.artifact_sha256, v.onnx_sha256, v.spec.get("reference_sha256"),
                        v.spec.get("background_sha256")):
                if sha:
                    yard.tracking.artifacts.get_bytes(sha)
        for run in yard.search_runs("loop").itertuples():
            assert yard.tracking.read_artifact(run.run_id, "notes.txt")
    assert runs > 1 and held > 0  # collections ran while blobs were not yet recorded
