"""Flavors: every kind of model saved to a folder comes back predicting the same values."""

from __future__ import annotations

import importlib.metadata
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import onnx
import pandas as pd
import pytest
import xgboost
from onnx import TensorProto, helper
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelyard.errors import ArtifactIntegrityError, InvalidInputError
from modelyard.registry.flavors import (
    FLAVORS,
    OnnxClassifier,
    OnnxModel,
    detect,
    flavor,
    library_drift,
)


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    rng = np.random.default_rng(7)
    X = pd.DataFrame(rng.normal(size=(80, 3)), columns=["a", "b", "c"])
    y_reg = 2 * X["a"] - X["b"] + rng.normal(scale=0.1, size=80)
    y_cls = ((X["a"] > 0).astype(int) + (X["b"] > 0.5)).rename("label")
    return X, y_reg, y_cls


def round_trip(model: Any, folder: Path, expected: str) -> Any:
    chosen = detect(model)
    assert chosen.name == expected
    folder.mkdir()
    chosen.save(model, folder)
    return flavor(expected).load(folder)


# --- objects defined here: the python flavor --------------------------------------------

_OFFSET = 0.5


def _shift(values: np.ndarray) -> np.ndarray:
    return values + _OFFSET


class MeanModel:
    """A plain object with predict, importable from this module."""

    def __init__(self, mean: float) -> None:
        self.mean = mean

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.full(len(frame), self.mean)


class SelfSavingModel:
    """Saves itself as JSON; stored as code, reloaded from that code in another process."""

    def __init__(self, weights: np.ndarray) -> None:
        self.weights = weights

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return _shift(frame.to_numpy(dtype=float) @ self.weights)

    def save(self, folder: Path) -> None:
        (folder / "weights.json").write_text(json.dumps(self.weights.tolist()))

    @classmethod
    def load(cls, folder: Path) -> SelfSavingModel:
        return cls(np.array(json.loads((folder / "weights.json").read_text())))


def dynamic_model(scale: float) -> Any:
    """An instance of a class made on the fly: pickle cannot save it, cloudpickle can."""

    def predict(self: Any, frame: pd.DataFrame) -> np.ndarray:
        return frame.to_numpy(dtype=float).sum(axis=1) * scale

    return type("Scaled", (), {"predict": predict})()


# --- sklearn --------------------------------------------------------------------------------


def test_sklearn_regressor_round_trip(data: Any, tmp_path: Path) -> None:
    X, y, _ = data
    model = LinearRegression().fit(X, y)
    loaded = round_trip(model, tmp_path / "m", "sklearn")
    assert type(loaded) is LinearRegression
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["model.joblib"]


@pytest.mark.parametrize("make", [
    lambda: RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0),
    lambda: make_pipeline(StandardScaler(), LogisticRegression()),
], ids=["forest", "pipeline"])
def test_sklearn_classifiers_keep_probabilities(data: Any, tmp_path: Path, make: Any) -> None:
    X, _, y = data
    model = make().fit(X, y)
    loaded = round_trip(model, tmp_path / "m", "sklearn")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.classes_, model.classes_)


def test_sklearn_flavor_pins_its_libraries_and_those_of_pipeline_steps(data: Any) -> None:
    X, y, _ = data
    plain = detect(LinearRegression().fit(X, y))
    assert plain.pickled
    sklearn_version = importlib.metadata.version("scikit-learn")
    assert plain.libraries()["scikit-learn"] == sklearn_version
    assert {"numpy", "joblib"} <= set(plain.libraries())
    assert f"scikit-learn=={sklearn_version}" in plain.requirements()
    assert all("==" in line for line in plain.requirements())
    boosted = detect(make_pipeline(StandardScaler(), xgboost.XGBRegressor(n_estimators=2)))
    assert boosted.name == "sklearn"
    assert any(name.startswith("xgboost") for name in boosted.libraries())


# --- xgboost and lightgbm -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["xgb-reg", "xgb-cls", "lgbm-reg", "lgbm-cls"])
def test_boosting_sklearn_api_round_trip(data: Any, tmp_path: Path, kind: str) -> None:
    X, y_reg, y_cls = data
    model: Any = {
        "xgb-reg": lambda: xgboost.XGBRegressor(n_estimators=5, max_depth=2).fit(X, y_reg),
        "xgb-cls": lambda: xgboost.XGBClassifier(n_estimators=5, max_depth=2).fit(X, y_cls),
        "lgbm-reg": lambda: lightgbm.LGBMRegressor(n_estimators=5, verbose=-1).fit(X, y_reg),
        "lgbm-cls": lambda: lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, y_cls),
    }[kind]()
    name = "xgboost" if kind.startswith("xgb") else "lightgbm"
    loaded = round_trip(model, tmp_path / "m", name)
    assert type(loaded) is type(model)
    np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=0, atol=1e-12)
    if kind.endswith("cls"):
        np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), atol=1e-12)
        np.testing.assert_array_equal(loaded.classes_, model.classes_)
    # xgboost writes its own JSON model; LightGBM's sklearn API needs joblib
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    if name == "xgboost":
        assert files == ["flavor.json", "model.json"]
        assert not flavor(name).loads_pickle(tmp_path / "m")
    else:
        assert files == ["flavor.json", "model.joblib"]
        assert flavor(name).loads_pickle(tmp_path / "m")


def test_raw_boosters_round_trip_in_their_own_formats(data: Any, tmp_path: Path) -> None:
    X, y, _ = data
    xgb_booster = xgboost.train({"max_depth": 2}, xgboost.DMatrix(X, label=y), 4)
    loaded = round_trip(xgb_booster, tmp_path / "xgb", "xgboost")
    assert isinstance(loaded, xgboost.Booster)
    np.testing.assert_array_equal(loaded.predict(xgboost.DMatrix(X)),
                                  xgb_booster.predict(xgboost.DMatrix(X)))
    assert loaded.feature_names == ["a", "b", "c"]

    lgb_booster = lightgbm.train({"verbose": -1}, lightgbm.Dataset(X, label=y), 4)
    loaded = round_trip(lgb_booster, tmp_path / "lgb", "lightgbm")
    assert isinstance(loaded, lightgbm.Booster)
    np.testing.assert_allclose(loaded.predict(X), lgb_booster.predict(X), atol=1e-12)
    assert (tmp_path / "lgb" / "model.txt").exists()
    assert not flavor("lightgbm").loads_pickle(tmp_path / "lgb")


# --- python ---------------------------------------------------------------------------------


def test_plain_object_is_cloudpickled(data: Any, tmp_path: Path) -> None:
    X, _, _ = data
    loaded = round_trip(MeanModel(1.5), tmp_path / "m", "python")
    assert isinstance(loaded, MeanModel)
    np.testing.assert_array_equal(loaded.predict(X), np.full(len(X), 1.5))
    assert flavor("python").loads_pickle(tmp_path / "m")
    assert "cloudpickle" in detect(MeanModel(0.0)).libraries()


def test_dynamic_class_is_saved_by_value(data: Any, tmp_path: Path) -> None:
    X, _, _ = data
    model = dynamic_model(3.0)
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        pickle.dumps(model)
    loaded = round_trip(model, tmp_path / "m", "python")
    np.testing.assert_allclose(loaded.predict(X), X.to_numpy().sum(axis=1) * 3.0)


def test_self_saving_class_is_stored_as_code(data: Any, tmp_path: Path) -> None:
    X, _, _ = data
    model = SelfSavingModel(np.array([1.0, -2.0, 0.5]))
    loaded = round_trip(model, tmp_path / "m", "python")
    np.testing.assert_allclose(loaded.predict(X), model.predict(X))
    meta = json.loads((tmp_path / "m" / "flavor.json").read_text())
    assert meta["kind"] == "code"
    assert meta["class"].endswith(":SelfSavingModel")
    assert "class SelfSavingModel" in meta["source"]
    needed = {need["name"]: need for need in meta["needs"]}
    assert needed["np"] == {"name": "np", "module": "numpy"}
    assert needed["_OFFSET"]["literal"] == "0.5"
    assert "def _shift" in needed["_shift"]["source"]
    assert (tmp_path / "m" / "files" / "weights.json").exists()
    assert not flavor("python").loads_pickle(tmp_path / "m")
    assert not (tmp_path / "m" / "model.pkl").exists()


LOADER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import pandas as pd
    from modelyard.registry.flavors import detect, flavor
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0], "c": [5.0, 6.0]})
    out = {}
    for key, folder in (("source", sys.argv[1]), ("import", sys.argv[2])):
        model = flavor("python").load(Path(folder))
        out[key] = {"module": type(model).__module__,
                    "prediction": model.predict(frame).tolist()}

    class Plain:
        def predict(self, frame):
            return frame
    out["flavor"] = detect(Plain()).name
    out["imported"] = sorted(m for m in ("sklearn", "xgboost", "lightgbm", "onnx",
                                         "onnxruntime") if m in sys.modules)
    print(json.dumps(out))
""")

PLUGIN = textwrap.dedent("""
    from pathlib import Path

    class Doubler:
        def __init__(self, factor):
            self.factor = factor

        def predict(self, frame):
            return (frame["a"] * self.factor).to_numpy()

        def save(self, folder):
            (Path(folder) / "factor.txt").write_text(str(self.factor))

        @classmethod
        def load(cls, folder):
            return cls(float((Path(folder) / "factor.txt").read_text()))
""")


def test_code_models_load_in_a_fresh_process(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # one class only the stored source can rebuild (this test module is not importable
    # there), one the other process imports by its path
    by_source = tmp_path / "by_source"
    by_source.mkdir()
    flavor("python").save(SelfSavingModel(np.array([1.0, 1.0, 1.0])), by_source)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "ymodels.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(plugins))
    import ymodels  # type: ignore[import-not-found]

    by_import = tmp_path / "by_import"
    by_import.mkdir()
    flavor("python").save(ymodels.Doubler(2.5), by_import)

    work = tmp_path / "elsewhere"
    work.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", LOADER, str(by_source), str(by_import)], cwd=work,
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(plugins)})
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["source"]["module"].startswith("modelyard_stored_")
    assert out["source"]["prediction"] == [9.5, 12.5]  # a + b + c + 0.5
    assert out["import"] == {"module": "ymodels", "prediction": [2.5, 5.0]}
    # detecting a plain object imports none of the model libraries
    assert out["flavor"] == "python"
    assert out["imported"] == []


# --- onnx -----------------------------------------------------------------------------------


def linear_onnx() -> onnx.ModelProto:
    """y = x @ [[1], [2]] + 0.5 on one (n, 2) float input."""
    weights = helper.make_tensor("w", TensorProto.FLOAT, [2, 1], [1.0, 2.0])
    bias = helper.make_tensor("b", TensorProto.FLOAT, [1], [0.5])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "w"], ["xw"]),
         helper.make_node("Add", ["xw", "b"], ["variable"])],
        "linear",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])],
        initializer=[weights, bias])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def per_column_onnx() -> onnx.ModelProto:
    """A one-input-per-column graph: out = a + cast(n) (float a, int64 n)."""
    graph = helper.make_graph(
        [helper.make_node("Cast", ["n"], ["nf"], to=TensorProto.FLOAT),
         helper.make_node("Add", ["a", "nf"], ["out"])],
        "columns",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 1]),
         helper.make_tensor_value_info("n", TensorProto.INT64, [None, 1])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 1])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_onnx_model_round_trip(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x1": [1.0, 2.0], "x2": [3, 4]})
    loaded = round_trip(linear_onnx(), tmp_path / "m", "onnx")
    assert isinstance(loaded, OnnxModel) and not isinstance(loaded, OnnxClassifier)
    assert not hasattr(loaded, "predict_proba")
    np.testing.assert_allclose(loaded.predict(frame), [7.5, 10.5])
    assert (tmp_path / "m" / "model.onnx").read_bytes() == linear_onnx().SerializeToString()
    # bytes and the wrapper itself save too; the wrapper pickles
    again = round_trip(loaded.to_bytes(), tmp_path / "bytes", "onnx")
    np.testing.assert_allclose(again.predict(frame), [7.5, 10.5])
    round_trip(again, tmp_path / "wrapper", "onnx")
    np.testing.assert_allclose(pickle.loads(pickle.dumps(again)).predict(frame), [7.5, 10.5])
    assert set(flavor("onnx").libraries()) >= {"onnxruntime", "numpy"}
    assert not flavor("onnx").pickled


def test_onnx_model_takes_one_input_per_column() -> None:
    model = OnnxModel.from_bytes(per_column_onnx().SerializeToString())
    frame = pd.DataFrame({"n": [1, 2], "extra": ["x", "y"], "a": [0.5, 0.25]})
    np.testing.assert_allclose(model.predict(frame), [1.5, 2.25])
    with pytest.raises(InvalidInputError) as info:
        model.predict(frame.drop(columns=["n"]))
    assert info.value.details["field"] == "columns"
    assert "n" in info.value.message


def test_onnx_flavor_refuses_bytes_that_are_not_onnx(tmp_path: Path) -> None:
    assert detect(b"\x08garbage").name == "onnx"  # looks like ONNX at a glance ...
    with pytest.raises(InvalidInputError):
        flavor("onnx").save(b"\x08garbage", tmp_path)  # ... but does not parse


# --- detection, lookup, drift -------------------------------------------------------------


@pytest.mark.parametrize(("make", "expected"), [
    (lambda: LinearRegression(), "sklearn"),
    (lambda: make_pipeline(StandardScaler(), lightgbm.LGBMRegressor()), "sklearn"),
    (lambda: xgboost.XGBClassifier(), "xgboost"),
    (lambda: lightgbm.LGBMRegressor(), "lightgbm"),
    (linear_onnx, "onnx"),
    (lambda: linear_onnx().SerializeToString(), "onnx"),
    (lambda: MeanModel(1.0), "python"),
    (lambda: dynamic_model(1.0), "python"),
], ids=["estimator", "pipeline-of-lightgbm", "xgboost", "lightgbm", "onnx-proto",
        "onnx-bytes", "object", "dynamic"])
def test_detect_picks_the_flavor(make: Any, expected: str) -> None:
    assert detect(make()).name == expected


def test_flavors_are_ordered_with_python_last() -> None:
    assert [f.name for f in FLAVORS] == ["sklearn", "xgboost", "lightgbm", "onnx", "python"]


@pytest.mark.parametrize("model", [object(), StandardScaler(), LinearRegression],
                         ids=["object", "transformer", "a-class"])
def test_detect_refuses_objects_without_predict(model: Any) -> None:
    with pytest.raises(InvalidInputError) as info:
        detect(model)
    message = info.value.message
    kind = model.__name__ if isinstance(model, type) else type(model).__name__
    assert kind in message
    for name in ("sklearn", "xgboost", "lightgbm", "onnx", "python"):
        assert name in message
    assert info.value.details["field"] == "model"


def test_unknown_flavor_name() -> None:
    with pytest.raises(InvalidInputError) as info:
        flavor("pytorch")
    assert info.value.details["field"] == "flavor"
    assert "pytorch" in info.value.message and "sklearn" in info.value.message


def test_loading_an_incomplete_folder_is_an_integrity_error(tmp_path: Path) -> None:
    for name in ("sklearn", "xgboost", "python", "onnx"):
        with pytest.raises(ArtifactIntegrityError):
            flavor(name).load(tmp_path)


def test_library_drift() -> None:
    numpy_version = importlib.metadata.version("numpy")
    assert library_drift({}) == []
    assert library_drift({"numpy": numpy_version}) == []
    assert library_drift({"numpy": "0.1.0", "not-a-real-dist-xyz": "1.0"}) == [
        "not-a-real-dist-xyz 1.0 recorded, not installed",
        f"numpy 0.1.0 recorded, {numpy_version} installed",
    ]
    assert library_drift(detect(MeanModel(1.0)).libraries()) == []
