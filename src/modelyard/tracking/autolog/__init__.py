"""Automatic logging of scikit-learn, XGBoost and LightGBM training.

``yard.autolog()`` patches ``fit`` (and ``fit_transform``/``fit_predict``) of every public
scikit-learn estimator, of the scikit-learn API classes of XGBoost and LightGBM, and the native
``xgboost.train`` and ``lightgbm.train`` functions. Each outermost training call is logged:

* into the active run when there is one, otherwise into a new run of the default experiment,
  ended when training returns (``failed`` when it raises; the exception is re-raised);
* params: ``get_params(deep=True)`` (nested as ``step__param``; estimators by class name), or
  the native booster params and ``num_boost_round``; ``training.n_samples`` and
  ``training.n_features``; the tag ``modelyard.autolog.estimator`` names the class;
* metrics: ``training_score`` (``estimator.score``), for classifiers ``training_accuracy``,
  ``training_precision``/``training_recall``/``training_f1`` (weighted), ``training_log_loss``
  and ``training_roc_auc``, for regressors ``training_r2``, ``training_rmse`` and
  ``training_mae`` (sample weights honoured); searches log ``best_<param>`` params, the
  ``best_cv_score`` metric and ``cv_results.csv``; boosters log every evaluation result per
  iteration as ``<dataset>-<metric>`` at that step, ``n_iterations`` and ``best_iteration``;
* with ``log_models`` the fitted model, as ``model/model.joblib``.

Fits nested in a logged fit (a pipeline's steps, a search's candidates) are not logged on their
own. A failure to log never breaks training: it is reported as an :class:`AutologWarning`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import inspect
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from modelyard.errors import ConfigurationError
from modelyard.tracking.autolog.recording import (
    AutologWarning,
    _attempt,
    _booster_counts,
    _flatten,
    _log_evals,
    _log_metrics,
    _log_params,
    _log_search,
    _public_path,
    _shape,
    _sklearn_evals,
    _training_metrics,
    _warn,
)

if TYPE_CHECKING:
    from modelyard.tracking.run import Run
    from modelyard.tracking.service import TrackingService

__all__ = ["ESTIMATOR_TAG", "MODEL_ARTIFACT", "AutologWarning", "configure"]

ESTIMATOR_TAG = "modelyard.autolog.estimator"
MODEL_ARTIFACT = "model/model.joblib"
_log = logging.getLogger(__name__)
_METHODS = ("fit", "fit_transform", "fit_predict")
_MARK = "__modelyard_autolog__"


@dataclass
class _Config:
    service: TrackingService
    log_models: bool


_lock = threading.Lock()
_config: _Config | None = None
_patched: dict[tuple[Any, str], tuple[bool, Any]] = {}  # (owner, name) -> (had own, own value)
_guard = threading.local()
_sklearn_classes: list[type] | None = None


def configure(service: TrackingService, *, log_models: bool = True,
              disable: bool = False) -> None:
    """Start (or, with ``disable=True``, stop) logging training to ``service``."""
    global _config
    with _lock:
        if disable:
            _config = None
            for (owner, name), (had_own, own) in reversed(list(_patched.items())):
                if had_own:
                    setattr(owner, name, own)
                else:
                    delattr(owner, name)
            _patched.clear()
            return
        found = False
        if _optional_import("sklearn") is not None:
            found = True
            for cls in _sklearn_targets():
                for name in _METHODS:
                    _patch(cls, name, _estimator_wrapper)
            joblib = sys.modules.get("joblib")
            if joblib is not None:
                _patch(joblib.Parallel, "__call__", _parallel_wrapper)
        for module_name, prefix, train in (("xgboost", "XGB", _xgboost_train),
                                           ("lightgbm", "LGBM", _lightgbm_train)):
            module = _optional_import(module_name)
            if module is None:
                continue
            found = True
            for value in list(vars(module).values()):
                if isinstance(value, type) and value.__name__.startswith(prefix):
                    _patch(value, "fit", _estimator_wrapper)
            _patch(module, "train", _booster_wrapper(train))
        if not found:
            raise ConfigurationError(
                "autolog needs scikit-learn, XGBoost or LightGBM; install modelyard[sklearn] "
                "or modelyard[boosting]"
            )
        _config = _Config(service, log_models)


# --- patching ------------------------------------------------------------------------------


def _sklearn_targets() -> list[type]:
    global _sklearn_classes
    if _sklearn_classes is None:
        from sklearn import model_selection
        from sklearn.utils import all_estimators

        classes = [cls for _, cls in all_estimators()]
        for name in ("HalvingGridSearchCV", "HalvingRandomSearchCV"):
            # present only once the experimental module is enabled
            with contextlib.suppress(AttributeError, ImportError):
                classes.append(getattr(model_selection, name))
        _sklearn_classes = classes
    return _sklearn_classes


def _optional_import(name: str) -> ModuleType | None:
    if importlib.util.find_spec(name) is None:
        return None
    try:
        return importlib.import_module(name)
    except Exception as exc:  # a broken optional install must not stop the others
        _warn(f"import {name}", exc)
        return None


def _resolve(owner: Any, name: str) -> Any:
    """The unpatched attribute ``owner.name`` would find, without descriptor binding."""
    for klass in getattr(owner, "__mro__", (owner,)):
        if name in vars(klass):
            raw = vars(klass)[name]
            return raw.__wrapped__ if getattr(raw, _MARK, False) else raw
    return None


def _patch(owner: Any, name: str, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]
           ) -> None:
    if (owner, name) in _patched:
        return
    raw = _resolve(owner, name)
    if not inspect.isfunction(raw):  # absent, or a descriptor such as sklearn's available_if
        return
    had_own = name in vars(owner)
    own = vars(owner).get(name)
    wrapper = wrap(raw)
    setattr(wrapper, _MARK, True)
    setattr(owner, name, wrapper)
    _patched[(owner, name)] = (had_own, own)


def _estimator_wrapper(raw: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(raw)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        return _logged(lambda: _EstimatorTraining(raw, self, args, kwargs),
                       lambda: raw(self, *args, **kwargs))

    return wrapper


def _booster_wrapper(make: Callable[[Callable[..., Any], inspect.BoundArguments],
                                    _Training]) -> Callable[[Callable[..., Any]],
                                                            Callable[..., Any]]:
    def wrap(raw: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(raw)

        @functools.wraps(raw)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return _logged(lambda: make(raw, signature.bind(*args, **kwargs)),
                           lambda: raw(*args, **kwargs))

        return wrapper

    return wrap


def _parallel_wrapper(raw: Callable[..., Any]) -> Callable[..., Any]:
    """Tasks a logged fit hands to joblib worker threads count as part of that fit."""

    @functools.wraps(raw)
    def wrapper(self: Any, iterable: Any) -> Any:
        if getattr(_guard, "depth", 0) > 0 and getattr(getattr(self, "_backend", None),
                                                       "uses_threads", False):
            iterable = ((_NestedTask(task), args, kwargs) for task, args, kwargs in iterable)
        return raw(self, iterable)

    return wrapper


class _NestedTask:
    def __init__(self, task: Callable[..., Any]) -> None:
        self.task = task

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        depth = getattr(_guard, "depth", 0)
        _guard.depth = depth + 1
        try:
            return self.task(*args, **kwargs)
        finally:
            _guard.depth = depth


# --- one logged training call --------------------------------------------------------------


class _Training:
    """What one flavour logs around its training call."""

    name: str
    tags: dict[str, str]

    def before(self, run: Run) -> None:
        """Log what is known before training (params, data shape)."""

    def train(self) -> Any:
        raise NotImplementedError

    def after(self, run: Run, result: Any, log_models: bool) -> None:
        """Log what training produced (metrics, the model)."""


def _logged(make: Callable[[], _Training], plain: Callable[[], Any]) -> Any:
    config = _config
    if config is None or getattr(_guard, "depth", 0) > 0:
        return plain()
    _guard.depth = 1
    try:
        try:
            training = make()
        except Exception:  # arguments the function will refuse on its own
            return plain()
        return _train_in_run(config, training)
    finally:
        _guard.depth = 0


def _train_in_run(config: _Config, training: _Training) -> Any:
    run = None
    owned = False
    try:
        run = config.service.active_run()
        if run is None:
            run = config.service.start_run(name=training.name)
            owned = True
        run.set_tags(training.tags)
        training.before(run)
    except Exception as exc:
        _warn("prepare the run", exc)
    try:
        result = training.train()
    except BaseException as exc:
        if owned and run is not None:
            try:
                run.__exit__(type(exc), exc, exc.__traceback__)
            except Exception as end_exc:
                _log.warning("could not mark run %s failed: %s", run.run_id, end_exc)
        raise
    if run is not None and not run.ended:
        _attempt("log the training results", lambda: training.after(run, result,
                                                                    config.log_models))
        if owned:
            try:
                run.end("finished")
            except Exception as exc:
                _warn("end the run", exc)
    return result


class _EstimatorTraining(_Training):
    """``fit`` (or ``fit_transform``/``fit_predict``) of a scikit-learn style estimator."""

    def __init__(self, raw: Callable[..., Any], estimator: Any, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> None:
        self.raw, self.estimator, self.args, self.kwargs = raw, estimator, args, kwargs
        signature = inspect.signature(raw)
        bound = signature.bind(estimator, *args, **kwargs).arguments
        names = list(signature.parameters)[1:]
        self.X = bound.get(names[0]) if names else None
        self.y = bound.get("y", bound.get("Y"))
        self.sample_weight = bound.get("sample_weight")
        cls = type(estimator)
        self.name = cls.__name__
        self.tags = {ESTIMATOR_TAG: _public_path(cls)}

    def before(self, run: Run) -> None:
        params = {}
        if hasattr(self.estimator, "get_params"):
            params = _flatten(self.estimator.get_params(deep=True))
        _log_params(run, {**params, **_shape(self.X)})

    def train(self) -> Any:
        return self.raw(self.estimator, *self.args, **self.kwargs)

    def after(self, run: Run, result: Any, log_models: bool) -> None:
        est = self.estimator
        _attempt("log training metrics", lambda: _log_metrics(
            run, _training_metrics(est, self.X, self.y, self.sample_weight)))
        if hasattr(est, "best_params_"):
            _attempt("log the search results", lambda: _log_search(run, est))
        _attempt("log evaluation results", lambda: _log_evals(run, _sklearn_evals(est)))
        _attempt("log iteration counts", lambda: _log_metrics(run, _booster_counts(est)))
        if log_models:
            _attempt("keep the model", lambda: run.log_pickle(est, MODEL_ARTIFACT))


class _BoosterTraining(_Training):
    """A native ``train(params, data, num_boost_round, ...)`` call returning a Booster."""

    def __init__(self, raw: Callable[..., Any], bound: inspect.BoundArguments,
                 evals: dict[str, Any], booster_path: str) -> None:
        self.raw, self.bound, self.evals = raw, bound, evals
        self.name = raw.__module__.split(".")[0] + ".train"
        self.tags = {ESTIMATOR_TAG: booster_path}

    def before(self, run: Run) -> None:
        args = self.bound.arguments
        params = dict(args.get("params") or {})
        rounds = args.get("num_boost_round",
                          self.bound.signature.parameters["num_boost_round"].default)
        _log_params(run, {**_flatten(params), "num_boost_round": str(rounds)})

    def train(self) -> Any:
        return self.raw(*self.bound.args, **self.bound.kwargs)

    def after(self, run: Run, result: Any, log_models: bool) -> None:
        args = self.bound.arguments
        data = args.get("dtrain", args.get("train_set"))
        _attempt("log the data shape", lambda: _log_params(run, _shape(data)))
        _attempt("log evaluation results", lambda: _log_evals(run, self.evals))
        _attempt("log iteration counts", lambda: _log_metrics(run, _booster_counts(result)))
        if log_models:
            _attempt("keep the model", lambda: run.log_pickle(result, MODEL_ARTIFACT))


def _xgboost_train(raw: Callable[..., Any], bound: inspect.BoundArguments) -> _Training:
    evals = bound.arguments.get("evals_result")
    if evals is None:
        evals = bound.arguments["evals_result"] = {}
    return _BoosterTraining(raw, bound, evals, "xgboost.Booster")


def _lightgbm_train(raw: Callable[..., Any], bound: inspect.BoundArguments) -> _Training:
    import lightgbm

    evals: dict[str, Any] = {}
    callbacks = list(bound.arguments.get("callbacks") or [])
    bound.arguments["callbacks"] = [*callbacks, lightgbm.record_evaluation(evals)]
    return _BoosterTraining(raw, bound, evals, "lightgbm.Booster")
