"""The demo's monitoring step: the production model watched month by month as the world
drifts.

Every claim filed after the validation months is scored by the production version, its
features built point in time, and logged as a prediction at the moment the claim was filed:
scored in one batch, not served, so each record's latency is null (not measured) and service
health leaves these rows out of its latency percentiles. Claims settle later: the settled
values arrive as labels for every month but the last. Alert rules are set on the model
(dataset drift, any feature's PSI, the error growing 15% past the registered evaluation),
with a command that files each alert in the project's ``alerts.jsonl``. Then one check per
month, each stored: the first months look like the training data, the later ones carry the
shift the data was generated with. The last month's report is written as
``monitoring-report.html``. Last, the service health of the serving step's live requests:
the log over the wall-clock interval that step served in, so traffic of any other run is not
counted. The checks read only the production version's predictions: the months follow the
demo's calendar (:mod:`~modelyard.demo.clock`), ending at the start of today's month.
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
from modelyard.demo.state import DemoState, need
from modelyard.demo.training import FEATURE_REFS, ROW_TIME, claims_spine, model_frame

if TYPE_CHECKING:
    import pandas as pd

    from modelyard.client import Yard

RULES = ("dataset_drift", "drift(region)", "drift(claim_type)",
         "rmse worse by 15% [critical]")
REPORT = "monitoring-report.html"
INBOX = "alerts.jsonl"
_WRITE_CHUNK = 5_000


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


def watch_production(state: DemoState, progress: Callable[[str], None]) -> None:
    """Log the later months' predictions, label all but the last month, check each month."""
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
    frame = model_frame(yard.training_set(spine, list(FEATURE_REFS), label=TARGET,
                                          timestamp=ROW_TIME))
    months = _months(split.valid_end, data.end)
    outcome.logged = _log_predictions(yard, version, frame, progress)
    settled = frame[frame["event_time"] < months[-1][0]]
    progress(f"{len(settled):,} claims settled: attaching their values as labels")
    found = yard.log_labels(MODEL, settled.assign(request_id=_request_ids(settled))[
        ["request_id", TARGET]], values=[TARGET])
    outcome.labelled = found.matched
    inbox = state.root / INBOX
    inbox.unlink(missing_ok=True)
    command = shlex.join([sys.executable, "-m", "modelyard.demo.alert_inbox", str(inbox)])
    yard.monitoring.set_rules(MODEL, RULES, notify=[f"command:{command}"])
    result = None
    for start, end in months:
        progress(f"checking {start:%B %Y}")
        result = yard.monitoring.check(MODEL, start=start.to_pydatetime(),
                                       end=end.to_pydatetime(), version=version)
        outcome.months.append(_month(f"{start:%b %Y}", result.to_dict(),
                                     [o.message for o in result.fired]))
    live = state.live
    if live is not None and live.began is not None and live.ended is not None:
        progress("the serving step's live traffic")
        outcome.health = yard.monitoring.check(MODEL, start=live.began, end=live.ended,
                                               store=False, send=False
                                               ).to_dict().get("health") or {}
    progress("writing the report")
    report = state.root / REPORT
    yard.monitoring.report(MODEL, result=result, html=report)
    outcome.report = str(report)
    outcome.inbox = str(inbox) if inbox.exists() else None
    outcome.notes = [] if result is None else list(result.notes)
    outcome.seconds = time.perf_counter() - began
    state.parent.log_metrics({"monitoring_rows_logged": outcome.logged,
                              "monitoring_alerts": sum(len(m.alerts) for m in outcome.months)})


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
    change = next((c.get("relative_change") for c in performance.get("changes", [])
                   if c.get("metric") == "rmse"), None)
    return MonthCheck(name, int(result.get("rows", 0)), int(performance.get("labelled_rows", 0)),
                      drift.get("drifted_share"), list(drift.get("drifted_columns", [])),
                      dict(performance.get("metrics", {})), change, alerts)
