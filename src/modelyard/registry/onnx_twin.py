"""The ONNX twin: a model converted to ONNX and checked to predict what the original does.

:func:`convert` turns an ``sklearn`` model (skl2onnx) or an ``xgboost`` / ``lightgbm`` model
(onnxmltools, sklearn API and raw Boosters) into ONNX, runs the result with onnxruntime on a
sample and compares it with the original: regression values within ``rtol``/``atol``;
for classifiers identical labels and probabilities within the same tolerance. The answer is
a :class:`TwinResult` whose status says what happened:

* ``ok`` — converted and verified; ``onnx`` holds the model;
* ``unavailable`` — no converter exists for this flavor, model or input types;
* ``mismatch`` — converted, but the twin disagrees with the original on the sample;
* ``failed`` — the converter (or onnxruntime) raised; ``reason`` has its first line.

A model that cannot be converted never raises; bad arguments raise InvalidInputError.

Inputs: a sample of numbers only becomes one float tensor ``input`` of shape
``[None, n_features]`` (columns in the sample's order, recorded in the model's metadata
``modelyard.columns``); a sample with text or category columns gives one input per column
(what skl2onnx supports for ColumnTransformer pipelines). Raw Boosters keep their
``predict`` meaning through the metadata ``modelyard.predict`` (a binary Booster predicts the
positive class's probability).
"""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from modelyard.errors import InvalidInputError
from modelyard.registry.flavors import flavor as flavor_named
from modelyard.registry.flavors.onnx import COLUMNS_KEY, PREDICT_KEY, OnnxModel
from modelyard.registry.nulls import model_input

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["TwinResult", "convert", "verify"]

Status = Literal["ok", "unavailable", "mismatch", "failed"]
SKLEARN_OPSET = 17  # the main ONNX opset asked of skl2onnx (capped by what it supports)
ML_OPSET = 3  # ai.onnx.ml: TreeEnsemble* as every onnxruntime since 1.x runs them
ONNXMLTOOLS_OPSET = 15


@dataclass(frozen=True)
class TwinResult:
    """What :func:`convert` did: status, the ONNX bytes when ok, and why not otherwise."""

    status: Status
    onnx: bytes | None
    reason: str
    max_abs_diff: float | None
    converter: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary; the ONNX bytes are represented by their size and sha256."""
        return {
            "status": self.status,
            "reason": self.reason,
            "max_abs_diff": self.max_abs_diff,
            "converter": self.converter,
            "onnx_size": None if self.onnx is None else len(self.onnx),
            "onnx_sha256": None if self.onnx is None else hashlib.sha256(self.onnx).hexdigest(),
        }


def convert(model: Any, flavor: str, sample: pd.DataFrame, *, rtol: float = 1e-4,
            atol: float = 1e-5) -> TwinResult:
    """Convert ``model`` (saved with ``flavor``) to ONNX and verify it on ``sample``."""
    frame = _check_arguments(flavor, sample, rtol, atol)
    if flavor == "onnx":
        return TwinResult("unavailable", None, "the model is already ONNX; it needs no twin",
                          None, "")
    if flavor not in ("sklearn", "xgboost", "lightgbm"):
        return TwinResult("unavailable", None, f"no converter for flavor {flavor!r}", None, "")
    tool = "skl2onnx" if flavor == "sklearn" else "onnxmltools"
    try:
        converter = f"{tool} {importlib.metadata.version(tool)}"
    except importlib.metadata.PackageNotFoundError:
        return TwinResult("unavailable", None, f"{tool} is not installed (pip install "
                          f"'modelyard[registry]')", None, "")
    plan = _plan(model, flavor, frame)
    if isinstance(plan, str):
        return TwinResult("unavailable", None, plan, None, converter)
    try:
        proto = plan.run()
    except Exception as exc:
        status: Status = "unavailable" if "Missing" in type(exc).__name__ else "failed"
        return TwinResult(status, None, f"{tool} cannot convert {_culprit(model, exc)}: "
                          f"{_first_line(exc)}", None, converter)
    _stamp(proto, {COLUMNS_KEY: json.dumps(list(frame.columns)), PREDICT_KEY: plan.predict})
    data = proto.SerializeToString()
    try:
        twin = OnnxModel.from_bytes(data)
    except InvalidInputError as exc:
        return TwinResult("failed", None, exc.message, None, converter)
    try:
        diff, problem = verify(model, twin, frame, flavor=flavor, rtol=rtol, atol=atol)
    except Exception as exc:
        return TwinResult("failed", None, f"verification could not run: {_first_line(exc)}",
                          None, converter)
    if problem:
        return TwinResult("mismatch", None, problem, diff, converter)
    return TwinResult("ok", data, "", diff, converter)


def verify(model: Any, twin: OnnxModel, sample: pd.DataFrame, *, flavor: str,
           rtol: float = 1e-4, atol: float = 1e-5) -> tuple[float | None, str]:
    """Compare the twin with the original on ``sample``: (largest difference, problem or "").

    Regression: values within tolerance. Classifiers (the original has ``predict_proba`` and
    the twin a probability output): the same labels, probabilities within tolerance.
    """
    import numpy as np

    expected = _original_predict(model, flavor, sample)
    got = twin.predict(sample)
    proba_pair = None
    if hasattr(model, "predict_proba") and hasattr(twin, "predict_proba"):
        proba_pair = (np.asarray(model.predict_proba(sample), dtype=np.float64),
                      np.asarray(twin.predict_proba(sample), dtype=np.float64))
    labels = proba_pair is not None or not (_numeric(expected) and _numeric(got))
    diff, problem = _compare(expected, got, proba_pair, labels=labels, rtol=rtol, atol=atol)
    if problem and len(expected) == len(sample):
        problem += _only_rows_with_nulls(expected, got, proba_pair, sample, labels=labels,
                                         rtol=rtol, atol=atol)
    return diff, problem


def _only_rows_with_nulls(expected: np.ndarray, got: np.ndarray,
                          proba: tuple[np.ndarray, np.ndarray] | None, sample: pd.DataFrame,
                          *, labels: bool, rtol: float, atol: float) -> str:
    """A note when the twin agrees on every row without nulls: the converter reads missing
    values otherwise than the model does."""
    import numpy as np

    complete = ~np.asarray(sample.isna().any(axis=1))
    if complete.all():
        return ""
    pair = None if proba is None else (proba[0][complete], proba[1][complete])
    _, problem = _compare(expected[complete], got[complete], pair, labels=labels, rtol=rtol,
                          atol=atol)
    if problem:
        return ""
    return ("; it agrees on every row without nulls, so the converted model reads missing "
            "values otherwise: fill them in the model (e.g. a Pipeline starting with "
            "SimpleImputer) to have a twin")


# --- planning a conversion ----------------------------------------------------------------


@dataclass
class _Plan:
    run: Callable[[], Any]  # returns an onnx.ModelProto
    predict: str  # what OnnxModel.predict returns: label, probabilities, positive_probability


def _plan(model: Any, flavor: str, frame: pd.DataFrame) -> _Plan | str:
    """How to convert, or why it cannot be done (text)."""
    kinds = {str(c): _column_kind(frame[c]) for c in frame.columns}
    odd = [f"{name!r} ({kind})" for name, kind in kinds.items() if kind == "other"]
    if odd:
        return (f"column{'s' * (len(odd) > 1)} {', '.join(odd)} cannot be an ONNX input: "
                f"the twin takes numbers and text")
    numeric = all(kind in ("float", "int") for kind in kinds.values())
    if flavor == "sklearn":
        return _Plan(lambda: _convert_sklearn(model, frame, kinds, numeric), "label")
    if not numeric:
        text = [repr(name) for name, kind in kinds.items() if kind == "text"]
        return (f"onnxmltools converts {flavor} models on numeric inputs only; column"
                f"{'s' * (len(text) > 1)} {', '.join(text)} hold{'s' * (len(text) == 1)} "
                f"text or categories")
    width = frame.shape[1]
    if flavor == "xgboost":
        return _Plan(lambda: _convert_xgboost(model, width), _xgboost_predict(model))
    return _Plan(lambda: _convert_lightgbm(model, width), _lightgbm_predict(model))


def _column_kind(series: pd.Series) -> str:
    from pandas.api import types as ptypes

    dtype = series.dtype
    if ptypes.is_bool_dtype(dtype) or ptypes.is_float_dtype(dtype):
        return "float"
    if ptypes.is_integer_dtype(dtype):
        return "int" if not series.isna().any() else "float"
    if isinstance(dtype, ptypes.CategoricalDtype) or ptypes.is_string_dtype(dtype):
        if getattr(dtype, "name", "") == "object" and ptypes.infer_dtype(
                series, skipna=True) not in ("string", "empty"):
            return "other"
        return "text"
    return "other"


def _convert_sklearn(model: Any, frame: pd.DataFrame, kinds: dict[str, str],
                     numeric: bool) -> Any:
    import skl2onnx
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType
    from sklearn.base import is_classifier

    _register_boosting_converters(model)
    model = _without_xgboost_names(model)
    if numeric:
        initial: list[tuple[str, Any]] = [("input", FloatTensorType([None, frame.shape[1]]))]
    else:
        types = {"float": FloatTensorType, "int": Int64TensorType, "text": StringTensorType}
        initial = [(name, types[kind]([None, 1])) for name, kind in kinds.items()]
    options = {id(model): {"zipmap": False}} if is_classifier(model) else None
    opset = min(SKLEARN_OPSET, int(skl2onnx.__max_supported_opset__))
    return skl2onnx.convert_sklearn(model, initial_types=initial, options=options,
                                    target_opset={"": opset, "ai.onnx.ml": ML_OPSET})


def _register_boosting_converters(model: Any) -> None:
    """Teach skl2onnx the xgboost / LightGBM steps of a pipeline (onnxmltools converters)."""
    roots = {type(step).__module__.split(".")[0] for step in _parts(model)}
    if not roots & {"xgboost", "lightgbm"}:
        return
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    if "lightgbm" in roots:
        import lightgbm
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

        update_registered_converter(
            lightgbm.LGBMClassifier, "LightGbmLGBMClassifier",
            calculate_linear_classifier_output_shapes, convert_lightgbm,
            options=classifier_options)
        update_registered_converter(
            lightgbm.LGBMRegressor, "LightGbmLGBMRegressor",
            calculate_linear_regressor_output_shapes, convert_lightgbm,
            options={"split": None})
    if "xgboost" in roots:
        import xgboost
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost

        update_registered_converter(
            xgboost.XGBClassifier, "XGBoostXGBClassifier",
            calculate_linear_classifier_output_shapes, convert_xgboost,
            options=classifier_options)
        update_registered_converter(
            xgboost.XGBRegressor, "XGBoostXGBRegressor",
            calculate_linear_regressor_output_shapes, convert_xgboost)


def _without_xgboost_names(model: Any) -> Any:
    """A copy whose xgboost parts forget their feature names (onnxmltools wants f0, f1...)."""
    if not any(type(p).__module__.startswith("xgboost.") for p in _parts(model)):
        return model
    import xgboost

    model = copy.deepcopy(model)
    for part in _parts(model):
        if isinstance(part, xgboost.XGBModel):
            part.get_booster().feature_names = None
    return model


def _convert_xgboost(model: Any, width: int) -> Any:
    import onnxmltools
    import xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    if isinstance(model, xgboost.Booster):
        model = model.copy()
        model.feature_names = None  # the converter reads features as f0, f1, ...
    else:
        model = _without_xgboost_names(model)
    return onnxmltools.convert_xgboost(
        model, initial_types=[("input", FloatTensorType([None, width]))],
        target_opset=_onnxmltools_opset())


def _convert_lightgbm(model: Any, width: int) -> Any:
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    return onnxmltools.convert_lightgbm(
        model, initial_types=[("input", FloatTensorType([None, width]))],
        target_opset=_onnxmltools_opset(), zipmap=False)


def _onnxmltools_opset() -> int:
    from onnxmltools.convert.common.onnx_ex import get_maximum_opset_supported

    return min(ONNXMLTOOLS_OPSET, int(get_maximum_opset_supported()))


def _xgboost_predict(model: Any) -> str:
    import xgboost

    if not isinstance(model, xgboost.Booster):
        return "label"
    objective = json.loads(model.save_config())["learner"]["objective"]["name"]
    return {"binary:logistic": "positive_probability",
            "multi:softprob": "probabilities"}.get(objective, "label")


def _lightgbm_predict(model: Any) -> str:
    import lightgbm

    if not isinstance(model, lightgbm.Booster):
        return "label"
    header = model.model_to_string(num_iteration=0).split("\nTree=", 1)[0]
    objective = next((line.split("=", 1)[1] for line in header.splitlines()
                      if line.startswith("objective=")), "")
    if objective.startswith("binary"):
        return "positive_probability"
    if objective.startswith("multiclass"):
        return "probabilities"
    return "label"


# --- verification -------------------------------------------------------------------------


def _original_predict(model: Any, flavor: str, sample: pd.DataFrame) -> np.ndarray:
    import numpy as np

    if flavor == "xgboost" and type(model).__module__.startswith("xgboost."):
        import xgboost

        if isinstance(model, xgboost.Booster):
            return np.asarray(model.predict(xgboost.DMatrix(sample)))
    return np.asarray(model.predict(model_input(model, sample)))


def _compare(expected: np.ndarray, got: np.ndarray,
             proba: tuple[np.ndarray, np.ndarray] | None, *, labels: bool, rtol: float,
             atol: float) -> tuple[float | None, str]:
    import numpy as np

    rows = len(expected)
    if len(got) != rows:
        return None, f"the twin gave {len(got)} predictions for {rows} rows"
    expected, got = expected.reshape(rows, -1), got.reshape(rows, -1)
    if expected.shape != got.shape:
        return None, (f"the twin's predictions have shape {got.shape}, the original's "
                      f"{expected.shape}")
    bad = np.zeros(rows, dtype=bool)
    diff: float | None = None
    parts: list[str] = []
    if labels:
        label_bad = ~_same_labels(expected, got).all(axis=1)
        if label_bad.any():
            parts.append(f"labels differ on {int(label_bad.sum())} rows")
        bad |= label_bad
    else:
        diff, close = _closeness(expected, got, rtol, atol)
        bad |= ~close
    if proba is not None:
        want, have = proba
        if want.shape != have.shape:
            return None, (f"the twin gives probabilities of shape {have.shape}, the original "
                          f"{want.shape}")
        diff, close = _closeness(want, have, rtol, atol)
        if not close.all():
            parts.append(f"probabilities differ on {int((~close).sum())} rows")
        bad |= ~close
    if not bad.any():
        return diff, ""
    detail = f" ({'; '.join(parts)})" if parts else ""
    shown = "" if diff is None else f", max abs diff {diff:.3g}"
    return diff, (f"the twin disagrees with the original on {int(bad.sum())} of {rows} "
                  f"rows{shown}{detail} (rtol={rtol:g}, atol={atol:g})")


def _closeness(want: np.ndarray, have: np.ndarray, rtol: float,
               atol: float) -> tuple[float, np.ndarray]:
    """Largest absolute difference and, per row, whether every value is within tolerance."""
    import numpy as np

    want = want.astype(np.float64).reshape(len(want), -1)
    have = have.astype(np.float64).reshape(len(have), -1)
    close = np.asarray(np.isclose(have, want, rtol=rtol, atol=atol, equal_nan=True).all(axis=1))
    gaps = np.abs(have - want)
    gaps = gaps[~np.isnan(gaps)]
    nan_apart = bool((np.isnan(want) != np.isnan(have)).any())
    largest = float("inf") if nan_apart else (float(gaps.max()) if gaps.size else 0.0)
    return largest, close


def _same_labels(want: np.ndarray, have: np.ndarray) -> np.ndarray:
    import numpy as np

    if _numeric(want) and _numeric(have):
        return np.asarray(want.astype(np.float64) == have.astype(np.float64))
    return np.asarray(want.astype(str) == have.astype(str))


def _numeric(values: np.ndarray) -> bool:
    return values.dtype.kind in "iufb"


# --- small helpers ------------------------------------------------------------------------


def _check_arguments(flavor: str, sample: Any, rtol: float, atol: float) -> pd.DataFrame:
    import pandas as pd

    flavor_named(flavor)  # InvalidInputError(field="flavor") for an unknown name
    if not isinstance(sample, pd.DataFrame):
        raise InvalidInputError(
            f"the sample must be a pandas DataFrame, got {type(sample).__name__}",
            field="sample")
    if sample.shape[0] == 0 or sample.shape[1] == 0:
        raise InvalidInputError(
            f"the sample is empty ({sample.shape[0]} rows, {sample.shape[1]} columns): "
            f"verification needs rows to predict on", field="sample")
    for name, value in (("rtol", rtol), ("atol", atol)):
        if not value >= 0:
            raise InvalidInputError(f"{name} must be >= 0, got {value}", field=name)
    if any(not isinstance(c, str) for c in sample.columns):
        sample = sample.set_axis([str(c) for c in sample.columns], axis=1)
    return sample.reset_index(drop=True)


def _parts(model: Any) -> list[Any]:
    """The model and every estimator inside it (pipeline steps, wrapped estimators)."""
    found = [model]
    get_params = getattr(model, "get_params", None)
    if callable(get_params):
        try:
            params = get_params(deep=True)
        except Exception:
            return found
        found += [v for v in params.values() if hasattr(v, "get_params")]
    return found


def _culprit(model: Any, exc: BaseException) -> str:
    """The name of the part of ``model`` the converter's error names, else the model's."""
    text = str(exc)
    for part in reversed(_parts(model)):
        if type(part).__name__ in text and part is not model:
            return type(part).__name__
    return type(model).__name__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _stamp(proto: Any, props: dict[str, str]) -> None:
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
