"""The prediction log as a folder of Parquet files, for a project without a database server
or for logs read by other tools (DuckDB, Spark, pandas).

::

    <root>/predictions/<model>/<first at_us>-<last at_us>-<uuid>.parquet
    <root>/labels/<model>/<labelled_at_us>-<uuid>.parquet
    <root>/failures/<model>/<first at_us>-<last at_us>-<uuid>.parquet
    <root>/tmp/                      files being written

Each write puts one file per model: it is written in ``tmp/``, fsync'ed and renamed into
place, so a file is whole or absent, even when the writing process is killed; a write of
several models' records is atomic per model. The file name carries the batch's time range
(zero-padded, so names sort by time), and a read of a time range opens only the files that
overlap it. Files are never rewritten: a record written twice (a retried batch) is in two
files, and readers keep one copy per ``(request_id, row, model, version, role)``, the one in
the file whose name sorts first. Each ``add_labels`` call is one labels file; for a prediction
row labelled more than once, the latest stored label wins. Failed requests are written and
read like predictions, one copy kept per ``(model, request_id)``.
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from modelyard.backends.metadata.predictions import (
    FailureRecord,
    Label,
    LabelResult,
    PredictionRecord,
    PredictionStore,
    Role,
)
from modelyard.backends.predictions.codec import (
    StoredFailure,
    StoredPrediction,
    check_failure,
    check_label,
    check_model,
    check_query,
    check_record,
    failure_frame,
    labels_frame,
    prediction_frame,
)
from modelyard.backends.predictions.matching import match_labels
from modelyard.backends.resources import resource_error
from modelyard.errors import ModelyardError, StorageError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["ParquetPredictionStore"]

_PREDICTION_FILE = re.compile(r"^(\d{20})-(\d{20})-[0-9a-f]{32}\.parquet$")
_LABEL_FILE = re.compile(r"^\d{20}-[0-9a-f]{32}\.parquet$")
_STALE_TMP_S = 3600.0  # files left in tmp/ by a killed writer are removed after this

P = ParamSpec("P")
R = TypeVar("R")


def _translate(fn: Callable[P, R]) -> Callable[P, R]:
    """File-system and Parquet errors as StorageError."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        import pyarrow as pa

        try:
            return fn(*args, **kwargs)
        except ModelyardError:
            raise
        except (OSError, pa.ArrowException) as exc:
            store = args[0] if args else None
            root = getattr(store, "root", None)
            clear = None if root is None else resource_error(
                exc, root, "cannot use the prediction store")
            raise clear or StorageError(f"prediction store error: {exc}") from exc

    return wrapper


def _prediction_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([
        ("request_id", pa.string()), ("row", pa.int64()), ("model", pa.string()),
        ("version", pa.int64()), ("role", pa.string()), ("at_us", pa.int64()),
        ("latency_ms", pa.float64()), ("status", pa.string()), ("reason", pa.string()),
        ("entity", pa.string()), ("features", pa.string()), ("output", pa.string()),
    ])  # status and reason came later: older files read them as null


def _failure_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([
        ("request_id", pa.string()), ("model", pa.string()), ("version", pa.int64()),
        ("role", pa.string()), ("at_us", pa.int64()), ("latency_ms", pa.float64()),
        ("status", pa.int64()), ("error", pa.string()), ("endpoint", pa.string()),
        ("field", pa.string()),
    ])


def _label_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([("request_id", pa.string()), ("row", pa.int64()),
                      ("labelled_at_us", pa.int64()), ("label", pa.string())])


class ParquetPredictionStore(PredictionStore):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = f"file://{root}"
        self._tmp = root / "tmp"
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
            for stale in self._tmp.iterdir():
                if time.time() - stale.stat().st_mtime > _STALE_TMP_S:
                    stale.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot use the prediction store folder {root}: "
                               f"{exc.strerror or exc}", path=str(root)) from exc

    # --- files ----------------------------------------------------------------------------

    def _folder(self, kind: str, model: str) -> Path:
        return self.root / kind / model

    def _prediction_files(self, model: str, start_us: int | None = None,
                          end_us: int | None = None, kind: str = "predictions") -> list[str]:
        """The model's files (of predictions, or of failures) whose time range meets
        ``[start_us, end_us)``, by name."""
        folder = self._folder(kind, model)
        if not folder.is_dir():
            return []
        found = []
        for name in sorted(os.listdir(folder)):
            m = _PREDICTION_FILE.match(name)
            if m is None:
                continue
            first, last = int(m[1]), int(m[2])
            if (start_us is None or last >= start_us) and (end_us is None or first < end_us):
                found.append(str(folder / name))
        return found

    def _install(self, tables: list[tuple[pa.Table, Path]]) -> None:
        """Write every table to a temporary file, fsync them, then rename each into place."""
        import pyarrow.parquet as pq

        written: list[tuple[str, Path]] = []
        try:
            for table, final in tables:
                fd, tmp = tempfile.mkstemp(dir=self._tmp, prefix="write-", suffix=".parquet")
                written.append((tmp, final))
                with os.fdopen(fd, "wb") as out:
                    pq.write_table(table, out, compression="zstd")
                    out.flush()
                    os.fsync(out.fileno())
            for tmp, final in written:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)
                _fsync_folder(final.parent)
        except BaseException:
            for tmp, _ in written:
                Path(tmp).unlink(missing_ok=True)
            raise

    def _scan(self, files: list[str], columns: list[str], where: Any,
              schema: pa.Schema | None = None) -> pa.Table:
        import pyarrow.dataset as ds

        schema = _prediction_schema() if schema is None else schema
        if not files:
            return schema.empty_table().select(columns)
        dataset = ds.dataset(files, format="parquet", schema=schema)
        return dataset.to_table(columns=columns, filter=where, use_threads=False)

    def _batch_files(self, kind: str, rows: Sequence[StoredPrediction | StoredFailure],
                     schema: pa.Schema) -> list[tuple[pa.Table, Path]]:
        """One table per model, named by the batch's time range."""
        import pyarrow as pa

        by_model: dict[str, list[StoredPrediction | StoredFailure]] = {}
        for row in rows:
            by_model.setdefault(row.model, []).append(row)
        tables = []
        for model, batch in by_model.items():
            columns = list(zip(*batch, strict=True))
            table = pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in
                                          zip(columns, schema, strict=True)], schema=schema)
            first = min(r.at_us for r in batch)
            last = max(r.at_us for r in batch)
            name = f"{first:020d}-{last:020d}-{uuid.uuid4().hex}.parquet"
            tables.append((table, self._folder(kind, model) / name))
        return tables

    # --- predictions ----------------------------------------------------------------------

    @_translate
    def write(self, records: Sequence[PredictionRecord]) -> None:
        rows = [check_record(r) for r in records]
        self._install(self._batch_files("predictions", rows, _prediction_schema()))

    def _filter(self, version: int | None, start_us: int | None, end_us: int | None,
                role: Role | None) -> Any:
        import pyarrow.dataset as ds

        where = ds.scalar(True)
        if version is not None:
            where &= ds.field("version") == version
        if start_us is not None:
            where &= ds.field("at_us") >= start_us
        if end_us is not None:
            where &= ds.field("at_us") < end_us
        if role is not None:
            where &= ds.field("role") == role
        return where

    @_translate
    def read(self, model: str, *, version: int | None = None, start_us: int | None = None,
             end_us: int | None = None, role: Role | None = None,
             limit: int | None = None) -> pd.DataFrame:
        check_query(model, version, start_us, end_us, role, limit)
        files = self._prediction_files(model, start_us, end_us)
        table = self._scan(files, list(_prediction_schema().names),
                           self._filter(version, start_us, end_us, role))
        data = table.to_pydict()
        unique: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        for row in zip(*data.values(), strict=True):
            unique.setdefault(row[:5], row)  # (request_id, row, model, version, role)
        ordered = sorted(unique.values(), key=lambda r: (r[5], r[0], r[1], r[3], r[4]))
        if limit is not None:
            ordered = ordered[max(0, len(ordered) - limit):] if limit else []
        labels = self._latest_labels(model) if ordered else {}
        return prediction_frame([(*r, labels.get((r[0], r[1]), (0, None))[1])
                                 for r in ordered])

    @_translate
    def count(self, model: str, *, version: int | None = None, start_us: int | None = None,
              end_us: int | None = None, role: Role | None = None) -> int:
        check_query(model, version, start_us, end_us, role)
        files = self._prediction_files(model, start_us, end_us)
        table = self._scan(files, ["request_id", "row", "version", "role"],
                           self._filter(version, start_us, end_us, role))
        return int(table.group_by(["request_id", "row", "version", "role"]).aggregate([])
                   .num_rows)

    # --- failed requests --------------------------------------------------------------------

    @_translate
    def write_failures(self, records: Sequence[FailureRecord]) -> None:
        rows = [check_failure(r) for r in records]
        self._install(self._batch_files("failures", rows, _failure_schema()))

    def _failures(self, model: str, version: int | None, start_us: int | None,
                  end_us: int | None) -> list[tuple[Any, ...]]:
        """The stored failures in the window, one per request id, oldest first."""
        check_query(model, version, start_us, end_us, None)
        files = self._prediction_files(model, start_us, end_us, kind="failures")
        schema = _failure_schema()
        table = self._scan(files, list(schema.names),
                           self._filter(version, start_us, end_us, None), schema)
        unique: dict[str, tuple[Any, ...]] = {}
        for row in zip(*table.to_pydict().values(), strict=True):
            unique.setdefault(row[0], row)  # the copy in the file whose name sorts first
        return sorted(unique.values(), key=lambda r: (r[4], r[0]))

    @_translate
    def read_failures(self, model: str, *, version: int | None = None,
                      start_us: int | None = None, end_us: int | None = None
                      ) -> pd.DataFrame:
        return failure_frame(self._failures(model, version, start_us, end_us))

    @_translate
    def count_failures(self, model: str, *, version: int | None = None,
                       start_us: int | None = None, end_us: int | None = None) -> int:
        return len(self._failures(model, version, start_us, end_us))

    # --- labels ---------------------------------------------------------------------------

    def _latest_labels(self, model: str) -> dict[tuple[str, int], tuple[int, str]]:
        """Per labelled prediction row, its latest stored label and when it was stored."""
        import pyarrow.dataset as ds

        folder = self._folder("labels", model)
        names = sorted(os.listdir(folder)) if folder.is_dir() else []
        files = [str(folder / n) for n in names if _LABEL_FILE.match(n)]
        if not files:
            return {}
        found = ds.dataset(files, format="parquet", schema=_label_schema()).to_table(
            use_threads=False).to_pydict()
        latest: dict[tuple[str, int], tuple[int, str]] = {}
        for r, n, at, label in zip(found["request_id"], found["row"], found["labelled_at_us"],
                                   found["label"], strict=True):
            if (r, n) not in latest or at >= latest[(r, n)][0]:  # files in time order
                latest[(r, n)] = (at, label)
        return latest

    @_translate
    def add_labels(self, model: str, labels: Sequence[Label]) -> LabelResult:
        import pyarrow as pa
        import pyarrow.dataset as ds

        check_model(model)
        checked = [check_label(label, i) for i, label in enumerate(labels)]
        if not checked:
            return LabelResult(0, 0)
        request_ids = sorted({c.request_id for c in checked if c.request_id is not None})
        entities = sorted({c.entity for c in checked if c.entity is not None})
        logged: set[tuple[str, int]] = set()
        if request_ids:
            found = self._scan(self._prediction_files(model), ["request_id", "row"],
                               ds.field("request_id").isin(request_ids)).to_pydict()
            logged = set(zip(found["request_id"], found["row"], strict=True))
        history: list[tuple[str, int, str, int]] = []
        if entities:
            latest = max(c.at_us for c in checked if c.at_us is not None)
            found = self._scan(self._prediction_files(model, None, latest + 1),
                               ["entity", "at_us", "request_id", "row"],
                               ds.field("entity").isin(entities)
                               & (ds.field("at_us") <= latest)).to_pydict()
            history = list(zip(found["entity"], found["at_us"], found["request_id"],
                               found["row"], strict=True))
        targets, result = match_labels(model, checked, logged, history)
        now = time.time_ns() // 1_000
        keys = list(targets)
        table = pa.table({"request_id": pa.array([k[0] for k in keys], pa.string()),
                          "row": pa.array([k[1] for k in keys], pa.int64()),
                          "labelled_at_us": pa.array([now] * len(keys), pa.int64()),
                          "label": pa.array(list(targets.values()), pa.string())},
                         schema=_label_schema())
        self._install([(table, self._folder("labels", model)
                        / f"{now:020d}-{uuid.uuid4().hex}.parquet")])
        return result

    @_translate
    def labels(self, model: str) -> pd.DataFrame:
        latest = self._latest_labels(check_model(model))
        return labels_frame(sorted(((r, n, at, label) for (r, n), (at, label) in latest.items()),
                                   key=lambda x: (x[2], x[0], x[1])))


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform allows opening folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
