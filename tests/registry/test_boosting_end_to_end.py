"""LightGBM and XGBoost models through the whole registry path: logged from a run, stored,
loaded back, and served by their ONNX twin, alone and inside a scikit-learn pipeline."""

from __future__ import annotations

import importlib.metadata
import inspect
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OrdinalEncoder

from modelyard import Entity, Feature, FeatureGroup, Source, Yard
from modelyard.errors import NotFoundError
from modelyard.registry.flavors import OnnxClassifier
from modelyard.registry.onnx_twin import convert

NUMERIC = ["age", "value", "claims"]  # float, float, int
MIXED = [*NUMERIC, "region"]  # plus a text column the pipeline encodes
TRAIN = 300
# the tolerance every twin is verified with when registered (convert's defaults)
RTOL, ATOL = (inspect.signature(convert).parameters[k].default for k in ("rtol", "atol"))


@pytest.fixture
def yard(project: Path) -> Iterator[Yard]:
    import modelyard

    y = modelyard.connect(capture_packages=False, capture_git=False)
    try:
        yield y
    finally:
        y.close()


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    """400 rows: mixed numeric columns, a text column, a cost and two class labels."""
    rng = np.random.default_rng(11)
    n = 400
    frame = pd.DataFrame({
        "age": rng.uniform(18, 80, n).round(1),
        "value": rng.uniform(2_000, 60_000, n).round(0),
        "claims": rng.integers(0, 5, n),
        "region": rng.choice(["north", "south", "east"], n),
    })
    cost = (3.0 * frame["age"] + 0.01 * frame["value"] + 10.0 * frame["claims"]
            + np.where(frame["region"] == "north", 25.0, 0.0) + rng.normal(0, 2, n))
    frame["cost"] = cost
    frame["expensive"] = (cost > np.median(cost)).astype(int)
    frame["band"] = np.digitize(cost, np.quantile(cost, [1 / 3, 2 / 3]))
    return frame


def encoded(estimator: Any) -> Pipeline:
    """``estimator`` behind a ColumnTransformer that ordinal-encodes the region."""
    return make_pipeline(
        ColumnTransformer([("region", OrdinalEncoder(), ["region"])], remainder="passthrough"),
        estimator)


def boosted(kind: str) -> Any:
    """A small unfitted model of the class ``kind``, trained on one thread."""
    if kind.startswith("LGBM"):
        return getattr(lightgbm, kind)(n_estimators=20, verbose=-1, n_jobs=1)
    return getattr(xgboost, kind)(n_estimators=20, max_depth=3, n_jobs=1)


def assert_twin_matches(yard: Yard, ref: str, model: Any, rows: pd.DataFrame) -> None:
    """The stored twin predicts like ``model`` on ``rows``: values within the verification
    tolerance, labels exactly, and probabilities within the tolerance for a classifier."""
    twin = yard.models.load_onnx(ref)
    if hasattr(model, "predict_proba"):
        assert isinstance(twin, OnnxClassifier)
        np.testing.assert_array_equal(twin.predict(rows), model.predict(rows))
        proba = twin.predict_proba(rows)
        assert proba.shape == (len(rows), len(model.classes_))
        np.testing.assert_allclose(proba, model.predict_proba(rows), rtol=RTOL, atol=ATOL)
    else:
        assert not isinstance(twin, OnnxClassifier)
        np.testing.assert_allclose(twin.predict(rows), model.predict(rows), rtol=RTOL,
                                   atol=ATOL)


CASES = [
    pytest.param(kind, wrapped, id=f"{kind}-{'pipeline' if wrapped else 'alone'}")
    for kind in ("LGBMRegressor", "LGBMClassifier", "XGBRegressor", "XGBClassifier")
    for wrapped in (False, True)
]


@pytest.mark.parametrize(("kind", "wrapped"), CASES)
def test_boosted_model_through_the_registry(yard: Yard, data: pd.DataFrame, kind: str,
                                            wrapped: bool) -> None:
    label = "cost" if kind.endswith("Regressor") else "expensive"
    columns = MIXED if wrapped else NUMERIC
    train, held_out = data.iloc[:TRAIN], data.iloc[TRAIN:]
    model = (encoded(boosted(kind)) if wrapped else boosted(kind)).fit(
        train[columns], train[label])

    with yard.start_run("boosting", name=kind) as run:
        version = run.log_model(model, "m", input_example=train[columns])

    library = "lightgbm" if kind.startswith("LGBM") else "xgboost"
    assert (version.name, version.version) == ("m", 1)
    assert version.flavor == ("sklearn" if wrapped else library)
    assert version.spec["pickled"] is (wrapped or library == "lightgbm")
    # the distribution that installs the library (e.g. xgboost-cpu), pipelines included
    distributions = set(importlib.metadata.packages_distributions()[library])
    assert distributions & set(version.spec["libraries"])
    assert yard.models.signature("m:1").input_names == columns  # type: ignore[union-attr]
    onnx = version.spec["onnx"]
    assert onnx["status"] == "ok", onnx["reason"]
    assert onnx["converter"].startswith("skl2onnx " if wrapped else "onnxmltools ")
    assert onnx["onnx_sha256"] == version.onnx_sha256
    assert 0.0 <= onnx["max_abs_diff"] <= RTOL * float(np.abs(model.predict(
        train[columns]).astype(float)).max()) + ATOL

    loaded = yard.models.load("m:1")
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict(held_out[columns]),
                                  model.predict(held_out[columns]))
    if hasattr(model, "predict_proba"):
        np.testing.assert_array_equal(loaded.predict_proba(held_out[columns]),
                                      model.predict_proba(held_out[columns]))
    assert_twin_matches(yard, "m:1", model, held_out[columns])


# --- through the feature store ------------------------------------------------------------

T0 = datetime(2025, 1, 1, tzinfo=UTC)
customer = Entity("customer", key="customer_id")
policies = Source.frame("policies", timestamp="ts")
profile = FeatureGroup("profile", entity=customer, source=policies, features=[
    Feature(name, name) for name in MIXED])


@pytest.mark.parametrize(("make", "label", "columns"), [
    pytest.param(lambda: encoded(boosted("LGBMClassifier")), "band", MIXED,
                 id="LGBMClassifier-pipeline-3-classes"),
    pytest.param(lambda: boosted("XGBRegressor"), "cost", NUMERIC, id="XGBRegressor-alone"),
])
def test_boosted_model_trained_on_a_feature_store_training_set(
        yard: Yard, data: pd.DataFrame, make: Callable[[], Any], label: str,
        columns: list[str]) -> None:
    rows = data[MIXED].assign(
        customer_id=np.arange(len(data), dtype=np.int64),
        ts=[T0 + timedelta(hours=h) for h in range(len(data))])
    yard.apply([profile])
    yard.ingest(policies, rows)
    spine = pd.DataFrame({"customer_id": rows["customer_id"].iloc[:TRAIN],
                          "at": rows["ts"].iloc[:TRAIN] + timedelta(days=1),
                          label: data[label].iloc[:TRAIN]})
    ts = yard.training_set(spine, [f"profile:{c}" for c in columns], label=label,
                           timestamp="at")
    frame = ts.to_pandas()
    model = make().fit(frame[columns], frame[label])

    with yard.start_run("boosting") as run:
        version = run.log_model(model, "m", training_set=ts)

    assert version.training_set_id == ts.training_set_id
    assert version.spec["onnx"]["status"] == "ok", version.spec["onnx"]["reason"]
    held_out = data[columns].iloc[TRAIN:]
    np.testing.assert_array_equal(yard.models.load("m:1").predict(held_out),
                                  model.predict(held_out))
    assert_twin_matches(yard, "m:1", model, held_out)


# --- where no twin can be made --------------------------------------------------------------


def test_a_booster_on_a_category_column_is_stored_without_a_twin(
        yard: Yard, data: pd.DataFrame) -> None:
    frame = data[MIXED].astype({"region": "category"})
    model = lightgbm.LGBMRegressor(n_estimators=20, verbose=-1, n_jobs=1).fit(
        frame.iloc[:TRAIN], data["cost"].iloc[:TRAIN])

    with yard.start_run("boosting") as run:
        version = run.log_model(model, "m", input_example=frame.iloc[:TRAIN])

    onnx = version.spec["onnx"]
    assert version.flavor == "lightgbm" and version.onnx_sha256 is None
    assert onnx["status"] == "unavailable"
    assert "numeric inputs only" in onnx["reason"] and "'region'" in onnx["reason"]
    with pytest.raises(NotFoundError, match="has no ONNX twin: onnxmltools converts"):
        yard.models.load_onnx("m:1")
    held_out = frame.iloc[TRAIN:]
    np.testing.assert_array_equal(yard.models.load("m:1").predict(held_out),
                                  model.predict(held_out))
