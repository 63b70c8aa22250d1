"""Shared data for the registry tests: a small feature store and models of a known quality."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from modelyard import Entity, Feature, FeatureGroup, Source, Yard

T0 = datetime(2025, 1, 1, tzinfo=UTC)
MODEL = "claims-model"
FEATURES = ["profile:age", "profile:vehicle_value"]
INPUTS = ["age", "vehicle_value"]

customer = Entity("customer", key="customer_id")
policies = Source.frame("policies", timestamp="ts")
profile = FeatureGroup("profile", entity=customer, source=policies, features=[
    Feature("age", "age"),
    Feature("vehicle_value", "vehicle_value"),
])


def people(n: int = 120, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer_id": np.arange(n, dtype=np.int64),
        "ts": [T0 + timedelta(hours=int(h)) for h in rng.integers(0, 24 * 30, n)],
        "age": rng.uniform(18, 80, n).round(1),
        "vehicle_value": rng.uniform(2_000, 60_000, n).round(0),
        "gender": rng.choice(["f", "m"], n, p=[0.85, 0.15]),
    })


def cost(frame: pd.DataFrame, seed: int = 5) -> np.ndarray:
    """The label: linear in the features, plus 40 more for the larger gender (which no
    model sees: fitted to the majority, every model errs more on the minority)."""
    rng = np.random.default_rng(seed)
    base = 3.0 * frame["age"] + 0.01 * frame["vehicle_value"] + rng.normal(0, 2, len(frame))
    return np.asarray(base + np.where(frame["gender"] == "f", 40.0, 0.0))


def setup_features(yard: Yard) -> pd.DataFrame:
    """Apply and ingest the profile group; return the people."""
    rows = people()
    yard.apply([profile])
    yard.ingest(policies, rows.drop(columns=["gender"]))
    return rows


def training_set(yard: Yard, rows: pd.DataFrame) -> Any:
    spine = pd.DataFrame({"customer_id": rows["customer_id"],
                          "at": rows["ts"] + timedelta(days=1), "cost": cost(rows)})
    return yard.training_set(spine, FEATURES, label="cost", timestamp="at")


def holdout(rows: pd.DataFrame) -> pd.DataFrame:
    frame = rows[["age", "vehicle_value", "gender"]].copy()
    frame["cost"] = cost(rows, seed=9)
    return frame


def linear(training: Any) -> Any:
    from sklearn.linear_model import LinearRegression

    frame = training.to_pandas()
    return LinearRegression().fit(frame[INPUTS], frame["cost"])


def mean_only(training: Any) -> Any:
    from sklearn.dummy import DummyRegressor

    frame = training.to_pandas()
    return DummyRegressor().fit(frame[INPUTS], frame["cost"])
