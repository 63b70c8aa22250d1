"""A model's files as one content-addressed blob: a tar archive made reproducibly (sorted
names, no times or owners), unpacked only after the artifact store has checked its sha256."""

from __future__ import annotations

import atexit
import io
import shutil
import tarfile
import tempfile
from pathlib import Path

from modelyard.backends.artifacts.base import ArtifactStore
from modelyard.errors import ArtifactIntegrityError

_UNPACKED: list[Path] = []


def pack(folder: Path, store: ArtifactStore) -> tuple[str, int]:
    """Store every file under ``folder``; returns (sha256, size) of the archive."""
    return store.put_bytes(archive(folder))


def archive(folder: Path) -> bytes:
    """Every file under ``folder`` as one reproducible tar archive."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(folder.rglob("*")):
            if not path.is_file():
                continue
            info = tarfile.TarInfo(path.relative_to(folder).as_posix())
            info.size = path.stat().st_size
            info.mode = 0o644
            with path.open("rb") as fh:
                tar.addfile(info, fh)
    return buffer.getvalue()


def unpack(store: ArtifactStore, sha256: str) -> Path:
    """A fresh folder holding the archive's files, after the blob's bytes were verified
    against ``sha256`` (raises ArtifactIntegrityError otherwise). Removed at exit."""
    folder = Path(tempfile.mkdtemp(prefix="modelyard-model-"))
    _UNPACKED.append(folder)
    try:
        data = store.get_bytes(sha256)  # verified: raises before anything is unpacked
        with tarfile.open(fileobj=io.BytesIO(data), mode="r") as archive:
            for member in archive.getmembers():
                if not member.isfile():
                    raise ArtifactIntegrityError(
                        f"model archive {sha256} holds {member.name!r}, which is not a file",
                        sha256=sha256)
            archive.extractall(folder, filter="data")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


@atexit.register
def _cleanup() -> None:
    for folder in _UNPACKED:
        shutil.rmtree(folder, ignore_errors=True)
