"""The content-addressed artifact store, alone and behind a run on both metadata backends.

The same behaviour tests run on the local store and on the S3 store (SeaweedFS).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelyard import (
    ArtifactIntegrityError,
    ConfigurationError,
    InvalidInputError,
    NotFoundError,
    StorageError,
    Yard,
)
from modelyard.backends.artifacts.base import ArtifactStore, artifact_store_from_uri
from modelyard.backends.artifacts.local import LocalArtifactStore
from modelyard.backends.artifacts.s3 import S3ArtifactStore

BACKENDS = ["local", pytest.param("s3", marks=pytest.mark.s3)]


def _blob_path(store: LocalArtifactStore, sha: str) -> Path:
    return store.root / "objects" / sha[:2] / sha[2:]


def _stored(store: ArtifactStore) -> list[str]:
    """The digests of every blob in the store, as its own listing does not tell."""
    if isinstance(store, LocalArtifactStore):
        return sorted(p.parent.name + p.name for p in (store.root / "objects").rglob("*")
                      if p.is_file())
    import obstore

    assert isinstance(store, S3ArtifactStore)
    keys = [m["path"] for chunk in obstore.list(store.location.store) for m in chunk]
    assert all(k.startswith("art/objects/") for k in keys), keys  # nothing else: no temporaries
    return sorted("".join(k.split("/")[-2:]) for k in keys)


def tamper(store: ArtifactStore, sha: str, data: bytes) -> None:
    """Replace a stored blob's bytes behind the store's back."""
    if isinstance(store, LocalArtifactStore):
        _blob_path(store, sha).write_bytes(data)
        return
    import obstore

    assert isinstance(store, S3ArtifactStore)
    obstore.put(store.location.store, store.location.key("objects", sha[:2], sha[2:]), data)


def _artifact_uri(backend: str, request: pytest.FixtureRequest, folder: Path) -> str:
    if backend == "local":
        return f"file://{folder}"
    return f"s3://{request.getfixturevalue('s3_bucket')}/art"


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    """An empty artifact store: a local folder, or a prefix of an S3 bucket of its own."""
    return artifact_store_from_uri(_artifact_uri(request.param, request, tmp_path / "art"))


# --- the store alone ------------------------------------------------------------------------


def test_put_bytes_is_addressed_by_sha256_and_deduplicated(store: ArtifactStore) -> None:
    data = b"hello artifacts"
    sha, size = store.put_bytes(data)
    assert (sha, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert store.exists(sha)
    assert store.get_bytes(sha) == data
    assert store.put_bytes(data) == (sha, size)
    assert _stored(store) == [sha]
    assert [(b.sha256, b.size) for b in store.iter_blobs()] == [(sha, size)]


@pytest.mark.parametrize("size", [3 * (1 << 20) + 17, 17 * (1 << 20) + 5])
def test_put_file_streams_and_leaves_no_temporary_files(store: ArtifactStore, tmp_path: Path,
                                                        size: int) -> None:
    src = tmp_path / "big.bin"
    payload = os.urandom(size)  # several read blocks; the larger one in several S3 parts
    src.write_bytes(payload)
    sha, stored = store.put_file(src)
    assert (sha, stored) == (hashlib.sha256(payload).hexdigest(), len(payload))
    assert store.put_file(src) == (sha, stored)
    if isinstance(store, LocalArtifactStore):
        assert list((tmp_path / "art" / "tmp").iterdir()) == []
    assert _stored(store) == [sha]
    dest = tmp_path / "out" / "copy.bin"
    store.copy_to(sha, dest)
    assert dest.read_bytes() == payload


def test_storing_again_renews_the_modification_time(store: ArtifactStore) -> None:
    """What keeps a blob a writer is about to reference from garbage collection."""
    sha, _ = store.put_bytes(b"kept by a writer")
    [first] = store.iter_blobs()
    time.sleep(1.1)  # S3 keeps modification times to the second
    store.put_bytes(b"kept by a writer")
    [second] = store.iter_blobs()
    assert second.modified > first.modified
    assert not store.delete(sha, unless_modified_after=first.modified)  # stored again since
    assert store.exists(sha)
    assert store.delete(sha, unless_modified_after=second.modified)
    assert not store.exists(sha) and list(store.iter_blobs()) == []
    assert not store.delete(sha, unless_modified_after=second.modified)


def test_corrupted_blob_is_detected_on_every_read_path(store: ArtifactStore,
                                                       tmp_path: Path) -> None:
    sha, _ = store.put_bytes(b"the original bytes")
    tamper(store, sha, b"the tampered bytes")
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


def test_missing_blob_and_bad_digest_are_not_found(store: ArtifactStore,
                                                   tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        store.get_bytes("a" * 64)
    assert not store.exists("a" * 64)
    with pytest.raises(NotFoundError):
        store.copy_to("a" * 64, tmp_path / "out" / "x.bin")
    assert not (tmp_path / "out" / "x.bin").exists()
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
    s3 = artifact_store_from_uri("s3://bucket/some/prefix/")
    assert isinstance(s3, S3ArtifactStore)
    assert (s3.uri, s3.location.key("objects")) == ("s3://bucket/some/prefix",
                                                    "some/prefix/objects")
    with pytest.raises(ConfigurationError, match="s3://bucket"):
        artifact_store_from_uri("gs://bucket/prefix")
    with pytest.raises(ConfigurationError, match="may not carry credentials") as info:
        artifact_store_from_uri("s3://AKIAKEY:hunter2@bucket/prefix")
    assert "hunter2" not in str(info.value) and "hunter2" not in repr(info.value.details)


@pytest.mark.s3
def test_a_wrong_credential_is_a_clear_error(s3_bucket: str, s3_server: Any) -> None:
    from modelyard.backends.s3 import S3Options

    wrong = S3Options(endpoint=s3_server.endpoint, access_key_id=s3_server.access_key,
                      secret_access_key="not-the-secret")
    store = artifact_store_from_uri(f"s3://{s3_bucket}/art", wrong)
    with pytest.raises(StorageError, match=r"credentials were refused by the S3 store "
                       rf"s3://{s3_bucket}/art") as info:
        store.put_bytes(b"x")
    assert "not-the-secret" not in str(info.value)
    with pytest.raises(StorageError, match="credentials were refused"):
        store.get_bytes(hashlib.sha256(b"x").hexdigest())
    assert "not-the-secret" not in repr(wrong)
    nowhere = artifact_store_from_uri(f"s3://{s3_bucket}-missing/art")
    with pytest.raises(StorageError, match="bucket does not exist"):
        nowhere.put_bytes(b"x")


# --- behind a run ---------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def artifact_yard(request: pytest.FixtureRequest, store_uri: str, project: Path
                  ) -> Iterator[Yard]:
    """A Yard on each metadata backend, with its artifacts on the local disk or in S3."""
    import modelyard

    uri = _artifact_uri(request.param, request, project / ".modelyard" / "artifacts")
    y = modelyard.connect(store_uri, artifact_uri=uri, capture_packages=False,
                          capture_git=False)
    try:
        yield y
    finally:
        y.close()


def test_log_file_and_read_it_back(artifact_yard: Yard, tmp_path: Path) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(b"\x00weights\xff")
    with artifact_yard.start_run("a") as run:
        [entry] = run.log_artifact(src)
        renamed = run.log_artifact(src, "models/final.bin")
    assert entry.path == "model.bin"
    assert entry.sha256 == hashlib.sha256(b"\x00weights\xff").hexdigest()
    assert entry.size == len(b"\x00weights\xff")
    assert [e.path for e in renamed] == ["models/final.bin"]
    read = artifact_yard.tracking.read_artifact(run.run_id, "models/final.bin")
    assert read == b"\x00weights\xff"
    assert [e.path for e in artifact_yard.tracking.list_artifacts(run.run_id)] == [
        "model.bin", "models/final.bin"
    ]


def test_log_folder_keeps_relative_paths(artifact_yard: Yard, tmp_path: Path) -> None:
    folder = tmp_path / "report"
    (folder / "plots").mkdir(parents=True)
    (folder / "index.html").write_text("<h1>r</h1>")
    (folder / "plots" / "roc.svg").write_text("<svg/>")
    with artifact_yard.start_run("a") as run:
        entries = run.log_artifact(folder)
    assert sorted(e.path for e in entries) == ["report/index.html", "report/plots/roc.svg"]

    dest = artifact_yard.tracking.download_artifacts(run.run_id, "report", tmp_path / "down")
    assert dest == tmp_path / "down" / "report"
    assert (dest / "plots" / "roc.svg").read_text() == "<svg/>"
    assert (dest / "index.html").read_text() == "<h1>r</h1>"
    with pytest.raises(InvalidInputError, match="folder"):
        artifact_yard.tracking.read_artifact(run.run_id, "report")


def test_log_text_and_dict(artifact_yard: Yard) -> None:
    with artifact_yard.start_run("a") as run:
        run.log_text("héllo\n", "notes/readme.md")
        run.log_dict({"b": 2, "a": [1, 2]}, "config.json")
    assert artifact_yard.tracking.read_artifact(run.run_id, "notes/readme.md").decode() == "héllo\n"
    body = artifact_yard.tracking.read_artifact(run.run_id, "config.json")
    assert json.loads(body) == {"a": [1, 2], "b": 2}


def test_corrupted_blob_fails_read_and_download(artifact_yard: Yard, tmp_path: Path) -> None:
    with artifact_yard.start_run("a") as run:
        entry = run.log_text("precious", "data.txt")
    tamper(artifact_yard.tracking.artifacts, entry.sha256, b"tampered")
    with pytest.raises(ArtifactIntegrityError):
        artifact_yard.tracking.read_artifact(run.run_id, "data.txt")
    with pytest.raises(ArtifactIntegrityError):
        artifact_yard.tracking.download_artifacts(run.run_id, "data.txt", tmp_path / "down")
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


@pytest.mark.s3
def test_an_upload_that_fails_half_way_leaves_nothing_visible(
        s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A multipart upload whose file changes after its first part is aborted: no object."""
    from modelyard.backends.artifacts import s3 as s3_module

    store = artifact_store_from_uri(f"s3://{s3_bucket}/art")
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(20 * (1 << 20)))
    checked = s3_module._chunks_checked

    def changing(path: Path, expected: str) -> Iterator[bytes]:
        for i, block in enumerate(checked(path, expected)):
            yield block
            if i == 0:  # the first part is on its way: the file changes under the upload
                with path.open("r+b") as fh:
                    fh.seek(-1, os.SEEK_END)
                    last = fh.read(1)[0]
                    fh.seek(-1, os.SEEK_END)
                    fh.write(bytes([last ^ 0xFF]))

    monkeypatch.setattr(s3_module, "_chunks_checked", changing)
    with pytest.raises(StorageError, match="changed while it was being stored"):
        store.put_file(src)
    assert _stored(store) == [] and list(store.iter_blobs()) == []


@pytest.mark.s3
@pytest.mark.slow
def test_a_process_killed_mid_upload_leaves_nothing_visible(s3_bucket: str,
                                                           tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from _workers.procs import worker_env

    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(30 * (1 << 20)))
    marker = tmp_path / "marker"
    uri = f"s3://{s3_bucket}/art"
    proc = subprocess.run([sys.executable, "-m", "_workers.s3upload", uri, str(src),
                           str(marker)], env=worker_env(), capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert marker.read_text() == "uploading\n"  # it died with the upload under way
    store = artifact_store_from_uri(uri)
    assert _stored(store) == [] and list(store.iter_blobs()) == []
    assert store.put_file(src)[1] == 30 * (1 << 20)  # a new upload of it completes
    assert _stored(store) == [hashlib.sha256(src.read_bytes()).hexdigest()]
