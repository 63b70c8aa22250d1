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


def policyholders(seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(CUSTOMERS)
    return pd.DataFrame({
        "customer_id": CUSTOMERS,
        "policy_start": [now() - timedelta(days=400)] * n,
        "age": rng.integers(18, 80, n),
        "region": rng.choice(["north", "south", "east", "west"], n),
    })


def claims_features(project: Path) -> tuple[Any, Any]:
    """The claim_history and customer_profile feature groups, applied, with their data
    ingested: what the online and serving pages take as given."""
    from modelyard import Entity, Feature, FeatureGroup, Source, connect

    write_claims(project)
    policyholders().to_parquet(project / "data" / "policyholders.parquet", index=False)
    customer = Entity("customer", key="customer_id")
    claims_source = Source.parquet("data/claims.parquet", timestamp="event_time")
    holders = Source.parquet("data/policyholders.parquet", timestamp="policy_start")
    history = FeatureGroup("claim_history", entity=customer, source=claims_source, ttl="365d",
                           features=[
                               Feature("last_amount", "claim_amount"),
                               Feature("amount_30d_mean", "mean(claim_amount)", window="30d"),
                               Feature("claims_90d", "count(*)", window="90d"),
                           ])
    profile = FeatureGroup("customer_profile", entity=customer, source=holders, features=[
        Feature("age", "age"), Feature("region", "region")])
    with connect() as yard:
        yard.apply([history, profile])
        yard.ingest(claims_source)
        yard.ingest(holders)
    return history, profile


STATS = ["amount", "amount_30d_mean", "claims_90d"]


def claim_stats(project: Path) -> Any:
    """The claim_stats feature group, applied, with its claims ingested."""
    from modelyard import Entity, Feature, FeatureGroup, Source, connect

    write_claims(project)
    source = Source.parquet("data/claims.parquet", timestamp="event_time")
    stats = FeatureGroup("claim_stats", entity=Entity("customer", key="customer_id"),
                         source=source, features=[
                             Feature("amount", "claim_amount"),
                             Feature("amount_30d_mean", "mean(claim_amount)", window="30d"),
                             Feature("claims_90d", "count(*)", window="90d"),
                         ])
    with connect() as yard:
        yard.apply([stats])
        yard.ingest(source)
    return stats


def value_of(features: pd.DataFrame, seed: int) -> np.ndarray:
    """The next claim's value: mostly the last claim's amount, and the number of claims."""
    rng = np.random.default_rng(seed)
    return np.asarray(0.8 * features["amount"] + 40.0 * features["claims_90d"]
                      + rng.normal(0, 20, len(features))).round(2)


def fit(training: Any) -> Any:
    """A model of the claim value from the claim_stats features, nulls imputed."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    frame = training.to_pandas()
    return make_pipeline(SimpleImputer(), LinearRegression()).fit(frame[STATS],
                                                                  frame["claim_value"])
