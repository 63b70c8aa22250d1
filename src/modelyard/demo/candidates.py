"""The candidate models the demo compares: scikit-learn pipelines, LightGBM when installed.

Each candidate is a whole pipeline (encoding and filling gaps included), so the fitted
artifact takes rows of the training set as they come and nothing else is needed to score with
it. The inputs are the claim's own details, the customer's profile and their claim history
(empty windows give missing values: trees take them as they are, the linear model fills them
in and is told which were missing).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelyard.errors import ConfigurationError

CLAIM_CATEGORICAL = ("claim_type", "incident_severity", "repair_shop")
CLAIM_NUMERIC = ("days_to_report", "vehicles_involved", "police_report")
CLAIM_FEATURES = CLAIM_CATEGORICAL + CLAIM_NUMERIC  # what the claim itself says
PROFILE_CATEGORICAL = ("region", "vehicle_type", "credit_band")
PROFILE_NUMERIC = ("age", "vehicle_age", "vehicle_value", "annual_mileage_km",
                   "policy_tenure_years")
HISTORY_NUMERIC = (
    "claims_30d", "claims_90d", "claims_365d", "amount_30d_mean", "amount_90d_sum",
    "amount_365d_mean", "amount_365d_max", "severity_90d_max", "serious_claims_365d",
    "days_since_last_claim",
)
CATEGORICAL_FEATURES = PROFILE_CATEGORICAL + CLAIM_CATEGORICAL
NUMERIC_FEATURES = PROFILE_NUMERIC + CLAIM_NUMERIC + HISTORY_NUMERIC
FEATURES = CATEGORICAL_FEATURES + NUMERIC_FEATURES
TARGET = "claim_value"


@dataclass(frozen=True)
class Candidate:
    """A named model recipe: its family, the hyperparameters it is logged with, a builder."""

    name: str
    family: str
    params: dict[str, Any]
    build: Callable[[dict[str, Any]], Any] = field(repr=False)

    def estimator(self) -> Any:
        """A fresh, unfitted pipeline."""
        return self.build(self.params)


def require_sklearn() -> None:
    """Refuse clearly when scikit-learn (the ``sklearn`` extra) is not installed."""
    try:
        import sklearn  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(
            "the demo trains scikit-learn models, and scikit-learn is not installed; "
            "install it with: pip install 'modelyard[sklearn]'",
            extra="sklearn",
        ) from exc


def lightgbm_available() -> bool:
    return importlib.util.find_spec("lightgbm") is not None


def _one_hot() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = make_pipeline(SimpleImputer(strategy="median", add_indicator=True),
                            StandardScaler())
    return ColumnTransformer([
        ("categorical", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL_FEATURES)),
        ("numeric", numeric, list(NUMERIC_FEATURES)),
    ])


def _ordinal() -> Any:
    """Categories as integer codes first, numbers passed through (for tree models)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OrdinalEncoder

    return ColumnTransformer([
        ("categorical", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                       dtype=float), list(CATEGORICAL_FEATURES)),
        ("numeric", "passthrough", list(NUMERIC_FEATURES)),
    ])


def _ridge(params: dict[str, Any]) -> Any:
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline

    return Pipeline([("encode", _one_hot()), ("model", Ridge(**params))])


def _random_forest(params: dict[str, Any]) -> Any:
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.pipeline import Pipeline

    return Pipeline([("encode", _ordinal()),
                     ("model", RandomForestRegressor(n_jobs=-1, **params))])


def _hist_gradient_boosting(params: dict[str, Any]) -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline

    categorical = list(range(len(CATEGORICAL_FEATURES)))
    return Pipeline([("encode", _ordinal()), ("model", HistGradientBoostingRegressor(
        categorical_features=categorical, **params))])


def _lightgbm(params: dict[str, Any]) -> Any:
    from lightgbm import LGBMRegressor
    from sklearn.pipeline import Pipeline

    return Pipeline([("encode", _ordinal()),
                     ("model", LGBMRegressor(verbose=-1, n_jobs=1, **params))])


def default_candidates(seed: int = 42) -> Sequence[Candidate]:
    """Ridge, a random forest, histogram gradient boosting, and LightGBM when installed."""
    found = [
        Candidate("ridge", "linear", {"alpha": 1.0}, _ridge),
        Candidate("random-forest", "bagged trees",
                  {"n_estimators": 50, "max_depth": 14, "min_samples_leaf": 8,
                   "max_features": 0.6, "random_state": seed}, _random_forest),
        Candidate("hist-gradient-boosting", "boosted trees",
                  {"max_iter": 250, "learning_rate": 0.08, "max_leaf_nodes": 31,
                   "l2_regularization": 1.0, "random_state": seed}, _hist_gradient_boosting),
    ]
    if lightgbm_available():
        found.append(Candidate("lightgbm", "boosted trees",
                               {"n_estimators": 300, "learning_rate": 0.05, "num_leaves": 31,
                                "min_child_samples": 20, "subsample": 0.8, "subsample_freq": 1,
                                "colsample_bytree": 0.8, "random_state": seed}, _lightgbm))
    return found
