"""What autolog records for one training call: params, metrics, search and booster results."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import math
import re
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from modelyard.errors import ParamConflictError
from modelyard.tracking.run import MAX_PARAM_LENGTH

if TYPE_CHECKING:
    from modelyard.tracking.run import Run

_BAD_KEY_CHARS = re.compile(r"[^\w\-. /:]")
_log = logging.getLogger("modelyard.tracking.autolog")


class AutologWarning(UserWarning):
    """Something could not be logged automatically; training itself went on."""


# --- what gets logged ----------------------------------------------------------------------


def _training_metrics(est: Any, X: Any, y: Any, sample_weight: Any) -> dict[str, float]:
    if y is None or X is None:
        return {}
    from sklearn import metrics
    from sklearn.base import is_classifier, is_regressor

    weights = {} if sample_weight is None else {"sample_weight": sample_weight}
    out: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if hasattr(est, "score"):
            accepts = "sample_weight" in inspect.signature(est.score).parameters
            _measure(out, "training_score", lambda: est.score(X, y, **(weights if accepts
                                                                        else {})))
        try:
            classifier, regressor = is_classifier(est), is_regressor(est)
            pred = est.predict(X) if classifier or regressor else None
        except Exception as exc:
            _log.debug("autolog: predict failed: %s", exc)
            return out
        if pred is None:
            return out
        if classifier:
            _measure(out, "training_accuracy",
                     lambda: metrics.accuracy_score(y, pred, **weights))
            for key, fn in (("precision", metrics.precision_score),
                            ("recall", metrics.recall_score), ("f1", metrics.f1_score)):
                _measure(out, f"training_{key}", functools.partial(
                    fn, y, pred, average="weighted", zero_division=0, **weights))
            if hasattr(est, "predict_proba"):
                _probability_metrics(out, est, X, y, weights)
        else:
            _measure(out, "training_r2", lambda: metrics.r2_score(y, pred, **weights))
            _measure(out, "training_rmse",
                     lambda: metrics.root_mean_squared_error(y, pred, **weights))
            _measure(out, "training_mae",
                     lambda: metrics.mean_absolute_error(y, pred, **weights))
    return out


def _probability_metrics(out: dict[str, float], est: Any, X: Any, y: Any,
                         weights: dict[str, Any]) -> None:
    from sklearn import metrics

    try:
        proba = est.predict_proba(X)
        labels = est.classes_
    except Exception as exc:
        _log.debug("autolog: predict_proba failed: %s", exc)
        return
    _measure(out, "training_log_loss",
             lambda: metrics.log_loss(y, proba, labels=labels, **weights))
    if getattr(proba, "ndim", 0) == 2 and proba.shape[1] == 2:
        _measure(out, "training_roc_auc",
                 lambda: metrics.roc_auc_score(y, proba[:, 1], **weights))
    else:
        _measure(out, "training_roc_auc", lambda: metrics.roc_auc_score(
            y, proba, multi_class="ovr", average="weighted", labels=labels, **weights))


def _measure(out: dict[str, float], key: str, compute: Callable[[], Any]) -> None:
    try:
        value = float(compute())
    except Exception as exc:
        _log.debug("autolog: %s not computed: %s", key, exc)
        return
    if math.isfinite(value):
        out[key] = value


def _log_search(run: Run, search: Any) -> None:
    _log_params(run, {f"best_{k}": v for k, v in _flatten(search.best_params_).items()})
    if hasattr(search, "best_score_"):
        _log_metrics(run, {"best_cv_score": float(search.best_score_)})
    if hasattr(search, "cv_results_"):
        import pandas as pd

        run.log_text(pd.DataFrame(search.cv_results_).to_csv(index=False), "cv_results.csv")


def _sklearn_evals(est: Any) -> Mapping[str, Any]:
    results = getattr(est, "evals_result_", None)  # LightGBM
    if results is None and callable(getattr(est, "evals_result", None)):  # XGBoost
        try:
            results = est.evals_result()
        except Exception:  # no eval_set was given
            results = None
    return results if isinstance(results, Mapping) else {}


def _booster_counts(model: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    booster = model
    for attr in ("get_booster", "booster_"):  # XGBoost, LightGBM scikit-learn API
        try:
            value = getattr(model, attr)
            booster = value() if callable(value) else value
            break
        except Exception:
            continue
    for attr in ("num_boosted_rounds", "current_iteration"):
        if callable(getattr(booster, attr, None)):
            _measure(out, "n_iterations", getattr(booster, attr))
            break
    try:
        best = booster.best_iteration  # raises when no early stopping was used (XGBoost)
    except Exception:
        best = None
    xgboost = callable(getattr(booster, "num_boosted_rounds", None))
    if isinstance(best, int) and (best > 0 or xgboost):  # LightGBM's 0 means "not used"
        out["best_iteration"] = float(best)
    return out


def _log_evals(run: Run, results: Mapping[str, Any]) -> None:
    for data_name, per_metric in results.items():
        for metric, values in dict(per_metric).items():
            key = _clean_key(f"{data_name}-{metric}")
            for step, value in enumerate(values):
                if isinstance(value, (tuple, list)):  # (mean, std) from cross-validation
                    value = value[0]
                if math.isfinite(float(value)):
                    run.log_metric(key, float(value), step=step)


def _attempt(what: str, action: Callable[[], object]) -> None:
    try:
        action()
    except Exception as exc:
        _warn(what, exc)


def _log_metrics(run: Run, values: Mapping[str, float]) -> None:
    if values:
        run.log_metrics(values)


def _log_params(run: Run, params: Mapping[str, str]) -> None:
    """Log params; keys already holding another value keep it (with a warning)."""
    try:
        run.log_params(params)
    except ParamConflictError as exc:
        clashes = set(exc.details.get("keys", ()))
        _warn_text(f"params {sorted(clashes)} of run {run.run_id} already hold other values; "
                   "the earlier values are kept")
        rest = {k: v for k, v in params.items() if k not in clashes}
        if rest and clashes:
            run.log_params(rest)


# --- values --------------------------------------------------------------------------------


def _flatten(params: Mapping[str, Any]) -> dict[str, str]:
    return {_clean_key(str(k)): _param_text(v) for k, v in params.items()}


def _clean_key(key: str) -> str:
    return _BAD_KEY_CHARS.sub("_", key).lstrip("/")[:255] or "_"


def _param_text(value: Any) -> str:
    described = _describe(value)
    if isinstance(described, str):
        text = described
    elif isinstance(described, (list, dict)):
        text = json.dumps(described, default=str)
    else:
        text = str(described)
    return text if len(text) <= MAX_PARAM_LENGTH else text[:MAX_PARAM_LENGTH - 3] + "..."


def _describe(value: Any) -> Any:
    """A JSON-friendly picture of a param value: estimators and functions by name."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if not isinstance(value, type) and hasattr(value, "get_params") and hasattr(value, "fit"):
        return type(value).__name__
    if callable(value) and hasattr(value, "__qualname__"):  # classes and functions
        return _public_path(value)
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _describe(v) for k, v in value.items()}
    return str(value)


def _public_path(obj: Any) -> str:
    """``sklearn.linear_model.Ridge`` rather than ``sklearn.linear_model._ridge.Ridge``."""
    module = getattr(obj, "__module__", None) or ""
    name = getattr(obj, "__qualname__", None) or type(obj).__name__
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        loaded = sys.modules.get(prefix)
        try:
            if loaded is not None and getattr(loaded, name, None) is obj:
                return f"{prefix}.{name}"
        except Exception:  # lazy module attributes may raise anything
            continue
    return f"{module}.{name}" if module else name


def _shape(data: Any) -> dict[str, str]:
    if data is None:
        return {}
    for rows, cols in (("num_row", "num_col"), ("num_data", "num_feature")):  # boosters
        if callable(getattr(data, rows, None)):
            try:
                return {"training.n_samples": str(getattr(data, rows)()),
                        "training.n_features": str(getattr(data, cols)())}
            except Exception:
                return {}
    shape = getattr(data, "shape", None)
    if isinstance(shape, tuple) and shape:
        out = {"training.n_samples": str(shape[0])}
        if len(shape) >= 2:
            out["training.n_features"] = str(shape[1])
        return out
    try:
        return {"training.n_samples": str(len(data))}
    except TypeError:
        return {}


def _warn(what: str, exc: BaseException) -> None:
    _log.debug("autolog could not %s", what, exc_info=exc)
    _warn_text(f"could not {what}: {type(exc).__name__}: {exc}")


def _warn_text(message: str) -> None:
    warnings.warn(f"modelyard autolog {message}", AutologWarning, stacklevel=2)


