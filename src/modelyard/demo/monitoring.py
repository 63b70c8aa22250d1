"""The demo's monitoring step: the production model watched month by month as the world
drifts, until an alert starts its retraining.

Month by month after the validation months, the claims filed that month are scored by the
version in production, their features built point in time, and logged as predictions made
when each claim was filed: scored in one batch, not served, so each record's latency is null
(not measured) and service health leaves these rows out of its latency percentiles. Claims
settle later: the settled values arrive as labels for every month but the last. Alert rules
are set on the model (dataset drift, two features' drift, the error growing 30% past the
registered evaluation: a month's rmse on these heavy-tailed claim values moves by 15 to 20%
for a model that is doing well), with a command that files each alert in the project's
``alerts.jsonl``, and the project's retraining pipeline (:mod:`~modelyard.demo.retraining`)
is applied: its trigger names the error rule. Then one stored check per month: the first
months look like the training data, the later ones carry the shift the data was generated
with. The check whose alert queues a run of the pipeline ends this step; the months after it
are watched once the retraining is done (:func:`watch_after`), and the last month's report is
written as ``monitoring-report.html``. Last, the service health of the serving step's live
requests: the log over the wall-clock interval that step served in, so traffic of any other
run is not counted. The checks read only the production version's predictions: the months
follow the demo's calendar (:mod:`~modelyard.demo.clock`), ending at the start of today's
month.
"""

from __future__ import annotations

import itertools
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelyard.demo.candidates import FEATURES, TARGET
from modelyard.demo.registry import ALIAS, MODEL
from modelyard.demo.retraining import PIPELINE, TRIGGER_RULE, declare_retraining
from modelyard.demo.state import DemoState, need
from modelyard.demo.training import (
    FEATURE_REFS,
    ROW_TIME,
    claims_spine,
    model_frame,
    regression_metrics,
)

if TYPE_CHECKING:
    import pandas as pd

    from modelyard.backends.metadata.pipelines import PipelineRunRecord
    from modelyard.client import Yard
    from modelyard.monitoring.check import MonitorResult

RULES = ("dataset_drift", "drift(region)", "drift(claim_type)",
         "rmse worse by 30% [critical]")
REPORT = "monitoring-report.html"
INBOX = "alerts.jsonl"
_WRITE_CHUNK = 5_000

Month = tuple["pd.Timestamp", "pd.Timestamp"]


@dataclass
class MonthCheck:
    month: str
    rows: int
    labelled: int
    drifted_share: float | None
    drifted: list[str]
    metrics: dict[str, float]
    change: float | None  # relative change of rmse against the registered evaluation
    alerts: list[str]
    version: int | None = None  # the version in production that month, that was checked
    rules: list[str] = field(default_factory=list)  # of the alerts, as the alerts name them
    registered: float | None = None  # the rmse of the evaluation ``change`` is measured from
    registered_on: str | None = None  # that evaluation's data set
    before: dict[str, float] = field(default_factory=dict)  # the earlier champion's metrics
    # on the same labelled claims (after a retraining; scored, not served nor logged)


@dataclass(frozen=True)
class Trigger:
    """The alert that queued a run of the retraining pipeline."""

    run_id: str
    month: str
    rules: list[str]
    values: dict[str, float]
    alert_ids: list[str]
    fired_at_ms: int | None


@dataclass
class WatchOutcome:
    version: int | None = None
    logged: int = 0
    labelled: int = 0
    months: list[MonthCheck] = field(default_factory=list)
    report: str | None = None
    inbox: str | None = None
    notes: list[str] = field(default_factory=list)
    health: dict[str, Any] = field(default_factory=dict)  # of the serving step's traffic
    seconds: float = 0.0
    skipped: str | None = None
    pipeline: str | None = None  # the retraining pipeline applied, and its version
    pipeline_version: int | None = None
    trigger: Trigger | None = None
    collapsed: str | None = None  # why an alert naming the pipeline queued no new run
    pending: list[Month] = field(default_factory=list)  # months left after the trigger
    frame: pd.DataFrame | None = field(default=None, repr=False)  # the later months' rows
    result: MonitorResult | None = field(default=None, repr=False)  # the last check


def watch_production(state: DemoState, progress: Callable[[str], None]) -> None:
    """Set the rules, apply the retraining pipeline, then log, label and check each month
    after validation until a check's alert queues a retraining run."""
    began = time.perf_counter()
    outcome = WatchOutcome()
    state.watch = outcome
    yard, data, split = state.yard, need(state.data, "data"), need(state.split, "split")
    version = yard.models.aliases(MODEL).get(ALIAS)
    if version is None:
        outcome.skipped = f"no version holds {MODEL}@{ALIAS}"
        return
    outcome.version = version
    progress("building the later months' features point in time")
    spine = claims_spine(data.claims, data.end)
    spine = spine[spine["event_time"] >= split.valid_end].reset_index(drop=True)
    outcome.frame = model_frame(yard.training_set(spine, list(FEATURE_REFS), label=TARGET,
                                                  timestamp=ROW_TIME))
    inbox = state.root / INBOX
    inbox.unlink(missing_ok=True)
    command = shlex.join([sys.executable, "-m", "modelyard.demo.alert_inbox", str(inbox)])
    yard.monitoring.set_rules(MODEL, RULES, notify=[f"command:{command}"])
    progress("applying the retraining pipeline")
    outcome.pipeline, outcome.pipeline_version = PIPELINE, declare_retraining(state)
    earlier = {r.run_id for r in yard.pipelines.runs(PIPELINE, limit=None)}
    months = _months(split.valid_end, data.end)
    for i, month in enumerate(months):
        _check_month(state, outcome, month, settled=month != months[-1], progress=progress)
        found = [r for r in yard.pipelines.runs(PIPELINE, limit=None)
                 if r.run_id not in earlier and r.trigger == "alert"]
        if found:
            outcome.trigger = _trigger(yard, found[-1], outcome.months[-1].month)
            outcome.pending = months[i + 1:]
            break
        if TRIGGER_RULE in outcome.months[-1].rules:
            outcome.collapsed = _collapsed_into(yard, PIPELINE)
    live = state.live
    if live is not None and live.began is not None and live.ended is not None:
        progress("the serving step's live traffic")
        outcome.health = yard.monitoring.check(MODEL, start=live.began, end=live.ended,
                                               store=False, send=False
                                               ).to_dict().get("health") or {}
    outcome.inbox = str(inbox) if inbox.exists() else None
    outcome.seconds = time.perf_counter() - began
    state.parent.log_metrics({"monitoring_rows_logged": outcome.logged,
                              "monitoring_alerts": sum(len(m.alerts) for m in outcome.months)})


@dataclass
class AfterOutcome:
    """The months watched after the retraining, and why production holds its version."""

    version: int | None = None  # in production for those months
    earlier: int | None = None  # the champion it replaced, scored beside it
    months: list[MonthCheck] = field(default_factory=list)
    why: list[str] = field(default_factory=list)  # yard.pipelines.why(claims-model@...)


def watch_after(state: DemoState, progress: Callable[[str], None]) -> None:
    """Log, label and check the months left after the retraining with the version then in
    production (the earlier champion's metrics on the same claims beside), say why that
    version holds production, and write the last month's report."""
    began = time.perf_counter()
    after = AfterOutcome()
    state.after = after
    outcome = need(state.watch, "monitoring outcome")
    yard = state.yard
    if outcome.skipped:
        return
    after.version = yard.models.aliases(MODEL).get(ALIAS)
    after.earlier = outcome.version if after.version != outcome.version else None
    for month in outcome.pending:
        _check_month(state, outcome, month, settled=month != outcome.pending[-1],
                     progress=progress, version=after.version, compare_with=after.earlier)
        after.months.append(outcome.months.pop())
    if after.version is not None and outcome.trigger is not None:
        after.why = yard.pipelines.why(f"{MODEL}@{ALIAS}").lines()
    if outcome.result is not None:
        progress("writing the report")
        report = state.root / REPORT
        yard.monitoring.report(MODEL, result=outcome.result, html=report)
        outcome.report = str(report)
        outcome.notes = list(outcome.result.notes)
    inbox = state.root / INBOX
    outcome.inbox = str(inbox) if inbox.exists() else None
    outcome.seconds += time.perf_counter() - began


def _check_month(state: DemoState, outcome: WatchOutcome, month: Month, *, settled: bool,
                 progress: Callable[[str], None], version: int | None = None,
                 compare_with: int | None = None) -> None:
    """Score the month's claims with ``version`` (default: the one the step began with) and
    log them, attach their labels when ``settled``, and store the month's check."""
    yard, frame = state.yard, need(outcome.frame, "later months' rows")
    version = outcome.version if version is None else version
    assert version is not None
    start, end = month
    rows = frame[(frame["event_time"] >= start) & (frame["event_time"] < end)]
    progress(f"{start:%B %Y}: scoring {len(rows):,} claims with version {version}")
    outcome.logged += _log_predictions(yard, version, rows, progress)
    if settled and len(rows):
        found = yard.log_labels(MODEL, rows.assign(request_id=_request_ids(rows))[
            ["request_id", TARGET]], values=[TARGET])
        outcome.labelled += found.matched
    progress(f"checking {start:%B %Y}")
    result = yard.monitoring.check(MODEL, start=start.to_pydatetime(),
                                   end=end.to_pydatetime(), version=version)
    outcome.result = result
    checked = _month(f"{start:%b %Y}", result.to_dict(), [o.message for o in result.fired])
    checked.version, checked.rules = version, [o.rule.label for o in result.fired]
    if compare_with is not None and settled and len(rows):
        earlier = yard.models.load(MODEL, compare_with)
        checked.before = regression_metrics(rows[TARGET].to_numpy(),
                                            earlier.predict(rows[list(FEATURES)]))
    outcome.months.append(checked)


def _trigger(yard: Yard, run: PipelineRunRecord, month: str) -> Trigger:
    detail = run.trigger_detail
    ids = [str(i) for i in detail.get("alerts", [])]
    fired = [a.fired_at_ms for a in yard.monitoring.alerts(MODEL, limit=50) if a.alert_id in ids]
    return Trigger(run.run_id, month, [str(r) for r in detail.get("rules", [])],
                   {str(k): float(v) for k, v in (detail.get("values") or {}).items()
                    if v is not None}, ids, min(fired) if fired else None)


def _collapsed_into(yard: Yard, pipeline: str) -> str:
    latest = yard.pipelines.runs(pipeline, limit=1)
    if not latest:
        return "no run was queued"
    run = latest[0]
    return (f"the alert joined run {run.run_id[:8]} ({run.status}), started within the "
            "trigger's cooldown")


def _months(start: pd.Timestamp, end: pd.Timestamp) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    import pandas as pd

    bounds = list(pd.date_range(start, end, freq="MS", tz="UTC"))
    if not bounds or bounds[0] != start:
        bounds.insert(0, start)
    if bounds[-1] != end:
        bounds.append(end)
    return list(itertools.pairwise(bounds))


def _request_ids(frame: pd.DataFrame) -> list[str]:
    return [f"claim-{claim_id}" for claim_id in frame["claim_id"]]


def _log_predictions(yard: Yard, version: int, frame: pd.DataFrame,
                     progress: Callable[[str], None]) -> int:
    """Score the claims with the version in one batch and log each as a prediction made
    when it was filed (one request per claim). No client waited for these answers, so no
    latency is recorded: ``latency_ms`` is None."""
    import pandas as pd

    from modelyard.backends.metadata.predictions import PredictionRecord

    if not len(frame):
        return 0
    model = yard.models.load(MODEL, version)
    inputs = frame[list(FEATURES)]
    predictions = model.predict(inputs)
    epoch = pd.Timestamp(0, tz="UTC")
    at_us = ((frame["event_time"] - epoch) // pd.Timedelta(microseconds=1)).tolist()
    ids = _request_ids(frame)
    customers = frame["customer_id"].tolist()
    rows = inputs.to_dict("records")
    records = [PredictionRecord(ids[i], 0, MODEL, version, "primary", int(at_us[i]),
                                None, {"customer_id": int(customers[i])}, rows[i],
                                {"prediction": float(predictions[i])})
               for i in range(len(frame))]
    for done in range(0, len(records), _WRITE_CHUNK):
        progress(f"logging predictions {done:,}-{min(done + _WRITE_CHUNK, len(records)):,} "
                 f"of {len(records):,}")
        yard.predictions.write(records[done:done + _WRITE_CHUNK])
    return len(records)


def _month(name: str, result: dict[str, Any], alerts: list[str]) -> MonthCheck:
    drift = result.get("drift") or {}
    performance = result.get("performance") or {}
    rmse: dict[str, Any] = next((c for c in performance.get("changes", [])
                                 if c.get("metric") == "rmse"), {})
    return MonthCheck(name, int(result.get("rows", 0)), int(performance.get("labelled_rows", 0)),
                      drift.get("drifted_share"), list(drift.get("drifted_columns", [])),
                      dict(performance.get("metrics", {})), rmse.get("relative_change"), alerts,
                      registered=rmse.get("reference"),
                      registered_on=performance.get("reference_dataset"))
