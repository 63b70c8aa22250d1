"""The content-addressed artifact store, alone and behind a run on both metadata backends."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from modelyard import (
    ArtifactIntegrityError,
    ConfigurationError,
    InvalidInputError,
    NotFoundError,
    StorageError,
    Yard,
)
from modelyard.backends.artifacts.base import artifact_store_from_uri
from modelyard.backends.artifacts.local import LocalArtifactStore


def _blob_path(store: LocalArtifactStore, sha: str) -> Path:
    return store.root / "objects" / sha[:2] / sha[2:]


# --- the store alone ------------------------------------------------------------------------


def test_put_bytes_is_addressed_by_sha256_and_deduplicated(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "art")
    data = b"hello artifacts"
    sha, size = store.put_bytes(data)
    assert (sha, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert store.exists(sha)
    assert store.get_bytes(sha) == data
    assert store.put_bytes(data) == (sha, size)
    assert [p for p in (tmp_path / "art" / "objects").rglob("*") if p.is_file()] == [
        _blob_path(store, sha)
    ]


def test_put_file_streams_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    payload = os.urandom(3 * (1 << 20) + 17)  # several read blocks
    src.write_bytes(payload)
    store = LocalArtifactStore(tmp_path / "art")
    sha, size = store.put_file(src)
    assert (sha, size) == (hashlib.sha256(payload).hexdigest(), len(payload))
    assert store.put_file(src) == (sha, size)
    assert list((tmp_path / "art" / "tmp").iterdir()) == []
    dest = tmp_path / "out" / "copy.bin"
    store.copy_to(sha, dest)
    assert dest.read_bytes() == payload


def test_corrupted_blob_is_detected_on_every_read_path(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "art")
    sha, _ = store.put_bytes(b"the original bytes")
    _blob_path(store, sha).write_bytes(b"the tampered bytes")
    with pytest.raises(ArtifactIntegrityError, match=sha):
        store.get_bytes(sha)
    with pytest.raises(ArtifactIntegrityError), store.open(sha) as fh:
        while fh.read(4):
            pass
    dest = tmp_path / "out" / "x.bin"
    with pytest.raises(ArtifactIntegrityError):
        store.copy_to(sha, dest)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no half-written temporary file


def test_missing_blob_and_bad_digest_are_not_found(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "art")
    with pytest.raises(NotFoundError):
        store.get_bytes("a" * 64)
    for bad in ("../../etc/passwd", "A" * 64, "abc"):
        with pytest.raises(NotFoundError):
            store.exists(bad)


def test_unwritable_store_raises_storage_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    store = LocalArtifactStore(blocker / "art")
    with pytest.raises(StorageError, match=re.escape(str(blocker / "art"))):
        store.put_bytes(b"x")


def test_artifact_store_is_chosen_by_uri(tmp_path: Path) -> None:
    store = artifact_store_from_uri(f"file://{tmp_path}")
    assert isinstance(store, LocalArtifactStore)
    assert store.root == tmp_path
    with pytest.raises(ConfigurationError, match="s3://bucket"):
        artifact_store_from_uri("s3://bucket/prefix")


# --- behind a run ---------------------------------------------------------------------------


def test_log_file_and_read_it_back(yard: Yard, tmp_path: Path) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(b"\x00weights\xff")
    with yard.start_run("a") as run:
        [entry] = run.log_artifact(src)
        renamed = run.log_artifact(src, "models/final.bin")
    assert entry.path == "model.bin"
    assert entry.sha256 == hashlib.sha256(b"\x00weights\xff").hexdigest()
    assert entry.size == len(b"\x00weights\xff")
    assert [e.path for e in renamed] == ["models/final.bin"]
    assert yard.tracking.read_artifact(run.run_id, "models/final.bin") == b"\x00weights\xff"
    assert [e.path for e in yard.tracking.list_artifacts(run.run_id)] == [
        "model.bin", "models/final.bin"
    ]


def test_log_folder_keeps_relative_paths(yard: Yard, tmp_path: Path) -> None:
    folder = tmp_path / "report"
    (folder / "plots").mkdir(parents=True)
    (folder / "index.html").write_text("<h1>r</h1>")
    (folder / "plots" / "roc.svg").write_text("<svg/>")
    with yard.start_run("a") as run:
        entries = run.log_artifact(folder)
    assert sorted(e.path for e in entries) == ["report/index.html", "report/plots/roc.svg"]

    dest = yard.tracking.download_artifacts(run.run_id, "report", tmp_path / "down")
    assert dest == tmp_path / "down" / "report"
    assert (dest / "plots" / "roc.svg").read_text() == "<svg/>"
    assert (dest / "index.html").read_text() == "<h1>r</h1>"
    with pytest.raises(InvalidInputError, match="folder"):
        yard.tracking.read_artifact(run.run_id, "report")


def test_log_text_and_dict(yard: Yard) -> None:
    with yard.start_run("a") as run:
        run.log_text("héllo\n", "notes/readme.md")
        run.log_dict({"b": 2, "a": [1, 2]}, "config.json")
    assert yard.tracking.read_artifact(run.run_id, "notes/readme.md").decode() == "héllo\n"
    body = yard.tracking.read_artifact(run.run_id, "config.json")
    assert json.loads(body) == {"a": [1, 2], "b": 2}


def test_corrupted_blob_on_disk_fails_read_and_download(yard: Yard, tmp_path: Path) -> None:
    with yard.start_run("a") as run:
        entry = run.log_text("precious", "data.txt")
    store = yard.tracking.artifacts
    assert isinstance(store, LocalArtifactStore)
    _blob_path(store, entry.sha256).write_text("tampered")
    with pytest.raises(ArtifactIntegrityError):
        yard.tracking.read_artifact(run.run_id, "data.txt")
    with pytest.raises(ArtifactIntegrityError):
        yard.tracking.download_artifacts(run.run_id, "data.txt", tmp_path / "down")
    assert not (tmp_path / "down" / "data.txt").exists()


@pytest.mark.parametrize("name", ["../escape.txt", "a/../../b.txt", "a/./b", "/", "", "a//b"])
def test_unclean_artifact_names_are_refused(yard: Yard, tmp_path: Path, name: str) -> None:
    src = tmp_path / "f.txt"
    src.write_text("x")
    with yard.start_run("a") as run:
        with pytest.raises(InvalidInputError, match="clean relative path"):
            run.log_text("x", name)
        if name:  # an empty name means "the file's own name"
            with pytest.raises(InvalidInputError):
                run.log_artifact(src, name)
    assert yard.tracking.list_artifacts(run.run_id) == []


def test_unknown_artifact_and_missing_source(yard: Yard, tmp_path: Path) -> None:
    with yard.start_run("a") as run, pytest.raises(InvalidInputError, match="no file or folder"):
        run.log_artifact(tmp_path / "missing.txt")
    with pytest.raises(NotFoundError, match=r"nothing\.txt"):
        yard.tracking.read_artifact(run.run_id, "nothing.txt")
    with pytest.raises(NotFoundError):
        yard.tracking.download_artifacts(run.run_id, "../etc", tmp_path / "down")
