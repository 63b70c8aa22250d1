"""The training set, and the candidates trained on its early months and validated on a later
time slice.

The training set comes from the feature store: its spine has one row per claim, with the
claim's own details and its value (the label), and the store adds the customer's profile and
claim history *as they were just before the claim*. The row's time is the claim's time minus
one microsecond: the store reads features at or before a row's time, so at the claim's own
time its windows would count the claim itself, value included. One microsecond earlier they
hold exactly the customer's earlier claims.

Every candidate is fitted in its own tracked run (a child of the demo's run) that records its
hyperparameters, the training set it used (lineage), the data fingerprint, the time windows,
validation metrics, the fitting time and the fitted pipeline itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from modelyard.demo.candidates import (
    CATEGORICAL_FEATURES,
    CLAIM_FEATURES,
    FEATURES,
    NUMERIC_FEATURES,
    TARGET,
    Candidate,
)

if TYPE_CHECKING:
    from modelyard.client import Yard
    from modelyard.features.training import TrainingSet
    from modelyard.tracking.run import Run

MODEL_ARTIFACT = "model/model.joblib"
SIGNATURE_ARTIFACT = "model/signature.json"
FEATURE_REFS = ("customer_profile:*", "claim_history:*", "claim_timing:*")
ROW_TIME = "feature_time"
JUST_BEFORE = pd.Timedelta(microseconds=1)


@dataclass(frozen=True)
class TimeSplit:
    """Training rows before ``valid_start``; validation rows in [valid_start, valid_end)."""

    train: pd.DataFrame
    valid: pd.DataFrame
    train_start: pd.Timestamp
    valid_start: pd.Timestamp
    valid_end: pd.Timestamp

    def params(self) -> dict[str, Any]:
        return {
            "train.start": self.train_start.isoformat(),
            "train.end": self.valid_start.isoformat(),
            "train.rows": len(self.train),
            "valid.start": self.valid_start.isoformat(),
            "valid.end": self.valid_end.isoformat(),
            "valid.rows": len(self.valid),
        }


@dataclass(frozen=True)
class CandidateResult:
    """A fitted candidate and where it is tracked."""

    name: str
    family: str
    run_id: str
    metrics: Mapping[str, float]
    model: Any


def claims_spine(claims: pd.DataFrame, end: pd.Timestamp) -> pd.DataFrame:
    """One row per claim filed before ``end``: its id, the customer, the claim's time, the
    time its features are read at (just before the claim), its own details and its value."""
    rows = claims.loc[claims["event_time"] < end,
                      ["claim_id", "customer_id", "event_time", *CLAIM_FEATURES, TARGET]]
    spine = rows.reset_index(drop=True)
    spine.insert(3, ROW_TIME, spine["event_time"] - JUST_BEFORE)
    return spine


def build_training_set(yard: Yard, claims: pd.DataFrame, end: pd.Timestamp) -> TrainingSet:
    """The point-in-time-correct training set of the claims filed before ``end``; the store
    records it (with its lineage) under its id."""
    return yard.training_set(claims_spine(claims, end), list(FEATURE_REFS), label=TARGET,
                             timestamp=ROW_TIME)


def model_frame(training_set: TrainingSet) -> pd.DataFrame:
    """The training set's rows as the models take them: police reports as 0/1. (The days
    since the previous claim are a request-time feature, ``claim_timing``, computed from the
    claim's own time the same way when the model is served.)"""
    frame = training_set.to_pandas()
    frame["police_report"] = frame["police_report"].astype(np.int64)
    return frame


def split_bounds(start: pd.Timestamp, train_months: int, valid_months: int
                 ) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Where validation starts and ends: training runs from ``start`` to the first."""
    valid_start = start + pd.DateOffset(months=train_months)
    return valid_start, valid_start + pd.DateOffset(months=valid_months)


def time_split(frame: pd.DataFrame, start: pd.Timestamp, train_months: int,
               valid_months: int) -> TimeSplit:
    valid_start, valid_end = split_bounds(start, train_months, valid_months)
    when = frame["event_time"]
    train = frame[(when >= start) & (when < valid_start)].reset_index(drop=True)
    valid = frame[(when >= valid_start) & (when < valid_end)].reset_index(drop=True)
    return TimeSplit(train, valid, start, valid_start, valid_end)


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import (
        mean_absolute_error,
        mean_absolute_percentage_error,
        mean_squared_error,
        r2_score,
    )

    return {
        "r2": float(r2_score(y_true, y_pred)),
        "rmse": float(np.sqrt(mean_squared_error(y_true, y_pred))),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "mape": float(mean_absolute_percentage_error(y_true, y_pred)),
    }


def _single_threaded_openmp() -> AbstractContextManager[Any]:
    """Gradient boosting on tens of thousands of rows runs fastest on one OpenMP thread:
    synchronising threads costs more than it saves, and far more on a busy machine."""
    from threadpoolctl import threadpool_limits

    limits: AbstractContextManager[Any] = threadpool_limits(limits=1, user_api="openmp")
    return limits


def train_candidate(yard: Yard, experiment: str, candidate: Candidate, split: TimeSplit, *,
                    parent: Run, data_params: Mapping[str, Any],
                    training_set: TrainingSet | None = None) -> CandidateResult:
    """Fit ``candidate`` on the training window in a child run of ``parent`` and score it;
    the run records ``training_set`` (the rows' lineage) when given."""
    with yard.start_run(experiment, name=candidate.name, parent=parent,
                        tags={"model.family": candidate.family,
                              "demo.step": "train"}) as run:
        if training_set is not None:
            run.log_training_set(training_set)
        run.log_params({f"model.{k}": v for k, v in candidate.params.items()})
        model = candidate.estimator()
        run.log_params({"model.class": type(model.steps[-1][1]).__name__, "target": TARGET,
                        "features": list(FEATURES), **split.params(), **data_params})
        with _single_threaded_openmp():
            began = time.perf_counter()
            model.fit(split.train[list(FEATURES)], split.train[TARGET].to_numpy())
            fit_seconds = time.perf_counter() - began
            began = time.perf_counter()
            predicted = model.predict(split.valid[list(FEATURES)])
            predict_seconds = time.perf_counter() - began
        metrics = {**regression_metrics(split.valid[TARGET].to_numpy(), predicted),
                   "train_seconds": fit_seconds, "predict_seconds": predict_seconds}
        run.log_metrics(metrics)
        run.log_pickle(model, MODEL_ARTIFACT)
        run.log_dict({"target": TARGET, "categorical": list(CATEGORICAL_FEATURES),
                      "numeric": list(NUMERIC_FEATURES),
                      "training_set": training_set.training_set_id if training_set else None},
                     SIGNATURE_ARTIFACT)
        run.set_note(
            f"{candidate.family} model `{candidate.name}` fitted on {len(split.train):,} claims "
            f"before {split.valid_start:%Y-%m-%d}, validated on {len(split.valid):,} claims "
            f"up to {split.valid_end:%Y-%m-%d}: r2 {metrics['r2']:.3f}, "
            f"rmse {metrics['rmse']:,.0f}."
        )
    return CandidateResult(candidate.name, candidate.family, run.run_id, metrics, model)


def train_all(yard: Yard, experiment: str, candidates: Sequence[Candidate],
              split: TimeSplit, *, parent: Run, data_params: Mapping[str, Any],
              training_set: TrainingSet | None = None,
              progress: Callable[[str], None] = lambda _: None) -> list[CandidateResult]:
    results = []
    for i, candidate in enumerate(candidates, start=1):
        progress(f"training {candidate.name} ({i}/{len(candidates)})")
        results.append(train_candidate(yard, experiment, candidate, split, parent=parent,
                                       data_params=data_params, training_set=training_set))
    return results
