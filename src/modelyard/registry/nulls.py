"""Rows a model can take, when it cannot take nulls.

Registration calls ``model.predict`` on rows of the training set (or the input example): to
infer the signature, check the ONNX twin and build the reference profile. A model fitted on
filled data (``train.fillna(0)``) fails on rows with nulls, which a training set with window
features usually has (an entity with no event in the window). Registration then keeps the
rows without nulls, says so in one :class:`NullRowsWarning` line, and infers a signature whose
columns do not accept nulls, so that serving refuses such rows with a clear error instead of
failing inside the model. When no row is left, or the model fails for another reason, it
raises one short :class:`~modelyard.errors.InvalidInputError`. Evaluation does not drop rows
(its metrics would then describe other data): it refuses with the same kind of error.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["NullRowsWarning", "Predicted", "first_line", "model_input", "null_counts",
           "predict_rows", "refuse_prediction", "warn"]

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_FIX = "fill them in the model (e.g. a Pipeline starting with SimpleImputer)"
_LONGEST = 160  # characters of a library's message quoted in ours


class NullRowsWarning(UserWarning):
    """A version was registered with only the rows its model can take: those without nulls."""


@dataclass(frozen=True)
class Predicted:
    """Rows the model predicted on, its outputs, and the columns whose nulls it could not
    take (empty when it took every row given)."""

    rows: pd.DataFrame
    outputs: Any
    refused_nulls: tuple[str, ...] = ()
    given: int = 0  # rows given, before those with nulls were left out
    reason: str = ""  # the model's error on the rows with nulls


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message``, cut to a readable length."""
    text = str(exc).strip().splitlines()[0].strip() if str(exc).strip() else ""
    if len(text) > _LONGEST:
        text = text[:_LONGEST - 3].rstrip() + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def null_counts(frame: pd.DataFrame) -> dict[str, int]:
    """Columns holding nulls (or NaN) -> how many rows."""
    counts = frame.isna().sum()
    return {str(c): int(n) for c, n in counts.items() if n}


def describe_nulls(counts: dict[str, int], rows: int, shown: int = 3) -> str:
    """``a: 3 of 20 rows, b: 1 of 20 rows``: the first few columns with nulls."""
    items = [f"{c}: {n} of {rows} rows" for c, n in list(counts.items())[:shown]]
    more = len(counts) - shown
    return ", ".join(items) + (f" and {more} more column(s)" if more > 0 else "")


def model_input(model: Any, frame: pd.DataFrame) -> Any:
    """``frame`` as the model takes it: its NumPy values for a scikit-learn estimator that
    was fitted on arrays (it records ``n_features_in_`` but no ``feature_names_in_``, and
    would warn about a frame's names), else the frame itself."""
    if (hasattr(model, "n_features_in_") and not hasattr(model, "feature_names_in_")
            and hasattr(model, "get_params")):
        return frame.to_numpy()
    return frame


def predict_rows(model: Any, frame: pd.DataFrame, name: str, *, what: str) -> Predicted:
    """The model's predictions on ``frame`` ("the training set", "the input example"), or
    else on its rows without nulls when the model fails on the others. Raises one short
    InvalidInputError when it cannot predict at all."""
    try:
        return Predicted(frame, model.predict(model_input(model, frame)), (), len(frame))
    except Exception as exc:
        error = exc
    nulls = null_counts(frame)
    if not nulls:
        raise InvalidInputError(
            f"model {name!r} could not predict on {what} (columns "
            f"{', '.join(map(str, frame.columns))}): {first_line(error)}. Pass features=[...] "
            "(the columns it was trained on) or an input_example", field="features",
            model=name) from None
    complete = frame.dropna().reset_index(drop=True)
    if complete.empty:
        raise InvalidInputError(
            f"model {name!r} cannot take nulls ({first_line(error)}), and every row of "
            f"{what} has some ({describe_nulls(nulls, len(frame))}): {_FIX}, or pass an "
            "input_example without nulls", field="features", model=name,
            columns=list(nulls)) from None
    try:
        outputs = model.predict(model_input(model, complete))
    except Exception as exc:
        raise InvalidInputError(
            f"model {name!r} could not predict on {what}, even on its rows without nulls: "
            f"{first_line(exc)}. Pass features=[...] (the columns it was trained on) or an "
            "input_example", field="features", model=name) from None
    return Predicted(complete, outputs, tuple(nulls), len(frame), first_line(error))


def warn(message: str, category: type[Warning] = NullRowsWarning) -> None:
    """A warning pointing at the user's code (the first frame outside modelyard)."""
    level = 2  # warn's caller
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    warnings.warn(message, category, stacklevel=level)


def refuse_prediction(exc: Exception, features: pd.DataFrame, who: str, what: str
                      ) -> InvalidInputError:
    """The short error for a model that failed on ``features`` ("the evaluation data"),
    naming the columns with nulls when there are some."""
    nulls = null_counts(features)
    if nulls:
        return InvalidInputError(
            f"{who} could not predict on {what} ({first_line(exc)}), which has nulls "
            f"({describe_nulls(nulls, len(features))}): {_FIX}, or in the data",
            field="data", columns=list(nulls))
    return InvalidInputError(f"{who} could not predict on {what}: {first_line(exc)}",
                             field="data")
