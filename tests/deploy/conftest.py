"""A project with a registered scikit-learn model behind the ``production`` alias."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelyard import Yard

MODEL = "claims_model.V2"  # upper case, '_' and '.': not a Kubernetes name as it is


def frame(rows: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame({"age": rng.integers(18, 90, rows).astype("int64"),
                         "value": rng.normal(20_000, 5_000, rows)})


@pytest.fixture
def served(project: Path) -> Iterator[Yard]:
    """The model as version 1, ``production`` on it, logged in a run that recorded its
    environment (the bundle's constraints come from it)."""
    from sklearn.linear_model import LinearRegression

    import modelyard

    yard = modelyard.connect(capture_git=False)
    data = frame()
    model = LinearRegression().fit(data, 3.0 * data["age"] + 0.01 * data["value"])
    with yard.start_run("claims") as run:
        run.log_model(model, MODEL, input_example=data.head())
    yard.models.promote(MODEL, 1, alias="production")
    try:
        yield yard
    finally:
        yard.close()
