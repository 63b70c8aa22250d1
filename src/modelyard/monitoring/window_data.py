"""A window of production data, split into what the checks read.

From the prediction log (:meth:`PredictionStore.read`), whose ``features.*``, ``output.*``
and ``label.*`` columns come back from JSON: timestamps as ISO text, numbers that had a null
as objects. :func:`align_to_reference` gives such columns back the kind the reference has,
where every present value converts; a column that does not convert is left as it is, so
that drift and data quality report the type mismatch rather than hide it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from modelyard.stats.profile import ReferenceProfile

__all__ = ["WindowData", "align_to_reference", "from_frame", "from_log"]


@dataclass(frozen=True)
class WindowData:
    features: pd.DataFrame  # the model's inputs, one row per predicted row
    outputs: pd.DataFrame  # what the model returned (``prediction``, ...)
    labels: pd.DataFrame  # ground truth, null where none arrived yet
    at_us: np.ndarray[Any, Any] | None  # when each row was predicted
    versions: dict[int, int]  # version -> rows

    @property
    def rows(self) -> int:
        return len(self.features)


def _prefixed(frame: pd.DataFrame, prefix: str) -> pd.DataFrame:
    columns = [c for c in frame.columns if c.startswith(prefix)]
    part = frame[columns].copy()
    part.columns = [c[len(prefix):] for c in columns]
    return part.reset_index(drop=True)


def from_log(frame: pd.DataFrame) -> WindowData:
    """A window from the prediction log's frame: its predicted rows. A row answered without
    a prediction (a missing or expired entity, logged with its ``reason``) has no output
    and null inputs, so drift, quality and performance leave it out; service health, which
    reads the log itself, still counts its request."""
    if "reason" in frame.columns and frame["reason"].notna().any():
        frame = frame[frame["reason"].isna()]
    versions = {int(v): int(n) for v, n in frame["version"].value_counts().items()}
    return WindowData(_prefixed(frame, "features."), _prefixed(frame, "output."),
                      _prefixed(frame, "label."), frame["at_us"].to_numpy(), versions)


def from_frame(data: Any, *, inputs: Sequence[str], label: str | None,
               predict: Callable[[pd.DataFrame], Any]) -> WindowData:
    """A window from a frame given directly (``yard.monitoring.check(model, data=...)``):
    the model's ``inputs`` (every column but the label when the model names none), the
    label column when named, and what ``predict`` returns on the inputs."""
    import pandas as pd

    from modelyard.stats.evaluation import to_pandas

    frame = to_pandas(data, field="data").reset_index(drop=True)
    if len(frame) == 0:
        raise InvalidInputError("data has no rows; there is nothing to check", field="data")
    missing = [c for c in inputs if c not in frame.columns]
    if missing:
        raise InvalidInputError(f"data lacks the model's input column(s) "
                                f"{', '.join(missing)}", field="data")
    if label is not None and label not in frame.columns:
        raise InvalidInputError(f"data has no label column {label!r}", field="label")
    features = frame[list(inputs) or [c for c in frame.columns if c != label]]
    predictions = predict(features)
    outputs = (predictions.reset_index(drop=True) if isinstance(predictions, pd.DataFrame)
               else pd.DataFrame({"prediction": list(predictions)}))
    labels = frame[[label]] if label is not None else pd.DataFrame(index=features.index)
    return WindowData(features, outputs, labels, None, {})


def align_to_reference(frame: pd.DataFrame, profile: ReferenceProfile | None,
                       outputs: bool = False) -> pd.DataFrame:
    """``frame`` with object columns converted to the reference's kind where they convert
    whole (see the module docstring)."""
    import pandas as pd

    if profile is None:
        return frame
    columns = profile.predictions if outputs else profile.columns
    converted: dict[str, Any] = {}
    for name, ref in columns.items():
        if name not in frame.columns or frame[name].dtype != object:
            continue
        series = frame[name]
        try:
            if ref.kind == "timestamp":
                converted[name] = pd.to_datetime(series, utc=True, format="ISO8601")
            elif ref.kind == "numeric":
                converted[name] = pd.to_numeric(series)
            elif ref.kind == "boolean" and series.dropna().map(type).eq(bool).all():
                converted[name] = series.astype("boolean")
        except (ValueError, TypeError):
            continue
    return frame.assign(**converted) if converted else frame
