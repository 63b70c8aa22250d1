"""Candidates, the time split, and one candidate trained in a tracked run on each backend."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import joblib
import pandas as pd
import pytest

from modelyard import ConfigurationError, InvalidInputError, Yard
from modelyard.demo.candidates import FEATURES, TARGET, default_candidates, require_sklearn
from modelyard.demo.data import generate
from modelyard.demo.state import DemoConfig
from modelyard.demo.training import (
    MODEL_ARTIFACT,
    SIGNATURE_ARTIFACT,
    TimeSplit,
    regression_metrics,
    time_split,
    train_candidate,
    training_frame,
)


@pytest.fixture(scope="module")
def split() -> TimeSplit:
    data = generate(customers=600, seed=5)
    return time_split(training_frame(data), data.start, 10, 2)


def test_time_split_trains_before_and_validates_after(split: TimeSplit) -> None:
    assert split.valid_start == pd.Timestamp("2024-11-01", tz="UTC")
    assert split.valid_end == pd.Timestamp("2025-01-01", tz="UTC")
    assert split.train["event_time"].max() < split.valid_start
    assert split.valid["event_time"].min() >= split.valid_start
    assert split.valid["event_time"].max() < split.valid_end
    assert len(split.train) > 3 * len(split.valid) > 0
    assert set(FEATURES) | {TARGET} <= set(split.train.columns)
    assert "gender" not in FEATURES  # the sensitive attribute is kept for fairness checks
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


def test_a_candidate_is_tracked_with_its_model(yard: Yard, split: TimeSplit) -> None:
    ridge = next(c for c in default_candidates() if c.name == "ridge")
    data_params = {"data.version": "ab" * 32, "data.claims.sha256": "cd" * 32}
    with yard.start_run("claims-demo", name="demo") as parent:
        result = train_candidate(yard, "claims-demo", ridge, split, parent=parent,
                                 data_params=data_params)
    rec = yard.get_run(result.run_id)
    assert rec.info.status == "finished"
    assert rec.info.parent_run_id == parent.run_id
    assert rec.params["model.alpha"] == "1.0"
    assert rec.params["model.class"] == "Ridge"
    assert rec.params["data.version"] == "ab" * 32
    assert rec.params["valid.rows"] == str(len(split.valid))
    assert rec.tags["model.family"] == "linear"
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
