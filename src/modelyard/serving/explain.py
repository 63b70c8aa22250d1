"""Per-prediction explanations: how much each input column moved a model's output (SHAP).

An :class:`Explainer` is built once per loaded version (:meth:`Explainer.for_model`, which
may take a second or more: shap itself loads slowly); :meth:`Explainer.explain` is then fast.
The method follows the model:

==========  ===============================================================================
``tree``    shap's TreeExplainer: scikit-learn random forests, extra trees, decision trees,
            gradient boosting and histogram gradient boosting; LightGBM; XGBoost
``linear``  shap's LinearExplainer over the background: scikit-learn linear models
            (LinearRegression, Ridge, Lasso, ElasticNet, LogisticRegression, SGD, ...)
``kernel``  shap's KernelExplainer on the model's output, over a k-means summary (numeric
            inputs) or a seeded sample of the background: anything else
==========  ===============================================================================

A scikit-learn Pipeline whose last step is a tree or linear model is explained on the
features its preprocessing makes, and each transformed column's contribution is added to
the input column it comes from (a one-hot column to its categorical column, a missing
indicator to the column it watches), which keeps the sum. When that mapping cannot be traced
(a transformer that mixes columns), the whole pipeline goes to the kernel explainer.

What is explained (:attr:`Explanation.space`):

* ``prediction``: a regressor's prediction.
* ``probability``: a classifier's probability, explained by trees (forests directly; boosted
  trees through shap's interventional mode over the background) or by the kernel explainer.
* ``margin``: the score a classifier turns into probabilities: a linear classifier's decision
  function (log-odds for logistic regression), a multi-class boosted model's per-class raw
  scores (before the softmax), a raw LightGBM or XGBoost Booster's raw score.

A binary classifier is explained for its positive class (``classes_[1]``) only; a multi-class
one for every class, its contributions in columns named ``class:column``.

In every case ``base_value + contributions.sum(axis=1)`` is the explained output. Before a
tree or linear explainer is kept, that sum is checked against the model's own output on
background rows. The kernel explainer takes over when it misses (shap's interventional
trees miss some histogram gradient boosting probabilities), when shap refuses the model
(a multi-class GradientBoostingClassifier), for histogram gradient boosting with categorical
splits (which shap's trees do not read) and for tree regressors whose objective has a link
function (Poisson, gamma, Tweedie).
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError
from modelyard.serving import pipeline_sources
from modelyard.serving.explanation import Explanation

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from modelyard.registry.signature import Signature

__all__ = ["KERNEL_SAMPLES", "KERNEL_SUMMARY", "METHODS", "Explainer", "Explanation"]

METHODS = ("tree", "linear", "kernel")
KERNEL_SUMMARY = 10  # background rows (k-means centres or a seeded sample) the kernel uses
KERNEL_SAMPLES = 256  # coalitions per explained row, on top of two per input column
_CHECK_ROWS = 20  # background rows the sum of a tree or linear explanation is checked on
_CHECK_TOLERANCE = 1e-4  # relative; a wrong explanation is off by far more
_FORESTS = ("RandomForestRegressor", "RandomForestClassifier", "ExtraTreesRegressor",
            "ExtraTreesClassifier", "DecisionTreeRegressor", "DecisionTreeClassifier",
            "ExtraTreeRegressor", "ExtraTreeClassifier")
_BOOSTED = ("GradientBoostingRegressor", "GradientBoostingClassifier",
            "HistGradientBoostingRegressor", "HistGradientBoostingClassifier")
# linear in their inputs, but predicting through a link function (the kernel explains them)
_LINKED_LINEAR = ("PoissonRegressor", "GammaRegressor", "TweedieRegressor")
# regression objectives whose prediction is the trees' raw sum (no link function)
_IDENTITY_OBJECTIVES = frozenset({
    "regression", "regression_l2", "l2", "mean_squared_error", "mse", "l2_root",
    "root_mean_squared_error", "rmse", "regression_l1", "l1", "mean_absolute_error", "mae",
    "huber", "fair", "quantile", "mape", "mean_absolute_percentage_error",  # LightGBM
    "reg:squarederror", "reg:squaredlogerror", "reg:absoluteerror", "reg:pseudohubererror",
    "reg:quantileerror", "reg:linear",  # XGBoost
    "squared_error", "absolute_error",  # scikit-learn
})


class _NotExplainable(Exception):
    """Why a tree or linear explainer does not fit this model (the kernel takes over)."""


# the part that differs per method: checked input frame -> (values, base values)
_Core = Callable[["pd.DataFrame"], tuple["np.ndarray", "np.ndarray"]]


class Explainer:
    """Explains one model version's outputs; build with :meth:`for_model`.

    ``method`` and ``space`` say how (see the module docstring), ``reason`` why: the
    estimator explained, or why the kernel took over. Explaining is serialized by a lock
    (shap's kernel explainer keeps state while it runs).
    """

    def __init__(self, method: str, space: str, inputs: Sequence[str], outputs: Sequence[str],
                 core: _Core, signature: Signature | None, reason: str) -> None:
        self.method = method
        self.space = space
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self.reason = reason
        self._core = core
        self._signature = signature
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Explainer(method={self.method!r}, space={self.space!r}, reason={self.reason!r})"

    @classmethod
    def for_model(cls, model: Any, flavor: str, background: pd.DataFrame | None,
                  signature: Signature | None = None) -> Explainer:
        """The explainer for ``model`` (of the registry flavor ``flavor``).

        ``background``: rows of the model's inputs to measure against (the registry keeps
        them: ``yard.models.background(ref)``); linear and kernel explanations, and
        probabilities of boosted trees, need it. ``signature``: the model's inputs, whose
        types requests are checked against; without it the background's columns (or the
        model's ``feature_names_in_``) are the inputs.
        """
        inputs = _input_names(model, background, signature)
        rows = _fit_background(background, inputs, signature)
        if flavor in ("onnx", "python"):
            reason = f"a {flavor} model is explained through its outputs only"
        else:
            try:
                return cls._exact(model, inputs, rows, signature)
            except _NotExplainable as exc:
                reason = str(exc)
        return cls._kernel(model, inputs, rows, signature, reason)

    def explain(self, frame: Any) -> Explanation:
        """The contributions of each input column for each row of ``frame`` (a pandas
        frame, or anything the signature's ``check`` takes). Raises InvalidInputError for
        missing input columns (all named), values of the wrong type, or no rows."""
        import pandas as pd

        data = self._checked(frame)
        if len(data) == 0:
            raise InvalidInputError("the frame has no rows to explain", field="frame")
        with self._lock:
            values, base = self._core(data)
        index = frame.index if isinstance(frame, pd.DataFrame) else data.index
        return Explanation(self.method, self.space, self.inputs, self.outputs,
                           tuple(float(b) for b in base), values, index)

    def _checked(self, frame: Any) -> pd.DataFrame:
        import pandas as pd

        if self._signature is not None:
            return self._signature.check(frame)
        if not isinstance(frame, pd.DataFrame):
            raise InvalidInputError(f"frame must be a pandas DataFrame, got "
                                    f"{type(frame).__name__}", field="frame")
        missing = [c for c in self.inputs if c not in frame.columns]
        if missing:
            raise InvalidInputError(
                f"missing input column{'s' * (len(missing) > 1)} {', '.join(missing)}; the "
                f"model takes {', '.join(self.inputs)}", field="columns", missing=missing)
        return frame[list(self.inputs)].reset_index(drop=True)

    # --- building -------------------------------------------------------------------------

    @classmethod
    def _exact(cls, model: Any, inputs: list[str], rows: pd.DataFrame | None,
               signature: Signature | None) -> Explainer:
        """A tree or linear explainer, checked on the background; else _NotExplainable."""
        estimator, prepare, mapping, where = _unwrap(model, inputs)
        family = _family(estimator)
        if family is None:
            name = type(estimator).__name__
            raise _NotExplainable(f"{name} predicts through a link function" if name in
                                  _LINKED_LINEAR else f"{name} is neither trees nor linear")
        classes = _classes(estimator)
        try:
            sample = None if rows is None else _as_matrix(prepare(rows), mapping)
            if family == "linear":
                shap_fn, target, space = _linear(estimator, sample, classes)
            else:
                shap_fn, target, space = _tree(estimator, family, sample, classes)
        except (_NotExplainable, InvalidInputError):
            raise
        except Exception as exc:  # shap refuses this model, or its preprocessing fails
            raise _NotExplainable(f"shap cannot explain {type(estimator).__name__}{where}: "
                                  f"{type(exc).__name__}: {exc}") from exc
        outputs = _output_names(classes, _width(target, sample, classes), signature)
        method = "linear" if family == "linear" else "tree"

        def core(data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
            raw, expected = shap_fn(_as_matrix(prepare(data), mapping))
            values, base = _select(raw, expected, len(outputs))
            return (values if mapping is None
                    else pipeline_sources.sum_back(values, mapping)), base

        if rows is not None and sample is not None:
            _check_sum(core, rows.head(_CHECK_ROWS), target(sample[:_CHECK_ROWS]), method)
        reason = f"{type(estimator).__name__}{where}"
        return cls(method, space, inputs, outputs, core, signature, reason)

    @classmethod
    def _kernel(cls, model: Any, inputs: list[str], rows: pd.DataFrame | None,
                signature: Signature | None, reason: str) -> Explainer:
        import numpy as np
        import pandas as pd

        if rows is None or len(rows) == 0:
            raise InvalidInputError(
                f"{type(model).__name__} needs a background sample to be explained ({reason}),"
                " and none was given: register the version with a training set or an input "
                "example", field="background")
        output, space, classes = _output_function(model)
        dtypes = rows.dtypes.to_dict()
        numeric = all(t.kind in "iuf" for t in rows.dtypes) and not rows.isna().any().any()

        def predict(matrix: np.ndarray) -> np.ndarray:
            frame = pd.DataFrame(matrix, columns=inputs).astype(dtypes)
            return _two_d(output(frame))

        shap = _shap()
        if numeric and len(rows) > KERNEL_SUMMARY:
            summary: Any = shap.kmeans(rows.to_numpy(np.float64), KERNEL_SUMMARY)
        else:
            picked = rows.sample(min(KERNEL_SUMMARY, len(rows)), random_state=0)
            summary = picked.to_numpy(np.float64 if numeric else object)
        width = _two_d(output(rows.head(2))).shape[1]
        outputs = _output_names(classes, width, signature)
        kernel = shap.KernelExplainer(predict, summary)
        samples = 2 * len(inputs) + KERNEL_SAMPLES

        def core(data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
            matrix = data.to_numpy(np.float64 if numeric else object)
            values = kernel.shap_values(matrix, nsamples=samples, l1_reg=False, silent=True)
            return _select(values, kernel.expected_value, len(outputs))

        return cls("kernel", space, inputs, outputs, core, signature, reason)


# --- shap, lazily --------------------------------------------------------------------------


@functools.cache
def _shap() -> Any:
    """The shap module (seconds to import; its import warns about matplotlib deprecations,
    which are shap's own business)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        import shap
    return shap


# --- which model, which explainer ----------------------------------------------------------


def _family(estimator: Any) -> str | None:
    """``forest`` (leaves hold the output), ``boosted``, ``booster`` (a raw LightGBM or
    XGBoost Booster), ``linear``, or None."""
    module = type(estimator).__module__
    name = type(estimator).__name__
    if module.startswith("sklearn."):
        if name in _FORESTS:
            return "forest"
        if name in _BOOSTED:
            return "boosted"
        linear = (module.startswith("sklearn.linear_model.") or name in ("LinearSVR", "LinearSVC"))
        fitted = hasattr(estimator, "coef_") and hasattr(estimator, "intercept_")
        return "linear" if linear and fitted and name not in _LINKED_LINEAR else None
    if module.startswith(("lightgbm.", "xgboost.")):
        return "booster" if name == "Booster" else "boosted"
    return None


def _classes(model: Any) -> list[Any] | None:
    """A classifier's classes (it has ``classes_`` and predicts probabilities or scores)."""
    classes = getattr(model, "classes_", None)
    if classes is None or not (hasattr(model, "predict_proba")
                               or hasattr(model, "decision_function")):
        return None
    return list(classes)


def _linear(estimator: Any, sample: np.ndarray | None, classes: list[Any] | None
            ) -> tuple[Callable[[Any], Any], Callable[[Any], Any], str]:
    if sample is None:
        raise _no_background(f"{type(estimator).__name__} (a linear model)")
    explainer = _shap().LinearExplainer(estimator, sample)

    def shap_fn(matrix: Any) -> tuple[Any, Any]:
        return explainer.shap_values(matrix), explainer.expected_value

    if classes is not None:
        return shap_fn, estimator.decision_function, "margin"
    return shap_fn, estimator.predict, "prediction"


def _tree(estimator: Any, family: str, sample: np.ndarray | None, classes: list[Any] | None
          ) -> tuple[Callable[[Any], Any], Callable[[Any], Any], str]:
    shap = _shap()
    name = type(estimator).__name__
    if family == "booster":
        explainer = shap.TreeExplainer(estimator, feature_perturbation="tree_path_dependent")
        return _tree_fn(explainer), functools.partial(_raw_score, estimator), "margin"
    if classes is None:
        categorical = getattr(estimator, "is_categorical_", None)
        if categorical is not None and bool(categorical.any()):
            raise _NotExplainable(f"{name} has categorical splits, which shap's tree "
                                  "explainer does not read")
        objective = _objective(estimator)
        if objective not in _IDENTITY_OBJECTIVES:
            raise _NotExplainable(f"{name}'s objective {objective!r} has a link function "
                                  "between its trees and its prediction")
        explainer = shap.TreeExplainer(estimator, feature_perturbation="tree_path_dependent")
        return _tree_fn(explainer), estimator.predict, "prediction"
    if family == "forest":  # leaves hold class frequencies: the raw output is a probability
        explainer = shap.TreeExplainer(estimator, feature_perturbation="tree_path_dependent")
        return _tree_fn(explainer), estimator.predict_proba, "probability"
    if len(classes) == 2:
        if sample is None:
            raise _no_background(f"{name} (probabilities of boosted trees)")
        explainer = shap.TreeExplainer(estimator, sample, model_output="probability",
                                       feature_perturbation="interventional")
        return _tree_fn(explainer), estimator.predict_proba, "probability"
    explainer = shap.TreeExplainer(estimator, feature_perturbation="tree_path_dependent")
    return _tree_fn(explainer), functools.partial(_raw_score, estimator), "margin"


def _no_background(what: str) -> InvalidInputError:
    return InvalidInputError(f"{what} needs a background sample to be explained, and none "
                             "was given: register the version with a training set or an "
                             "input example", field="background")


def _tree_fn(explainer: Any) -> Callable[[Any], tuple[Any, Any]]:
    def shap_fn(matrix: Any) -> tuple[Any, Any]:
        # from_call only silences a notice about the shape of LightGBM binary outputs,
        # which _select handles; the sum is checked once, when the explainer is built
        values = explainer.shap_values(matrix, check_additivity=False, from_call=True)
        return values, explainer.expected_value

    return shap_fn


def _objective(estimator: Any) -> str:
    """The regression objective (loss) of a tree model, as its library names it."""
    module = type(estimator).__module__
    if module.startswith("lightgbm."):
        return str(getattr(estimator, "objective_", None) or "regression")
    if module.startswith("xgboost."):
        return str(estimator.get_params().get("objective") or "reg:squarederror")
    return str(getattr(estimator, "loss", "squared_error"))


def _raw_score(estimator: Any, matrix: Any) -> Any:
    """The trees' raw sum: a multi-class model's per-class scores before the softmax."""
    module = type(estimator).__module__
    if module.startswith("lightgbm."):
        return estimator.predict(matrix, raw_score=True)
    if module.startswith("xgboost."):
        import xgboost

        if isinstance(estimator, xgboost.Booster):
            return estimator.predict(xgboost.DMatrix(matrix), output_margin=True)
        return estimator.predict(matrix, output_margin=True)
    return estimator.decision_function(matrix)


def _output_function(model: Any) -> tuple[Callable[[Any], Any], str, list[Any] | None]:
    """What the kernel explains: probabilities (binary: of ``classes_[1]``), else the
    decision function, else the prediction."""
    classes = _classes(model)
    if classes is not None and hasattr(model, "predict_proba"):
        if len(classes) > 2:
            return model.predict_proba, "probability", classes

        def positive(frame: pd.DataFrame) -> np.ndarray:
            return _two_d(model.predict_proba(frame))[:, 1:]

        return positive, "probability", classes
    if classes is not None:
        return model.decision_function, "margin", classes
    return model.predict, "prediction", None


def _width(target: Callable[[Any], Any], sample: np.ndarray | None,
           classes: list[Any] | None) -> int:
    """How many outputs are explained."""
    if classes is not None:
        return 1 if len(classes) == 2 else len(classes)
    if sample is None:
        return 1
    return int(_two_d(target(sample[:2])).shape[1])


def _output_names(classes: list[Any] | None, width: int, signature: Signature | None
                  ) -> list[str]:
    if classes is not None:
        return [str(classes[-1])] if width == 1 else [str(c) for c in classes]
    names = [] if signature is None else signature.output_names
    if len(names) == width:
        return names
    return ["prediction"] if width == 1 else [f"prediction_{i}" for i in range(width)]


# --- inputs and background -----------------------------------------------------------------


def _input_names(model: Any, background: pd.DataFrame | None,
                 signature: Signature | None) -> list[str]:
    if signature is not None:
        return signature.input_names
    if background is not None:
        return [str(c) for c in background.columns]
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        raise InvalidInputError(
            f"cannot tell which columns {type(model).__name__} takes: give its signature or "
            "a background sample", field="signature")
    return [str(c) for c in names]


def _fit_background(background: pd.DataFrame | None, inputs: list[str],
                    signature: Signature | None) -> pd.DataFrame | None:
    """The background as the model takes it (the signature's types), or None. Rows with a
    null where the signature allows none are left out: a request could not send them."""
    import pandas as pd

    if background is None:
        return None
    if not isinstance(background, pd.DataFrame):
        raise InvalidInputError(f"the background must be a pandas DataFrame, got "
                                f"{type(background).__name__}", field="background")
    missing = [c for c in inputs if c not in background.columns]
    if missing:
        raise InvalidInputError(
            f"the background lacks the input column{'s' * (len(missing) > 1)} "
            f"{', '.join(missing)}", field="background", missing=missing)
    rows = background[inputs]
    if signature is not None:
        required = [c.name for c in signature.inputs if not c.nullable]
        rows = signature.check(rows.dropna(subset=required))
    rows = rows.reset_index(drop=True)
    return rows if len(rows) else None


# --- pipelines -----------------------------------------------------------------------------


def _unwrap(model: Any, inputs: list[str]
            ) -> tuple[Any, Callable[[pd.DataFrame], Any], np.ndarray | None, str]:
    """(estimator to explain, frame -> its input, transformed-to-input column matrix or
    None, a note for the reason). A Pipeline is split before its last step when every
    transformed column can be traced to one input column (else _NotExplainable)."""
    identity: Callable[[pd.DataFrame], Any] = lambda frame: frame  # noqa: E731
    if type(model).__name__ != "Pipeline" or not type(model).__module__.startswith("sklearn."):
        return model, identity, None, ""
    estimator = model.steps[-1][1]
    if len(model.steps) == 1:
        return estimator, identity, None, " (the pipeline's only step)"
    if _family(estimator) is None:
        raise _NotExplainable(f"{type(estimator).__name__}, the pipeline's last step, is "
                              "neither a tree nor a linear model")
    head = model[:-1]
    fitted = getattr(head, "feature_names_in_", None)
    traced = None if fitted is None else pipeline_sources.trace(head, [str(c) for c in fitted])
    if traced is None or not set(traced[1]) <= set(inputs):
        raise _NotExplainable(f"the preprocessing before {type(estimator).__name__} mixes "
                              "input columns in a way that cannot be traced back")
    return (estimator, head.transform, pipeline_sources.source_matrix(traced[1], inputs),
            f" after the pipeline's preprocessing ({len(traced[1])} features summed back "
            f"into {len(inputs)} input columns)")


def _as_matrix(data: Any, mapping: np.ndarray | None) -> Any:
    """What a pipeline's last step takes: its preprocessing's output as dense float64
    (a frame given straight to the model stays a frame)."""
    if mapping is None:
        return data
    matrix = pipeline_sources.dense(data)
    if matrix.ndim != 2 or matrix.shape[1] != mapping.shape[0]:
        raise _NotExplainable(f"the preprocessing made {matrix.shape[-1]} columns where "
                              f"{mapping.shape[0]} were traced")
    return matrix


# --- shapes and checks ---------------------------------------------------------------------


def _two_d(values: Any) -> np.ndarray:
    import numpy as np

    array = np.asarray(values.to_numpy() if hasattr(values, "to_numpy") else values)
    if array.dtype.kind not in "biuf":
        raise InvalidInputError(f"the model's outputs are {array.dtype} values, not numbers, "
                                "so they cannot be explained", field="model")
    array = array.astype(np.float64)
    return array.reshape(len(array), -1)


def _select(values: Any, base: Any, width: int) -> tuple[np.ndarray, np.ndarray]:
    """shap's values as (rows, columns, outputs) and its base values as (outputs,), keeping
    only the positive class of a binary classifier explained for both classes."""
    import numpy as np

    array = (np.stack([np.asarray(v) for v in values], axis=-1) if isinstance(values, list)
             else np.asarray(values)).astype(np.float64)
    if array.ndim == 2:
        array = array[:, :, None]
    expected = np.atleast_1d(np.asarray(base, dtype=np.float64)).reshape(-1)
    if array.shape[2] == 2 and width == 1:
        array, expected = array[:, :, 1:], expected[1:]
    if array.shape[2] != width or expected.shape[0] != width:
        raise _NotExplainable(f"shap gave {array.shape[2]} outputs where {width} were expected")
    return array, expected


def _check_sum(core: _Core, rows: pd.DataFrame, expected: Any, method: str) -> None:
    """Refuse an explainer whose base value plus contributions miss the model's output."""
    import numpy as np

    values, base = core(rows)
    got = values.sum(axis=1) + base
    want = _two_d(expected)
    if want.shape[1] == 2 and got.shape[1] == 1:
        want = want[:, 1:]
    if got.shape != want.shape:
        raise _NotExplainable(f"the {method} explanation has {got.shape[1]} outputs where "
                              f"the model gives {want.shape[1]}")
    error = float(np.max(np.abs(got - want)))
    scale = max(1.0, float(np.max(np.abs(want))))
    if error > _CHECK_TOLERANCE * scale:
        raise _NotExplainable(f"its {method} explanation misses its output by up to "
                              f"{error:.3g} on background rows")
