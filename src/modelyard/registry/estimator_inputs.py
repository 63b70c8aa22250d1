"""A model's inputs from what the fitted estimator records, when no example is given.

A scikit-learn estimator (and the scikit-learn APIs of XGBoost and LightGBM) records the
number of columns it was fitted on (``n_features_in_``) and, when it was fitted on a frame,
their names (``feature_names_in_``). That is enough for a signature: the names (``x0``,
``x1``... for a model fitted on arrays, the names scikit-learn itself gives such columns),
and a type per column, ``float`` unless an encoder the model fitted says otherwise (a
``OneHotEncoder`` or ``OrdinalEncoder`` inside a ``ColumnTransformer`` records each column's
categories, and so whether it holds text or whole numbers).

:func:`rows_from_estimator` returns a small frame of made-up rows of those columns (seeded;
text columns drawn from the recorded categories), on which the registry infers the outputs
and checks the ONNX twin, as it does on an input example. The rows are never kept as the
version's input example, nor as its monitoring reference: they say nothing about real data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["rows_from_estimator"]

_ROWS = 64


def rows_from_estimator(model: Any, rows: int = _ROWS, seed: int = 0) -> pd.DataFrame | None:
    """Made-up rows of the columns ``model`` was fitted on, or None when it records none."""
    import numpy as np
    import pandas as pd

    count = getattr(model, "n_features_in_", None)
    if not isinstance(count, (int, np.integer)) or count < 1:
        return None
    recorded = getattr(model, "feature_names_in_", None)
    names = ([str(n) for n in recorded] if recorded is not None
             else [f"x{i}" for i in range(int(count))])
    if len(names) != count or len(set(names)) != len(names):
        return None
    known = _categories(model, names)
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for name in names:
        values = known.get(name)
        if values is None or len(values) == 0:
            columns[name] = rng.normal(size=rows)
        elif values.dtype.kind in "OUS":
            columns[name] = pd.Series(rng.choice(values.astype(str), size=rows), dtype=object)
        elif values.dtype.kind in "iu":
            columns[name] = rng.choice(values, size=rows).astype(np.int64)
        else:
            columns[name] = rng.choice(values, size=rows).astype(np.float64)
    return pd.DataFrame(columns)


def _categories(model: Any, names: list[str]) -> dict[str, np.ndarray]:
    """Each column's categories, as recorded by the encoders a ColumnTransformer fitted on
    it (at the start of a Pipeline or alone)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    first = model
    while isinstance(first, Pipeline):
        first = first.steps[0][1]
    if not isinstance(first, ColumnTransformer):
        return {}
    found: dict[str, np.ndarray] = {}
    for _, transformer, columns in getattr(first, "transformers_", []):
        encoder = _encoder(transformer)
        categories = getattr(encoder, "categories_", None)
        selected = _selected(columns, names)
        if categories is None or selected is None or len(categories) != len(selected):
            continue
        for name, values in zip(selected, categories, strict=True):
            found[name] = values
    return found


def _encoder(transformer: Any) -> Any:
    """The transformer itself, or the first step of a Pipeline that recorded categories."""
    from sklearn.pipeline import Pipeline

    if isinstance(transformer, Pipeline):
        for _, step in transformer.steps:
            if hasattr(step, "categories_"):
                return step
        return None
    return transformer


def _selected(columns: Any, names: list[str]) -> list[str] | None:
    """The column names a ColumnTransformer's entry selected (names or positions)."""
    import numpy as np

    if isinstance(columns, str):
        return [columns] if columns in names else None
    try:
        items = list(columns)
    except TypeError:  # a callable or a slice: not followed
        return None
    if items and all(isinstance(c, str) for c in items):
        return items if all(c in names for c in items) else None
    if items and all(isinstance(c, (int, np.integer)) and not isinstance(c, bool)
                     for c in items):
        return [names[int(c)] for c in items] if all(
            0 <= int(c) < len(names) for c in items) else None
    return None
