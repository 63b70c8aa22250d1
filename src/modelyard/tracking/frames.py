"""Runs as pandas frames: the search result and the side-by-side comparison."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelyard.backends.metadata.base import RunRecord

if TYPE_CHECKING:
    import pandas as pd

BASE_COLUMNS = ("run_id", "experiment", "name", "status", "start_time", "end_time",
                "parent_run_id", "user", "host")
_ENTITY_ORDER = {"metrics": 0, "params": 1, "tags": 2}


@dataclass(frozen=True)
class RunComparison:
    """Runs side by side: params that differ between them, and every metric."""

    runs: list[RunRecord]
    params: pd.DataFrame  # one row per differing param, one column per run
    metrics: pd.DataFrame  # one row per metric, one column per run


def runs_frame(records: Sequence[RunRecord], experiment_names: Mapping[int, str]
               ) -> pd.DataFrame:
    """One row per run: the base columns, then ``metrics.*`` (float, latest value),
    ``params.*`` and ``tags.*`` (strings), each group sorted by key."""
    import pandas as pd

    cols: dict[str, list[Any]] = {c: [] for c in BASE_COLUMNS}
    extra: dict[str, dict[int, Any]] = {}
    for i, r in enumerate(records):
        info = r.info
        cols["run_id"].append(info.run_id)
        cols["experiment"].append(experiment_names.get(info.experiment_id,
                                                       str(info.experiment_id)))
        cols["name"].append(info.name)
        cols["status"].append(info.status)
        cols["start_time"].append(info.start_time)
        cols["end_time"].append(info.end_time)
        cols["parent_run_id"].append(info.parent_run_id)
        cols["user"].append(info.user)
        cols["host"].append(info.host)
        for k, m in r.metrics.items():
            extra.setdefault("metrics." + k, {})[i] = m.value
        for k, v in r.params.items():
            extra.setdefault("params." + k, {})[i] = v
        for k, v in r.tags.items():
            extra.setdefault("tags." + k, {})[i] = v
    frame = pd.DataFrame({k: pd.Series(v, dtype="object") for k, v in cols.items()})
    for col in ("start_time", "end_time"):
        frame[col] = pd.to_datetime(frame[col].astype("float64"), unit="ms", utc=True)
    n = len(records)
    block = {}
    for col in sorted(extra, key=lambda c: (_ENTITY_ORDER[c.split(".", 1)[0]], c)):
        values = extra[col]
        dtype = "float64" if col.startswith("metrics.") else "object"
        block[col] = pd.Series([values.get(i) for i in range(n)], dtype=dtype)
    if block:
        frame = pd.concat([frame, pd.DataFrame(block)], axis=1)
    return frame


def compare(records: Sequence[RunRecord]) -> RunComparison:
    """Params that differ between the runs, and every metric, one column per run."""
    import pandas as pd

    labels = [f"{r.info.name} ({r.info.run_id[:8]})" for r in records]
    keys = sorted({k for r in records for k in r.params})
    differing = [k for k in keys if len({r.params.get(k) for r in records}) > 1]
    params = pd.DataFrame(
        {label: [r.params.get(k) for k in differing]
         for label, r in zip(labels, records, strict=True)},
        index=pd.Index(differing, name="param"),
    )
    mkeys = sorted({k for r in records for k in r.metrics})
    metrics = pd.DataFrame(
        {label: [r.metrics[k].value if k in r.metrics else None for k in mkeys]
         for label, r in zip(labels, records, strict=True)},
        index=pd.Index(mkeys, name="metric"), dtype="float64",
    )
    return RunComparison(list(records), params, metrics)
