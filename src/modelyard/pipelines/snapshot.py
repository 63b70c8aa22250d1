"""The frozen evaluation snapshot a pipeline declares (:class:`EvaluationWindow`), built as
of the run's time: a point-in-time training set of the window's labelled events, plus the
labelled rows of the prediction log in the window. Champion and challenger are then scored
on exactly these rows (:mod:`.decisions`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

    from modelyard.backends.metadata.predictions import PredictionStore
    from modelyard.pipelines.context import PipelineContext
    from modelyard.pipelines.declarations import EvaluationWindow

__all__ = ["Snapshot", "build", "rows_sha256"]


@dataclass(frozen=True)
class Snapshot:
    frame: pd.DataFrame
    label: str
    described: dict[str, Any]  # what the decision keeps of where the rows came from


def rows_sha256(frame: pd.DataFrame) -> str:
    """A hash of the rows' values (columns in name order), the same for the same rows."""
    import pandas as pd

    ordered = frame[sorted(map(str, frame.columns))]
    hashed = pd.util.hash_pandas_object(ordered, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()


def _training_rows(declared: EvaluationWindow, ctx: PipelineContext, start: datetime
                   ) -> tuple[pd.DataFrame, dict[str, Any]]:
    import pyarrow.compute as pc

    assert declared.labels is not None and declared.label is not None
    features = ctx.features
    source = features.source(declared.labels)
    table = features.tables.read(source.name, as_of=ctx.now)
    if declared.label not in table.column_names:
        raise InvalidInputError(f"the labels source {source.name!r} has no column "
                                f"{declared.label!r} (its columns: "
                                f"{', '.join(table.column_names)})", field="evaluation.label")
    column = table[source.timestamp]
    spine = table.filter(pc.and_(pc.greater_equal(column, start), pc.less(column, ctx.now)))
    if not spine.num_rows:
        return _empty(), {"rows": 0, "labels": source.name}
    ts = ctx.training_set(spine, list(declared.features), label=declared.label,
                          timestamp=source.timestamp)
    lineage = ts.lineage()
    described = {k: lineage.get(k) for k in ("training_set_id", "as_of", "commits",
                                             "features", "rows")}
    described["labels"] = source.name
    seen = [c for c in features.commits(source.name) if c.ingested_at <= ctx.now]
    described["commits"] = {**(described.get("commits") or {}),
                            source.name: seen[-1].commit_id if seen else None}
    return ts.to_pandas(), described


def _empty() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame()


def _logged_rows(declared: EvaluationWindow, model: str, predictions: PredictionStore,
                 start: datetime, end: datetime) -> pd.DataFrame:
    """Labelled rows the clients were answered with (primary and canary), once each."""
    import pandas as pd

    from modelyard.serving.labels import epoch_us

    frame = predictions.read(model, start_us=epoch_us(start), end_us=epoch_us(end))
    column = f"label.{declared.label}"
    if not len(frame) or column not in frame.columns:
        return pd.DataFrame()
    kept = frame[(frame["role"] != "shadow") & frame[column].notna()]
    kept = kept.drop_duplicates(["request_id", "row"])
    renamed = {c: c.split(".", 1)[1] for c in kept.columns
               if c.startswith(("features.", "entity."))}
    renamed[column] = str(declared.label)
    return kept[list(renamed)].rename(columns=renamed).reset_index(drop=True)


def build(declared: EvaluationWindow, ctx: PipelineContext, model: str,
          predictions: PredictionStore | None) -> Snapshot:
    """The snapshot of the window ending at ``ctx.now`` (see the module)."""
    import pandas as pd

    assert declared.label is not None
    start = ctx.now - timedelta(milliseconds=declared.window_ms)
    parts: list[pd.DataFrame] = []
    described: dict[str, Any] = {"declared": declared.spec(), "as_of": ctx.now.isoformat(),
                                 "window": [start.isoformat(), ctx.now.isoformat()]}
    if declared.labels is not None:
        rows, described["training_set"] = _training_rows(declared, ctx, start)
        parts.append(rows)
    if declared.from_prediction_log:
        if predictions is None:
            raise InvalidInputError("this pipeline service was given no prediction log to "
                                    "take evaluation rows from", field="evaluation")
        logged = _logged_rows(declared, model, predictions, start, ctx.now)
        described["prediction_log"] = {"rows": len(logged)}
        parts.append(logged)
    frame = pd.concat([p for p in parts if len(p)], ignore_index=True) \
        if any(len(p) for p in parts) else pd.DataFrame()
    if not len(frame):
        raise InvalidInputError(
            f"the evaluation window of the last {declared.window} before "
            f"{ctx.now.isoformat()} holds no labelled row to score the candidate and the "
            "champion on", field="evaluation")
    missing = [s for s in declared.slices if s not in frame.columns]
    if missing:
        raise InvalidInputError(f"the evaluation rows have no slice column "
                                f"{', '.join(map(repr, missing))}", field="evaluation.slices")
    described["rows"] = len(frame)
    described["rows_sha256"] = rows_sha256(frame)
    return Snapshot(frame, str(declared.label), described)
