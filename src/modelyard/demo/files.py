"""Writing the demo's tables as Parquet files, and fingerprinting them."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from modelyard.errors import StorageError

DATA_FOLDER = "data"


@dataclass(frozen=True)
class DataFile:
    """One table written to disk: where, how many rows, and the sha256 of its bytes."""

    name: str
    path: Path
    rows: int
    sha256: str

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_table(frame: pd.DataFrame, folder: Path, name: str) -> DataFile:
    """Write ``frame`` to ``folder/name.parquet`` atomically (readers never see half a file)."""
    target = folder / f"{name}.parquet"
    partial = folder / f".{name}.parquet.partial"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(partial, index=False)
        os.replace(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise StorageError(f"cannot write {target}: {exc.strerror or exc}",
                           path=str(target)) from exc
    return DataFile(name, target, len(frame), sha256_file(target))


def fingerprint(files: list[DataFile]) -> str:
    """One sha256 over the named file hashes: the version of the whole data set."""
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.name):
        digest.update(f"{f.name}:{f.sha256}\n".encode())
    return digest.hexdigest()


def _free_backup(target: Path) -> Path:
    n = 1
    while (backup := target.with_name(f"{target.name}.bak{'' if n == 1 else n}")).exists():
        n += 1
    return backup


def write_project_file(root: Path, name: str, text: str) -> tuple[Path, Path | None]:
    """Write ``text`` to ``root/name`` atomically; a different file already there is kept as
    ``name.bak`` (``.bak2``, ... when taken). Returns the file and the backup made, if any."""
    target = root / name
    backup = None
    partial = root / f".{name}.partial"
    try:
        if target.exists():
            if target.read_text("utf-8", errors="replace") == text:
                return target, None
            backup = _free_backup(target)
            os.replace(target, backup)
        partial.write_text(text, "utf-8")
        os.replace(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise StorageError(f"cannot write {target}: {exc.strerror or exc}",
                           path=str(target)) from exc
    return target, backup
