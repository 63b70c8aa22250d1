"""Candidates, the time split, and one candidate trained in a tracked run on each backend."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import joblib
import pandas as pd
import pytest

import modelyard
from modelyard import ConfigurationError, InvalidInputError, Yard
from modelyard.demo.candidates import (
    CATEGORICAL_FEATURES,
    FEATURES,
    HISTORY_NUMERIC,
    TARGET,
    default_candidates,
    require_sklearn,
)
from modelyard.demo.state import DemoConfig
from modelyard.demo.training import (
    MODEL_ARTIFACT,
    SIGNATURE_ARTIFACT,
    TimeSplit,
    build_training_set,
    model_frame,
    regression_metrics,
    split_bounds,
    time_split,
    train_candidate,
)
from modelyard.features.training import TrainingSet

if TYPE_CHECKING:
    from demo.conftest import SmallDemo


@pytest.fixture(scope="module")
def training_set(small_demo: SmallDemo) -> TrainingSet:
    data = small_demo.data
    _, end = split_bounds(data.start, 10, 2)
    with modelyard.connect(project=small_demo.result.root) as yard:
        return build_training_set(yard, data.claims, end)


@pytest.fixture(scope="module")
def split(small_demo: SmallDemo, training_set: TrainingSet) -> TimeSplit:
    return time_split(model_frame(training_set), small_demo.data.start, 10, 2)


def test_time_split_trains_before_and_validates_after(split: TimeSplit) -> None:
    assert split.valid_start == pd.Timestamp("2024-11-01", tz="UTC")
    assert split.valid_end == pd.Timestamp("2025-01-01", tz="UTC")
    assert split.train["event_time"].max() < split.valid_start
    assert split.valid["event_time"].min() >= split.valid_start
    assert split.valid["event_time"].max() < split.valid_end
    assert len(split.train) > 3 * len(split.valid) > 0
    assert set(FEATURES) | {TARGET} <= set(split.train.columns)
    assert "gender" not in FEATURES  # the sensitive attribute is kept for fairness checks
    assert "gender" in split.train.columns
    assert split.train[list(CATEGORICAL_FEATURES)].notna().all().all()
    assert split.train["days_since_last_claim"].isna().any()  # first claims have no history
    assert (split.train["days_since_last_claim"].dropna() > 0).all()
    assert set(HISTORY_NUMERIC) <= set(FEATURES)
    params = split.params()
    assert params["train.rows"] == len(split.train)
    assert params["valid.start"] == "2024-11-01T00:00:00+00:00"


def test_there_are_at_least_three_distinct_candidates() -> None:
    candidates = default_candidates(seed=1)
    names = [c.name for c in candidates]
    assert len(names) >= 3 and len(set(names)) == len(names)
    assert {"ridge", "random-forest", "hist-gradient-boosting"} <= set(names)
    for c in candidates:
        assert c.estimator() is not c.estimator()  # a fresh pipeline each time


def test_regression_metrics() -> None:
    import numpy as np

    y = np.array([100.0, 200.0, 300.0])
    perfect = regression_metrics(y, y)
    assert perfect == {"r2": 1.0, "rmse": 0.0, "mae": 0.0, "mape": 0.0}
    off = regression_metrics(y, y + 10)
    assert off["mae"] == pytest.approx(10) and off["rmse"] == pytest.approx(10)


@pytest.mark.parametrize("name", ["ridge", "random-forest"])
def test_candidates_fit_rows_with_missing_history(split: TimeSplit, name: str) -> None:
    candidate = next(c for c in default_candidates() if c.name == name)
    model = candidate.estimator()
    model.fit(split.train[list(FEATURES)], split.train[TARGET].to_numpy())
    first_claims = split.valid[split.valid["claims_365d"] == 0]
    assert len(first_claims) and first_claims["amount_365d_mean"].isna().all()
    assert pd.notna(model.predict(first_claims[list(FEATURES)])).all()


def test_a_candidate_is_tracked_with_its_model(yard: Yard, split: TimeSplit,
                                               training_set: TrainingSet) -> None:
    ridge = next(c for c in default_candidates() if c.name == "ridge")
    data_params = {"data.version": "ab" * 32, "data.claims.sha256": "cd" * 32}
    with yard.start_run("claims-demo", name="demo") as parent:
        result = train_candidate(yard, "claims-demo", ridge, split, parent=parent,
                                 data_params=data_params, training_set=training_set)
    rec = yard.get_run(result.run_id)
    assert rec.info.status == "finished"
    assert rec.info.parent_run_id == parent.run_id
    assert rec.params["model.alpha"] == "1.0"
    assert rec.params["model.class"] == "Ridge"
    assert rec.params["data.version"] == "ab" * 32
    assert rec.params["valid.rows"] == str(len(split.valid))
    assert rec.tags["model.family"] == "linear"
    assert rec.tags["modelyard.training_set"] == training_set.training_set_id
    for key in ("r2", "rmse", "mae", "mape", "train_seconds"):
        assert rec.metrics[key].value == pytest.approx(result.metrics[key]), key
    assert 0.2 < rec.metrics["r2"].value < 1.0
    names = {a.path for a in yard.tracking.list_artifacts(result.run_id)}
    assert {MODEL_ARTIFACT, SIGNATURE_ARTIFACT} <= names
    model = joblib.load(io.BytesIO(yard.tracking.read_artifact(result.run_id, MODEL_ARTIFACT)))
    again = model.predict(split.valid[list(FEATURES)])
    assert regression_metrics(split.valid[TARGET].to_numpy(), again)["r2"] == pytest.approx(
        rec.metrics["r2"].value)


def test_missing_sklearn_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'modelyard\[sklearn\]'"):
        require_sklearn()


@pytest.mark.parametrize(("changes", "field"), [
    ({"customers": 10}, "customers"),
    ({"seed": -1}, "seed"),
    ({"train_months": 12}, "months"),
    ({"valid_months": 0}, "months"),
])
def test_config_refuses_what_cannot_work(changes: dict[str, int], field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        DemoConfig(path=Path("x"), **changes).validate()  # type: ignore[arg-type]
    assert info.value.details["field"] == field
