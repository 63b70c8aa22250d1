"""Autolog with real scikit-learn, XGBoost and LightGBM on tiny data."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn import metrics
from sklearn.base import BaseEstimator
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest, RandomForestRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import modelyard
from modelyard.backends.metadata.base import RunRecord
from modelyard.client import Yard
from modelyard.tracking.autolog import ESTIMATOR_TAG, MODEL_ARTIFACT, AutologWarning

RNG = np.random.default_rng(7)
X = RNG.normal(size=(80, 4))
Y_REG = X @ np.array([1.5, -2.0, 0.5, 0.0]) + RNG.normal(scale=0.3, size=80)
Y_BIN = (Y_REG > 0).astype(int)
Y_MULTI = np.digitize(Y_REG, [-1.0, 1.0])  # three classes


@pytest.fixture
def ayard(project: Path) -> Iterator[Yard]:
    """A Yard on the project's SQLite store with autolog on; off again afterwards."""
    y = modelyard.connect(capture_packages=False, capture_git=False)
    y.autolog()
    try:
        yield y
    finally:
        y.autolog(disable=True)
        y.close()


def runs(yard: Yard) -> list[RunRecord]:
    return yard.tracking.find_runs()


def only_run(yard: Yard) -> RunRecord:
    found = runs(yard)
    assert len(found) == 1, [r.info.name for r in found]
    return found[0]


def load_model(yard: Yard, run_id: str) -> Any:
    return joblib.load(io.BytesIO(yard.tracking.read_artifact(run_id, MODEL_ARTIFACT)))


def metric(record: RunRecord, key: str) -> float:
    return record.metrics[key].value


def test_regressor_is_logged_on_each_backend(yard: Yard) -> None:
    yard.autolog()
    try:
        model = Ridge(alpha=0.5).fit(X, Y_REG)
    finally:
        yard.autolog(disable=True)
    rec = only_run(yard)
    assert rec.info.status == "finished"
    assert yard.tracking.get_experiment(rec.info.experiment_id).name == "default"
    assert rec.tags[ESTIMATOR_TAG] == "sklearn.linear_model.Ridge"
    assert rec.params["alpha"] == "0.5"
    assert rec.params["fit_intercept"] == "True"
    assert rec.params["training.n_samples"] == "80"
    assert rec.params["training.n_features"] == "4"
    pred = model.predict(X)
    assert metric(rec, "training_r2") == pytest.approx(metrics.r2_score(Y_REG, pred))
    assert metric(rec, "training_score") == pytest.approx(model.score(X, Y_REG))
    assert metric(rec, "training_rmse") == pytest.approx(
        metrics.root_mean_squared_error(Y_REG, pred))
    assert metric(rec, "training_mae") == pytest.approx(metrics.mean_absolute_error(Y_REG, pred))
    loaded = load_model(yard, rec.info.run_id)
    np.testing.assert_array_equal(loaded.predict(X), pred)


def test_classifier_metrics(ayard: Yard) -> None:
    model = LogisticRegression(C=0.7, max_iter=500).fit(X, Y_MULTI)
    rec = only_run(ayard)
    assert rec.info.name == "LogisticRegression"
    assert rec.params["C"] == "0.7"
    pred, proba = model.predict(X), model.predict_proba(X)
    assert metric(rec, "training_accuracy") == pytest.approx(metrics.accuracy_score(Y_MULTI, pred))
    assert metric(rec, "training_f1") == pytest.approx(
        metrics.f1_score(Y_MULTI, pred, average="weighted"))
    assert metric(rec, "training_precision") == pytest.approx(
        metrics.precision_score(Y_MULTI, pred, average="weighted"))
    assert metric(rec, "training_recall") == pytest.approx(
        metrics.recall_score(Y_MULTI, pred, average="weighted"))
    assert metric(rec, "training_log_loss") == pytest.approx(metrics.log_loss(Y_MULTI, proba))
    assert metric(rec, "training_roc_auc") == pytest.approx(
        metrics.roc_auc_score(Y_MULTI, proba, multi_class="ovr", average="weighted"))
    loaded = load_model(ayard, rec.info.run_id)
    np.testing.assert_array_equal(loaded.predict_proba(X), proba)


def test_sample_weight_reaches_the_metrics(ayard: Yard) -> None:
    weights = np.linspace(0.1, 3.0, len(X))
    model = Ridge().fit(X, Y_REG, sample_weight=weights)
    rec = only_run(ayard)
    weighted = model.score(X, Y_REG, sample_weight=weights)
    assert weighted != pytest.approx(model.score(X, Y_REG))
    assert metric(rec, "training_score") == pytest.approx(weighted)
    assert metric(rec, "training_r2") == pytest.approx(weighted)


def test_pipeline_is_one_run_with_step_params(ayard: Yard) -> None:
    pipe = make_pipeline(StandardScaler(with_mean=False), LogisticRegression(C=2.0))
    pipe.fit(X, Y_BIN)
    rec = only_run(ayard)
    assert rec.tags[ESTIMATOR_TAG] == "sklearn.pipeline.Pipeline"
    assert rec.params["standardscaler__with_mean"] == "False"
    assert rec.params["logisticregression__C"] == "2.0"
    assert rec.params["logisticregression"] == "LogisticRegression"
    assert "LogisticRegression" in rec.params["steps"]
    assert "0x" not in rec.params["steps"]  # names, not object reprs
    assert metric(rec, "training_roc_auc") == pytest.approx(
        metrics.roc_auc_score(Y_BIN, pipe.predict_proba(X)[:, 1]))


def test_grid_search_logs_best_params_in_one_run(ayard: Yard) -> None:
    search = GridSearchCV(Ridge(), {"alpha": [0.01, 1.0, 100.0]}, cv=3).fit(X, Y_REG)
    rec = only_run(ayard)  # no run per candidate or per fold
    assert rec.tags[ESTIMATOR_TAG] == "sklearn.model_selection.GridSearchCV"
    assert rec.params["best_alpha"] == str(search.best_params_["alpha"])
    assert rec.params["estimator__alpha"] == "1.0"  # the unsearched default stays as given
    assert metric(rec, "best_cv_score") == pytest.approx(search.best_score_)
    csv = ayard.tracking.read_artifact(rec.info.run_id, "cv_results.csv").decode()
    assert len(csv.strip().splitlines()) == 1 + 3
    loaded = load_model(ayard, rec.info.run_id)
    np.testing.assert_array_equal(loaded.predict(X), search.predict(X))


def test_search_in_worker_threads_is_still_one_run(ayard: Yard) -> None:
    with joblib.parallel_backend("threading", n_jobs=2):
        GridSearchCV(Ridge(), {"alpha": [0.1, 1.0]}, cv=3, n_jobs=2).fit(X, Y_REG)
    IsolationForest(n_estimators=4, n_jobs=2, random_state=0).fit(X)  # threads inside
    assert sorted(r.info.name for r in runs(ayard)) == ["GridSearchCV", "IsolationForest"]


def test_fits_in_separate_user_threads_are_each_logged(ayard: Yard) -> None:
    threads = [threading.Thread(target=Ridge(alpha=a).fit, args=(X, Y_REG))
               for a in (1.0, 2.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.params["alpha"] for r in runs(ayard)) == ["1.0", "2.0"]


def test_fit_inside_an_active_run_logs_into_it(ayard: Yard) -> None:
    with ayard.start_run("mine", name="manual") as run:
        run.log_param("note", "kept")
        Ridge(alpha=2.0).fit(X, Y_REG)
        assert ayard.get_run(run.run_id).info.status == "running"
    rec = only_run(ayard)
    assert rec.info.run_id == run.run_id
    assert rec.info.status == "finished"
    assert rec.params["note"] == "kept"
    assert rec.params["alpha"] == "2.0"
    assert "training_r2" in rec.metrics


def test_second_fit_in_one_run_keeps_first_params_and_steps_metrics(ayard: Yard) -> None:
    with ayard.start_run("mine") as run:
        Ridge(alpha=1.0).fit(X, Y_REG)
        with pytest.warns(AutologWarning, match="alpha"):
            Ridge(alpha=3.0).fit(X, Y_REG)
    rec = only_run(ayard)
    assert rec.params["alpha"] == "1.0"
    history = ayard.tracking.metric_history(run.run_id, "training_r2")
    assert list(history["step"]) == [0, 1]


def test_failing_fit_marks_the_run_failed_and_reraises(ayard: Yard) -> None:
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        Ridge().fit(X, Y_REG[:10])
    rec = only_run(ayard)
    assert rec.info.status == "failed"
    assert rec.tags["modelyard.error"].startswith("ValueError")
    assert rec.params["alpha"] == "1.0"  # params logged before training
    assert ayard.active_run() is None


class _HookedRidge(Ridge):
    def __init__(self, alpha: float = 1.0, hook: Any = None) -> None:
        super().__init__(alpha=alpha)
        self.hook = hook


def test_a_logging_failure_warns_but_never_breaks_the_fit(ayard: Yard) -> None:
    model = _HookedRidge(hook=lambda: None)  # a lambda cannot be pickled
    with pytest.warns(AutologWarning, match="keep the model"):
        returned = model.fit(X, Y_REG)
    assert returned is model and model.coef_.shape == (4,)
    rec = only_run(ayard)
    assert rec.info.status == "finished"
    assert rec.tags[ESTIMATOR_TAG].endswith("_HookedRidge")
    assert rec.params["hook"].endswith("<lambda>")
    assert ayard.tracking.list_artifacts(rec.info.run_id) == []


def test_log_models_false_keeps_no_model(ayard: Yard) -> None:
    ayard.autolog(log_models=False)
    Ridge().fit(X, Y_REG)
    rec = only_run(ayard)
    assert "training_r2" in rec.metrics
    assert ayard.tracking.list_artifacts(rec.info.run_id) == []


def test_fit_transform_is_logged_once(ayard: Yard) -> None:
    out = PCA(n_components=2).fit_transform(X)
    assert out.shape == (80, 2)
    rec = only_run(ayard)
    assert rec.tags[ESTIMATOR_TAG] == "sklearn.decomposition.PCA"
    assert rec.params["n_components"] == "2"


def _is_patched(fn: Any) -> bool:
    return bool(getattr(fn, "__modelyard_autolog__", False))


def test_disable_restores_every_original(project: Path) -> None:
    import lightgbm
    import xgboost

    own = {cls: vars(cls)["fit"] for cls in (Ridge, LinearRegression, xgboost.XGBModel)}
    train = (xgboost.train, lightgbm.train)
    dispatch = vars(joblib.Parallel)["__call__"]
    assert "fit" not in vars(RandomForestRegressor)  # inherited from its base class
    y = modelyard.connect(capture_packages=False, capture_git=False)
    try:
        y.autolog()
        assert _is_patched(Ridge.fit) and _is_patched(RandomForestRegressor.fit)
        assert _is_patched(xgboost.train) and _is_patched(lightgbm.LGBMRegressor.fit)
        y.autolog(disable=True)
        assert {cls: vars(cls)["fit"] for cls in own} == own
        assert (xgboost.train, lightgbm.train) == train
        assert vars(joblib.Parallel)["__call__"] is dispatch
        assert "fit" not in vars(RandomForestRegressor)
        Ridge().fit(X, Y_REG)
        assert runs(y) == []
    finally:
        y.autolog(disable=True)
        y.close()


def test_configure_twice_does_not_double_patch(ayard: Yard) -> None:
    ayard.autolog()
    assert not _is_patched(Ridge.fit.__wrapped__)  # type: ignore[attr-defined]
    Ridge().fit(X, Y_REG)
    assert len(runs(ayard)) == 1


def test_importing_autolog_does_not_import_sklearn() -> None:
    code = ("import sys, modelyard.tracking.autolog; "
            "print([m for m in ('sklearn', 'xgboost', 'lightgbm') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


# --- boosters -------------------------------------------------------------------------------


def test_lgbm_regressor_logs_params_and_eval_history(ayard: Yard) -> None:
    import lightgbm

    model = lightgbm.LGBMRegressor(n_estimators=6, min_child_samples=5, verbose=-1)
    model.fit(X, Y_REG, eval_X=(X[:40],), eval_y=(Y_REG[:40],))
    rec = only_run(ayard)
    assert rec.tags[ESTIMATOR_TAG] == "lightgbm.LGBMRegressor"
    assert rec.params["n_estimators"] == "6"
    assert rec.params["min_child_samples"] == "5"
    assert metric(rec, "n_iterations") == 6
    assert "training_r2" in rec.metrics
    history = ayard.tracking.metric_history(rec.info.run_id, "valid_0-l2")
    assert list(history["step"]) == list(range(6))
    assert list(history["value"]) == pytest.approx(model.evals_result_["valid_0"]["l2"])
    loaded = load_model(ayard, rec.info.run_id)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_xgb_classifier_logs_metrics_and_eval_history(ayard: Yard) -> None:
    import xgboost

    model = xgboost.XGBClassifier(n_estimators=5, max_depth=2, eval_metric="logloss")
    model.fit(X, Y_BIN, eval_set=[(X, Y_BIN)], verbose=False)
    rec = only_run(ayard)
    assert rec.tags[ESTIMATOR_TAG] == "xgboost.XGBClassifier"
    assert rec.params["max_depth"] == "2"
    assert rec.params["eval_metric"] == "logloss"
    assert metric(rec, "training_accuracy") == pytest.approx(
        metrics.accuracy_score(Y_BIN, model.predict(X)))
    assert "training_roc_auc" in rec.metrics
    assert metric(rec, "n_iterations") == 5
    history = ayard.tracking.metric_history(rec.info.run_id, "validation_0-logloss")
    assert len(history) == 5
    loaded = load_model(ayard, rec.info.run_id)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_xgboost_train_logs_native_params_and_booster(ayard: Yard) -> None:
    import xgboost

    dtrain = xgboost.DMatrix(X, label=Y_REG)
    booster = xgboost.train({"max_depth": 2, "eta": 0.3}, dtrain, num_boost_round=4,
                            evals=[(dtrain, "train")], verbose_eval=False)
    rec = only_run(ayard)
    assert rec.info.name == "xgboost.train"
    assert rec.tags[ESTIMATOR_TAG] == "xgboost.Booster"
    assert rec.params["max_depth"] == "2"
    assert rec.params["eta"] == "0.3"
    assert rec.params["num_boost_round"] == "4"
    assert rec.params["training.n_samples"] == "80"
    assert metric(rec, "n_iterations") == 4
    history = ayard.tracking.metric_history(rec.info.run_id, "train-rmse")
    assert list(history["step"]) == [0, 1, 2, 3]
    loaded = load_model(ayard, rec.info.run_id)
    np.testing.assert_array_equal(loaded.predict(dtrain), booster.predict(dtrain))


def test_xgboost_early_stopping_logs_the_best_iteration(ayard: Yard) -> None:
    import xgboost

    dtrain = xgboost.DMatrix(X[:40], label=Y_REG[:40])
    dvalid = xgboost.DMatrix(X[40:], label=RNG.normal(size=40))  # noise: stops early
    booster = xgboost.train({"max_depth": 6, "eta": 0.9}, dtrain, 50,
                            evals=[(dvalid, "valid")], early_stopping_rounds=2,
                            verbose_eval=False)
    rec = only_run(ayard)
    assert metric(rec, "best_iteration") == booster.best_iteration
    assert metric(rec, "n_iterations") == booster.num_boosted_rounds() < 50


def test_xgboost_train_keeps_the_callers_evals_result(ayard: Yard) -> None:
    import xgboost

    dtrain = xgboost.DMatrix(X, label=Y_REG)
    mine: dict[str, Any] = {}
    xgboost.train({"max_depth": 2}, dtrain, 3, evals=[(dtrain, "train")],
                  evals_result=mine, verbose_eval=False)
    assert len(mine["train"]["rmse"]) == 3
    rec = only_run(ayard)
    assert metric(rec, "train-rmse") == pytest.approx(mine["train"]["rmse"][-1])


def test_lightgbm_train_logs_native_params_and_booster(ayard: Yard) -> None:
    import lightgbm

    train_set = lightgbm.Dataset(X, label=Y_REG)
    valid = lightgbm.Dataset(X[:40], label=Y_REG[:40], reference=train_set)
    booster = lightgbm.train({"objective": "regression", "min_data_in_leaf": 5, "verbose": -1},
                             train_set, num_boost_round=5, valid_sets=[valid],
                             valid_names=["holdout"])
    rec = only_run(ayard)
    assert rec.info.name == "lightgbm.train"
    assert rec.tags[ESTIMATOR_TAG] == "lightgbm.Booster"
    assert rec.params["objective"] == "regression"
    assert rec.params["num_boost_round"] == "5"
    assert rec.params["training.n_features"] == "4"
    assert metric(rec, "n_iterations") == 5
    history = ayard.tracking.metric_history(rec.info.run_id, "holdout-l2")
    assert list(history["step"]) == list(range(5))
    loaded = load_model(ayard, rec.info.run_id)
    np.testing.assert_array_equal(loaded.predict(X), booster.predict(X))


def test_sklearn_api_boosters_do_not_also_log_their_inner_train(ayard: Yard) -> None:
    import lightgbm
    import xgboost

    xgboost.XGBRegressor(n_estimators=3).fit(X, Y_REG)
    lightgbm.LGBMClassifier(n_estimators=3, min_child_samples=5, verbose=-1).fit(X, Y_BIN)
    names = sorted(r.info.name for r in runs(ayard))
    assert names == ["LGBMClassifier", "XGBRegressor"]


def test_nothing_is_logged_for_estimators_without_sklearn_base(ayard: Yard) -> None:
    class Plain(BaseEstimator):
        def fit(self, X: Any, y: Any = None) -> Plain:
            return self

    Plain().fit(X)
    assert runs(ayard) == []
