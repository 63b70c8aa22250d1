"""Which input column each feature of a fitted scikit-learn preprocessing comes from.

:func:`trace` follows ColumnTransformers and Pipelines down to their transformers: a
OneHotEncoder's columns come from the column they encode (grouped per input, in order), an
imputer's missing indicator (``missingindicator_age``) from the column it watches, and a
transformer that keeps its inputs' names (scalers, ordinal encoders, imputers, passthrough,
feature selectors) maps each output to the input of that name. Anything whose outputs mix
inputs (PCA, polynomial features, a function without feature names) cannot be traced.

Explanations use it to add the contributions of a pipeline's transformed features back into
the input columns a request sends (:func:`sum_back`), which keeps their sum.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = ["dense", "source_matrix", "sum_back", "trace"]

_INDICATOR = "missingindicator_"


def trace(step: Any, names: list[str]) -> tuple[list[str], list[str]] | None:
    """(output names, the input column each output comes from) of a fitted transformer
    given its input names, or None when an output depends on several inputs or cannot be
    told apart."""
    if isinstance(step, str) or step is None:
        return (list(names), list(names)) if step in ("passthrough", None) else None
    kind = type(step).__name__
    if kind == "Pipeline":
        out, src = list(names), list(names)
        for _, sub in step.steps:
            traced = trace(sub, out)
            if traced is None:
                return None
            origin = dict(zip(out, src, strict=True))
            out, src = traced[0], [origin[s] for s in traced[1]]
        return out, src
    if kind == "ColumnTransformer":
        return _trace_columns(step)
    try:
        out = [str(n) for n in step.get_feature_names_out(names)]
    except Exception:
        return None
    if kind == "OneHotEncoder":  # outputs grouped per input, in order
        widths = getattr(step, "_n_features_outs", None)  # columns per input (private)
        if widths is None or len(widths) != len(names) or sum(widths) != len(out):
            return None
        return out, [n for n, width in zip(names, widths, strict=True) for _ in range(width)]
    known = set(names)
    src = []
    for name in out:  # one-to-one transformers keep names; imputers add indicators
        source = name.removeprefix(_INDICATOR) if name not in known else name
        if source not in known:
            return None
        src.append(source)
    return out, src


def _trace_columns(transformer: Any) -> tuple[list[str], list[str]] | None:
    """trace for a ColumnTransformer: its transformers' outputs, concatenated in order."""
    import numpy as np

    fitted = getattr(transformer, "feature_names_in_", None)
    if fitted is None:
        return None
    every = [str(c) for c in fitted]
    sources: list[str] = []
    for _, step, columns in transformer.transformers_:
        if isinstance(step, str) and step == "drop":
            continue
        if isinstance(columns, str):
            chosen = [columns]
        elif isinstance(columns, int | np.integer):
            chosen = [every[int(columns)]]
        elif isinstance(columns, slice) and not all(
                isinstance(b, int | None) for b in (columns.start, columns.stop)):
            return None
        else:
            index = np.asarray(columns) if not isinstance(columns, slice) else columns
            if isinstance(index, np.ndarray) and index.dtype.kind not in "biu":
                chosen = [str(c) for c in index]
            else:
                chosen = list(np.asarray(every, dtype=object)[index])
        if not chosen:
            continue
        traced = trace(step, chosen)
        if traced is None:
            return None
        sources.extend(traced[1])
    out = [str(n) for n in transformer.get_feature_names_out()]
    return (out, sources) if len(out) == len(sources) else None


def source_matrix(sources: list[str], inputs: list[str]) -> np.ndarray:
    """A 0/1 matrix, one row per transformed feature and one column per input column,
    with a 1 where the feature comes from the column."""
    import numpy as np

    matrix = np.zeros((len(sources), len(inputs)))
    for row, source in enumerate(sources):
        matrix[row, inputs.index(source)] = 1.0
    return matrix


def dense(data: Any) -> np.ndarray:
    """A transformer's output (array, sparse matrix or frame) as dense float64."""
    import numpy as np

    if hasattr(data, "toarray"):
        data = data.toarray()
    return np.asarray(data, dtype=np.float64)


def sum_back(values: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Per-feature values shaped (rows, features, outputs) summed into the input columns
    of :func:`source_matrix`: (rows, inputs, outputs)."""
    import numpy as np

    summed: np.ndarray = np.einsum("rtk,ti->rik", values, matrix)
    return summed
