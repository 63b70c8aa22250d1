"""Registering a model trained on a training set with nulls: a model that takes them (an
imputer in its pipeline) is registered as it is; one that cannot (fitted on filled data) is
registered on the rows without nulls with one short warning, or refused in one short error."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelyard import Entity, Feature, FeatureGroup, InvalidInputError, Source, Yard
from modelyard.registry.nulls import NullRowsWarning

T0 = datetime(2025, 1, 1, tzinfo=UTC)
MODEL = "claims-model"
INPUTS = ["amount_30d_mean", "claims_90d"]
customer = Entity("customer", key="customer_id")
claims = Source.frame("claims", timestamp="event_time")
stats = FeatureGroup("claim_stats", entity=customer, source=claims, features=[
    Feature("amount_30d_mean", "mean(claim_amount)", window="30d"),
    Feature("claims_90d", "count(*)", window="90d"),
])
pytestmark = pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)


@pytest.fixture
def train(yard: Yard) -> Any:
    """30 customers; those with an even id have no claim in the last 30 days, so their
    ``amount_30d_mean`` is null (half the rows)."""
    ids = np.arange(30)
    events = pd.DataFrame({
        "customer_id": ids,
        "event_time": [T0 + timedelta(days=40 if i % 2 else 5) for i in ids],
        "claim_amount": 10.0 + ids,
    })
    yard.apply([stats])
    yard.ingest(claims, events)
    spine = pd.DataFrame({"customer_id": ids, "ts": [T0 + timedelta(days=45)] * 30,
                          "claim_value": 3.0 * ids})
    return yard.training_set(spine, ["claim_stats:*"], label="claim_value", timestamp="ts")


def fitted_on_filled(train: Any) -> Any:
    from sklearn.linear_model import LinearRegression

    frame = train.to_pandas()
    return LinearRegression().fit(frame[INPUTS].fillna(0), frame["claim_value"])


def log(yard: Yard, model: Any, train: Any, **options: Any) -> tuple[Any, list[Any]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with yard.start_run("claims") as run:
            version = run.log_model(model, MODEL, training_set=train, **options)
    return version, [w for w in caught if issubclass(w.category, UserWarning)]


def test_the_training_set_has_nulls(train: Any) -> None:
    assert int(train.to_pandas()["amount_30d_mean"].isna().sum()) == 15


def test_a_model_with_an_imputer_is_registered_as_it_is(yard: Yard, train: Any) -> None:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    frame = train.to_pandas()
    model = make_pipeline(SimpleImputer(), LinearRegression()).fit(frame[INPUTS],
                                                                   frame["claim_value"])
    version, caught = log(yard, model, train)
    assert caught == []
    assert "refused_nulls" not in version.spec
    signature = yard.models.signature(f"{MODEL}:1")
    assert signature is not None
    assert {c.name: c.nullable for c in signature.inputs}["amount_30d_mean"] is True
    assert version.spec["reference_rows"] == 30
    assert version.spec["onnx"]["status"] == "ok"


def test_a_model_that_cannot_take_nulls_is_registered_on_the_other_rows(
        yard: Yard, train: Any) -> None:
    version, caught = log(yard, fitted_on_filled(train), train)
    assert [w.category for w in caught] == [NullRowsWarning]  # one warning, not two
    message = str(caught[0].message)
    assert "\n" not in message and len(message) < 400  # not scikit-learn's paragraph
    assert message.startswith("model 'claims-model' cannot take nulls (ValueError: Input X "
                              "contains NaN.), which the training set has in amount_30d_mean")
    assert "SimpleImputer" in message
    assert caught[0].filename == __file__  # points at the log_model call
    assert version.spec["refused_nulls"] == ["amount_30d_mean"]
    signature = yard.models.signature(f"{MODEL}:1")
    assert signature is not None
    assert {c.name: c.nullable for c in signature.inputs}["amount_30d_mean"] is False
    assert all(row["amount_30d_mean"] is not None for row in version.spec["input_example"])
    assert version.spec["reference_rows"] == 15  # the rows without nulls
    assert version.spec["onnx"]["status"] == "ok"
    background = yard.models.background(f"{MODEL}:1")
    assert background is not None and len(background) == 15
    assert not background.isna().any().any()


def test_the_reference_leaves_out_rows_with_nulls_in_one_line(yard: Yard, train: Any
                                                              ) -> None:
    example = train.to_pandas()[INPUTS].fillna(0).head(5)
    version, caught = log(yard, fitted_on_filled(train), train, input_example=example)
    assert [w.category for w in caught] == [NullRowsWarning]
    assert str(caught[0].message) == (
        "model 'claims-model' cannot take nulls (ValueError: Input X contains NaN.): its "
        "reference profile covers the 15 rows of the training set without them "
        "(amount_30d_mean: 15 of 30 rows)")
    assert version.spec["reference_rows"] == 15


def test_no_row_without_nulls_is_one_short_error(yard: Yard, train: Any) -> None:
    example = train.to_pandas()[INPUTS].assign(amount_30d_mean=np.nan).head(4)
    with pytest.raises(InvalidInputError) as caught:
        log(yard, fitted_on_filled(train), train, input_example=example)
    message = caught.value.message
    assert message.startswith("model 'claims-model' cannot take nulls (ValueError: Input X "
                              "contains NaN.), and every row of the input example has some "
                              "(amount_30d_mean: 4 of 4 rows)")
    assert "\n" not in message and "SimpleImputer" in message
    assert caught.value.details["columns"] == ["amount_30d_mean"]
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert yard.models.list_models() == []


def test_a_model_failing_otherwise_is_one_short_error(yard: Yard, train: Any) -> None:
    class Broken:
        def predict(self, frame: pd.DataFrame) -> Any:
            raise RuntimeError("boom\n" + "library detail\n" * 20)

    with pytest.raises(InvalidInputError) as caught:
        yard.models.register(Broken(), MODEL, training_set=train, flavor="python")
    assert caught.value.message == (
        "model 'claims-model' could not predict on the training set, even on its rows "
        "without nulls: RuntimeError: boom. Pass features=[...] (the columns it was trained "
        "on) or an input_example")
    assert caught.value.__cause__ is None


def test_evaluating_on_nulls_the_model_cannot_take_is_one_short_error(
        yard: Yard, train: Any) -> None:
    log(yard, fitted_on_filled(train), train)
    with pytest.raises(InvalidInputError) as caught:
        yard.models.evaluate(f"{MODEL}:1", train.to_pandas())
    assert caught.value.message.startswith(
        "model 'claims-model:1' could not predict on the evaluation data (ValueError: Input X "
        "contains NaN.), which has nulls (amount_30d_mean: 15 of 30 rows)")
    assert caught.value.__cause__ is None
    result = yard.models.evaluate(f"{MODEL}:1", train.to_pandas().fillna(0))
    assert result.rows == 30


def test_an_onnx_twin_that_reads_nulls_otherwise_says_so(yard: Yard, train: Any) -> None:
    from sklearn.tree import DecisionTreeRegressor

    frame = train.to_pandas()
    model = DecisionTreeRegressor(random_state=0).fit(frame[INPUTS].fillna(-100),
                                                      frame["claim_value"])
    version, caught = log(yard, model, train)  # trees take NaN: nothing left out
    assert caught == [] and version.spec["reference_rows"] == 30
    onnx = version.spec["onnx"]
    assert onnx["status"] == "mismatch"  # the converter sends NaN down the other branch
    assert onnx["reason"].startswith("the twin disagrees with the original on 15 of 30 rows")
    assert "; it agrees on every row without nulls" in onnx["reason"]


def test_serving_refuses_the_nulls_the_model_cannot_take(yard: Yard, train: Any) -> None:
    from modelyard.server import create_app
    from modelyard.serving.metrics import ServingMetrics
    from modelyard.serving.service import ModelServer

    log(yard, fitted_on_filled(train), train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # features never materialized; httpx's notice
        from starlette.testclient import TestClient

        server = ModelServer(yard, [f"{MODEL}:1"], metrics=ServingMetrics(),
                             sink=lambda answer: None)
        server.load_all()
    try:
        client = TestClient(create_app(yard, models=server))
        refused = client.post(f"/v1/models/{MODEL}/predict", json={
            "instances": [{"amount_30d_mean": None, "claims_90d": 1}]})
        assert refused.status_code == 422
        assert "instances[0].amount_30d_mean: may not be null" in refused.json()["message"]
        answered = client.post(f"/v1/models/{MODEL}/predict", json={
            "instances": [{"amount_30d_mean": 12.0, "claims_90d": 1}]})
        assert answered.status_code == 200, answered.text
    finally:
        server.close()
