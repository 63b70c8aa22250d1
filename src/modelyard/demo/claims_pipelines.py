"""The retraining pipeline of the claims project, defined in code.

``modelyard pipelines apply`` stores it (its code as source, versioned by its content).
Monitoring's rule on the model's error triggers it; ``modelyard worker`` runs what is
queued, and ``modelyard pipelines run claims_retrain`` runs it by hand.

A run judges on one month: the window of the monitoring check whose alert started it (by
hand: the calendar month before the run). It trains the demo's boosted-trees recipe on the
year of claims up to the end of that month, as the feature store held them at the run's
time, except the claims that one customer in three filed during the month: those are kept
aside, and the candidate and the version in production are both scored on them. The
candidate then waits for approval: ``modelyard models approve claims-model:VERSION``.
"""

from typing import Any

import numpy as np
import pandas as pd

import modelyard

CATEGORICAL = ["region", "vehicle_type", "credit_band", "claim_type", "incident_severity",
               "repair_shop"]
NUMERIC = ["age", "vehicle_age", "vehicle_value", "annual_mileage_km", "policy_tenure_years",
           "days_to_report", "vehicles_involved", "police_report", "claims_30d", "claims_90d",
           "claims_365d", "amount_30d_mean", "amount_90d_sum", "amount_365d_mean",
           "amount_365d_max", "severity_90d_max", "serious_claims_365d",
           "days_since_last_claim"]
FEATURES = CATEGORICAL + NUMERIC
FEATURE_REFS = ["customer_profile:*", "claim_history:*", "claim_timing:*"]
CLAIM_COLUMNS = ["claim_type", "incident_severity", "repair_shop", "days_to_report",
                 "vehicles_involved", "police_report"]
LABEL = "claim_value"
ROW_TIME = "feature_time"  # just before the claim: its windows hold only earlier claims


def judged_window(ctx: modelyard.PipelineContext) -> tuple[str, str]:
    """The month the run judges on, as ISO texts: the window of the monitoring check whose
    alert started it; when reproducing a version, the one its run recorded; else the
    calendar month before the run's time."""
    if ctx.trigger == "reproduce":
        detail = ctx.trigger_detail
        version = ctx.models.get_version(f"{detail['model']}:{detail['version']}")
        params = ctx.tracking.get_run(str(version.run_id)).params
        return str(params["window.start"]), str(params["window.end"])
    alerts = set(ctx.trigger_detail.get("alerts", []))
    for alert in ctx.monitoring.alerts(ctx.model, limit=None) if alerts else []:
        if alert.alert_id in alerts:
            window = ctx.monitoring.get_result(alert.result_id)["window"]
            return str(window["start"]), str(window["end"])
    end = pd.Timestamp(ctx.now).normalize().replace(day=1)
    return (end - pd.DateOffset(months=1)).isoformat(), end.isoformat()


def model_rows(training_set: modelyard.TrainingSet) -> pd.DataFrame:
    """A training set's rows as the model takes them (police reports as 0/1, as served)."""
    frame = training_set.to_pandas()
    frame["police_report"] = frame["police_report"].astype("int64")
    return frame


def recipe(params: dict[str, Any]) -> Any:
    """Histogram gradient boosting behind an ordinal encoding of the categories."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    encode = ColumnTransformer([
        ("categorical", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                       dtype=float), CATEGORICAL),
        ("numeric", "passthrough", NUMERIC),
    ])
    model = HistGradientBoostingRegressor(
        categorical_features=list(range(len(CATEGORICAL))), max_iter=params["max_iter"],
        learning_rate=params["learning_rate"], max_leaf_nodes=params["max_leaf_nodes"],
        l2_regularization=params["l2_regularization"], random_state=params["seed"])
    return Pipeline([("encode", encode), ("model", model)])


@modelyard.pipeline(
    name="claims_retrain", model="claims-model", policy="approval", notify=["log"],
    params={"months": 12, "holdout_every": 3, "max_iter": 250, "learning_rate": 0.08,
            "max_leaf_nodes": 31, "l2_regularization": 1.0, "seed": 42},
    triggers=[modelyard.on_alert(rule="rmse worse by 30%", cooldown="6h")],
)
def claims_retrain(ctx: modelyard.PipelineContext) -> Any:
    """Retrain claims-model on the latest year of claims when its error grows; the
    candidate meets production on the latest month's held-out claims and waits for
    approval."""
    from sklearn.metrics import mean_squared_error, r2_score
    from threadpoolctl import threadpool_limits

    params = ctx.params
    with ctx.step("window"):
        start, end = judged_window(ctx)
        first, until = pd.Timestamp(start), pd.Timestamp(end)
        since = until - pd.DateOffset(months=int(params["months"]))
        ctx.run.log_params({"window.start": start, "window.end": end,
                            "train.start": since.isoformat()})
    with ctx.step("training set"):
        claims = ctx.features.tables.read("claims", as_of=ctx.now).to_pandas()
        claims = claims[(claims["event_time"] >= since) & (claims["event_time"] < until)]
        spine = claims[["claim_id", "customer_id", "event_time", *CLAIM_COLUMNS, LABEL]]
        spine = spine.sort_values("event_time").reset_index(drop=True)
        spine.insert(3, ROW_TIME, spine["event_time"] - pd.Timedelta(microseconds=1))
        held = (spine["event_time"] >= first) & (
            spine["customer_id"] % int(params["holdout_every"]) == 0)
        train = ctx.training_set(spine[~held], FEATURE_REFS, label=LABEL, timestamp=ROW_TIME)
        kept = ctx.training_set(spine[held], FEATURE_REFS, label=LABEL, timestamp=ROW_TIME)
        rows, evaluation = model_rows(train), model_rows(kept)
        print(f"{len(rows):,} claims to train on from {since:%Y-%m-%d} to {until:%Y-%m-%d}; "
              f"{len(evaluation):,} held out from {first:%Y-%m-%d}")
    with ctx.step("fit"), threadpool_limits(limits=1, user_api="openmp"):
        model = recipe(params)
        model.fit(rows[FEATURES], rows[LABEL])
    with ctx.step("score"):
        predicted = model.predict(evaluation[FEATURES])
        truth = evaluation[LABEL].to_numpy()
        ctx.run.log_metrics({"rmse": float(np.sqrt(mean_squared_error(truth, predicted))),
                             "r2": float(r2_score(truth, predicted))})
    # the fairness gate groups the held-out claims by the driver's age band
    evaluation["age_band"] = np.where(evaluation["age"] < 25, "under 25", "25 and over")
    return ctx.register(model, training_set=train, evaluation=evaluation, label=LABEL,
                        input_example=rows[FEATURES].sample(200, random_state=0),
                        description="Predicts a claim's settled value (retrained).")
