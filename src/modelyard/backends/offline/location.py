"""Where the offline tables lie: a folder on the local disk or a prefix in an S3 bucket.

:class:`~modelyard.backends.offline.delta.DeltaTableStore` does every Delta operation (commit,
history, merge, vacuum) through deltalake on a :class:`TableRef`, the table's location plus
the storage options that reach it, which is all an engine needs to open the table where it
lies. The few things Delta does not do (or not reliably) are this seam's: list the tables, list
and read the commit files of a table's log (Delta's own ``history()`` numbers commits that
raced wrongly), look at and delete a file by name (garbage collection), remove a whole table,
and give pyarrow a file system to read Parquet files from. Each has a local implementation
(:class:`LocalTables`, plain file calls, with the disk checks and in-flight marks of the
embedded mode) and an S3 one (:class:`S3Tables`, obstore and pyarrow's S3 file system), so the
store's code is the same on ``file://`` and ``s3://``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from modelyard.backends.inflight import held, hold
from modelyard.backends.offline.tables import TableRef
from modelyard.backends.resources import check_handles, check_writable, resource_error
from modelyard.backends.s3 import S3Location, S3Options, not_found, s3_error
from modelyard.errors import StorageError

if TYPE_CHECKING:
    import pyarrow.fs

__all__ = ["LocalTables", "S3Tables", "TableLocation", "location_from_uri"]

_INFLIGHT = ".inflight"
_LOG = "_delta_log"


class TableLocation(ABC):
    """The folder (or prefix) holding one subfolder per table."""

    uri: str
    remote = False  # an object store, where each read is a request: reads pre-buffer

    @abstractmethod
    def ref(self, table: str) -> TableRef: ...

    @abstractmethod
    def children(self) -> list[str]:
        """Names directly below the location, hidden ones (``.x``) left out."""

    @abstractmethod
    def stat(self, table: str, name: str) -> tuple[int, float] | None:
        """(size, modified epoch seconds) of the file ``name`` of ``table``, or None."""

    @abstractmethod
    def delete_file(self, table: str, name: str) -> bool:
        """Delete the file ``name`` of ``table``; False if it was not there."""

    @abstractmethod
    def names(self, table: str, folder: str) -> list[str]:
        """Names of the files directly in ``folder`` of ``table`` (empty if there is none)."""

    @abstractmethod
    def read(self, table: str, name: str) -> bytes:
        """The bytes of the file ``name`` of ``table``."""

    @abstractmethod
    def remove(self, table: str) -> None:
        """Delete every file of ``table``."""

    @abstractmethod
    def arrow_filesystem(self, table: str) -> pyarrow.fs.FileSystem:
        """A pyarrow file system rooted at the table's folder."""

    def staging(self, table: str) -> list[str]:
        """Files of unfinished uploads that Delta's own listing does not see."""
        return []

    @contextmanager
    def writing(self, table: str, need: int, what: str) -> Iterator[None]:
        """Around a write of about ``need`` bytes to ``table``."""
        yield

    def in_flight(self) -> set[str]:
        """Tables live writers are writing right now (as far as this location can know)."""
        return set()

    def check_open(self, table: str, what: str) -> None:
        """Before a Delta call on ``table``: raise a clear error for what it would fail on
        (nothing to check by default)."""
        return None

    def error(self, exc: BaseException, table: str, what: str) -> StorageError | None:
        """A clear StorageError for ``exc``, if it is a problem of the storage itself."""
        return None


class LocalTables(TableLocation):
    """Tables in a local folder, ``<root>/<table>/``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = f"file://{root}"

    def ref(self, table: str) -> TableRef:
        return TableRef(str(self.root / table))

    def children(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(e.name for e in os.scandir(self.root) if not e.name.startswith("."))

    def stat(self, table: str, name: str) -> tuple[int, float] | None:
        folder = (self.root / table).resolve()
        path = (folder / name).resolve()
        if not path.is_relative_to(folder):
            return None
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        return st.st_size, st.st_mtime

    def delete_file(self, table: str, name: str) -> bool:
        try:
            os.unlink(self.root / table / name)
        except FileNotFoundError:
            return False
        return True

    def names(self, table: str, folder: str) -> list[str]:
        try:
            with os.scandir(self.root / table / folder) as entries:
                return [e.name for e in entries if e.is_file()]
        except FileNotFoundError:
            return []

    def read(self, table: str, name: str) -> bytes:
        return (self.root / table / name).read_bytes()

    def remove(self, table: str) -> None:
        trash = self.root / f".dropped-{uuid.uuid4().hex}"
        os.replace(self.root / table, trash)  # gone at once, then deleted at leisure
        shutil.rmtree(trash)

    def arrow_filesystem(self, table: str) -> pyarrow.fs.FileSystem:
        import pyarrow.fs as pafs

        return pafs.SubTreeFileSystem(str((self.root / table).resolve()),
                                      pafs.LocalFileSystem())

    def staging(self, table: str) -> list[str]:
        """The local object store writes a large file as ``name#n`` and renames it when
        complete; a killed writer leaves that name behind."""
        import re

        staging = re.compile(r"^[^._].*#\d+$")
        root = self.root / table
        found = []
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if not d.startswith(("_", "."))]
            found += [os.path.relpath(os.path.join(folder, f), root)
                      for f in files if staging.match(f)]
        return found

    @contextmanager
    def writing(self, table: str, need: int, what: str) -> Iterator[None]:
        """Check that the folder takes ``need`` bytes, and mark the table in flight."""
        path = self.root / table
        try:
            if not path.is_dir():
                self.root.mkdir(parents=True, exist_ok=True)
            check_writable(path if path.is_dir() else self.root, need, what)
            with hold(self.root / _INFLIGHT, [table]):
                yield
        except OSError as exc:
            raise (resource_error(exc, self.root, what)
                   or StorageError(f"{what}: {exc.strerror or exc}", table=table)) from exc

    def in_flight(self) -> set[str]:
        return held(self.root / _INFLIGHT)

    def check_open(self, table: str, what: str) -> None:
        check_handles(self.root / table, what)

    def error(self, exc: BaseException, table: str, what: str) -> StorageError | None:
        return resource_error(exc, self.root / table, what)


class S3Tables(TableLocation):
    """Tables under a prefix of an S3-compatible bucket, ``s3://bucket/prefix/<table>/``.

    A table is dropped by deleting its log first, so that it stops being a table before its
    data files go (S3 has no rename to make that one step). Writers leave no in-flight marks
    here: a running write's files are kept by its write intent (which names the table) and by
    garbage collection's grace period.
    """

    remote = True

    def __init__(self, uri: str, options: S3Options | None = None) -> None:
        self.s3 = S3Location(uri, options)
        self.uri = self.s3.uri

    def ref(self, table: str) -> TableRef:
        return TableRef(self.s3.url(table), self.s3.options.delta_options())

    def children(self) -> list[str]:
        import obstore

        prefix = self.s3.key() + "/" if self.s3.key() else None
        with self._calling("cannot list the offline tables"):
            found = obstore.list_with_delimiter(self.s3.store, prefix)
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in found["common_prefixes"]]
        return sorted(n for n in names if not n.startswith("."))

    def stat(self, table: str, name: str) -> tuple[int, float] | None:
        import obstore

        if ".." in name.split("/"):
            return None
        with self._calling(f"cannot look at offline table {table!r}"):
            try:
                meta = obstore.head(self.s3.store, self.s3.key(table, name))
            except Exception as exc:
                if not_found(exc):
                    return None
                raise
        return int(meta["size"]), meta["last_modified"].timestamp()

    def delete_file(self, table: str, name: str) -> bool:
        import obstore

        if self.stat(table, name) is None:
            return False
        with self._calling(f"cannot delete a file of offline table {table!r}"):
            obstore.delete(self.s3.store, self.s3.key(table, name))
        return True

    def names(self, table: str, folder: str) -> list[str]:
        import obstore

        prefix = self.s3.key(table, folder) + "/"
        with self._calling(f"cannot list offline table {table!r}"):
            found = obstore.list_with_delimiter(self.s3.store, prefix)
        return [str(m["path"])[len(prefix):] for m in found["objects"]]

    def read(self, table: str, name: str) -> bytes:
        import obstore

        with self._calling(f"cannot read offline table {table!r}"):
            return bytes(obstore.get(self.s3.store, self.s3.key(table, name)).bytes())

    def remove(self, table: str) -> None:
        import obstore

        with self._calling(f"cannot drop offline table {table!r}"):
            for first in (f"{_LOG}/", ""):  # the log first: no longer a table
                prefix = self.s3.key(table) + "/" + first
                for chunk in obstore.list(self.s3.store, prefix, chunk_size=1000):
                    obstore.delete(self.s3.store, [m["path"] for m in chunk])

    def arrow_filesystem(self, table: str) -> pyarrow.fs.FileSystem:
        return self.s3.arrow_filesystem(table)

    def error(self, exc: BaseException, table: str, what: str) -> StorageError | None:
        return s3_error(exc, self.uri, what)

    @contextmanager
    def _calling(self, what: str) -> Iterator[None]:
        try:
            yield
        except StorageError:
            raise
        except Exception as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise (s3_error(exc, self.uri, what)
                   or StorageError(f"{what}: {text}", store=self.uri)) from exc


def location_from_uri(uri: str, s3: S3Options | None = None) -> TableLocation:
    """``file:///path`` or ``s3://bucket/prefix``."""
    from modelyard.errors import ConfigurationError

    if uri.startswith("file://"):
        return LocalTables(Path(uri[len("file://"):]))
    if uri.startswith("s3://"):
        return S3Tables(uri, s3)
    raise ConfigurationError(
        f"unsupported offline store URI {uri!r}: use file:///path or s3://bucket/prefix",
        uri=uri)
