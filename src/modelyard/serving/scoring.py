"""Batch scoring: a whole table scored by a registered version, as ``modelyard predict`` does.

Each input row is a spine row: when the version takes stored features, they are built for
it point in time (its entity keys, as of its timestamp) by the same training-set code path
the version was trained through, at the feature versions of its training set. The rows are
then checked against the signature and predicted in chunks; the output (the input's columns
plus the prediction columns) is written to a temporary file beside the target and moved
into place only when whole. The job is recorded as a tracking run of the ``batch-scoring``
experiment: the model version, the input's sha256, the feature lineage, rows and speed.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import pyarrow as pa

    from modelyard.client import Yard
    from modelyard.serving.loaded import LoadedVersion

__all__ = ["EXPERIMENT", "ScoringJob", "score"]

EXPERIMENT = "batch-scoring"
DEFAULT_CHUNK_ROWS = 50_000
Progress = Callable[[int, int], None]  # rows done, rows in all


@dataclass(frozen=True)
class ScoringJob:
    model: str
    version: int
    rows: int
    output: Path
    seconds: float
    run_id: str
    input_sha256: str
    training_set_id: str | None  # the features built for the rows, when any

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


def score(yard: Yard, ref: str, input_path: str | os.PathLike[str],
          output_path: str | os.PathLike[str], *, timestamp: str | None = None,
          chunk_rows: int = DEFAULT_CHUNK_ROWS, prefer_onnx: bool = False,
          progress: Progress | None = None) -> ScoringJob:
    """Score the Parquet file ``input_path`` with the version ``ref`` names into
    ``output_path``; see the module docs."""
    import pyarrow.parquet as pq

    from modelyard.serving.entities import feature_source
    from modelyard.serving.loaded import load_version

    began = time.perf_counter()
    source_path, target = Path(input_path), Path(output_path)
    if chunk_rows < 1:
        raise InvalidInputError(f"chunk_rows must be at least 1, got {chunk_rows}",
                                field="chunk_rows")
    if not source_path.is_file():
        raise InvalidInputError(f"no input file at {source_path}", field="input")
    if target.resolve() == source_path.resolve():
        raise InvalidInputError("the output would overwrite the input; name another file",
                                field="output")
    record = yard.models.get_version(ref)
    loaded = load_version(yard.models, record, prefer_onnx=prefer_onnx)
    if loaded.decoder is None:
        raise InvalidInputError(f"model {record.name}:{record.version} has no signature, so "
                                "its inputs cannot be found in a table", field="model")
    try:
        table = pq.read_table(source_path)
    except Exception as exc:
        raise InvalidInputError(f"cannot read {source_path} as Parquet: {exc}",
                                field="input") from exc
    digest = _sha256(source_path)
    inputs, training_set_id = table, None
    source = feature_source(yard.features, yard.features.online, record, loaded.input_names)
    if source is not None and table.num_rows:
        missing = [name for name in source.stored if name not in table.column_names]
        if missing:
            built = yard.training_set(table, list(source.refs), timestamp=timestamp)
            inputs, training_set_id = built.table, built.training_set_id
    with yard.start_run(EXPERIMENT, name=f"score {record.name}:{record.version}",
                        tags={"modelyard.model": f"{record.name}:{record.version}"}) as run:
        run.log_params({"model": record.name, "version": record.version,
                        "runtime": loaded.runtime, "input": str(source_path),
                        "input.sha256": digest, "output": str(target),
                        "rows": table.num_rows, "chunk_rows": chunk_rows,
                        "training_set": training_set_id or ""})
        _write(loaded, table, inputs, target, chunk_rows, progress)
        seconds = time.perf_counter() - began
        run.log_metrics({"seconds": seconds,
                         "rows_per_second": table.num_rows / seconds if seconds else 0.0})
    return ScoringJob(record.name, record.version, table.num_rows, target, seconds,
                      run.run_id, digest, training_set_id)


def _write(loaded: LoadedVersion, table: pa.Table, inputs: pa.Table, target: Path,
           chunk_rows: int, progress: Progress | None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    assert loaded.decoder is not None
    names = loaded.output_names
    absent = [n for n in loaded.input_names if n not in inputs.column_names]
    if absent:
        raise InvalidInputError(
            f"the input lacks the model's input column{'s' * (len(absent) > 1)} "
            f"{', '.join(absent)} (and no stored feature gives them)", field="input",
            missing=absent)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    writer: Any = None
    try:
        total = table.num_rows
        for start in range(0, max(total, 1), chunk_rows):
            part = inputs.slice(start, chunk_rows).select(loaded.input_names)
            rows = part.to_pylist()
            columns, bad = loaded.decoder.split(rows, "input")
            if bad:
                first = next(iter(bad.values()))
                row = next(iter(bad)) + start
                raise InvalidInputError(
                    f"row {row} of the input does not fit the model: "
                    + "; ".join(p.problem if p.field.endswith("]") else
                                f"{p.field.rsplit('.', 1)[-1]} {p.problem}" for p in first),
                    field="input", row=row, rows_refused=len(bad))
            predicted = loaded.predict_columns(columns) if rows else []
            chunk = table.slice(start, chunk_rows)
            for j, name in enumerate(names):
                values = predicted if len(names) == 1 else [
                    p[j] if isinstance(p, list) else p for p in predicted]
                chunk = chunk.append_column(_free(chunk, name), pa.array(values))
            if writer is None:
                writer = pq.ParquetWriter(tmp, chunk.schema)
            writer.write_table(chunk)
            if progress is not None:
                progress(min(start + chunk_rows, total), total)
        writer.close()
        writer = None
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)


def _free(table: pa.Table, name: str) -> str:
    """``name``, or ``name_1``... when the input already has such a column."""
    candidate, n = name, 0
    while candidate in table.column_names:
        n += 1
        candidate = f"{name}_{n}"
    return candidate


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
