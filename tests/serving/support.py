"""A project with a served model: a customer profile group, its training set, and models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import modelyard
from modelyard import Entity, Feature, FeatureGroup, Source, Yard

MODEL = "claims-model"
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=20)
FEATURES = ["profile:age", "profile:vehicle_value", "profile:region"]
NUMERIC = ["age", "vehicle_value"]
CLASSIFIER = "claims-class"

customer = Entity("customer", key="customer_id")
policies = Source.frame("policies", timestamp="ts")
profile = FeatureGroup("profile", entity=customer, source=policies, features=[
    Feature("age", "age"),
    Feature("vehicle_value", "vehicle_value"),
    Feature("region", "region"),
])


def people(n: int = 150, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer_id": np.arange(1, n + 1, dtype=np.int64),
        "ts": [T0 + timedelta(hours=int(h)) for h in rng.integers(0, 24 * 10, n)],
        "age": rng.uniform(18, 80, n).round(1),
        "vehicle_value": rng.uniform(2_000, 60_000, n).round(0),
        "region": rng.choice(["north", "south", "east"], n),
    })


def expired_ids(days: float = 15.0) -> tuple[list[int], list[int]]:
    """The people whose profile is older than ``days`` (expired under that ttl), and the
    others (found), a day's margin left out on each side."""
    rows = people()
    now = datetime.now(UTC)
    age = (now - rows["ts"]).dt.total_seconds() / 86_400
    return ([int(i) for i in rows.loc[age > days + 1, "customer_id"]],
            [int(i) for i in rows.loc[age < days - 1, "customer_id"]])


def cost(frame: pd.DataFrame, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    bump = np.where(frame["region"] == "south", 25.0, 0.0)
    return np.asarray(3.0 * frame["age"] + 0.01 * frame["vehicle_value"] + bump
                      + rng.normal(0, 2, len(frame)))


def open_yard(project: Path, online_uri: str | None = None) -> Yard:
    extra: dict[str, Any] = {} if online_uri is None else {"online_uri": online_uri}
    return modelyard.connect(project=project, capture_git=False, capture_packages=False,
                             **extra)


def setup(yard: Yard, *, materialize: bool = True, ttl: str | None = None) -> Any:
    """Apply and ingest the profile group, materialize it; return the training set. With
    ``ttl`` (``"15d"``: about half the people, see :func:`expired_ids`), a profile whose
    values expire."""
    rows = people()
    yard.apply([profile if ttl is None else FeatureGroup(
        "profile", entity=customer, source=policies, ttl=ttl, features=list(profile.features))])
    yard.ingest(policies, rows)
    if materialize:
        yard.materialize()
    spine = pd.DataFrame({"customer_id": rows["customer_id"],
                          "at": rows["ts"] + timedelta(days=1), "cost": cost(rows)})
    return yard.training_set(spine, FEATURES, label="cost", timestamp="at")


def linear(training: Any, scale: float = 1.0) -> Any:
    """A linear model of the numeric inputs (its ONNX twin takes one float tensor)."""
    from sklearn.linear_model import LinearRegression

    frame = training.to_pandas()
    return LinearRegression().fit(frame[NUMERIC], frame["cost"] * scale)


def pipeline(training: Any) -> Any:
    """A pipeline over the numeric inputs and the region (text)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = training.to_pandas()
    encode = ColumnTransformer([("region", OneHotEncoder(handle_unknown="ignore"), ["region"]),
                                ("numbers", "passthrough", NUMERIC)])
    return Pipeline([("encode", encode), ("model", Ridge(alpha=0.1))]).fit(
        frame[[*NUMERIC, "region"]], frame["cost"])


def register(yard: Yard, model: Any, training: Any, *, onnx: bool = True,
             features: list[str] | None = None, alias: str | None = "production") -> int:
    """Log ``model`` from a run as the next version; promote it to ``alias`` (no gates)."""
    with yard.start_run("serving") as run:
        record = run.log_model(model, MODEL, training_set=training, onnx=onnx,
                               features=features)
    if alias is not None:
        yard.models.promote(MODEL, record.version, alias, reason="test")
    return record.version


def classifier(training: Any) -> Any:
    """A classifier over a text input and the numbers, with text classes ("high", "low")."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = training.to_pandas()
    label = np.where(frame["cost"] > frame["cost"].median(), "high", "low")
    encode = ColumnTransformer([("region", OneHotEncoder(handle_unknown="ignore"), ["region"]),
                                ("numbers", "passthrough", NUMERIC)])
    return Pipeline([("encode", encode), ("model", LogisticRegression(max_iter=500))]).fit(
        frame[[*NUMERIC, "region"]], label)


def regressor_and_classifier(yard: Yard) -> None:
    """The features, then MODEL (a regressor that also takes entity keys, with its twin) and
    CLASSIFIER (no twin), both promoted to production."""
    training = setup(yard)
    register(yard, linear(training), training, features=NUMERIC)
    with yard.start_run("classifier") as run:
        record = run.log_model(classifier(training), CLASSIFIER, training_set=training,
                               onnx=False)
    yard.models.promote(CLASSIFIER, record.version, "production", reason="test")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_serve(project: Path, args: list[str], log: Path, env: dict[str, str] | None = None,
                ) -> tuple[Any, str]:
    """``modelyard serve ARGS`` in ``project`` on a free port, once ``/readyz`` answers 200:
    the process and its base URL (the caller stops it)."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    environment.update(env or {})
    out = log.open("w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "modelyard"), "serve", *args,
                             "--port", str(port), "--log-level", "warning"],
                            cwd=project, env=environment, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited: {log.read_text()}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the server did not start in time")
        time.sleep(0.1)


def stop_serve(proc: Any) -> None:
    """Stop it as an operator would (SIGTERM): it drains and flushes its prediction log."""
    import subprocess

    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
