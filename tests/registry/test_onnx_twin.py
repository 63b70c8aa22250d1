"""ONNX twins: converted, run with onnxruntime, and checked against the original model."""

from __future__ import annotations

import json
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from modelyard.errors import InvalidInputError
from modelyard.registry.flavors import OnnxClassifier, OnnxModel
from modelyard.registry.onnx_twin import TwinResult, convert, verify


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    rng = np.random.default_rng(3)
    # values a float32 holds exactly: the twin takes float32, as the tree libraries do
    X = pd.DataFrame(rng.normal(size=(200, 4)).astype(np.float32).astype(np.float64),
                     columns=["a", "b", "c", "d"])
    y_reg = 3 * X["a"] - X["b"] + 0.5 * X["c"] + 1.0
    y_cls = (X["a"] > 0).astype(int) + (X["b"] > 0.3).astype(int)
    return X, y_reg, y_cls


def twin_of(result: TwinResult) -> OnnxModel:
    assert result.status == "ok", result.reason
    assert result.onnx is not None and result.reason == ""
    assert result.max_abs_diff is not None and result.max_abs_diff < 1e-4
    return OnnxModel.from_bytes(result.onnx)


def assert_same_regression(model: Any, twin: OnnxModel, X: pd.DataFrame) -> None:
    np.testing.assert_allclose(twin.predict(X), model.predict(X), rtol=1e-4, atol=1e-5)


def assert_same_classifier(model: Any, twin: OnnxModel, X: pd.DataFrame) -> None:
    assert isinstance(twin, OnnxClassifier)
    np.testing.assert_array_equal(twin.predict(X), model.predict(X))
    np.testing.assert_allclose(twin.predict_proba(X), model.predict_proba(X), atol=1e-5)


# --- sklearn ----------------------------------------------------------------------------------


def test_linear_regression(data: Any) -> None:
    X, y, _ = data
    model = LinearRegression().fit(X, y)
    result = convert(model, "sklearn", X)
    assert result.converter.startswith("skl2onnx ")
    twin = twin_of(result)
    assert twin.input_names == ["input"]  # one float tensor [None, 4]
    assert twin.columns == ["a", "b", "c", "d"]
    assert_same_regression(model, twin, X)
    # the stacked input follows the recorded column order, whatever order a frame has
    np.testing.assert_allclose(twin.predict(X[["d", "c", "b", "a"]]), model.predict(X),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("make", [
    lambda: RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0),
    lambda: make_pipeline(StandardScaler(), LogisticRegression()),
], ids=["forest", "pipeline"])
def test_sklearn_classifiers(data: Any, make: Any) -> None:
    X, _, y = data
    model = make().fit(X, y)
    assert_same_classifier(model, twin_of(convert(model, "sklearn", X)), X)


def test_pipeline_with_text_columns_takes_one_input_per_column(data: Any) -> None:
    X, _, y = data
    frame = X.assign(color=np.where(X["c"] > 0, "red", "blue"),
                     visits=(X["d"].abs() * 3).round().astype(int))
    columns = ColumnTransformer([
        ("num", StandardScaler(), ["a", "b", "visits"]),
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["color"]),
    ])
    model = make_pipeline(columns, LogisticRegression()).fit(frame, y)
    twin = twin_of(convert(model, "sklearn", frame))
    assert twin.input_names == ["a", "b", "c", "d", "color", "visits"]
    assert_same_classifier(model, twin, frame)


def test_pipeline_ending_in_lightgbm(data: Any) -> None:
    X, _, y = data
    model = make_pipeline(StandardScaler(),
                          lightgbm.LGBMClassifier(n_estimators=10, verbose=-1)).fit(X, y)
    assert_same_classifier(model, twin_of(convert(model, "sklearn", X)), X)


def test_function_transformer_with_a_lambda_fails_with_the_reason(data: Any) -> None:
    X, y, _ = data
    model = make_pipeline(FunctionTransformer(lambda z: z * 2), LinearRegression()).fit(X, y)
    result = convert(model, "sklearn", X)
    assert result.status == "failed"
    assert result.onnx is None and result.max_abs_diff is None
    assert result.reason.startswith("skl2onnx cannot convert FunctionTransformer: ")
    assert "\n" not in result.reason


# --- boosting ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["xgb-reg", "xgb-cls", "lgbm-reg", "lgbm-cls"])
def test_boosting_sklearn_api(data: Any, kind: str) -> None:
    X, y_reg, y_cls = data
    model: Any = {
        "xgb-reg": lambda: xgboost.XGBRegressor(n_estimators=10, max_depth=3).fit(X, y_reg),
        "xgb-cls": lambda: xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(X, y_cls),
        "lgbm-reg": lambda: lightgbm.LGBMRegressor(n_estimators=10, verbose=-1).fit(X, y_reg),
        "lgbm-cls": lambda: lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(X, y_cls),
    }[kind]()
    result = convert(model, "xgboost" if kind.startswith("xgb") else "lightgbm", X)
    assert result.converter.startswith("onnxmltools ")
    twin = twin_of(result)
    if kind.endswith("cls"):
        assert_same_classifier(model, twin, X)
    else:
        assert_same_regression(model, twin, X)
    # the model handed in keeps its feature names (the converter worked on a copy)
    if kind.startswith("xgb"):
        assert model.get_booster().feature_names == ["a", "b", "c", "d"]


def test_raw_boosters_keep_what_their_predict_means(data: Any) -> None:
    X, y_reg, y_cls = data
    binary = (y_cls > 0).astype(int)
    xgb_binary = xgboost.train({"objective": "binary:logistic", "max_depth": 3},
                               xgboost.DMatrix(X, label=binary), 8)
    twin = twin_of(convert(xgb_binary, "xgboost", X))
    np.testing.assert_allclose(twin.predict(X), xgb_binary.predict(xgboost.DMatrix(X)),
                               atol=1e-5)
    lgb_multi = lightgbm.train({"objective": "multiclass", "num_class": 3, "verbose": -1},
                               lightgbm.Dataset(X, label=y_cls), 8)
    twin = twin_of(convert(lgb_multi, "lightgbm", X))
    np.testing.assert_allclose(twin.predict(X), lgb_multi.predict(X), atol=1e-5)
    lgb_reg = lightgbm.train({"verbose": -1}, lightgbm.Dataset(X, label=y_reg), 8)
    twin = twin_of(convert(lgb_reg, "lightgbm", X))
    np.testing.assert_allclose(twin.predict(X), lgb_reg.predict(X), rtol=1e-4, atol=1e-5)


def test_boosting_with_text_columns_is_unavailable(data: Any) -> None:
    X, _, y = data
    frame = X.assign(plan=pd.Categorical(np.where(X["a"] > 0, "gold", "free")))
    model = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(frame, y)
    result = convert(model, "lightgbm", frame)
    assert result.status == "unavailable"
    assert "'plan'" in result.reason and result.onnx is None


# --- what cannot be converted or does not agree ----------------------------------------------


def test_python_flavor_is_unavailable(data: Any) -> None:
    X, _, _ = data

    class Constant:
        def predict(self, frame: pd.DataFrame) -> np.ndarray:
            return np.zeros(len(frame))

    result = convert(Constant(), "python", X)
    assert result == TwinResult("unavailable", None, "no converter for flavor 'python'", None,
                                "")


def test_an_original_that_predicts_otherwise_is_a_mismatch(
        data: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    X, y, _ = data
    model = LinearRegression().fit(X, y)
    honest = model.predict
    monkeypatch.setattr(model, "predict", lambda frame: honest(frame) + 0.25, raising=False)
    result = convert(model, "sklearn", X)
    assert result.status == "mismatch"
    assert result.onnx is None
    assert result.max_abs_diff == pytest.approx(0.25, abs=1e-4)
    assert "200 of 200 rows" in result.reason


def test_verify_against_another_classifier_finds_the_differences(data: Any) -> None:
    X, _, y = data
    model = LogisticRegression().fit(X, y)
    twin = twin_of(convert(model, "sklearn", X))
    other = RandomForestClassifier(n_estimators=3, max_depth=2, random_state=0).fit(X, y)
    diff, problem = verify(other, twin, X, flavor="sklearn")
    assert diff is not None and diff > 0.01
    assert "labels differ on" in problem and "probabilities differ on" in problem
    same_diff, no_problem = verify(model, twin, X, flavor="sklearn")
    assert no_problem == "" and same_diff is not None and same_diff < 1e-4


def test_result_serializes(data: Any) -> None:
    X, y, _ = data
    result = convert(LinearRegression().fit(X, y), "sklearn", X)
    summary = result.to_dict()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["status"] == "ok" and summary["onnx_size"] == len(result.onnx or b"")
    assert set(summary) == {"status", "reason", "max_abs_diff", "converter", "onnx_size",
                            "onnx_sha256"}


@pytest.mark.parametrize(("flavor", "sample", "field"), [
    ("sklearn", pd.DataFrame({"a": []}), "sample"),
    ("sklearn", pd.DataFrame(index=[0, 1]), "sample"),
    ("sklearn", [{"a": 1.0}], "sample"),
    ("tensorflow", pd.DataFrame({"a": [1.0]}), "flavor"),
])
def test_bad_arguments_raise(flavor: str, sample: Any, field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        convert(LinearRegression(), flavor, sample)
    assert info.value.details["field"] == field
