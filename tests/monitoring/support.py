"""Shared data for the monitoring service tests: a small claims model, registered with its
reference, and windows of served predictions written to the prediction log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from modelyard import Yard
from modelyard.backends.metadata.predictions import PredictionRecord

MODEL = "claims-model"
INPUTS = ["age", "vehicle_value", "region"]
REGIONS = np.array(["north", "south", "east", "west"], dtype=object)
DAY0 = datetime(2025, 3, 1, tzinfo=UTC)


def claims(n: int, seed: int, *, shift: float = 0.0, south: float = 0.25,
           cost_factor: float = 1.0) -> pd.DataFrame:
    """Claims whose cost is linear in age and vehicle value plus a regional effect.
    ``shift`` moves vehicle values up (in standard deviations), ``south`` is the share of
    the south region, ``cost_factor`` inflates the true cost (the world changed)."""
    rng = np.random.default_rng(seed)
    rest = (1.0 - south) / 3
    region = REGIONS[rng.choice(4, n, p=[rest, south, rest, rest])]
    value = rng.normal(20_000 + shift * 6_000, 6_000, n).clip(1_000)
    frame = pd.DataFrame({"age": rng.uniform(18, 80, n).round(1), "vehicle_value": value,
                          "region": region})
    effect = np.select([region == "south", region == "west"], [300.0, -200.0], 0.0)
    frame["cost"] = ((20.0 * frame["age"] + 0.05 * frame["vehicle_value"] + effect)
                     * cost_factor + rng.normal(0, 100, n))
    return frame


def fit_regressor(frame: pd.DataFrame) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    encode = ColumnTransformer([("region", OneHotEncoder(handle_unknown="ignore"),
                                 ["region"])], remainder="passthrough")
    return Pipeline([("encode", encode), ("fit", LinearRegression())]).fit(
        frame[INPUTS], frame["cost"])


def register_regressor(yard: Yard, *, rows: int = 3_000, evaluate: bool = True) -> int:
    """Register a fitted regressor with its training rows as the reference; evaluate it on
    a holdout (dataset ``holdout``). Its version number."""
    train = claims(rows, 1)
    record = yard.models.register(fit_regressor(train), MODEL, input_example=train[INPUTS],
                                  onnx=False)
    if evaluate:
        yard.models.evaluate(f"{MODEL}:{record.version}", claims(2_000, 2), label="cost",
                             dataset="holdout")
    return record.version


def log_window(yard: Yard, version: int, frame: pd.DataFrame, start: datetime, *,
               spacing: timedelta = timedelta(minutes=1), prefix: str = "r",
               model: str = MODEL, logged: pd.DataFrame | None = None) -> list[str]:
    """Serve ``frame``'s rows (one request each, ``spacing`` apart from ``start``) and write
    them to the prediction log as the server would (the features as in ``logged`` when
    given). The request ids."""
    loaded = yard.models.load(model, version)
    predictions = loaded.predict(frame[INPUTS])
    ids = [f"{prefix}{i}" for i in range(len(frame))]
    start_us = int(start.timestamp() * 1e6)
    step_us = int(spacing.total_seconds() * 1e6)
    shown = frame if logged is None else logged
    features = shown[[c for c in shown.columns if c != "cost"]].to_dict("records")
    records = [PredictionRecord(ids[i], 0, model, version, "primary", start_us + i * step_us,
                                5.0 + (i % 10), None, features[i],
                                {"prediction": float(predictions[i])})
               for i in range(len(frame))]
    yard.predictions.write(records)
    return ids


def label(yard: Yard, ids: list[str], frame: pd.DataFrame, *, model: str = MODEL) -> None:
    yard.log_labels(model, pd.DataFrame({"request_id": ids, "cost": frame["cost"].to_numpy()}),
                    values=["cost"])
