"""Small data for the documentation examples: customers' claims, labels, a spine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

CUSTOMERS = np.array([42, 77, *range(100, 140)], dtype=np.int64)


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def claims(seed: int = 1, *, days: int = 120, per_customer: int = 4) -> pd.DataFrame:
    """Claims of every customer over the last ``days`` days: amount, email, settled value."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(CUSTOMERS, per_customer)
    n = len(ids)
    ago = rng.uniform(1, days, n)
    amount = rng.gamma(2.0, 1500.0, n).round(2)
    return pd.DataFrame({
        "customer_id": ids,
        "event_time": [now() - timedelta(days=float(d)) for d in ago],
        "claim_amount": amount,
        "email": [f"c{i}@example.com" for i in ids],
        "claim_value": (0.8 * amount + rng.normal(0, 50, n)).round(2),
    })


def labels(seed: int = 2) -> pd.DataFrame:
    """A spine: every customer, at an instant, with the value of their next claim."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer_id": CUSTOMERS,
        "ts": [now() - timedelta(hours=1)] * len(CUSTOMERS),
        "claim_value": rng.gamma(2.0, 1200.0, len(CUSTOMERS)).round(2),
    })


def write_claims(project: Path, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    frame = claims() if frame is None else frame
    (project / "data").mkdir(exist_ok=True)
    frame.to_parquet(project / "data" / "claims.parquet", index=False)
    return frame


def xy(n: int = 200, seed: int = 4) -> tuple[pd.DataFrame, pd.Series]:
    """Numeric inputs and a target linear in them."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"age": rng.uniform(18, 80, n).round(1),
                      "vehicle_value": rng.uniform(2_000, 60_000, n).round(0)})
    y = 3.0 * x["age"] + 0.01 * x["vehicle_value"] + rng.normal(0, 2, n)
    return x, y.rename("claim_value")


def regressor(x: pd.DataFrame, y: pd.Series) -> Any:
    from sklearn.linear_model import LinearRegression

    return LinearRegression().fit(x, y)


def pipeline() -> Any:
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), Ridge())
