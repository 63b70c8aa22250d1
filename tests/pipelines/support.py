"""Pipelines files the tests write into their project, and small helpers."""

from __future__ import annotations

import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

from modelyard.backends.metadata.monitoring import AlertRecord

TOY = '''
import modelyard
import pandas as pd


def make_frame(rows):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 2))
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": 2 * x[:, 0] + x[:, 1]})


@modelyard.pipeline(name="toy_retrain", model="toy", params={"alpha": 1.0, "rows": 40},
                    triggers=[modelyard.on_alert(cooldown="10m")])
def toy_retrain(ctx):
    from sklearn.linear_model import Ridge

    with ctx.step("data"):
        frame = make_frame(ctx.params["rows"])
    print("training rows:", len(frame))
    ctx.log.info("alpha is %s", ctx.params["alpha"])
    with ctx.step("fit"):
        model = Ridge(alpha=ctx.params["alpha"]).fit(frame[["a", "b"]], frame["y"])
    ctx.run.log_metrics({"r2": model.score(frame[["a", "b"]], frame["y"])})
    return ctx.register(model, input_example=frame[["a", "b"]].head(5), onnx=False)
'''

FAILING = '''
import modelyard


@modelyard.pipeline(name="broken", model="toy", triggers=[modelyard.on_alert("toy")])
def broken(ctx):
    print("about to fail")
    with ctx.step("explode"):
        raise ValueError("no data for " + ctx.now.date().isoformat())
'''

UPSTREAM = '''
import modelyard


@modelyard.pipeline(name="first", model="toy")
def first(ctx):
    print("first ran")


@modelyard.pipeline(name="second", model="toy", triggers=[modelyard.on_success("first")])
def second(ctx):
    print("second ran after", ctx.trigger_detail["pipeline"])
'''

# A pipeline for the worker processes: appends "run_id pid attempt-start" to a file named by
# the param; with "hang" set, the first attempt writes a marker and sleeps (to be killed).
MARKER = '''
import os
import time
from pathlib import Path

import modelyard


@modelyard.pipeline(name="marker", model="toy", params={"out": "", "hang": False},
                    max_attempts=2)
def marker(ctx):
    out = Path(ctx.params["out"])
    with out.open("a") as fh:
        fh.write(f"start {ctx.run_id} {os.getpid()} {time.time()}\\n")
    first = Path(str(out) + ".hung")
    if ctx.params["hang"] and not first.exists():
        first.write_text(str(os.getpid()))
        time.sleep(120)
    time.sleep(0.05)
    with out.open("a") as fh:
        fh.write(f"end {ctx.run_id} {os.getpid()} {time.time()}\\n")
'''


def write(project: Path, *sources: str, name: str = "pipelines.py") -> Path:
    path = project / name
    path.write_text("\n".join(textwrap.dedent(s) for s in sources))
    return path


def alert(model: str = "toy", rule: str = "rmse > 1", **changes: Any) -> AlertRecord:
    values: dict[str, Any] = dict(
        alert_id=uuid.uuid4().hex, result_id=uuid.uuid4().hex, model=model, version=1,
        rule=rule, severity="warning", message=f"{rule} fired", value=2.0,
        fired_at_ms=int(time.time() * 1000), evidence={})
    values.update(changes)
    return AlertRecord(**values)

# A pipeline with a policy: fits y = 2a + b (or, with "bad", a model of shuffled labels)
# and registers it with a holdout for champion against challenger.
DECIDING = '''
import modelyard
import pandas as pd


def frame(rows, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 2))
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": 2 * x[:, 0] + x[:, 1]})


@modelyard.pipeline(name="toy_decide", model="toy", params={"bad": False},
                    policy="auto", triggers=[modelyard.on_alert(cooldown="1s")])
def toy_decide(ctx):
    from sklearn.linear_model import LinearRegression

    train = frame(60, 1)
    if ctx.params["bad"]:
        train["y"] = train["y"].sample(frac=1.0, random_state=0).to_numpy()
    model = LinearRegression().fit(train[["a", "b"]], train["y"])
    return ctx.register(model, input_example=train[["a", "b"]].head(3), onnx=False,
                        evaluation=frame(40, 2), label="y")
'''

# Fits the cost on the profile features of a training set cut at ctx.now, with label noise
# drawn from params["seed"] (None: unseeded, so every run differs).
REPRODUCIBLE = '''
import modelyard
import numpy as np
import pandas as pd


@modelyard.pipeline(name="claims_fit", model="claims-model", params={"seed": 7})
def claims_fit(ctx):
    from sklearn.linear_model import LinearRegression

    ids = np.arange(120, dtype=np.int64)
    rng = np.random.default_rng(ctx.params["seed"])
    spine = pd.DataFrame({"customer_id": ids,
                          "at": pd.Timestamp("2025-03-01", tz="UTC"),
                          "cost": ids * 3.0 + rng.normal(0, 5, len(ids))})
    ts = ctx.training_set(spine, ["profile:age", "profile:vehicle_value"], label="cost",
                          timestamp="at")
    frame = ts.to_pandas()
    model = LinearRegression().fit(frame[["age", "vehicle_value"]], frame["cost"])
    return ctx.register(model, training_set=ts, onnx=False)
'''
