"""Resource errors on real file systems: a full disk (a small tmpfs), a read-only one (a
tmpfs remounted read-only: chmod does not stop root), and too many open files (a process
with a low RLIMIT_NOFILE). Each gives a StorageError naming the resource and the place, with
no panic text from the Delta writer on stderr, and leaves the stores as they were."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import modelyard
from modelyard.backends.artifacts.local import LocalArtifactStore
from modelyard.backends.metadata.predictions import PredictionRecord
from modelyard.backends.offline.delta import DeltaTableStore
from modelyard.errors import StorageError
from modelyard.serving.predlog import PredictionLog
from tests.registry.support import policies, setup_features

SIZE = "8m"


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MB tmpfs of its own, unmounted afterwards."""
    where = tmp_path / "disk"
    where.mkdir()
    done = _mount("-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(where))
    if done.returncode != 0:
        pytest.skip(f"mounting a small tmpfs needs root (CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _read_only(where: Path) -> None:
    done = _mount("-o", "remount,ro", str(where))
    assert done.returncode == 0, done.stderr


def _fill(where: Path) -> Path:
    """Fill the disk to the last byte with one file; remove it to free the space."""
    filler = where / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for block in (65536, 512):
            try:
                while os.write(fd, b"\0" * block):
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def _frame(n: int, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({"k": np.arange(n), "v": rng.random(n), "w": rng.random(n)})


def _no_panic(err: str) -> None:
    assert "panicked" not in err and "Already shut down" not in err, err


def _connect(root: Path, **settings: object) -> modelyard.Yard:
    modelyard.init_project(root, "small")
    return modelyard.connect(project=root, capture_packages=False, capture_git=False,
                             **settings)


# --- a full disk ---------------------------------------------------------------------------

def test_ingest_on_a_full_disk(disk: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with _connect(disk / "proj") as yard:
        rows = setup_features(yard)
        big = pd.DataFrame({"customer_id": np.arange(400_000),
                            "ts": rows["ts"].iloc[0], "age": 40.0,
                            "vehicle_value": np.random.default_rng(0).random(400_000)})
        with pytest.raises(StorageError) as caught:
            yard.ingest(policies, big)
        error = caught.value
        assert error.details["reason"] == "ENOSPC"
        assert "disk is full" in error.message and str(disk) in error.message
        assert "modelyard gc" in error.message
        assert yard.features.tables.read("policies").num_rows == len(rows)  # whole
        assert len(yard.features.tables.history("policies")) == 1
        assert yard.gc(older_than=0, dry_run=True).totals()["table file"] == (0, 0)
    _no_panic(capfd.readouterr().err)


def test_delta_write_on_a_full_disk_keeps_the_table(disk: Path,
                                                   capfd: pytest.CaptureFixture[str]) -> None:
    store = DeltaTableStore(disk / "offline")
    store.append("t", _frame(1000))
    for attempt in (_frame(600_000), _frame(300_000)):  # 14 MB, then 7 MB of Arrow
        with pytest.raises(StorageError, match="disk is full") as caught:
            store.append("t", attempt)
        assert caught.value.details["path"].startswith(str(disk))
    assert store.read("t").num_rows == 1000 and len(store.history("t")) == 1
    assert len(list((disk / "offline" / "t").glob("*.parquet"))) == 1  # no partial file
    assert store.unlisted_files("t", time.time() + 60) == []
    _no_panic(capfd.readouterr().err)


def test_log_model_on_a_full_disk(disk: Path) -> None:
    from sklearn.linear_model import LinearRegression

    with _connect(disk / "proj") as yard:
        x = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) ** 2})
        model = LinearRegression().fit(x, x["a"])
        model.payload_ = np.random.default_rng(0).random(1_200_000)  # 9.6 MB pickled
        store = yard.tracking.artifacts
        before = {b.sha256 for b in store.iter_blobs()}
        with yard.start_run("big") as run, pytest.raises(StorageError) as caught:
            run.log_model(model, "big", input_example=x, onnx=False)
        error = caught.value
        assert error.details["reason"] == "ENOSPC" and "disk is full" in error.message
        assert str(store.root) in error.message
        assert {b.sha256 for b in store.iter_blobs()} == before  # no partial blob
        assert not [p for p in (store.root / "tmp").iterdir() if p.name.startswith("put-")]
        assert yard.models.list_models() == [] or yard.models.versions("big") == []


@pytest.mark.parametrize("kind", ["metadata", "parquet"])
def test_prediction_log_on_a_full_disk(disk: Path, kind: str) -> None:
    settings = {} if kind == "metadata" else {
        "predictions_uri": f"file://{disk / 'predictions'}"}
    with _connect(disk / "proj", **settings) as yard:
        plog = PredictionLog(yard.predictions, flush_interval=0.05, retry_max=0.1)
        features = {"note": "x" * 2000}
        plog.log(PredictionRecord("warm", 0, "m", 1, "primary", 1, 1.0, None, features,
                                  {"y": 1}))
        assert plog.flush(timeout=10)
        filler = _fill(disk)
        try:
            plog.log([PredictionRecord(f"r{i}", 0, "m", 1, "primary", 2 + i, 1.0, None,
                                       features, {"y": i}) for i in range(300)])
            assert not plog.flush(timeout=1)
            error = plog.stats().last_error or ""
            assert "cannot write the prediction log: the disk is full" in error, error
            assert "modelyard gc" in error
        finally:
            filler.unlink()
        assert plog.flush(timeout=20)  # the kept batch is written once there is room
        assert plog.stats().written == 301
        assert len(yard.read_predictions("m")) == 301
        plog.close()


# --- a read-only file system ---------------------------------------------------------------

def test_a_read_only_store(disk: Path, capfd: pytest.CaptureFixture[str]) -> None:
    artifacts = LocalArtifactStore(disk / "artifacts")
    sha, _ = artifacts.put_bytes(b"stored before")
    artifacts._marks.close()
    tables = DeltaTableStore(disk / "offline")
    tables.append("t", _frame(100))
    _read_only(disk)
    with pytest.raises(StorageError, match="read-only") as caught:
        tables.append("t", _frame(100))
    assert caught.value.details["reason"] == "EROFS"
    assert str(disk / "offline") in caught.value.message
    with pytest.raises(StorageError, match="read-only") as caught:
        LocalArtifactStore(disk / "artifacts").put_bytes(b"new bytes")
    assert caught.value.details["reason"] == "EROFS"
    assert "remount it read-write" in caught.value.message
    assert tables.read("t").num_rows == 100  # still readable and whole
    assert artifacts.get_bytes(sha) == b"stored before"
    _no_panic(capfd.readouterr().err)


# --- permission denied ---------------------------------------------------------------------

_NOBODY = """
import json, os, sys
from pathlib import Path
import numpy as np, pyarrow as pa
from modelyard.backends.artifacts.local import LocalArtifactStore
from modelyard.backends.offline.delta import DeltaTableStore
from modelyard.errors import StorageError

root = Path(sys.argv[1])
tables = DeltaTableStore(root / "offline")
artifacts = LocalArtifactStore(root / "artifacts")
os.setgid(65534)
os.setuid(65534)  # nobody: the stores' folders belong to root
found = {}
for name, call in [("put_bytes", lambda: artifacts.put_bytes(b"abc")),
                   ("append", lambda: tables.append("t", pa.table({"k": np.arange(5)})))]:
    try:
        call()
        found[name] = None
    except StorageError as exc:
        found[name] = [exc.details.get("reason"), exc.message]
print(json.dumps(found))
"""


@pytest.mark.parametrize("mode", [0o755, 0o700], ids=["readable", "closed"])
def test_permission_denied(tmp_path: Path, mode: int) -> None:
    """A user who may not write the stores' folders (root ignores modes: the writer drops
    to ``nobody``), whether it may read them or not even look in."""
    if os.geteuid() != 0:
        pytest.skip("switching to another user needs root")
    root = Path(tempfile.mkdtemp(prefix="modelyard-perm-"))  # /tmp: any user may reach it
    try:
        DeltaTableStore(root / "offline").append("t", _frame(10))
        LocalArtifactStore(root / "artifacts").put_bytes(b"root's")
        for folder in (root, *root.rglob("*")):
            if folder.is_dir():
                folder.chmod(mode)
        done = _run(_NOBODY, root, tmp_path)
        for name in ("put_bytes", "append"):
            reason, message = done[name]
            assert reason == "EACCES", (name, message)
            assert "permission denied" in message and "write access" in message
            assert str(root) in message
        assert DeltaTableStore(root / "offline").read("t").num_rows == 10
    finally:
        shutil.rmtree(root)


def _run(code: str, root: Path, scripts: Path | None = None) -> dict[str, Any]:
    script = (scripts or root) / "script.py"
    script.write_text(code)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    done = subprocess.run([sys.executable, str(script), str(root)], capture_output=True,
                          text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    _no_panic(done.stderr)
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


# --- too many open files -------------------------------------------------------------------

_EMFILE = """
import json, resource, sys
from pathlib import Path
import numpy as np, pyarrow as pa
from modelyard.backends.artifacts.local import LocalArtifactStore
from modelyard.backends.offline.delta import DeltaTableStore
from modelyard.errors import StorageError

root = Path(sys.argv[1])
tables = DeltaTableStore(root / "offline")
tables.append("t", pa.table({"k": np.arange(10)}))
artifacts = LocalArtifactStore(root / "artifacts")
resource.setrlimit(resource.RLIMIT_NOFILE, (128, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
held = []
try:
    while True:
        held.append(open("/dev/null"))
except OSError:
    pass
found = {}
for name, call in [("put_bytes", lambda: artifacts.put_bytes(b"abc")),
                   ("append", lambda: tables.append("t", pa.table({"k": np.arange(5)}))),
                   ("read", lambda: tables.read("t"))]:
    try:
        call()
        found[name] = None
    except StorageError as exc:
        found[name] = [exc.details.get("reason"), exc.message]
for fh in held:
    fh.close()
found["rows"] = tables.read("t").num_rows
print(json.dumps(found))
"""


def test_too_many_open_files(tmp_path: Path) -> None:
    found = _run(_EMFILE, tmp_path)
    for name in ("put_bytes", "append", "read"):
        reason, message = found[name]
        assert reason == "EMFILE", (name, message)
        assert "too many open files" in message and "ulimit -n" in message
        assert str(tmp_path) in message
    assert found["rows"] == 10


def test_sqlite_out_of_space_is_named_by_the_metadata_store() -> None:
    import sqlite3

    import sqlalchemy as sa

    from modelyard.backends.metadata.sql.engine import translate_errors

    @translate_errors
    def write() -> None:
        raise sa.exc.OperationalError("INSERT INTO runs ...", {},
                                      sqlite3.OperationalError("database or disk is full"))

    with pytest.raises(StorageError, match="the disk is full at the metadata database") as raised:
        write()
    assert raised.value.details["reason"] == "ENOSPC"
